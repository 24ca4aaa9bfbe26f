import { describe, expect, it } from 'vitest';
import { RestartBackoff } from '../../orchestrator/restart-backoff.js';

describe('RestartBackoff (a master restart in place that keeps failing)', () => {
  it('spaces tries out up to the cap, and audits only failures 1, 2, 4, 8, …', () => {
    const b = new RestartBackoff(1000, 30_000);
    let now = 1_000_000;
    const audited: number[] = [];
    const delays: number[] = [];
    expect(b.mayStart('m1', now)).toBe(true);
    expect(b.first).toBe(true);
    for (let i = 0; i < 40; i++) {
      const t = b.failed(now);
      expect(t.since).toBe(1_000_000);
      if (t.audit) audited.push(t.failures);
      delays.push(t.delayMs);
      expect(b.first).toBe(false);
      expect(b.mayStart('m1', now + t.delayMs - 1)).toBe(false);
      now += t.delayMs;
      expect(b.mayStart('m1', now)).toBe(true);
    }
    expect(audited).toEqual([1, 2, 4, 8, 16, 32]);
    // Jittered between half and all of min(cap, 1 s × 2^n).
    expect(delays[0]).toBeGreaterThanOrEqual(500);
    expect(delays[0]).toBeLessThanOrEqual(1000);
    expect(Math.max(...delays)).toBeLessThanOrEqual(30_000);
    expect(Math.min(...delays.slice(10))).toBeGreaterThanOrEqual(15_000);
    // 40 failed tries take minutes, not the 52 s of one try every 1.3 s.
    expect(now - 1_000_000).toBeGreaterThan(10 * 60_000);
  });

  it('starts a new series for another master, after a success, and long after the last failure', () => {
    const b = new RestartBackoff(1000, 30_000);
    b.mayStart('m1', 0);
    const t = b.failed(0);
    expect(b.mayStart('m2', 1)).toBe(true);
    expect(b.first).toBe(true);
    b.failed(1);
    expect(b.succeeded()).toBe(1);
    expect(b.mayStart('m2', 2)).toBe(true);
    expect(b.first).toBe(true);
    b.failed(2);
    expect(b.mayStart('m2', 2 + t.delayMs + 11 * 60_000)).toBe(true);
    expect(b.first).toBe(true);
  });
});
