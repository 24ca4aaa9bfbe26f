/**
 * A starting worker's CPU priority (orchestrator/runtimes/start-priority.ts): raised on a real
 * process of its own session (as the process runtime spawns workers: detached), put back when the
 * start ends or after the cap. Raising needs CAP_SYS_NICE: without it the raise is refused once and
 * nothing changes (each case runs where it applies: the test may or may not raise a priority).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../common/backoff.js';
import { createLogger } from '../../common/logger.js';
import { mayRaise, schedulingNice, StartPriority } from '../../orchestrator/runtimes/start-priority.js';

const niceOf = schedulingNice;

describe('a starting worker\'s CPU priority', () => {
  const children: ChildProcess[] = [];
  const child = (): number => {
    const c = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
    children.push(c);
    if (c.pid === undefined) throw new Error('no child');
    return c.pid;
  };
  afterEach(() => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
  });

  it.runIf(process.platform === 'linux')('is raised at spawn and back to normal when the start ends', (ctx) => {
    const priority = new StartPriority(-10, createLogger('start-priority', 'silent'), 60_000);
    const worker = child();
    if (!mayRaise(worker)) ctx.skip();
    const db = child();
    priority.raise('w1', worker);
    priority.raise('w1', db);
    expect([niceOf(worker), niceOf(db)]).toEqual([-10, -10]);
    priority.lower('w1');
    expect([niceOf(worker), niceOf(db)]).toEqual([0, 0]);
  });

  it.runIf(process.platform === 'linux')('is back to normal after the cap when the start does not end (a long copy)', async (ctx) => {
    const priority = new StartPriority(-10, createLogger('start-priority', 'silent'), 200);
    const worker = child();
    if (!mayRaise(worker)) ctx.skip();
    priority.raise('w1', worker);
    expect(niceOf(worker)).toBe(-10);
    await waitFor(() => Promise.resolve(niceOf(worker) === 0 || undefined), 10_000, () => new Error('still raised after the cap'), 20);
  });

  it.runIf(process.platform === 'linux')('0 raises nothing', () => {
    const priority = new StartPriority(0, createLogger('start-priority', 'silent'));
    const worker = child();
    priority.raise('w1', worker);
    expect(niceOf(worker)).toBe(0);
  });

  it.runIf(process.platform === 'linux')('without CAP_SYS_NICE the raise is refused and the process keeps normal priority', (ctx) => {
    const priority = new StartPriority(-10, createLogger('start-priority', 'silent'));
    const worker = child();
    if (mayRaise(worker)) ctx.skip();
    priority.raise('w1', worker);
    expect(niceOf(worker)).toBe(0);
  });
});
