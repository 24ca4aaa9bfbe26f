/**
 * The oplog's reads by seq on a real FerretDB on PostgreSQL (worker/oplog.ts
 * `below`, pg-read.ts readIdRange): crash repair's newest batch
 * (Store.batchBetween), re-publishing and a backup's tail (Store.entriesBetween)
 * and the newest entry (Store.lastEntry). FerretDB 1.24 reads every entry of the
 * oplog for an `_id` range (session 5: a 1-entry range of 7,500 entries took
 * 4.3-5.5 s); PostgreSQL's `_id` btree must answer it instead, reading only the
 * entries asked for (the plan, with the rows it actually read), with exactly
 * what FerretDB answers (entries, undo ops, order), and FerretDB must still
 * answer what PostgreSQL's path cannot carry.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WIRE_VERSION, type SyncEntry, type SyncOp } from '../../common/messages.js';
import { tableIn } from '../../worker/pg-layout.js';
import { idRangeSql } from '../../worker/pg-read.js';
import { OPLOG } from '../../worker/oplog.js';
import { Store } from '../../worker/store.js';
import { ferretdbOnPostgres, startFerretDb, type TestFerretDb } from './ferretdb.js';
import { scanPlan } from './pg-plan.js';

const DB = 'w';
/** Entries in the oplog: enough that a scan of them and an index read of one differ by far in rows read. */
const ENTRIES = 3000;

function entry(seq: number, first: number): SyncEntry {
  return {
    v: WIRE_VERSION,
    seq,
    term: 1 + Math.floor(seq / 1000),
    requestId: `r-${seq}`,
    fingerprint: `f${seq}`,
    ts: 1_764_000_000_000 + seq,
    ops: [{ t: 'put', table: 't', doc: { _id: `d${seq % 50}`, n: seq, s: 'é☃', a: [1, 'x', { b: null }] } }],
    result: { ok: true, seq, inserted: 0, ids: [], matched: 1, modified: 1, deleted: 0 },
    first,
  };
}

