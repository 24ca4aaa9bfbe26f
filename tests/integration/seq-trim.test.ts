/**
 * Trimming the oplog and the request ledger, and looking a requestId up, on a real
 * FerretDB on PostgreSQL (issue 16: no periodic full scans). FerretDB 1.24 reads
 * every row for a delete by `_id` range or by `ts` and for a find by requestId;
 * below it (pg-trim.ts deleteSeqs, pg-read.ts readByKey) PostgreSQL's btrees must
 * answer instead, reading only the rows deleted or asked for (the plans, with the
 * rows they actually read), and leave exactly what the FerretDB path leaves: two
 * databases filled alike, one trimmed each way.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WIRE_VERSION, type SyncEntry, type SyncOp } from '../../common/messages.js';
import { tableIn } from '../../worker/pg-layout.js';
import { keySql } from '../../worker/pg-read.js';
import { deleteSeqsSql, probeSql } from '../../worker/pg-trim.js';
import { OPLOG } from '../../worker/oplog.js';
import { LEDGER } from '../../worker/request-ledger.js';
import { Store } from '../../worker/store.js';
import { ferretdbOnPostgres, startFerretDb, type TestFerretDb } from './ferretdb.js';
import { scanPlan } from './pg-plan.js';

const ENTRIES = 3000;
/** Entries 1..OLD are two hours old, the rest a minute; but for {@link YOUNG_AMONG_OLD}, young among the old ones. */
const OLD = 1800;
const YOUNG_AMONG_OLD = 900;
const HOUR = 3_600_000;
/** The oplog keeps 2,500 entries by count (cut at 500) and one hour by age; the ledger one hour. */
const LIMITS = { maxEntries: ENTRIES - 500, maxAgeMs: HOUR };
/** What both paths must leave: the young entry among the old ones, and every young one. */
const KEPT = [YOUNG_AMONG_OLD, ...Array.from({ length: ENTRIES - OLD }, (_, i) => OLD + 1 + i)];

function entry(seq: number, first: number, now: number): SyncEntry {
  const old = seq <= OLD && seq !== YOUNG_AMONG_OLD;
  return {
    v: WIRE_VERSION,
    seq,
    term: 1,
    requestId: `r-${seq}`,
    fingerprint: `f${seq}`,
    ts: old ? now - 2 * HOUR + seq : now - 60_000 + seq,
    ops: [{ t: 'put', table: 't', doc: { _id: `d${seq % 50}`, n: seq } }],
    result: { ok: true, seq, inserted: 0, ids: [], matched: 1, modified: 1, deleted: 0 },
    first,
  };
}

