/**
 * Secondary indexes through the API (issue 17): created, listed and dropped
 * through the write path, on every replica and on a new slave; unique indexes
 * refuse duplicates whole (409) on any write and hold across a master crash
 * under concurrent writes; the tables view; the hint on a read of a missing table.
 */
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestCluster, type TestCluster } from './harness.js';
import { dumpAllReplicas } from './replicas.js';

let c: TestCluster;

beforeAll(async () => {
  c = await startTestCluster({ DBAAS_INITIAL_SLAVES: '2' });
});

afterAll(async () => {
  await c?.close();
});

const write = (body: unknown) => c.post('/api/v1/db/write', body);
const createIndex = (body: unknown) => c.post('/api/v1/db/indexes', body);
async function dropIndex(body: unknown): Promise<{ status: number; body: any }> {
  const res = await c.orch.app.inject({ method: 'DELETE', url: '/api/v1/db/indexes', payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  return { status: res.statusCode, body: res.json() };
}
const read = (body: Record<string, unknown>, afterSeq?: number) => c.post('/api/v1/db/read', afterSeq === undefined ? body : { ...body, afterSeq });

/** Each live worker's secondary indexes of a table, read from its own database: worker id → "name:keys:unique" sorted. */
async function indexesOnEveryReplica(table: string): Promise<Map<string, string[]>> {
  // The replicas found level (a worker that registered since, still starting, has not copied the indexes yet).
  const level = await dumpAllReplicas(c.orch);
  const out = new Map<string, string[]>();
  for (const w of [...c.orch.view.workers.values()].filter((x) => level.has(x.id))) {
    const client = new MongoClient(w.dbUrl, { serverSelectionTimeoutMS: 5000 });
    try {
      await client.connect();
      const list = await client
        .db('dbaas')
        .collection(table)
        .listIndexes()
        .toArray()
        .catch(() => []);
      out.set(
        w.id,
        list
          .filter((i) => i.name !== '_id_')
          .map((i) => `${String(i.name)}:${JSON.stringify(i.key)}:${i.unique === true}`)
          .sort(),
      );
    } finally {
      await client.close();
    }
  }
  return out;
}

/** Every replica holds the same documents, and no two documents of `table` share `field`. */
async function replicasEqualWithoutDuplicates(table: string, field: string): Promise<Array<Record<string, unknown>>> {
  const dumps = [...(await dumpAllReplicas(c.orch)).values()];
  expect(dumps.length).toBeGreaterThanOrEqual(2);
  for (const d of dumps.slice(1)) expect(d).toEqual(dumps[0]);
  const docs = (dumps[0]?.[table] ?? []) as Array<Record<string, unknown>>;
  const values = docs.map((d) => JSON.stringify(d[field] ?? null));
  expect(new Set(values).size).toBe(values.length);
  return docs;
}

describe('indexes through the write path', () => {
  it('creates, lists, retries and drops single and compound indexes on every replica', async () => {
    await write({ table: 'people', operation: 'insert', data: [{ email: 'a@x', city: 'Oslo', age: 30 }, { email: 'b@x', city: 'Rome', age: 40 }] });
    const u = await createIndex({ table: 'people', keys: 'email', unique: true, requestId: 'ix-email-1' });
    expect(u.status).toBe(200);
    expect(u.body).toMatchObject({ ok: true, table: 'people', index: { name: 'email_1', keys: { email: 1 }, unique: true } });
    const again = await createIndex({ table: 'people', keys: 'email', unique: true, requestId: 'ix-email-1' });
    expect(again.body.seq).toBe(u.body.seq);
    const compound = await createIndex({ table: 'people', keys: { city: 1, age: -1 }, name: 'city_age' });
    expect(compound.status).toBe(200);
    // The same index again by another requestId changes nothing; another index of that name is refused.
    expect((await createIndex({ table: 'people', keys: { city: 1, age: -1 }, name: 'city_age' })).status).toBe(200);
    const clash = await createIndex({ table: 'people', keys: 'age', name: 'city_age' });
    expect(clash.status).toBe(409);
    expect(clash.body.error.code).toBe('DBAAS_INDEX_EXISTS');

    const listed = await c.get('/api/v1/db/indexes?table=people');
    expect(listed.status).toBe(200);
    expect([...(listed.body as Array<{ name: string }>)].sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      { name: 'city_age', keys: { city: 1, age: -1 }, unique: false },
      { name: 'email_1', keys: { email: 1 }, unique: true },
    ]);
    const expected = ['city_age:{"city":1,"age":-1}:false', 'email_1:{"email":1}:true'];
    for (const [id, list] of await indexesOnEveryReplica('people')) expect({ id, list }).toEqual({ id, list: expected });

    const dropped = await dropIndex({ table: 'people', name: 'city_age' });
    expect(dropped.status).toBe(200);
    expect(dropped.body).toMatchObject({ ok: true, table: 'people', name: 'city_age' });
    const missing = await dropIndex({ table: 'people', name: 'city_age' });
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('DBAAS_INDEX_NOT_FOUND');
    for (const [id, list] of await indexesOnEveryReplica('people')) expect({ id, list }).toEqual({ id, list: ['email_1:{"email":1}:true'] });
  });

  it('refuses an index on the keys of another index of the other uniqueness (409), and the cluster goes on writing', async () => {
    // The storage holds one index per key pattern (FerretDB: "Index already exists with a different name", as MongoDB):
    // such an index passed the checks, reached the oplog and every slave, and killed every worker for good.
    expect((await write({ table: 'pairs', operation: 'insert', data: { _id: 'pr-1', k: 1, j: 1 } })).status).toBe(200);
    expect((await createIndex({ table: 'pairs', keys: 'k', name: 'k_plain' })).status).toBe(200);
    const last = await createIndex({ table: 'pairs', keys: 'j', name: 'j_unique', unique: true });
    expect(last.status).toBe(200);
    for (const clash of [
      { table: 'pairs', keys: 'k', name: 'k_unique', unique: true },
      { table: 'pairs', keys: 'j', name: 'j_plain' },
    ]) {
      const res = await createIndex(clash);
      expect({ clash, status: res.status, code: res.body.error?.code }).toEqual({ clash, status: 409, code: 'DBAAS_INDEX_EXISTS' });
    }
    const next = await write({ table: 'pairs', operation: 'insert', data: { _id: 'pr-2', k: 2, j: 2 } });
    expect(next.status).toBe(200);
    expect(next.body.seq).toBe(last.body.seq + 1);
    const expected = ['j_unique:{"j":1}:true', 'k_plain:{"k":1}:false'];
    for (const [id, list] of await indexesOnEveryReplica('pairs')) expect({ id, list }).toEqual({ id, list: expected });
  });

  it('refuses an indexed value over the index entry bound (1,024 bytes) with 400 before any seq, and stores one at the bound on PostgreSQL', async () => {
    // PostgreSQL refuses a btree row over 2,704 bytes (SQLSTATE 54000): such a write took a seq and became a 422 void entry.
    const TOO_LARGE = 'DBAAS_INDEX_KEY_TOO_LARGE';
    const keys = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`f${i}`, 1]));
    expect((await createIndex({ table: 'wide_keys', keys, name: 'eight' })).status).toBe(200);
    expect((await createIndex({ table: 'wide_unique', keys: { u: 1, v: 1 }, name: 'uv', unique: true })).status).toBe(200);
    // At the bound: eight strings and, apart, an array of doubles (jsonb's largest form per BSON byte) are stored.
    const atBound = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`f${i}`, `${i}`.repeat(108)]));
    const doubles = Array.from({ length: 80 }, (_, i) => 1 / (i + 3) + 1e-9);
    const u = 'u'.repeat(500);
    const v = 'v'.repeat(500);
    expect((await write({ table: 'wide_keys', operation: 'insert', data: [{ _id: 'wk-1', ...atBound }, { _id: 'wk-2', f0: doubles }] })).status).toBe(200);
    const fits = await write({ table: 'wide_unique', operation: 'insert', data: { _id: 'wu-1', u, v } });
    expect(fits.status).toBe(200);
    let seq = fits.body.seq as number;
    const over = 'x'.repeat(1100);
    const refused = [
      { table: 'wide_keys', operation: 'insert', data: [{ _id: 'wk-3', f0: 'small' }, { _id: 'wk-4', f3: over }] },
      { table: 'wide_unique', operation: 'insert', data: { _id: 'wu-2', u: `${u}${u}`, v } },
      { table: 'wide_keys', operation: 'update', where: { _id: 'wk-1' }, data: { $set: { f7: over } } },
      { table: 'wide_keys', operation: 'update', where: {}, data: { $set: { f2: { deep: over } } } },
      { table: 'wide_keys', operation: 'upsert', where: { _id: 'wk-6' }, data: { $set: { f1: over } } },
    ];
    for (const body of refused) {
      const res = await write(body);
      expect({ body, status: res.status, code: res.body.error?.code }).toEqual({ body, status: 400, code: TOO_LARGE });
    }
    // An index over a value already stored past the bound is refused, and not created.
    expect((await write({ table: 'big_values', operation: 'insert', data: { _id: 'bv-1', note: over } })).status).toBe(200);
    seq += 1;
    const create = await createIndex({ table: 'big_values', keys: 'note' });
    expect({ status: create.status, code: create.body.error?.code }).toEqual({ status: 400, code: TOO_LARGE });
    const next = await write({ table: 'wide_keys', operation: 'insert', data: { _id: 'wk-7', f0: 'after' } });
    expect(next.status).toBe(200);
    expect(next.body.seq).toBe(seq + 1);
    expect((await read({ table: 'wide_keys', where: {}, sort: { _id: 1 }, columns: ['_id'] }, next.body.seq)).body).toEqual([{ _id: 'wk-1' }, { _id: 'wk-2' }, { _id: 'wk-7' }]);
    for (const [id, list] of await indexesOnEveryReplica('big_values')) expect({ id, list }).toEqual({ id, list: [] });
  });

  it('refuses every write that breaks a unique index with 409, whole, on no replica changing anything', async () => {
    const seq0 = (await write({ table: 'people', operation: 'insert', data: { _id: 'p-c', email: 'c@x' } })).body.seq as number;
    // Read at (at least) the newest write's seq: a slave may answer, and it must have applied that write.
    const count = async (atSeq = seq0) => (await read({ table: 'people', where: {}, count: true }, atSeq)).body.count as number;
    const before = await count();

    const single = await write({ table: 'people', operation: 'insert', data: { email: 'a@x' } });
    expect(single.status).toBe(409);
    expect(single.body.error.code).toBe('DBAAS_WRITE_DUPLICATE_KEY');
    // All or nothing: one new document and one duplicate insert nothing; so do two equal new ones.
    const multi = await write({ table: 'people', operation: 'insert', data: [{ _id: 'p-new', email: 'new@x' }, { email: 'b@x' }] });
    expect(multi.status).toBe(409);
    expect(multi.body.error.code).toBe('DBAAS_WRITE_DUPLICATE_KEY');
    const twins = await write({ table: 'people', operation: 'insert', data: [{ email: 'twin@x' }, { email: 'twin@x' }] });
    expect(twins.status).toBe(409);
    const update = await write({ table: 'people', operation: 'update', where: { _id: 'p-c' }, data: { $set: { email: 'a@x' } } });
    expect(update.status).toBe(409);
    expect(update.body.error.code).toBe('DBAAS_WRITE_DUPLICATE_KEY');
    const many = await write({ table: 'people', operation: 'update', where: {}, data: { $set: { email: 'same@x' } } });
    expect(many.status).toBe(409);
    const upsert = await write({ table: 'people', operation: 'upsert', where: { city: 'Nowhere' }, data: { $set: { email: 'b@x' } } });
    expect(upsert.status).toBe(409);
    expect(upsert.body.error.code).toBe('DBAAS_WRITE_DUPLICATE_KEY');
    // A missing field counts as null (MongoDB's rule): one document may lack it, a second may not.
    expect((await write({ table: 'people', operation: 'insert', data: { _id: 'p-none' } })).status).toBe(200);
    const secondNull = await write({ table: 'people', operation: 'insert', data: { _id: 'p-none2', email: null } });
    expect(secondNull.status).toBe(409);
    // Arrays and objects have no one meaning as a unique key across storages: refused.
    expect((await write({ table: 'people', operation: 'insert', data: { email: ['x'] } })).body.error?.code).toBe('DBAAS_DOC_INVALID');

    // Swapping two keys in one batch-free sequence works (each write's end state is valid).
    const s1 = await write({ table: 'people', operation: 'update', where: { _id: 'p-c' }, data: { email: 'tmp@x' } });
    expect(s1.status).toBe(200);
    const s2 = await write({ table: 'people', operation: 'insert', data: { _id: 'p-d', email: 'c@x' } });
    expect(s2.status).toBe(200);

    expect(await count(s2.body.seq as number)).toBe(before + 2);
    await replicasEqualWithoutDuplicates('people', 'email');

    // A unique index over data that holds a key twice is refused, and created nowhere.
    await write({ table: 'people', operation: 'update', where: { _id: 'p-d' }, data: { city: 'Oslo' } });
    const overDupes = await createIndex({ table: 'people', keys: 'city', unique: true });
    expect(overDupes.status).toBe(409);
    expect(overDupes.body.error.code).toBe('DBAAS_WRITE_DUPLICATE_KEY');
    // On PostgreSQL the master asks PostgreSQL (one GROUP BY) instead of reading every document (worker/pg-unique-check.ts).
    if (process.env.DBAAS_DB_BACKEND === 'postgresql') expect(overDupes.body.error.message).toMatch(/was not created/);
    for (const [id, list] of await indexesOnEveryReplica('people')) expect({ id, list }).toEqual({ id, list: ['email_1:{"email":1}:true'] });
  });

  it('lists tables with counts and indexes, and hints at a table that does not exist', async () => {
    const tables = await c.get('/api/v1/db/tables');
    expect(tables.status).toBe(200);
    const people = (tables.body as Array<{ table: string; documents: number; indexes: unknown[] }>).find((t) => t.table === 'people');
    expect(people?.documents).toBeGreaterThan(3);
    expect(people?.indexes).toEqual([{ name: 'email_1', keys: { email: 1 }, unique: true }]);

    const none = await read({ table: 'nosuchtable', where: { a: 1 } });
    expect(none.status).toBe(200);
    expect(none.body).toEqual([]);
    expect(none.headers['x-dbaas-hint']).toBe('table-not-found');
    const some = await read({ table: 'people', where: { email: 'nobody' } });
    expect(some.body).toEqual([]);
    expect(some.headers['x-dbaas-hint']).toBeUndefined();
  });

  it('gives a new slave the index definitions, and unique indexes hold across a master crash under concurrent writes', async () => {
    // A new slave copies the indexes with its snapshot.
    const before = new Set(c.orch.view.workers.keys());
    expect((await c.post('/api/v1/scale', { slaves: 3 })).status).toBe(200);
    await eventually(() => c.orch.view.servingSlaves().length === 3, 60_000, 'a third slave serving');
    const fresh = [...c.orch.view.workers.keys()].find((id) => !before.has(id));
    const lists = await indexesOnEveryReplica('people');
    expect(lists.get(fresh ?? '')).toEqual(['email_1:{"email":1}:true']);

    await createIndex({ table: 'accounts', keys: 'login', unique: true });
    // Writers insert logins from a small pool (so they collide) and retry 5xx with the same requestId.
    const outcome = new Map<string, 'ok' | 'dup'>();
    let stop = false;
    const writer = async (w: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const id = `a${w}-${i}`;
        const body = { table: 'accounts', operation: 'insert', requestId: `rq-${id}`, data: { _id: id, login: `L${(w * 7919 + i * 31) % 60}` } };
        for (let attempt = 0; attempt < 60; attempt++) {
          const r = await write(body);
          if (r.status === 200) outcome.set(id, 'ok');
          else if (r.status === 409 && r.body.error.code === 'DBAAS_WRITE_DUPLICATE_KEY') outcome.set(id, 'dup');
          else if (r.status >= 500) continue;
          else throw new Error(`unexpected ${r.status} ${JSON.stringify(r.body)}`);
          break;
        }
      }
    };
    const writers = [0, 1, 2, 3].map(writer);
    await eventually(() => outcome.size >= 20, 20_000, 'writes before the crash');
    const oldMaster = c.orch.view.master?.id;
    expect((await c.post('/api/v1/crash/master')).status).toBe(200);
    await eventually(() => c.orch.view.master !== undefined && c.orch.view.master.id !== oldMaster, 30_000, 'a new master');
    const after = outcome.size;
    await eventually(() => outcome.size >= after + 20, 30_000, 'writes after the promotion');
    stop = true;
    await Promise.all(writers);

    expect([...outcome.values()].filter((o) => o === 'dup').length).toBeGreaterThan(0);
    const docs = await replicasEqualWithoutDuplicates('accounts', 'login');
    const ids = new Set(docs.map((d) => d._id));
    for (const [id, o] of outcome) expect({ id, stored: ids.has(id) }).toEqual({ id, stored: o === 'ok' });
    // The promoted master has the index and still refuses duplicates.
    const taken = docs[0]?.login;
    const dup = await write({ table: 'accounts', operation: 'insert', data: { login: taken } });
    expect(dup.status).toBe(409);
    expect(dup.body.error.code).toBe('DBAAS_WRITE_DUPLICATE_KEY');
    for (const [id, list] of await indexesOnEveryReplica('accounts')) expect({ id, list }).toEqual({ id, list: ['login_1:{"login":1}:true'] });
  });
});
