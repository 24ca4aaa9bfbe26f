import { describe, expect, it } from 'vitest';
import { StartWatch, waitForStart } from '../../orchestrator/start-wait.js';

describe('StartWatch', () => {
  it('keeps a start going past the timeout while it progresses, says so once, and stops it once it stalls', () => {
    const w = new StartWatch(0, 1000);
    expect(w.observe(500, undefined)).toBe('wait');
    expect(w.observe(900, 'syncing 10')).toBe('wait');
    expect(w.observe(1500, 'syncing 20')).toBe('extended');
    expect(w.observe(2400, 'syncing 30')).toBe('wait');
    expect(w.observe(3300, 'syncing 30')).toBe('wait');
    expect(w.observe(3401, 'syncing 30')).toBe('stalled');
  });

  it('gives a worker that never registers the plain timeout', () => {
    const w = new StartWatch(0, 1000);
    expect(w.observe(1000, undefined)).toBe('wait');
    expect(w.observe(1001, undefined)).toBe('stalled');
  });
});

describe('waitForStart', () => {
  it('resolves for a slow start that progresses, reporting the extension once; rejects a stalled one', async () => {
    let n = 0;
    const extended: number[] = [];
    const t0 = Date.now();
    await waitForStart({
      done: () => Date.now() - t0 > 150,
      progress: () => String(n++),
      timeoutMs: 50,
      onExtended: (ms) => extended.push(ms),
      stalled: () => new Error('stalled'),
      pollMs: 5,
    });
    expect(extended).toHaveLength(1);
    await expect(
      waitForStart({ done: () => false, progress: () => 'same', timeoutMs: 40, onExtended: () => undefined, stalled: (idle) => new Error(`no progress for ${idle} ms`), pollMs: 5 }),
    ).rejects.toThrow(/no progress for \d+ ms/);
  });
});
