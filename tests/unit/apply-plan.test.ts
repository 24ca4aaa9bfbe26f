import { describe, expect, it } from 'vitest';
import type { SyncEntry, SyncOp } from '../../common/messages.js';
import { coalesce, groupByTable, planApply, ReplayOverlay, type ApplyStep } from '../../worker/apply-plan.js';
import { replayFrom } from '../../worker/sync-order.js';
import { MemoryDb, rng, type Row } from './memory-db.js';

const put = (table: string, _id: string, v: unknown, fresh?: true): SyncOp => (fresh ? { t: 'put', table, doc: { _id, v }, fresh } : { t: 'put', table, doc: { _id, v } });
const del = (table: string, id: string): SyncOp => ({ t: 'del', table, id });

describe('planApply', () => {
  it('keeps the last change of each document', () => {
    const steps = planApply([put('a', 'x', 1), put('a', 'x', 2), put('a', 'y', 1), del('a', 'y'), put('b', 'x', 3)]);
    expect(steps).toEqual([
      {
        kind: 'changes',
        changes: [
          { table: 'a', id: 'x', doc: { _id: 'x', v: 2 }, fresh: false },
          { table: 'a', id: 'y', doc: undefined, fresh: false },
          { table: 'b', id: 'x', doc: { _id: 'x', v: 3 }, fresh: false },
        ],
      },
    ]);
  });

  it('inserts documents that are new, and never writes one made and deleted within the run', () => {
    const steps = planApply([put('a', 'n', 1, true), put('a', 'n', 2), put('a', 'gone', 1, true), del('a', 'gone')]);
    expect(steps).toEqual([{ kind: 'changes', changes: [{ table: 'a', id: 'n', doc: { _id: 'n', v: 2 }, fresh: true }] }]);
    expect(groupByTable((steps[0] as Extract<ApplyStep, { kind: 'changes' }>).changes)).toEqual([{ table: 'a', inserts: [{ _id: 'n', v: 2 }], replaces: [], deletes: [] }]);
  });

  it('keeps the delete of a document put fresh in the run when the data may already hold it (not exact)', () => {
    const ops = [put('a', 'n', 1, true), del('a', 'n'), put('a', 'm', 1, true)];
    expect(planApply(ops, false)).toEqual([
      {
        kind: 'changes',
        changes: [
          { table: 'a', id: 'n', doc: undefined, fresh: true },
          { table: 'a', id: 'm', doc: { _id: 'm', v: 1 }, fresh: true },
        ],
      },
    ]);
    // A fuzzy snapshot copy already holds n (inserted at a seq above the snapshot's): the delete must reach it.
    const copy = new MemoryDb();
    copy.applySequential([put('a', 'n', 1)]);
    copy.applySteps(planApply(ops, false));
    expect(copy.dump()).toEqual({ a: [{ _id: 'm', v: 1 }] });
    const elided = new MemoryDb();
    elided.applySequential([put('a', 'n', 1)]);
    elided.applySteps(planApply(ops, true));
    expect(elided.dump()).toEqual({ a: [{ _id: 'm', v: 1 }, { _id: 'n', v: 1 }] });
  });

  it('drops what a clear empties, and knows every document put after it is new', () => {
    const steps = planApply([put('a', 'x', 1), { t: 'clear' }, put('a', 'x', 2), { t: 'clear' }, put('b', 'y', 3)]);
    expect(steps).toEqual([{ kind: 'clear' }, { kind: 'changes', changes: [{ table: 'b', id: 'y', doc: { _id: 'y', v: 3 }, fresh: true }] }]);
    expect(planApply([])).toEqual([]);
  });
});

/**
 * Random ops. With `history` (the data as the ops are generated, kept up to date),
 * a put of a document that does not exist there carries the `fresh` hint, as the
 * master gives it.
 */
function randomOps(r: () => number, n: number, clears: boolean, history?: MemoryDb): SyncOp[] {
  const ops: SyncOp[] = [];
  for (let i = 0; i < n; i++) {
    const table = r() < 0.5 ? 'a' : 'b';
    const id = `d${Math.floor(r() * 5)}`;
    const x = r();
    let op: SyncOp;
    if (clears && x < 0.04) op = { t: 'clear' };
    else if (x < 0.7) op = put(table, id, Math.floor(r() * 1000), history !== undefined && !history.tables.get(table)?.has(id) ? true : undefined);
    else op = del(table, id);
    history?.applySequential([op]);
    ops.push(op);
  }
  return ops;
}

describe('a run written coalesced leaves what the ops one by one leave', () => {
  it('from any starting data, and again when written twice (replay), 300 seeds', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const r = rng(seed);
      const start = new MemoryDb();
      start.applySequential(randomOps(r, 8, false));
      const ops = randomOps(r, 12, true);
      const one = start.clone();
      one.applySequential(ops);
      const coalesced = start.clone();
      coalesced.applySteps(planApply(ops));
      expect({ seed, data: coalesced.dump() }).toEqual({ seed, data: one.dump() });
      // A crash part-way through, then the whole run again.
      const crashed = start.clone();
      crashed.applySteps(planApply(ops), () => r() < 0.5);
      crashed.applySteps(planApply(ops));
      expect({ seed, data: crashed.dump() }).toEqual({ seed, data: one.dump() });
    }
  });
});

