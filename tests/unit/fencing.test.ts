import { describe, expect, it } from 'vitest';
import { FENCE_CHECK_MS, fenceMarginMs, masterLostGraceMs, selfFenceMs, unkillableWaitMs } from '../../common/fencing.js';

describe('fencing timing', () => {
  it('a master that lost ZooKeeper is fenced at least a second before a successor can replace it unkilled, for any session timeout', () => {
    for (const t of [500, 1000, 2000, 4000, 10_000, 30_000]) {
      // The server expires the session T after it last heard from the master; the orchestrator then waits W.
      const earliestPromotion = t + unkillableWaitMs(t);
      const latestSelfFence = selfFenceMs(t) + FENCE_CHECK_MS;
      expect({ t, margin: fenceMarginMs(t) }).toEqual({ t, margin: earliestPromotion - latestSelfFence });
      expect(fenceMarginMs(t)).toBeGreaterThanOrEqual(1000);
      // Detection alone (G) never promotes before the unkillable wait: the wait is the longer.
      expect(unkillableWaitMs(t)).toBeGreaterThan(masterLostGraceMs(t));
    }
  });

  it('the default 2 s session: a master rides out 10 s without ZooKeeper; an unkillable one is replaced no sooner than 11.25 s after its znode vanished', () => {
    expect(selfFenceMs(2000)).toBe(10_000);
    expect(masterLostGraceMs(2000)).toBe(4000);
    expect(2000 + unkillableWaitMs(2000)).toBe(11_250);
  });
});