describe.skipIf(!ferretdbOnPostgres)('oplog and ledger trims and requestId lookups below FerretDB', () => {
  let db: TestFerretDb;
  /** On PostgreSQL's btrees (pgUrl set). */
  let below: Store;
  /** Through FerretDB only (no pgUrl): the reference. */
  let ferret: Store;
  let pool: pg.Pool;
  const warnings: unknown[] = [];
  let deletedBelow = 0;

  beforeAll(async () => {
    db = await startFerretDb('seq-trim');
    below = await Store.connect(db.mongoUrl, 'wpg', 10_000, HOUR);
    below.pgUrl = db.pgUrl;
    below.log = { warn: (...args: unknown[]) => void warnings.push(args) } as unknown as NonNullable<Store['log']>;
    ferret = await Store.connect(db.mongoUrl, 'wferret', 10_000, HOUR);
    pool = new pg.Pool({ connectionString: db.pgUrl, max: 1 });
    const now = Date.now();
    for (const store of [below, ferret]) {
      store.configureTrim(LIMITS);
      for (let first = 1; first <= ENTRIES; first += 100) {
        const batch = Array.from({ length: 100 }, (_, i) => entry(first + i, first, now));
        await store.recordEntries(batch, batch.map((e): SyncOp[] => [{ t: 'del', table: 't', id: `d${e.seq % 50}` }]));
      }
    }
    // Every delete of the store's goes below FerretDB (PostgreSQL answers it, not the fallback).
    const counted = (done: boolean | undefined): boolean => {
      if (done === true) deletedBelow += 1;
      return done === true;
    };
    const oplogDelete = below.oplog.deleteBelow;
    below.oplog.deleteBelow = async (d) => counted(await oplogDelete?.(d));
    const ledgerBelow = below.ledger.below;
    if (ledgerBelow) below.ledger.below = { ...ledgerBelow, delete: async (d) => counted(await ledgerBelow.delete(d)) };
  }, 180_000);

  afterAll(async () => {
    await pool?.end();
    await below?.close();
    await ferret?.close();
    await db?.close();
  });

  async function ids(store: Store, table: string): Promise<number[]> {
    const docs = await store.db.collection<{ _id: number }>(table).find({}, { projection: { _id: 1 } }).toArray();
    return docs.map((d) => d._id).sort((a, b) => a - b);
  }

  /** The plan of a statement run for real (pg-plan.ts) inside a transaction rolled back. */
  async function plan(sql: { text: string; values: string[] }): ReturnType<typeof scanPlan> {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      return await scanPlan(client, sql);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  }

  it('trims by count and by age leaving exactly what the FerretDB path leaves, never a young entry', async () => {
    for (const store of [below, ferret]) await store.trim(LIMITS);
    expect(deletedBelow).toBe(2);
    for (const table of [OPLOG, LEDGER]) {
      const kept = await ids(below, table);
      expect(kept, table).toEqual(await ids(ferret, table));
      expect(kept, table).toEqual(KEPT);
    }
    // Nothing more is due (oplog-trim.ts): no statement at all.
    for (const store of [below, ferret]) await store.trim(LIMITS);
    expect(deletedBelow).toBe(2);
    expect(warnings).toEqual([]);
  });

  it('answers a requestId lookup as FerretDB does, and forgets a voided batch by seq range', async () => {
    // Opened again (as after a restart): nothing in memory, so every lookup asks the database.
    const again = await Store.connect(db.mongoUrl, 'wpg', 10_000, HOUR);
    const againFerret = await Store.connect(db.mongoUrl, 'wferret', 10_000, HOUR);
    try {
      again.pgUrl = db.pgUrl;
      again.log = below.log;
      const lookup = again.ledger.below?.lookup;
      let lookedUpBelow = 0;
          if (again.ledger.below && lookup) {
        again.ledger.below.lookup = async (id) => {
          const got = await lookup(id);
          if (got !== undefined) lookedUpBelow += 1;
          return got;
        };
      }
      const asked = ['r-2000', `r-${YOUNG_AMONG_OLD}`, 'r-100', 'r-1500', 'nope'];
      for (const id of asked) expect(JSON.stringify(await again.lookupRequest(id)), id).toBe(JSON.stringify(await againFerret.lookupRequest(id)));
      expect(lookedUpBelow).toBe(asked.length);
      expect((await again.lookupRequest('r-2000'))?.seq).toBe(2000);
      expect((await again.lookupRequest(`r-${YOUNG_AMONG_OLD}`))?.result.seq).toBe(YOUNG_AMONG_OLD);
      expect(await again.lookupRequest('r-1500')).toBeUndefined();
    } finally {
      await again.close();
      await againFerret.close();
    }
    const voided = Array.from({ length: 10 }, (_, i) => ENTRIES - 9 + i);
    for (const store of [below, ferret]) await store.ledger.forget(ENTRIES - 9, ENTRIES, voided.map((s) => `r-${s}`));
    expect(deletedBelow).toBe(3);
    const kept = await ids(below, LEDGER);
    expect(kept).toEqual(await ids(ferret, LEDGER));
    expect(kept).toEqual(KEPT.filter((s) => s < ENTRIES - 9));
    expect(warnings).toEqual([]);
  });

  it('deletes, probes and looks up on the btrees, reading only the rows deleted or asked for', async () => {
    const oplog = await tableIn(pool, 'wpg', OPLOG);
    const ledger = await tableIn(pool, 'wpg', LEDGER);
    expect(oplog && ledger).toBeTruthy();
    await pool.query(`ANALYZE ${oplog as string}`);
    await pool.query(`ANALYZE ${ledger as string}`);
    // A count trim of 50 entries of 1,201, and one by age whose cut passes the count cut: just those rows.
    for (const [sql, want] of [
      [deleteSeqsSql(oplog as string, { after: 0, upTo: OLD + 50, through: OLD + 50 }), 51],
      [deleteSeqsSql(oplog as string, { after: 0, upTo: 0, through: OLD + 50, olderThan: Date.now() }), 51],
      [deleteSeqsSql(ledger as string, { after: OLD + 100, upTo: OLD + 110, through: OLD + 110 }), 10],
    ] as const) {
      const p = await plan(sql);
      expect(p.types, sql.text).not.toContain('Seq Scan');
      expect(p.rows, sql.text).toBe(want);
      expect(p.removed, sql.text).toBe(0);
    }
    // The age cut's probes, one row each.
    for (const seq of [1, 2000, undefined]) {
      const p = await plan(probeSql(oplog as string, seq));
      expect(p.types).toEqual(['Index Scan']);
      expect(p.rows).toBe(1);
    }
    const p = await plan(keySql(ledger as string, 'requestId', 'r-2000'));
    expect(p.types).not.toContain('Seq Scan');
    expect(p.rows).toBe(1);
    expect(p.removed).toBe(0);
  });
});