/**
 * A model of the master and a snapshot taken while it writes: batches of entries
 * are stored whole, then their coalesced changes written one document at a time;
 * a copy starts at some moment (reading the newest stored entry s0 first) and
 * reads each document at a later moment of its own. The copy with the replay laid
 * over it, followed by the entries above s0 one by one, must equal the master.
 */
describe('snapshot: copy + replay overlay + newer entries = the master', () => {
  it('for copies taken at any moment of a run of batches, applied in runs of any length (1,500 seeds; trusting `fresh` in the copy window fails at seed 697)', () => {
    for (let seed = 1; seed <= 1500; seed++) {
      const r = rng(seed);
      const master = new MemoryDb();
      master.applySequential(randomOps(r, 10, false));
      const base = master.clone();
      const history = master.clone();

      // The master's history: batches of entries, each entry some ops.
      const entries: SyncEntry[] = [];
      const events: Array<() => void> = [];
      const storedAt: number[] = [];
      let seq = 0;
      const batches = 2 + Math.floor(r() * 4);
      for (let b = 0; b < batches; b++) {
        const size = 1 + Math.floor(r() * 4);
        const first = seq + 1;
        const batch: SyncEntry[] = [];
        for (let k = 0; k < size; k++) {
          seq += 1;
          const ops = randomOps(r, 1 + Math.floor(r() * 3), b > 0, history);
          batch.push({ v: 1, seq, term: 1, requestId: `r${seq}`, ts: 0, ops, result: { ok: true, seq, inserted: 0, ids: [], matched: 0, modified: 0, deleted: 0 }, ...(size > 1 ? { first } : {}) });
        }
        // Event: the batch's entries are stored.
        events.push(() => {
          entries.push(...batch);
        });
        storedAt.push(events.length - 1);
        // Events: each coalesced change written on its own.
        const steps = planApply(batch.flatMap((e) => e.ops));
        let count = 0;
        master.clone().applySteps(steps, () => {
          count += 1;
          return false;
        });
        for (let c = 0; c < count; c++) {
          const index = c;
          events.push(() => master.applySteps(steps, (i) => i === index));
        }
      }

      const at = Math.floor(r() * (events.length + 1));
      // Run the history up to the copy's start.
      for (let e = 0; e < at; e++) events[e]?.();
      const s0Entry = entries.at(-1);
      const s0 = s0Entry?.seq ?? 0;
      const replay = s0Entry ? entries.filter((e) => e.seq >= replayFrom(s0Entry)) : [];
      const overlay = new ReplayOverlay(replay.flatMap((e) => e.ops));

      // The copy reads documents one by one while the rest of the history happens.
      const copy = new MemoryDb();
      const keys = new Set<string>();
      for (const db of [base, master]) for (const [t, docs] of db.tables) for (const id of docs.keys()) keys.add(`${t}/${id}`);
      for (let i = 0; i < 10; i++) keys.add(`${i % 2 ? 'a' : 'b'}/d${i % 5}`);
      let e = at;
      for (const key of [...keys].sort()) {
        while (e < events.length && r() < 0.4) events[e++]?.();
        const [table, id] = key.split('/') as [string, string];
        const doc = master.tables.get(table)?.get(id);
        if (!doc) continue;
        const picked = overlay.pick(table, structuredClone(doc) as Row);
        if (picked) copy.applySequential([{ t: 'put', table, doc: picked }]);
      }
      for (const [table, docs] of overlay.unmet()) for (const doc of docs) copy.applySequential([{ t: 'put', table, doc }]);
      // The copy may hold effects of every entry stored by the time it is over.
      const fuzzyUpTo = entries.at(-1)?.seq ?? 0;
      while (e < events.length) events[e++]?.();

      // The slave then applies every entry above s0, in order, in runs of any length as its queue
      // delivers them; entries up to fuzzyUpTo without trusting `fresh` (as SlaveRole.applyRun).
      const above = entries.filter((x) => x.seq > s0);
      while (above.length > 0) {
        const run = above.splice(0, 1 + Math.floor(r() * 6));
        const inWindow = run.filter((x) => x.seq <= fuzzyUpTo);
        const past = run.slice(inWindow.length);
        if (inWindow.length > 0) copy.applySteps(planApply(inWindow.flatMap((x) => x.ops), false));
        if (past.length > 0) copy.applySteps(planApply(past.flatMap((x) => x.ops)));
      }
      expect({ seed, at, data: copy.dump() }).toEqual({ seed, at, data: master.dump() });
    }
  });

  it('would go wrong without the replay (the model can tell)', () => {
    // One batch of two entries; the copy reads x after the batch is stored but before x is written.
    const master = new MemoryDb();
    master.applySequential([put('a', 'x', 0)]);
    const batch: SyncEntry[] = [1, 2].map((seq) => ({ v: 1, seq, term: 1, requestId: `r${seq}`, ts: 0, ops: [put('a', 'x', seq)], result: { ok: true, seq, inserted: 0, ids: [], matched: 0, modified: 0, deleted: 0 }, first: 1 }));
    const stale = { _id: 'x', v: 0 };
    const without = new ReplayOverlay([]).pick('a', stale);
    const withReplay = new ReplayOverlay(batch.filter((e) => e.seq >= replayFrom(batch[1] as SyncEntry)).flatMap((e) => e.ops)).pick('a', stale);
    expect(without).toEqual({ _id: 'x', v: 0 });
    expect(withReplay).toEqual({ _id: 'x', v: 2 });
    expect(coalesce(batch.flatMap((e) => e.ops))).toHaveLength(1);
  });
});
