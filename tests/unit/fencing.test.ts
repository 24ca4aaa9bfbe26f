import { describe, expect, it } from 'vitest';
import { FENCE_CHECK_MS, fenceMarginMs, masterLostGraceMs, selfFenceMs, unkillableWaitMs } from '../../common/fencing.js';

describe('fencing timing', () => {
  it('a master that lost ZooKeeper is fenced at least a second before a successor can replace it unkilled, for any session timeout and tolerance', () => {
    for (const t of [500, 1000, 2000, 4000, 10_000, 30_000]) {
      for (const tolerance of [1000, 10_000, 30_000, 120_000]) {
        // The server expires the session T after it last heard from the master; the orchestrator then waits W.
        const earliestPromotion = t + unkillableWaitMs(t, tolerance);
        const latestSelfFence = selfFenceMs(t, tolerance) + FENCE_CHECK_MS;
        expect({ t, tolerance, margin: fenceMarginMs(t, tolerance) }).toEqual({ t, tolerance, margin: earliestPromotion - latestSelfFence });
        expect(fenceMarginMs(t, tolerance)).toBeGreaterThanOrEqual(1000);
        expect(selfFenceMs(t, tolerance)).toBeGreaterThanOrEqual(tolerance);
      }
    }
  });

  it('the defaults (2 s sessions, 30 s tolerance): a master rides out 30 s without ZooKeeper; an unkillable one is replaced no sooner than 31.25 s after its znode vanished', () => {
    expect(selfFenceMs(2000, 30_000)).toBe(30_000);
    expect(masterLostGraceMs(2000)).toBe(4000);
    expect(2000 + unkillableWaitMs(2000, 30_000)).toBe(31_250);
  });
});
