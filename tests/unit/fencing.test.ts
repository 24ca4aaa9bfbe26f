import { describe, expect, it } from 'vitest';
import { FENCE_CHECK_MS, fenceMarginMs, masterLostGraceMs, selfFenceMs } from '../../common/fencing.js';

describe('fencing timing', () => {
  it('a master that lost ZooKeeper is fenced at least a second before a successor can be promoted, for any session timeout', () => {
    for (const t of [500, 1000, 2000, 4000, 10_000, 30_000]) {
      // The server expires the session at T after it last heard from the master; the orchestrator adds G.
      const earliestPromotion = t + masterLostGraceMs(t);
      const latestSelfFence = selfFenceMs(t) + FENCE_CHECK_MS;
      expect({ t, margin: fenceMarginMs(t) }).toEqual({ t, margin: earliestPromotion - latestSelfFence });
      expect(fenceMarginMs(t)).toBeGreaterThanOrEqual(1000);
    }
  });

  it('the default 2 s session: fenced after 4 s without an answer, successor no sooner than 6 s', () => {
    expect(selfFenceMs(2000)).toBe(4000);
    expect(2000 + masterLostGraceMs(2000)).toBe(6000);
  });
});
