/**
 * The worker's half of fencing (worker/fencing.ts) against an in-memory
 * ZooKeeper: a master stops taking writes and leaves once the term passes its
 * own, once ZooKeeper has been silent for the self-fence deadline, or when its
 * session expired past the outage tolerance; within the tolerance it takes
 * /master back only while the term is still its own.
 */
import { describe, expect, it } from 'vitest';
import { loadWorkerConfig } from '../../common/config.js';
import { createLogger } from '../../common/logger.js';
import type { WorkerState } from '../../common/messages.js';
import { zkPaths } from '../../coordination/paths.js';
import { claimMaster, readMaster, registerWorker } from '../../coordination/registration.js';
import { bumpTerm, readTerm, watchTerm } from '../../coordination/term.js';
import { onMasterSessionLost, SelfFence, type FenceableMaster } from '../../worker/fencing.js';
import { statusOf } from '../coordination-suite.js';
import { MemoryZkServer, type MemoryZk } from './memory-zk.js';

class Left extends Error {}

async function masterWorld(opts: { contactAgeMs?: () => number; failReturns?: boolean } = {}) {
  const server = new MemoryZkServer();
  const paths = zkPaths('f');
  const orch = await server.session();
  const term = await bumpTerm(orch, paths);
  // The worker's session, made below (its session callback needs the fencing made first).
  const held: { zk?: MemoryZk } = {};
  const zkOf = (): MemoryZk => held.zk as MemoryZk;
  const events: string[] = [];
  let state: WorkerState = 'master';
  // fail() ends the process in the worker; here it throws, and the watches stop as they would with the process.
  let left = false;
  const master: FenceableMaster = {
    term,
    fence: async () => void events.push('fence'),
    resume: () => void events.push('resume'),
    attach: async () => void events.push('attach'),
  };
  const fencing: SelfFence = new SelfFence({
    config: loadWorkerConfig({ DBAAS_WORKER_ID: 'm', DBAAS_WORKER_MONGO_URL: 'mongodb://127.0.0.1:1/x', DBAAS_ZK_SESSION_TIMEOUT_MS: '500', DBAAS_ZK_OUTAGE_TOLERANCE_MS: '2000' }),
    logger: createLogger('unit-fencing', 'silent'),
    state: () => state,
    master: () => master,
    connection: () => undefined,
    fail: (reason) => {
      events.push(`leave: ${reason}`);
      left = true;
      // Called from a timer, where nothing would catch it: there, only recorded.
      if (opts.failReturns) return undefined as never;
      throw new Left(reason);
    },
    zk: {
      contactAgeMs: () => opts.contactAgeMs?.() ?? zkOf().contactAgeMs(),
      readTerm: () => readTerm(zk as MemoryZk, paths),
      claimMaster: (t) => claimMaster(zk as MemoryZk, paths, { id: 'm', term: t, dbUrl: 'mongodb://m' }, 1000),
      watchTerm: (t, moved) => watchTerm(zk as MemoryZk, paths, t, { moved, stopped: () => left }, 20),
    },
  });
  const zk = await server.session((s) =>
    s.onSession(async () => {
      await registerWorker(s, paths, statusOf('m', { role: 'master', state: 'master' }));
      await fencing.registered().catch((err: unknown) => {
        if (!(err instanceof Left)) throw err;
      });
    }),
  );
  held.zk = zk;
  await claimMaster(zk, paths, { id: 'm', term, dbUrl: 'mongodb://m' }, 1000);
  return { server, paths, orch, zk, events, fencing, term, setState: (s: WorkerState) => (state = s) };
}

const until = async (cond: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(cond()).toBe(true);
};

describe('worker fencing', () => {
  it('a master whose term is passed fences itself, then leaves', async () => {
    const w = await masterWorld();
    await w.fencing.watchTerm(w.term);
    expect(w.events).toEqual([]);
    await bumpTerm(w.orch, w.paths).catch(() => undefined);
    await until(() => w.events.length >= 2);
    expect(w.events[0]).toBe('fence');
    expect(w.events[1]).toMatch(/^leave: the term moved to 2 while this master holds term 1/);
  });

  it('a session expired within the outage tolerance: fenced at once, and /master is taken back on the next session while the term is its own', async () => {
    const w = await masterWorld();
    expect(await w.fencing.sessionExpired()).toBe(true);
    expect(w.events).toEqual(['fence']);
    await w.server.expire(w.zk);
    expect(w.events).toEqual(['fence', 'resume']);
    expect((await readMaster(w.orch, w.paths))?.id).toBe('m');
  });

  it('but not when the term moved meanwhile: it leaves instead', async () => {
    const w = await masterWorld();
    await w.fencing.sessionExpired();
    await bumpTerm(w.orch, w.paths);
    await w.server.expire(w.zk);
    expect(w.events.slice(0, 2)).toEqual(['fence', 'leave: the term moved to 2 while this master (term 1) had lost its session']);
    expect(await readMaster(w.orch, w.paths)).toBeUndefined();
  });

  it('a session lost past the tolerance, or while not yet master, means leaving', async () => {
    expect(onMasterSessionLost('master', 1000, 2000)).toBe('reclaim');
    expect(onMasterSessionLost('master', 2001, 2000)).toBe('leave');
    expect(onMasterSessionLost('promoting', 0, 2000)).toBe('leave');
    let age = 5000;
    const w = await masterWorld({ contactAgeMs: () => age });
    await expect(w.fencing.sessionExpired()).rejects.toThrow(/past the outage tolerance/);
    expect(w.events[0]).toBe('fence');
    age = 0;
  });

  it('no answer from ZooKeeper for the self-fence deadline: the lease ends, the master fences itself and leaves', async () => {
    let age = 0;
    const w = await masterWorld({ contactAgeMs: () => age, failReturns: true });
    expect(w.fencing.limitMs).toBe(2000);
    expect(w.fencing.leaseValid()).toBe(true);
    w.fencing.start();
    age = 2001;
    expect(w.fencing.leaseValid()).toBe(false);
    await until(() => w.events.length >= 2);
    w.fencing.stop();
    expect(w.events[0]).toBe('fence');
    expect(w.events[1]).toMatch(/no answer from ZooKeeper for 2001 ms \(limit 2000 ms\)/);
  });
});
