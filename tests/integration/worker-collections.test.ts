/**
 * A new slave's database with the worker's collections made ahead (a spare:
 * common/worker-collections.ts, orchestrator/runtimes/spare-databases.ts), against a
 * real FerretDB on PostgreSQL: the start takes it as new and keeps those tables
 * (no drop and re-create on its way to the copy, issue 16), and anything written in
 * it still makes the start empty it first.
 */
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { makeWorkerCollections, LEDGER_COLLECTION, META_COLLECTION, OPLOG_COLLECTION } from '../../common/worker-collections.js';
import { tableIn } from '../../worker/pg-layout.js';
import { Store } from '../../worker/store.js';
import { ferretdbOnPostgres, startFerretDb, type TestFerretDb } from './ferretdb.js';

/** The worker's own MongoDB database (DBAAS_WORKER_DB_NAME). */
const WORKER_DB = 'w';

describe.skipIf(!ferretdbOnPostgres)('worker collections made ahead', () => {
  const open: Array<{ ferret: TestFerretDb; store?: Store; pool: pg.Pool }> = [];

  afterEach(async () => {
    for (const o of open.splice(0)) {
      await o.store?.close().catch(() => undefined);
      await o.pool.end();
      await o.ferret.close();
    }
  });

  /** A database with the worker's collections made as a spare has them, and the start's store on it. */
  const prepared = async (): Promise<{ ferret: TestFerretDb; pool: pg.Pool; oids: () => Promise<Record<string, number | undefined>> }> => {
    const ferret = await startFerretDb('wcoll');
    const pool = new pg.Pool({ connectionString: ferret.pgUrl, max: 1 });
    open.push({ ferret, pool });
    await makeWorkerCollections(ferret.mongo.db(WORKER_DB));
    // PostgreSQL's oid of each table: a table dropped and made again has another.
    const oids = async (): Promise<Record<string, number | undefined>> => {
      const out: Record<string, number | undefined> = {};
      for (const name of [OPLOG_COLLECTION, LEDGER_COLLECTION, META_COLLECTION]) {
        const table = await tableIn(pool, WORKER_DB, name);
        out[name] = table === undefined ? undefined : (await pool.query<{ oid: number }>(`SELECT $1::regclass::oid AS oid`, [table])).rows[0]?.oid;
      }
      return out;
    };
    return { ferret, pool, oids };
  };

  const connect = async (ferret: TestFerretDb): Promise<Store> => {
    const store = await Store.connect(ferret.mongoUrl, WORKER_DB, 30_000);
    const entry = open.find((o) => o.ferret === ferret);
    if (entry) entry.store = store;
    return store;
  };

  it('are all there, with the ledger index, and a start takes the database as new: no table dropped or made again', async () => {
    const { ferret, oids } = await prepared();
    const before = await oids();
    expect(Object.values(before).every((oid) => typeof oid === 'number')).toBe(true);
    const indexes = await ferret.mongo.db(WORKER_DB).collection(LEDGER_COLLECTION).indexes();
    expect(indexes.map((i) => i.key)).toContainEqual({ requestId: 1 });

    const store = await connect(ferret);
    expect(await store.isComplete()).toBe(false);
    await store.dropAllUnlessNew();
    expect(await oids()).toEqual(before);
    expect(store.ledger.index.isComplete).toBe(true);
  });

  it('a database with anything written in it is emptied by the start, the worker collections too', async () => {
    const { ferret, oids } = await prepared();
    await ferret.mongo.db(WORKER_DB).collection(OPLOG_COLLECTION).insertOne({ _id: 7 as never, seq: 7 });
    await ferret.mongo.db(WORKER_DB).collection('users').insertOne({ _id: 'u1' as never });
    const before = await oids();

    const store = await connect(ferret);
    await store.dropAllUnlessNew();
    const after = await oids();
    expect(after[OPLOG_COLLECTION]).not.toBe(before[OPLOG_COLLECTION]);
    expect(await ferret.mongo.db(WORKER_DB).collection(OPLOG_COLLECTION).countDocuments({})).toBe(0);
    const names = (await ferret.mongo.db(WORKER_DB).listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name);
    expect(names).not.toContain('users');
  });
});
