/**
 * worker/pg-read.ts against a real FerretDB on the PostgreSQL server `npm test`
 * sets up (DBAAS_PG_URL): a simple read answered from PostgreSQL must be exactly
 * what FerretDB answers, byte for byte as the slave sends it (JSON text), over
 * many value types and shapes (strings, int32, doubles, large and small numbers,
 * booleans, null, arrays of every kind, nested objects, integer-like keys, rows
 * written by FerretDB and rows written below it by pg-docs.ts), for equality on
 * `_id` and on other fields, indexed (a bitmap scan) or not (a sequential scan),
 * matching none, one or many documents, with and without a limit. A table with
 * values JSON cannot carry (dates, ObjectIds, longs, a numeric `_id`) must be
 * answered by FerretDB. And the table locations pg-layout.ts remembers: looked up
 * once, forgotten after a drop, and a drop behind the worker's back is survived.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Long, MongoClient, ObjectId } from 'mongodb';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Doc, ReadCommand } from '../../common/commands.js';
import type { Logger } from '../../common/logger.js';
import type { SyncOp } from '../../common/messages.js';
import { ferretdbUrl, PostgresDatabases, readMarker } from '../../orchestrator/runtimes/postgresql-databases.js';
import { docsByIds } from '../../worker/pg-docs.js';
import { rememberTables, tableIn } from '../../worker/pg-layout.js';
import { readSimple, simpleRead } from '../../worker/pg-read.js';
import { Store } from '../../worker/store.js';
import { mongoPrefix } from '../../worker/tables.js';
import { eventually } from './harness.js';
import { freePort } from './infra.js';

const pgUrl = process.env.DBAAS_PG_URL;
const dbBin = process.env.DBAAS_DB_BIN ?? '';
const WORKER_DB = 'w';

/** A small deterministic generator (mulberry32), so a failure can be run again as it was. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const STRINGS = ['', 'a', 'A', 'b', 'héllo', '☃', '𝄞', 'with "quote"', "it's", 'back\\slash', '0', '1', 'true', 'null', ' a', 'a ', 'x'.repeat(300), '{"$s":1}'];
const NUMBERS = [0, -0, 1, -1, 3, 1.5, 0.1, 0.30000000000000004, 2_147_483_647, 2_147_483_648, -2_147_483_649, 1e21, 1e-7, 9_007_199_254_740_991, -9_007_199_254_740_991, 123_456_789.125];
const SCALARS: unknown[] = [...STRINGS, ...NUMBERS, true, false, null];
const ARRAYS: unknown[] = [[], ['a'], ['a', 'b'], [1, 'a', true, null], [{ s: 'a' }, 'a'], [{ s: 'a' }], [1.5, 2], [0], [2_147_483_648, 'b', false], [{ a: [1] }, 1]];
const OBJECTS: unknown[] = [{}, { s: 'a' }, { 1: 'x', b: 2, 0: 1 }, { deep: { er: [1, { s: 'a' }] } }];

describe.skipIf(!pgUrl || !path.basename(dbBin).startsWith('ferretdb'))('simple reads from PostgreSQL (worker/pg-read.ts)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dbaas-pg-read-'));
  const databases = new PostgresDatabases({ adminUrl: pgUrl ?? '', namespace: `pgread-${randomBytes(3).toString('hex')}` });
  let url = '';
  let ferret: ChildProcess | undefined;
  let mongo: MongoClient | undefined;
  let store: Store | undefined;
  let pool: pg.Pool | undefined;
  const warnings: unknown[] = [];

  beforeAll(async () => {
    url = await databases.ensure('w1', dir);
    const port = await freePort();
    ferret = spawn(dbBin, [`--handler=postgresql`, `--postgresql-url=${ferretdbUrl(url)}`, `--listen-addr=127.0.0.1:${port}`, `--state-dir=${dir}`, '--debug-addr=-', '--telemetry=disable', '--log-level=warn'], {
      stdio: 'ignore',
    });
    const client = new MongoClient(`mongodb://127.0.0.1:${port}/`, { serverSelectionTimeoutMS: 1000 });
    await eventually(() => client.connect().then(() => true, () => false), 30_000, 'FerretDB answering');
    mongo = client;
    store = await Store.connect(`mongodb://127.0.0.1:${port}/`, WORKER_DB, 10_000);
    store.pgUrl = url;
    store.log = { warn: (...args: unknown[]) => void warnings.push(args) } as unknown as Logger;
    pool = new pg.Pool({ connectionString: url, max: 2 });
  }, 60_000);

  afterAll(async () => {
    await pool?.end();
    await store?.close();
    await mongo?.close();
    ferret?.kill('SIGKILL');
    const marker = readMarker(dir);
    if (marker) await databases.drop(marker);
    rmSync(dir, { recursive: true, force: true });
  });

  /** Both paths for one read: FerretDB's answer and the store's, as the JSON text a slave sends; and whether PostgreSQL answered. */
  async function both(cmd: ReadCommand): Promise<{ ferret: string; store: string; pg: string | undefined }> {
    const s = store as Store;
    const simple = simpleRead(cmd);
    const direct = simple === undefined ? undefined : await readSimple(pool as pg.Pool, WORKER_DB, simple);
    return {
      ferret: JSON.stringify(await s.tables.read(cmd, 10_000)),
      store: JSON.stringify(await s.read(cmd, 10_000)),
      pg: direct === undefined ? undefined : JSON.stringify(direct),
    };
  }

  /** Every value a top-level field holds in these documents, array elements too, and some no document holds. */
  function valuesOf(docs: readonly Doc[], field: string): unknown[] {
    const out: unknown[] = ['absent', 424242, 2.75, true, false];
    for (const d of docs) {
      const v = d[field];
      if (Array.isArray(v)) out.push(...v);
      else if (v !== undefined) out.push(v);
    }
    const seen = new Set<string>();
    return out.filter((v) => {
      const key = JSON.stringify(v) ?? 'undefined';
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
  }

  it('answers equalities exactly as FerretDB does, over many value types, indexed or not, in FerretDB order', async () => {
    const s = store as Store;
    const next = rng(1717);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)] as T;
    const any = (): unknown => (next() < 0.6 ? pick(SCALARS) : next() < 0.7 ? pick(ARRAYS) : pick(OBJECTS));
    const docs: Doc[] = Array.from({ length: 240 }, (_, i) => {
      const d: Doc = { _id: `v${i}`, s: pick(STRINGS), n: pick(NUMBERS), b: next() < 0.5, k: any(), a: pick(ARRAYS), g: pick(['g1', 'g2', 'g3']) };
      if (next() < 0.5) d.m = any();
      if (next() < 0.2) d['7'] = pick(STRINGS);
      return d;
    });
    const coll = (mongo as MongoClient).db(WORKER_DB).collection<Doc & { _id: string }>('vals');
    await coll.insertMany(docs.map((d) => ({ ...d })) as Array<Doc & { _id: string }>);
    // Indexed fields are read by a bitmap scan on their companion GIN index, the others by a sequential scan.
    await coll.createIndex({ s: 1 }, { name: 's_1' });
    await coll.createIndex({ k: 1 }, { name: 'k_1' });
    await coll.createIndex({ g: 1 }, { name: 'g_1' });
    // Rows moved in the heap (an update writes a new row version), some through FerretDB and some below it (pg-docs.ts).
    for (let i = 0; i < 240; i += 7) await coll.replaceOne({ _id: `v${i}` }, { ...docs[i], s: pick(STRINGS), k: any() });
    const below: SyncOp[] = [];
    for (let i = 3; i < 240; i += 11) below.push({ t: 'put', table: 'vals', doc: { ...(docs[i] as Doc & { _id: string }), n: pick(NUMBERS), a: pick(ARRAYS), g: pick(['g1', 'g2']) } });
    await s.applyOps(below);
    await coll.deleteMany({ _id: { $in: ['v5', 'v50', 'v150'] } });
    // The same in another database.
    await (mongo as MongoClient).db(`${mongoPrefix(WORKER_DB)}shop`).collection<Doc & { _id: string }>('vals').insertMany(docs.slice(0, 40).map((d) => ({ ...d })) as Array<Doc & { _id: string }>);

    const now = (await coll.find({}).toArray()) as Doc[];
    let reads = 0;
    let found = 0;
    let many = 0;
    for (const table of ['vals', 'shop.vals']) {
      for (const field of ['_id', 's', 'n', 'b', 'k', 'a', 'g', 'm', '7', 'nosuch']) {
        for (const value of valuesOf(now, field)) {
          for (const where of [{ [field]: value }, { [field]: { $eq: value } }]) {
            const cmd: ReadCommand = { table, where: where as ReadCommand['where'], count: false };
            const simple = simpleRead(cmd);
            const r = await both(cmd);
            expect({ cmd, answer: r.store }).toEqual({ cmd, answer: r.ferret });
            // Every such read of a table of JSON values is answered by PostgreSQL, and exactly.
            if (simple !== undefined) {
              expect({ cmd, pg: r.pg }).toEqual({ cmd, pg: r.ferret });
              reads += 1;
              const n = (JSON.parse(r.ferret) as unknown[]).length;
              if (n > 0) found += 1;
              if (n > 1) many += 1;
            }
          }
        }
      }
    }
    // Limits and several fields at once, on results of many documents.
    for (const g of ['g1', 'g2', 'g3']) {
      for (const limit of [1, 2, 5, 1000]) {
        const r = await both({ table: 'vals', where: { g }, limit, count: false });
        expect(r.store).toBe(r.ferret);
        expect(r.pg).toBe(r.ferret);
      }
      for (const [field, value] of [['b', true], ['b', false], ['n', 1], ['s', 'a'], ['_id', 'v1']] as const) {
        const r = await both({ table: 'vals', where: { g, [field]: value }, count: false });
        expect(r.store).toBe(r.ferret);
        expect(r.pg).toBe(r.ferret);
      }
    }
    // Not simple: FerretDB answers, as before.
    for (const cmd of [
      { table: 'vals', where: { g: 'g1' }, sort: { n: 1 as const }, count: false },
      { table: 'vals', where: { g: 'g1' }, skip: 2, count: false },
      { table: 'vals', where: { g: 'g1' }, columns: ['n'], count: false },
      { table: 'vals', where: { g: 'g1' }, count: true },
      { table: 'vals', where: { n: { $gt: 1 } }, count: false },
      { table: 'vals', where: { 'k.s': 'a' }, count: false },
      { table: 'vals', where: { k: null }, count: false },
      { table: 'vals', where: { n: 9_007_199_254_740_992 }, count: false },
      { table: 'vals', where: {}, count: false },
    ] satisfies ReadCommand[]) {
      expect(simpleRead(cmd)).toBeUndefined();
      const r = await both(cmd);
      expect(r.store).toBe(r.ferret);
    }
    // A table or database that does not exist: nothing, from both.
    for (const table of ['nosuch', 'nodb.vals']) expect(await both({ table, where: { s: 'a' }, count: false })).toEqual({ ferret: '[]', store: '[]', pg: '[]' });
    expect(reads).toBeGreaterThan(500);
    expect(found).toBeGreaterThan(200);
    expect(many).toBeGreaterThan(50);
    expect(warnings).toEqual([]);
  }, 120_000);

  it('leaves a table with values JSON cannot carry to FerretDB, document by document', async () => {
    const coll = (mongo as MongoClient).db(WORKER_DB).collection<{ _id: unknown; [k: string]: unknown }>('mixed');
    await coll.insertMany([
      { _id: 'x1', k: new Date(0), s: 'd' },
      { _id: 'x2', k: new ObjectId('0123456789abcdef01234567'), s: 'd' },
      { _id: 'x3', k: Long.fromString('9007199254740993'), s: 'd' },
      { _id: 'x4', k: 5, s: 'e' },
      { _id: 'x5', k: Long.fromNumber(5), s: 'e' },
      { _id: 'x6', k: 0, s: 'e' },
      { _id: 7, k: 'seven', s: 'f' },
    ]);
    const cases: Array<[ReadCommand['where'], boolean]> = [
      [{ s: 'd' }, false], // a date, an ObjectId and a long beyond 2^53
      [{ k: 0 }, false], // the date's milliseconds are 0 in PostgreSQL too: FerretDB tells them apart
      [{ k: '0123456789abcdef01234567' }, false], // the ObjectId's hex in PostgreSQL
      [{ s: 'f' }, false], // a numeric _id
      [{ s: 'e' }, true], // an int, a long within 2^53 (the driver gives a number) and 0: JSON all
      [{ k: 5 }, true],
      [{ _id: 'x4' }, true],
      [{ _id: 'x1' }, false],
    ];
    for (const [where, byPg] of cases) {
      const r = await both({ table: 'mixed', where, count: false });
      expect({ where, answer: r.store }).toEqual({ where, answer: r.ferret });
      expect({ where, byPg: r.pg !== undefined }).toEqual({ where, byPg });
      if (byPg) expect(r.pg).toBe(r.ferret);
    }
    expect(JSON.parse((await both({ table: 'mixed', where: { k: 5 }, count: false })).ferret)).toEqual([
      { _id: 'x4', k: 5, s: 'e' },
      { _id: 'x5', k: 5, s: 'e' },
    ]);
    expect(warnings).toEqual([]);
  }, 60_000);

  it('remembers where a table lives, forgets it after a drop, and survives a drop behind its back', async () => {
    const p = new pg.Pool({ connectionString: url, max: 1 });
    try {
      let lookups = 0;
      const query = p.query.bind(p) as (...args: unknown[]) => unknown;
      (p as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
        if (String(args[0]).includes('_ferretdb_database_metadata')) lookups += 1;
        return query(...args);
      };
      const locations = rememberTables(p);
      const coll = (mongo as MongoClient).db(WORKER_DB).collection<{ _id: string; v: number }>('churn');
      await coll.insertMany([{ _id: 'c1', v: 1 }, { _id: 'c2', v: 2 }]);
      const first = await tableIn(p, WORKER_DB, 'churn');
      expect(first).toMatch(/^"w"\."churn_[0-9a-f]+"$/);
      expect(await tableIn(p, WORKER_DB, 'churn')).toBe(first);
      expect((await docsByIds(p, WORKER_DB, 'churn', ['c1', 'c2'])).size).toBe(2);
      expect(lookups).toBe(1);
      // A table not there is looked up each time (FerretDB creates it at its first insert).
      expect(await tableIn(p, WORKER_DB, 'later')).toBeUndefined();
      expect(await tableIn(p, WORKER_DB, 'later')).toBeUndefined();
      expect(lookups).toBe(3);

      // Dropped by the worker (which forgets): looked up again, gone; created again: found again.
      await coll.drop();
      locations.forget();
      expect(await tableIn(p, WORKER_DB, 'churn')).toBeUndefined();
      expect(lookups).toBe(4);
      await coll.insertOne({ _id: 'c3', v: 3 });
      expect(await tableIn(p, WORKER_DB, 'churn')).toBeDefined();
      expect([...(await docsByIds(p, WORKER_DB, 'churn', ['c1', 'c3'])).keys()]).toEqual(['c3']);

      // Dropped behind its back (remembered, not forgotten): PostgreSQL refuses the statement, the
      // location is looked up again and the statement runs once more.
      await coll.drop();
      expect(await docsByIds(p, WORKER_DB, 'churn', ['c3'])).toEqual(new Map());
      expect(await readSimple(p, WORKER_DB, { table: 'churn', equal: [{ field: 'v', value: 3 }], limit: 10 })).toEqual([]);

      // The store forgets after its own drops (a clear), so its reads and writes find the new table at once.
      const s = store as Store;
      await s.applyOps([{ t: 'put', table: 'churn2', doc: { _id: 'a', v: 1 } }]);
      expect(await s.read({ table: 'churn2', where: { v: 1 }, count: false })).toEqual([{ _id: 'a', v: 1 }]);
      await s.applyOps([{ t: 'clear' }, { t: 'put', table: 'churn2', doc: { _id: 'b', v: 1 } }]);
      await s.applyOps([{ t: 'put', table: 'churn2', doc: { _id: 'b', v: 1, w: 2 } }]);
      expect(await s.read({ table: 'churn2', where: { v: 1 }, count: false })).toEqual([{ _id: 'b', v: 1, w: 2 }]);
      expect(await s.tables.read({ table: 'churn2', where: { v: 1 }, count: false })).toEqual([{ _id: 'b', v: 1, w: 2 }]);
      expect(warnings).toEqual([]);
    } finally {
      await p.end();
    }
  }, 60_000);
});
