import { describe, expect, it } from 'vitest';
import { judgeEntry, judgeRun, positionAfterSnapshot, replayFrom, republishFrom } from '../../worker/sync-order.js';

describe('judgeEntry', () => {
  const steady = { appliedSeq: 10, jumpUpTo: 0, maxTerm: 2 };

  it('applies the next seq and skips what is already applied', () => {
    expect(judgeEntry(steady, { seq: 11, term: 2 })).toBe('apply');
    expect(judgeEntry(steady, { seq: 10, term: 2 })).toBe('skip');
    expect(judgeEntry(steady, { seq: 3, term: 2 })).toBe('skip');
  });

  it('reports a gap when a seq is missing', () => {
    expect(judgeEntry(steady, { seq: 12, term: 2 })).toBe('gap');
    expect(judgeEntry(steady, { seq: 1000, term: 2 })).toBe('gap');
  });

  it('refuses entries from a deposed master (older term), even with a fitting seq', () => {
    expect(judgeEntry(steady, { seq: 11, term: 1 })).toBe('stale-term');
  });

  it('accepts a newer term continuing the sequence (after a promotion)', () => {
    expect(judgeEntry(steady, { seq: 11, term: 3 })).toBe('apply');
  });
});

describe('positionAfterSnapshot', () => {
  it('counts the snapshot seq as applied and wants exactly the next one', () => {
    const pos = positionAfterSnapshot(50, 4);
    expect(pos).toEqual({ appliedSeq: 50, jumpUpTo: 50, maxTerm: 4 });
    // Entries up to 50 still in the queue (published after the bind) are skipped.
    expect(judgeEntry(pos, { seq: 49, term: 4 })).toBe('skip');
    expect(judgeEntry(pos, { seq: 50, term: 4 })).toBe('skip');
    expect(judgeEntry(pos, { seq: 51, term: 4 })).toBe('apply');
    expect(judgeEntry(pos, { seq: 52, term: 4 })).toBe('gap');
  });

  it('starts an empty master at seq 0', () => {
    const pos = positionAfterSnapshot(0, 1);
    expect(pos.appliedSeq).toBe(0);
    expect(judgeEntry(pos, { seq: 1, term: 1 })).toBe('apply');
    expect(judgeEntry(pos, { seq: 2, term: 1 })).toBe('gap');
  });
});

describe('jumpUpTo', () => {
  it('lets the first entry skip ahead up to the bound, and no further', () => {
    const pos = { appliedSeq: 10, jumpUpTo: 13, maxTerm: 1 };
    expect(judgeEntry(pos, { seq: 13, term: 1 })).toBe('apply');
    expect(judgeEntry(pos, { seq: 14, term: 1 })).toBe('gap');
  });
});

describe('judgeRun', () => {
  const pos = { appliedSeq: 10, jumpUpTo: 0, maxTerm: 2 };

  it('judges a run as its entries one after the other', () => {
    const run = [
      { seq: 9, term: 2 },
      { seq: 11, term: 2 },
      { seq: 11, term: 2 },
      { seq: 12, term: 1 },
      { seq: 12, term: 3 },
      { seq: 13, term: 3 },
    ];
    const judged = judgeRun(pos, run);
    expect(judged.apply.map((e) => e.seq)).toEqual([11, 12, 13]);
    expect(judged.stale).toEqual([{ seq: 12, term: 1 }]);
    expect(judged.gap).toBeUndefined();
    expect(judged.pos).toEqual({ appliedSeq: 13, jumpUpTo: 0, maxTerm: 3 });
  });

  it('stops at a gap, keeping what came before it', () => {
    const judged = judgeRun(pos, [{ seq: 11, term: 2 }, { seq: 13, term: 2 }, { seq: 14, term: 2 }]);
    expect(judged.apply.map((e) => e.seq)).toEqual([11]);
    expect(judged.gap).toEqual({ seq: 13, term: 2 });
    expect(judged.pos.appliedSeq).toBe(11);
  });

  it('refuses an older term once a newer one was applied within the run', () => {
    const judged = judgeRun(pos, [{ seq: 11, term: 3 }, { seq: 12, term: 2 }]);
    expect(judged.stale).toEqual([{ seq: 12, term: 2 }]);
  });
});

describe('replayFrom', () => {
  it('covers the newest batch: from its first entry', () => {
    expect(replayFrom({ seq: 40, first: 33 })).toBe(33);
    // A batch of one (no `first`): just the entry.
    expect(replayFrom({ seq: 40 })).toBe(40);
  });

  it('widens to at least the asked margin, never below seq 1', () => {
    expect(replayFrom({ seq: 40, first: 38 }, 8)).toBe(33);
    expect(replayFrom({ seq: 40, first: 20 }, 8)).toBe(20);
    expect(replayFrom({ seq: 3 }, 8)).toBe(1);
  });
});

describe('republishFrom (a restarted master publishes again)', () => {
  it('every entry above the confirmed seq stored with the newest, across batches', () => {
    // Batch 1-40 published, its confirms not back; batch 41-42 published; crash. The slaves may hold nothing
    // past 0: the newest batch and 8 entries (35-42) would leave 1-34 out, and every slave would stop on the gap.
    expect(replayFrom({ seq: 42, first: 41 }, 8)).toBe(35);
    expect(republishFrom({ seq: 42, first: 41, acked: 0 })).toBe(1);
    expect(republishFrom({ seq: 42, first: 41, acked: 30 })).toBe(31);
    // Never less than the newest batch and 8 entries (its data may be half-applied; a margin).
    expect(republishFrom({ seq: 42, first: 41, acked: 41 })).toBe(35);
    expect(republishFrom({ seq: 100, first: 60, acked: 99 })).toBe(60);
  });

  it('without one (entries stored by a slave, or before it existed): the newest batch and 8 entries, as before', () => {
    expect(republishFrom({ seq: 42, first: 41 })).toBe(35);
    expect(republishFrom({ seq: 3 })).toBe(1);
  });
});
