/**
 * worker/pg-layout.ts against a real FerretDB on the PostgreSQL server `npm test`
 * sets up (DBAAS_PG_URL): where FerretDB keeps a table, and which of a list of
 * ids a table holds, answered by one query on FerretDB's `_id` index (the
 * duplicate check of inserts that carry their own `_id`s; FerretDB answers the
 * same question as a `$in` by reading the whole table).
 */
import { MongoClient } from 'mongodb';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idsPresent, tableIn } from '../../worker/pg-layout.js';
import { countDocs, docsByIds, insertAndReplace, insertDocsTogether, jsonbFromDocument, replaceDocs } from '../../worker/pg-docs.js';
import { mongoPrefix } from '../../worker/tables.js';
import { ferretdbOnPostgres, startFerretDb, type TestFerretDb } from './ferretdb.js';

/** The worker's own MongoDB database (DBAAS_WORKER_DB_NAME): the `default` database. */
const WORKER_DB = 'w';

describe.skipIf(!ferretdbOnPostgres)('FerretDB layout in PostgreSQL (worker/pg-layout.ts)', () => {
  let ferret: TestFerretDb | undefined;
  let mongo: MongoClient | undefined;
  let pool: pg.Pool | undefined;

  beforeAll(async () => {
    ferret = await startFerretDb('pglayout');
    mongo = ferret.mongo;
    const users = Array.from({ length: 2000 }, (_, i) => ({ _id: `u${i}`, n: i }));
    await mongo.db(WORKER_DB).collection<{ _id: string; n: number }>('users').insertMany(users);
    await mongo.db(`${mongoPrefix(WORKER_DB)}shop`).collection<{ _id: string }>('rides').insertMany([{ _id: 'r1' }, { _id: 'u1' }]);
    pool = new pg.Pool({ connectionString: ferret.pgUrl, max: 2 });
  }, 60_000);

  afterAll(async () => {
    await pool?.end();
    await ferret?.close();
  });

  it('finds where each database keeps a table, and nothing for a table or database that does not exist', async () => {
    expect(await tableIn(pool as pg.Pool, WORKER_DB, 'users')).toMatch(/^"w"\."users_[0-9a-f]+"$/);
    expect(await tableIn(pool as pg.Pool, WORKER_DB, 'shop.rides')).toMatch(/^"w--shop"\."rides_[0-9a-f]+"$/);
    expect(await tableIn(pool as pg.Pool, WORKER_DB, 'nosuch')).toBeUndefined();
    expect(await tableIn(pool as pg.Pool, WORKER_DB, 'nodb.users')).toBeUndefined();
  });

  it('answers which ids a table holds, per database, in the order asked, with one query on the _id index', async () => {
    const ask = ['u1999', 'nope', 'u0', 'r1', 'u1', 'u2000'];
    expect(await idsPresent(pool as pg.Pool, WORKER_DB, 'users', ask)).toEqual(['u1999', 'u0', 'u1']);
    expect(await idsPresent(pool as pg.Pool, WORKER_DB, 'shop.rides', ask)).toEqual(['r1', 'u1']);
    expect(await idsPresent(pool as pg.Pool, WORKER_DB, 'nosuch', ask)).toEqual([]);
    const thousand = Array.from({ length: 1000 }, (_, i) => `u${i * 3}`);
    expect(await idsPresent(pool as pg.Pool, WORKER_DB, 'users', thousand)).toEqual(thousand.filter((id) => Number(id.slice(1)) < 2000));

    const from = (await tableIn(pool as pg.Pool, WORKER_DB, 'users')) as string;
    const plan = await (pool as pg.Pool).query<{ 'QUERY PLAN': string }>(`EXPLAIN SELECT _jsonb->>'_id' FROM ${from} WHERE (_jsonb -> '_id') = ANY($1::jsonb[])`, [
      ask.map((id) => JSON.stringify(id)),
    ]);
    const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
    expect(text).toMatch(/Index/);
    expect(text).not.toMatch(/Seq Scan/);
  });
  // worker/pg-docs.ts (issue 17: updates): a batch's documents read and replaced in one statement each.
  it('writes documents in the form FerretDB writes them, reads and replaces them in one statement, all or nothing', async () => {
    type D = Record<string, unknown> & { _id: string };
    const shapes: D[] = [
      { _id: 's1', n: 1, neg: -7, big: 3_000_000_000, frac: 4.5, tiny: 1e-7, huge: 1e21, flag: true, none: null, text: 'héllo "q" \\ ☃', name: 'a' },
      { name: 'b', _id: 's2', nested: { b: 2, a: { deep: [1, 'x', { y: false }] } }, list: [], obj: {}, ints: [2_147_483_647, -2_147_483_648, 2_147_483_648] },
      { _id: 's3', name: 'c', log: ['w1-0', 'w2-5'], n: 0 },
    ];
    const coll = (mongo as MongoClient).db(WORKER_DB).collection<D>('shapes');
    await coll.insertMany(shapes.map((d) => ({ ...d })));
    await coll.createIndex({ name: 1 }, { unique: true, name: 'name_1' });
    const p = pool as pg.Pool;
    const from = (await tableIn(p, WORKER_DB, 'shapes')) as string;
    const raw = async (): Promise<Map<string, unknown>> =>
      new Map((await p.query<{ j: { _id: string } }>(`SELECT _jsonb AS j FROM ${from}`)).rows.map((r) => [r.j._id, r.j]));
    // The same row FerretDB wrote, field order (`$k`) and number types included.
    const rows = await raw();
    for (const d of shapes) expect({ id: d._id, jsonb: jsonbFromDocument(d) }).toEqual({ id: d._id, jsonb: rows.get(d._id) });
    expect(jsonbFromDocument({ _id: 'x', at: new Date() })).toBeUndefined();
    expect(jsonbFromDocument({ _id: 'x', n: Number.NaN })).toBeUndefined();
    // Keys FerretDB refuses (through it such a write is refused, and voided: void-batch.ts) are not written here either.
    await expect(coll.insertOne({ _id: 'dot', 'a.b': 1 })).rejects.toThrow(/must not contain/);
    expect(jsonbFromDocument({ _id: 'x', 'a.b': 1 })).toBeUndefined();
    expect(jsonbFromDocument({ _id: 'x', a: [{ 'b.c': 1 }] })).toBeUndefined();

    const read = await docsByIds(p, WORKER_DB, 'shapes', ['s1', 's3', 'nope']);
    expect([...read.keys()].sort()).toEqual(['s1', 's3']);
    expect(read.get('s1')).toEqual(await coll.findOne({ _id: 's1' }));
    expect(await docsByIds(p, WORKER_DB, 'nosuch', ['s1'])).toEqual(new Map());

    const posts: D[] = [
      { _id: 's1', name: 'a', n: 2, frac: 5.5, more: { k: [1, 2] } },
      { _id: 's3', name: 'c', log: ['w1-0', 'w2-5', 'w3-1'], n: 1 },
      { _id: 'missing', name: 'm' },
      { _id: 's2', name: 'b', at: new Date(0) },
    ];
    const left = await replaceDocs(p, WORKER_DB, 'shapes', posts);
    expect(left?.map((d) => d._id).sort()).toEqual(['missing', 's2']);
    expect(await coll.findOne({ _id: 's1' })).toEqual(posts[0]);
    expect(await coll.findOne({ _id: 's3' })).toEqual(posts[1]);
    expect(await coll.findOne({ _id: 'missing' })).toBeNull();
    expect((await coll.findOne({ _id: 's2' }))?.name).toBe('b');
    // Read back through FerretDB and written again through it: the same row as written here.
    const again = await raw();
    await coll.replaceOne({ _id: 's1' }, posts[0] as D);
    expect((await raw()).get('s1')).toEqual(again.get('s1'));
    // A unique key taken twice: the statement fails whole.
    await expect(replaceDocs(p, WORKER_DB, 'shapes', [{ _id: 's1', name: 'z', n: 9 }, { _id: 's3', name: 'z' }])).rejects.toMatchObject({ code: '23505' });
    expect(await coll.findOne({ _id: 's1' })).toEqual(posts[0]);
    expect(await replaceDocs(p, WORKER_DB, 'nosuch', posts)).toBeUndefined();
    // Counted by PostgreSQL, per database.
    expect(await countDocs(p, WORKER_DB, 'shapes')).toBe(3);
    expect(await countDocs(p, WORKER_DB, 'users')).toBe(2000);
    expect(await countDocs(p, WORKER_DB, 'shop.rides')).toBe(2);
    expect(await countDocs(p, WORKER_DB, 'nosuch')).toBe(0);
    // Several tables in one transaction (a batch's oplog entries and ledger records), idempotent.
    const oplog = (mongo as MongoClient).db(WORKER_DB).collection<{ _id: number; [k: string]: unknown }>('_dbaas_oplog');
    await oplog.insertOne({ _id: 1, ops: '[]', ts: Date.now() });
    const entries = [{ _id: 2, ops: '[{"t":"put"}]', ts: Date.now(), first: 2 }, { _id: 3, ops: '[]', ts: Date.now() }];
    const sets = [{ table: '_dbaas_oplog', docs: entries }, { table: 'shapes', docs: [{ _id: 's9', name: 'n9' }] }];
    expect(await insertDocsTogether(p, WORKER_DB, sets)).toBe(true);
    expect(await insertDocsTogether(p, WORKER_DB, sets)).toBe(true);
    expect(await oplog.find({ _id: { $gt: 1 } }).sort({ _id: 1 }).toArray()).toEqual(entries);
    expect(await coll.findOne({ _id: 's9' })).toEqual({ _id: 's9', name: 'n9' });
    // A table FerretDB has not created, or a document JSON cannot carry: nothing written.
    expect(await insertDocsTogether(p, WORKER_DB, [{ table: '_dbaas_oplog', docs: [{ _id: 4 }] }, { table: 'nosuch', docs: [{ _id: 'x' }] }])).toBe(false);
    expect(await insertDocsTogether(p, WORKER_DB, [{ table: '_dbaas_oplog', docs: [{ _id: 5, at: new Date() }] }])).toBe(false);
    expect(await oplog.countDocuments({ _id: { $gt: 3 } })).toBe(0);
    // A unique key taken twice fails the transaction whole.
    await expect(insertDocsTogether(p, WORKER_DB, [{ table: '_dbaas_oplog', docs: [{ _id: 6 }] }, { table: 'shapes', docs: [{ _id: 's10', name: 'n9' }] }])).rejects.toMatchObject({ code: '23505' });
    expect(await oplog.countDocuments({ _id: 6 })).toBe(0);
    // Entries inserted and documents replaced in one statement (a batch of updates): all or nothing.
    const s1 = (await coll.findOne({ _id: 's1' })) as D;
    const withEntry = (seq: number, doc: D): Parameters<typeof insertAndReplace> => [p, WORKER_DB, [{ table: '_dbaas_oplog', docs: [{ _id: seq, ops: '[]' }] }], [{ table: 'shapes', docs: [doc] }]];
    expect(await insertAndReplace(...withEntry(20, { ...s1, n: 20 }))).toBe(true);
    expect(await coll.findOne({ _id: 's1' })).toEqual({ ...s1, n: 20 });
    expect(await oplog.countDocuments({ _id: 20 })).toBe(1);
    // A document to replace that is not there: nothing written, not even the entry.
    expect(await insertAndReplace(p, WORKER_DB, [{ table: '_dbaas_oplog', docs: [{ _id: 21, ops: '[]' }] }], [{ table: 'shapes', docs: [{ ...s1, n: 21 }, { _id: 'gone', name: 'g' }] }])).toBe(false);
    expect(await coll.findOne({ _id: 's1' })).toEqual({ ...s1, n: 20 });
    // A unique key held twice: thrown, nothing written.
    await expect(insertAndReplace(...withEntry(22, { ...s1, name: 'c' }))).rejects.toMatchObject({ code: '23505' });
    expect(await oplog.countDocuments({ _id: { $in: [21, 22] } })).toBe(0);
    expect(await insertAndReplace(...withEntry(23, { ...s1, at: new Date() }))).toBe(false);
    expect(await coll.findOne({ _id: 's1' })).toEqual({ ...s1, n: 20 });
    // Entries and new documents in one statement (a batch of inserts, session 7): read back through FerretDB as inserted.
    const fresh = [shapes[1] as D, { _id: 's31', name: 'n31', n: 31, nested: { z: [1.5, 'x'] } }].map((d) => ({ ...d, _id: `${d._id}-new`, name: `${String(d.name)}-new` }));
    const withNew = (seq: number, docs: D[]): Parameters<typeof insertAndReplace> => [p, WORKER_DB, [{ table: '_dbaas_oplog', docs: [{ _id: seq, ops: '[]' }] }], [], [{ table: 'shapes', docs }]];
    expect(await insertAndReplace(...withNew(30, fresh))).toBe(true);
    for (const d of fresh) expect(await coll.findOne({ _id: d._id })).toEqual(d);
    const rowsNow = await raw();
    for (const d of fresh) expect(rowsNow.get(d._id)).toEqual(jsonbFromDocument(d));
    // A new document whose `_id` or unique key is taken: thrown, nothing written (the ordered path decides).
    await expect(insertAndReplace(...withNew(31, [{ _id: 's32', name: 'n32' }, { _id: 's1', name: 'other' }]))).rejects.toMatchObject({ code: '23505' });
    await expect(insertAndReplace(...withNew(32, [{ _id: 's33', name: 'a' }]))).rejects.toMatchObject({ code: '23505' });
    expect(await oplog.countDocuments({ _id: { $in: [31, 32] } })).toBe(0);
    expect(await coll.countDocuments({ _id: { $in: ['s32', 's33'] } })).toBe(0);
    // A table FerretDB has not created yet: nothing written.
    expect(await insertAndReplace(p, WORKER_DB, [{ table: '_dbaas_oplog', docs: [{ _id: 33, ops: '[]' }] }], [], [{ table: 'nosuch', docs: [{ _id: 'x' }] }])).toBe(false);
    expect(await oplog.countDocuments({ _id: 33 })).toBe(0);
    // By `_id`, on the index (no scan), in a table of 2,000.
    const users = (await tableIn(p, WORKER_DB, 'users')) as string;
    const plan = await p.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN UPDATE ${users} AS t SET _jsonb = v.doc FROM unnest($1::jsonb[], $2::jsonb[]) AS v(id, doc) WHERE (t._jsonb -> '_id') = v.id`,
      [['"u1"', '"u2"'], ['{}', '{}']],
    );
    const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
    expect(text).toMatch(/Index/);
    expect(text).not.toMatch(/Seq Scan/);
  });
});