describe.skipIf(!ferretdbOnPostgres)('oplog reads by seq below FerretDB (pg-read.ts readIdRange)', () => {
  let db: TestFerretDb;
  let store: Store;
  let pool: pg.Pool;
  const warnings: unknown[] = [];

  beforeAll(async () => {
    db = await startFerretDb('oplog-range');
    store = await Store.connect(db.mongoUrl, DB, 10_000);
    store.pgUrl = db.pgUrl;
    store.log = { warn: (...args: unknown[]) => void warnings.push(args) } as unknown as NonNullable<Store['log']>;
    pool = new pg.Pool({ connectionString: db.pgUrl, max: 1 });
    // Batches of 100 as the master stores them (below FerretDB: Store.recordEntries), every entry with undo ops;
    // then 20 more through FerretDB itself (Oplog.record), one without undo ops.
    for (let first = 1; first <= ENTRIES - 20; first += 100) {
      const batch = Array.from({ length: Math.min(100, ENTRIES - 20 - first + 1) }, (_, i) => entry(first + i, first));
      const undo = batch.map((e): SyncOp[] => [{ t: 'del', table: 't', id: `d${e.seq % 50}` }]);
      await store.recordEntries(batch, undo);
    }
    const tail = Array.from({ length: 20 }, (_, i) => entry(ENTRIES - 19 + i, ENTRIES - 19));
    await store.oplog.record(tail, tail.map((e, i): SyncOp[] | undefined => (i === 5 ? undefined : [{ t: 'del', table: 't', id: `d${e.seq}` }])));
  }, 120_000);

  afterAll(async () => {
    await pool?.end();
    await store?.close();
    await db?.close();
  });

  /** What FerretDB itself answers, the store's `below` path switched off for the call. */
  async function viaFerret<T>(read: () => Promise<T>): Promise<T> {
    const below = store.oplog.below;
    store.oplog.below = undefined;
    try {
      return await read();
    } finally {
      store.oplog.below = below;
    }
  }

  it('answers every range, the newest batch with its undo ops and the newest entry exactly as FerretDB does', async () => {
    const ranges: Array<[number, number]> = [
      [ENTRIES - 1, ENTRIES], // the newest entry, as republish() reads one
      [ENTRIES - 20, ENTRIES], // the newest batch, written through FerretDB
      [ENTRIES - 120, ENTRIES - 20], // a batch written below FerretDB
      [ENTRIES - 150, ENTRIES - 5], // across both
      [0, 250], // from before the first entry
      [ENTRIES - 3, ENTRIES + 50], // past the newest
      [ENTRIES + 1, ENTRIES + 9], // nothing there
      [10, 10], // empty
      [-1, 0],
    ];
    // Every read of the store's goes below FerretDB (PostgreSQL answers it, not the fallback).
    const belowFn = store.oplog.below;
    let answeredBelow = 0;
    store.oplog.below = async (range) => {
      const got = await belowFn?.(range);
      if (got !== undefined) answeredBelow += 1;
      return got;
    };
    for (const [after, upTo] of ranges) {
      const before = answeredBelow;
      const below = await store.entriesBetween(after, upTo);
      if (upTo > after) expect(answeredBelow, `entriesBetween(${after}, ${upTo}) answered by PostgreSQL`).toBe(before + 1);
      const ferret = await viaFerret(() => store.entriesBetween(after, upTo));
      expect(JSON.stringify(below), `entriesBetween(${after}, ${upTo})`).toBe(JSON.stringify(ferret));
      expect(below.map((e) => e.seq)).toEqual(Array.from({ length: Math.max(0, Math.min(upTo, ENTRIES) - Math.max(after, 0)) }, (_, i) => Math.max(after, 0) + 1 + i));
      const batch = await store.batchBetween(after, upTo);
      expect(JSON.stringify(batch), `batchBetween(${after}, ${upTo})`).toBe(JSON.stringify(await viaFerret(() => store.batchBetween(after, upTo))));
    }
    const newestBatch = await store.batchBetween(ENTRIES - 20, ENTRIES);
    expect(newestBatch.filter((e) => e.undo === undefined).map((e) => e.seq)).toEqual([ENTRIES - 14]);
    expect(newestBatch[0]?.undo).toEqual([{ t: 'del', table: 't', id: `d${ENTRIES - 19}` }]);
    const before = answeredBelow;
    const last = await store.lastEntry();
    expect(answeredBelow).toBe(before + 1);
    store.oplog.below = belowFn;
    expect(last?._id).toBe(ENTRIES);
    expect(JSON.stringify(last)).toBe(JSON.stringify(await viaFerret(() => store.lastEntry())));
    expect(warnings).toEqual([]);
  });

  it('reads a range and the newest entry on the _id btree, only the rows asked for, however long the oplog', async () => {
    const from = await tableIn(pool, DB, OPLOG);
    expect(from).toBeDefined();
    await pool.query(`ANALYZE ${from as string}`);
    const plan = (range: Parameters<typeof idRangeSql>[1]): ReturnType<typeof scanPlan> => scanPlan(pool, idRangeSql(from as string, range));
    // One entry of 3,000, a batch of 20 and the newest: an index scan that reads just those rows.
    for (const [range, want] of [
      [{ after: ENTRIES - 1, upTo: ENTRIES }, 1],
      [{ after: 1499, upTo: 1500 }, 1],
      [{ after: ENTRIES - 20, upTo: ENTRIES }, 20],
      ['newest', 1],
    ] as const) {
      const p = await plan(range);
      expect(p.types, JSON.stringify(range)).toEqual(['Index Scan']);
      expect(p.rows, JSON.stringify(range)).toBe(want);
      expect(p.removed).toBe(0);
    }
  });

  it('leaves to FerretDB a range holding a value JSON cannot carry, and answers [] for an oplog not yet made', async () => {
    await db.mongo.db(DB).collection<Record<string, unknown> & { _id: number }>(OPLOG).insertOne({ ...entry(ENTRIES + 1, ENTRIES + 1), _id: ENTRIES + 1, ops: '[]', ts: new Date(0) as unknown as number });
    const got = await store.entriesBetween(ENTRIES - 1, ENTRIES + 1);
    expect(got.map((e) => e.seq)).toEqual([ENTRIES, ENTRIES + 1]);
    expect(got[1]?.ts).toEqual(new Date(0));
    expect((await store.lastEntry())?._id).toBe(ENTRIES + 1);
    const other = await Store.connect(db.mongoUrl, 'w_empty', 10_000);
    try {
      other.pgUrl = db.pgUrl;
      // The ledger is made at connect; the oplog only at its first entry.
      expect(await other.entriesBetween(0, 10)).toEqual([]);
      expect(await other.lastEntry()).toBeUndefined();
    } finally {
      await other.close();
    }
    expect(warnings).toEqual([]);
  });

  it("keeps the master's confirmed seq (acked) with each entry, on both paths and through a void, and never publishes it", async () => {
    const base = ENTRIES + 2;
    const batch = [entry(base, base), entry(base + 1, base)];
    // Below FerretDB (the master's batches on PostgreSQL), then through FerretDB (Oplog.record).
    await store.recordEntries(batch, batch.map((e): SyncOp[] => [{ t: 'del', table: 't', id: `d${e.seq}` }]), 17);
    expect((await store.lastEntry())?.acked).toBe(17);
    expect((await viaFerret(() => store.lastEntry()))?.acked).toBe(17);
    await store.oplog.record([entry(base + 2, base + 2)], [[{ t: 'del', table: 't', id: 'x' }]], base);
    for (const last of [await store.lastEntry(), await viaFerret(() => store.lastEntry())]) {
      expect(last).toMatchObject({ seq: base + 2, acked: base });
    }
    // Re-published entries are read without it.
    for (const e of await store.entriesBetween(base - 1, base + 2)) expect(e).not.toHaveProperty('acked');
    // A void keeps it stored, and publishes without it.
    const newest = await store.batchBetween(base + 1, base + 2);
    expect(newest[0]?.acked).toBe(base);
    const voids = await store.voidBatch(newest);
    expect(voids[0]).toMatchObject({ seq: base + 2, void: true });
    expect(voids[0]).not.toHaveProperty('acked');
    expect(await store.lastEntry()).toMatchObject({ seq: base + 2, void: true, acked: base });
    expect(warnings).toEqual([]);
  });
});
