import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCluster, type TestCluster } from './harness.js';

let c: TestCluster;

beforeAll(async () => {
  c = await startTestCluster();
});

afterAll(async () => {
  await c?.close();
});

const write = (body: unknown) => c.post('/api/v1/db/write', body);
/** Reads with read-your-writes on the given seq, so the test never races replication. */
const read = (body: Record<string, unknown>, afterSeq?: number) =>
  c.post('/api/v1/db/read', afterSeq === undefined ? body : { ...body, afterSeq });

describe('writes and reads through master and slave', () => {
  it('inserts one document, assigns a string _id, and reads it back', async () => {
    const w = await write({ table: 'users', operation: 'insert', data: { username: 'ana', password: 'x' } });
    expect(w.status).toBe(200);
    expect(w.body).toMatchObject({ ok: true, inserted: 1, matched: 0, modified: 0, deleted: 0 });
    expect(w.body.seq).toBeGreaterThan(0);
    expect(w.body.ids).toHaveLength(1);
    const id = w.body.ids[0] as string;
    expect(typeof id).toBe('string');

    const r = await read({ table: 'users', where: { _id: id } }, w.body.seq);
    expect(r.status).toBe(200);
    expect(r.body).toEqual([{ _id: id, username: 'ana', password: 'x' }]);
  });

  it('inserts an array, keeps client ids, counts, projects, sorts, skips and limits', async () => {
    const data = [
      { _id: 'r1', created_by: 'ana', source: 1, destination: 2, timestamp: '2026-11-21T10:00:00Z', users: [] },
      { _id: 'r2', created_by: 'bo', source: 1, destination: 2, timestamp: '2026-11-22T10:00:00Z', users: [] },
      { _id: 'r3', created_by: 'cy', source: 3, destination: 4, timestamp: '2026-11-23T10:00:00Z', users: [] },
    ];
    const w = await write({ table: 'rides', operation: 'insert', data });
    expect(w.status).toBe(200);
    expect(w.body.ids).toEqual(['r1', 'r2', 'r3']);
    const seq = w.body.seq as number;

    const all = await read({ table: 'rides', where: { source: 1, destination: 2 }, sort: { timestamp: -1 } }, seq);
    expect(all.body.map((d: { _id: string }) => d._id)).toEqual(['r2', 'r1']);

    const projected = await read({ table: 'rides', where: { source: 1 }, columns: ['created_by'], sort: { timestamp: 1 } }, seq);
    expect(projected.body).toEqual([{ created_by: 'ana' }, { created_by: 'bo' }]);

    const withId = await read({ table: 'rides', where: {}, columns: ['_id'], sort: { _id: 1 }, skip: 1, limit: 1 }, seq);
    expect(withId.body).toEqual([{ _id: 'r2' }]);

    const count = await read({ table: 'rides', where: { timestamp: { $gt: '2026-11-21T12:00:00Z' } }, count: true }, seq);
    expect(count.body).toEqual({ count: 2 });
  });

  it('applies every update operator and reports matched/modified', async () => {
    const w0 = await write({ table: 'ops', operation: 'insert', data: { _id: 'd1', n: 1, tags: ['a'], gone: true, nested: { x: 1 } } });
    expect(w0.status).toBe(200);
    const w = await write({
      table: 'ops',
      operation: 'update',
      where: { _id: 'd1' },
      data: {
        $set: { 'nested.y': 2, name: 'doc' },
        $unset: { gone: '' },
        $inc: { n: 5 },
        $push: { tags: 'b' },
        $addToSet: { set: { $each: ['p', 'p', 'q'] } },
      },
    });
    expect(w.status).toBe(200);
    expect(w.body).toMatchObject({ matched: 1, modified: 1 });
    const w2 = await write({ table: 'ops', operation: 'update', where: { _id: 'd1' }, data: { $pull: { tags: 'a' }, $addToSet: { set: 'p' } } });
    expect(w2.body).toMatchObject({ matched: 1, modified: 1 });
    const r = await read({ table: 'ops', where: { _id: 'd1' } }, w2.body.seq);
    expect(r.body).toEqual([{ _id: 'd1', n: 6, tags: ['b'], nested: { x: 1, y: 2 }, name: 'doc', set: ['p', 'q'] }]);

    // A plain object means $set; an update that changes nothing matches but does not modify.
    const w3 = await write({ table: 'ops', operation: 'update', where: { n: 6 }, data: { name: 'doc' } });
    expect(w3.body).toMatchObject({ matched: 1, modified: 0 });
  });

  it('upserts: inserts from the filter when nothing matches, updates otherwise', async () => {
    const w1 = await write({ table: 'users', operation: 'upsert', where: { username: 'dee' }, data: { $set: { password: 'p1' } } });
    expect(w1.status).toBe(200);
    expect(w1.body).toMatchObject({ inserted: 1, matched: 0 });
    const w2 = await write({ table: 'users', operation: 'upsert', where: { username: 'dee' }, data: { $set: { password: 'p2' } } });
    expect(w2.body).toMatchObject({ inserted: 0, matched: 1, modified: 1 });
    const r = await read({ table: 'users', where: { username: 'dee' }, columns: ['username', 'password'] }, w2.body.seq);
    expect(r.body).toEqual([{ username: 'dee', password: 'p2' }]);
  });

  it('deletes matching documents and leaves the rest', async () => {
    await write({ table: 'del', operation: 'insert', data: [{ k: 1 }, { k: 2 }, { k: 3 }] });
    const w = await write({ table: 'del', operation: 'delete', where: { k: { $in: [1, 3] } } });
    expect(w.body).toMatchObject({ deleted: 2 });
    const r = await read({ table: 'del', where: {}, columns: ['k'] }, w.body.seq);
    expect(r.body).toEqual([{ k: 2 }]);
  });

  it('filters with every allowed operator', async () => {
    const w = await write({
      table: 'f',
      operation: 'insert',
      data: [
        { _id: 'a', n: 1, s: 'apple', t: true },
        { _id: 'b', n: 2, s: 'banana' },
        { _id: 'c', n: 3, s: 'cherry', t: false },
      ],
    });
    const seq = w.body.seq as number;
    const ids = async (where: unknown) => {
      const r = await read({ table: 'f', where, columns: ['_id'], sort: { _id: 1 } }, seq);
      expect(r.status).toBe(200);
      return r.body.map((d: { _id: string }) => d._id);
    };
    expect(await ids({ n: { $eq: 2 } })).toEqual(['b']);
    expect(await ids({ n: { $ne: 2 } })).toEqual(['a', 'c']);
    expect(await ids({ n: { $gt: 1, $lte: 3 } })).toEqual(['b', 'c']);
    expect(await ids({ n: { $gte: 2, $lt: 3 } })).toEqual(['b']);
    expect(await ids({ s: { $in: ['apple', 'cherry'] } })).toEqual(['a', 'c']);
    expect(await ids({ s: { $nin: ['apple'] } })).toEqual(['b', 'c']);
    expect(await ids({ t: { $exists: false } })).toEqual(['b']);
    expect(await ids({ $or: [{ n: 1 }, { s: 'cherry' }] })).toEqual(['a', 'c']);
    expect(await ids({ $and: [{ n: { $gt: 1 } }, { s: { $regex: '^b' } }] })).toEqual(['b']);
    expect(await ids({ s: { $regex: 'AN', $options: 'i' } })).toEqual(['b']);
    expect(await ids({ n: { $not: { $gt: 1 } } })).toEqual(['a']);
  });

  it('accepts the legacy assignment forms', async () => {
    const w = await write({ table: 'legacy', insert: ['ana', 'secret'], column: ['username', 'password'] });
    expect(w.status).toBe(200);
    const w2 = await write({ table: 'legacy', insert: ['bo', 'pw'], column: ['username', 'password'] });
    const r = await read({ table: 'legacy', columns: ['username', 'password'], where: "username='ana'" }, w2.body.seq);
    expect(r.body).toEqual([{ username: 'ana', password: 'secret' }]);
    const d = await write({ table: 'legacy', delete: "username='ana'" });
    expect(d.body).toMatchObject({ deleted: 1 });
    const r2 = await read({ table: 'legacy', columns: ['username'], where: {} }, d.body.seq);
    expect(r2.body).toEqual([{ username: 'bo' }]);
  });

  it('clears every table through the write path', async () => {
    const w = await write({ table: 'tmp', operation: 'insert', data: { a: 1 } });
    expect(w.status).toBe(200);
    const cl = await c.post('/api/v1/db/clear');
    expect(cl.status).toBe(200);
    expect(cl.body.ok).toBe(true);
    expect(cl.body.seq).toBeGreaterThan(w.body.seq);
    const r = await read({ table: 'tmp', where: {}, count: true }, cl.body.seq);
    expect(r.body).toEqual({ count: 0 });
  });

  it('refuses an insert whose _id exists, changing nothing', async () => {
    const w = await write({ table: 'dup', operation: 'insert', data: { _id: 'x', v: 1 } });
    const again = await write({ table: 'dup', operation: 'insert', data: [{ _id: 'y', v: 2 }, { _id: 'x', v: 3 }] });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('DBAAS_WRITE_DUPLICATE_ID');
    const r = await read({ table: 'dup', where: {}, sort: { _id: 1 } }, w.body.seq);
    expect(r.body).toEqual([{ _id: 'x', v: 1 }]);
  });

  it('refuses $inc on a string with 409 and leaves the document alone', async () => {
    const w = await write({ table: 'typ', operation: 'insert', data: { _id: 't', n: 'text' } });
    const bad = await write({ table: 'typ', operation: 'update', where: { _id: 't' }, data: { $inc: { n: 1 } } });
    expect(bad.status).toBe(409);
    expect(bad.body.error.code).toBe('DBAAS_WRITE_TYPE_CONFLICT');
    const r = await read({ table: 'typ', where: { _id: 't' } }, w.body.seq);
    expect(r.body).toEqual([{ _id: 't', n: 'text' }]);
  });

  it('lists the workers with their real pids', async () => {
    const list = await c.get('/api/v1/workers/list');
    expect(list.status).toBe(200);
    expect(list.body).toHaveLength(2);
    expect([...list.body].sort((a: number, b: number) => a - b)).toEqual(list.body);
    const alias = await c.get('/api/v1/worker/list');
    expect(alias.body).toEqual(list.body);
    for (const pid of list.body as number[]) expect(() => process.kill(pid, 0)).not.toThrow();
    const details = await c.get('/api/v1/workers');
    expect(details.body.map((w: { role: string }) => w.role).sort()).toEqual(['master', 'slave']);
    const ready = await c.get('/readyz');
    expect(ready.status).toBe(200);
  });
});
