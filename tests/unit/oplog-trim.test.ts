import { describe, expect, it } from 'vitest';
import { MARKS_PER_AGE, OplogTrimPlanner } from '../../worker/oplog-trim.js';

describe('OplogTrimPlanner', () => {
  it('trims by age once at start, then only when the cut has moved by a step, and never while idle', () => {
    const p = new OplogTrimPlanner({ maxEntries: 100_000, maxAgeMs: 60_000 });
    expect(p.step).toBe(10_000);
    // First trim after a start: by count and by age (entries older than this process).
    expect(p.plan(500, 1_000_000)).toEqual({ upTo: 0, byAgeBefore: 940_000 });
    p.done(0, 1_000_000);
    // Idle: nothing new recorded, nothing to do, however often it is asked.
    for (let i = 0; i < 10; i++) expect(p.plan(500, 1_000_000 + i * 60_000)).toBeUndefined();
  });

  it('cuts by count once more than maxEntries + step were written', () => {
    const p = new OplogTrimPlanner({ maxEntries: 1000, maxAgeMs: 3_600_000 });
    p.done(0, 1000);
    for (let seq = 1; seq <= 1099; seq++) p.recorded(seq, 0);
    expect(p.plan(1099, 1000)).toBeUndefined();
    p.recorded(1100, 0);
    expect(p.plan(1100, 1000)).toEqual({ upTo: 100 });
    p.done(100, 1000);
    expect(p.plan(1150, 1000)).toBeUndefined();
    // A smaller cut goes once the interval (a tenth of the age limit, 6 min here) has passed.
    expect(p.plan(1150, 1000 + 360_000)).toEqual({ upTo: 150 });
  });

  it('cuts by age from the marks it recorded, keeping the newest entry', () => {
    const p = new OplogTrimPlanner({ maxEntries: 1_000_000, maxAgeMs: 1000 });
    p.done(0, 0);
    for (let seq = 1; seq <= 300; seq++) p.recorded(seq, 60_000 + seq * 10);
    // At t = 63,000 entries written before t = 62,000 (seq < 200) are too old; a minute has passed.
    expect(p.plan(300, 63_000)).toEqual({ upTo: 199 });
    p.done(199, 63_000);
    expect(p.plan(300, 64_000)).toBeUndefined();
    // Everything old, a minute later: the newest entry still stays.
    expect(p.plan(300, 130_000)).toEqual({ upTo: 299 });
  });

  it('keeps a bounded number of marks under a steady stream of writes, and never cuts an entry younger than the age limit', () => {
    // The ledger's planner: no count bound, 10 minutes of age; 2,000 writes a second for 20 minutes, one mark asked per write.
    const maxAgeMs = 600_000;
    const p = new OplogTrimPlanner({ maxEntries: Number.MAX_SAFE_INTEGER / 2, maxAgeMs });
    p.done(0, 0);
    const tsOf = (seq: number): number => Math.floor(seq / 2);
    let most = 0;
    for (let seq = 1; seq <= 2_400_000; seq++) {
      p.recorded(seq, tsOf(seq));
      most = Math.max(most, p.size);
      if (seq % 100_000 !== 0) continue;
      const now = tsOf(seq);
      const plan = p.plan(seq, now);
      if (!plan) continue;
      // Everything cut is older than the age limit, and the cut is at most one mark's span late.
      expect(tsOf(plan.upTo)).toBeLessThan(now - maxAgeMs);
      expect(tsOf(plan.upTo + 1)).toBeGreaterThanOrEqual(now - maxAgeMs - p.markSpanMs - 1);
      p.done(plan.upTo, now);
    }
    // Twice the marks of one age limit (cuts come a step or a tenth of the age apart), not one per write (1.2 million in the window).
    expect(most).toBeLessThanOrEqual(2 * MARKS_PER_AGE + 2);
    expect(p.plan(2_400_000, tsOf(2_400_000))).toBeUndefined();
  });
});
