import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestCluster, type TestCluster } from './harness.js';
import { dumpAllReplicas } from './replicas.js';

let c: TestCluster;

beforeAll(async () => {
  c = await startTestCluster();
});

afterAll(async () => {
  await c?.close();
});

describe('replication', () => {
  it('a slave started while writes flow ends with exactly the master data', async () => {
    let stop = false;
    let acked = 0;
    const writer = async (n: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const body =
          i % 3 === 2
            ? { table: 'counters', operation: 'upsert', where: { _id: `c${n}` }, data: { $inc: { hits: 1 }, $push: { log: i } } }
            : { table: 'events', operation: 'insert', data: { writer: n, i } };
        const r = await c.post('/api/v1/db/write', body);
        expect(r.status).toBe(200);
        acked += 1;
      }
    };
    const writers = [writer(1), writer(2), writer(3)];
    // Let some data exist before the new slave takes its snapshot, and keep writing during it.
    while (acked < 60) await new Promise((r) => setTimeout(r, 10));
    const before = new Set(c.orch.view.workers.keys());
    c.orch.cluster.scaleTo(2, 'test: a second slave joins while writes flow');
    await eventually(() => c.orch.view.servingSlaves().length === 2, 30_000, 'the new slave to serve');
    const newSlave = [...c.orch.view.workers.keys()].find((id) => !before.has(id));
    const ackedAtJoin = acked;
    while (acked < ackedAtJoin + 60) await new Promise((r) => setTimeout(r, 10));
    stop = true;
    await Promise.all(writers);

    const dumps = await dumpAllReplicas(c.orch, 20_000, 3);
    expect(dumps.size).toBe(3);
    expect(newSlave && dumps.has(newSlave)).toBe(true);
    const masterId = c.orch.view.master?.id as string;
    const master = dumps.get(masterId);
    expect(master?.events?.length).toBeGreaterThan(0);
    for (const [id, dump] of dumps) expect({ id, dump }).toEqual({ id, dump: master });
    // Every counter's hits equals the number of $push entries: nothing applied twice.
    for (const doc of (master?.counters ?? []) as Array<{ hits: number; log: number[] }>) expect(doc.hits).toBe(doc.log.length);
  });

  it('a retried requestId is applied once and answers the first result', async () => {
    const body = { table: 'idem', operation: 'update', where: { _id: 'k' }, data: { $inc: { n: 1 } }, requestId: 'retry-1' };
    await c.post('/api/v1/db/write', { table: 'idem', operation: 'insert', data: { _id: 'k', n: 0 } });
    const first = await c.post('/api/v1/db/write', body);
    const second = await c.post('/api/v1/db/write', body);
    const third = await c.post('/api/v1/db/write', { ...body });
    expect(first.status).toBe(200);
    expect(second.body).toEqual(first.body);
    expect(third.body).toEqual(first.body);
    const r = await c.post('/api/v1/db/read', { table: 'idem', where: { _id: 'k' }, afterSeq: first.body.seq });
    expect(r.body).toEqual([{ _id: 'k', n: 1 }]);
    // Concurrent duplicates too.
    const inserts = await Promise.all(
      Array.from({ length: 10 }, () => c.post('/api/v1/db/write', { table: 'idem', operation: 'insert', data: { v: 1 }, requestId: 'ins-once' })),
    );
    expect(new Set(inserts.map((i) => JSON.stringify(i.body))).size).toBe(1);
    const count = await c.post('/api/v1/db/read', { table: 'idem', where: { v: 1 }, count: true, afterSeq: inserts[0]?.body.seq });
    expect(count.body).toEqual({ count: 1 });
  });

  it('a requestId reused for a different write is refused with 422 and changes nothing; key order does not count as different', async () => {
    const first = await c.post('/api/v1/db/write', { table: 'reuse', operation: 'insert', data: { _id: 'a', n: 1, s: 'x' }, requestId: 'reuse-1' });
    expect(first.status).toBe(200);
    // The same write with its keys in another order is a retry.
    const retry = await c.post('/api/v1/db/write', { requestId: 'reuse-1', data: { s: 'x', n: 1, _id: 'a' }, operation: 'insert', table: 'reuse' });
    expect(retry.status).toBe(200);
    expect(retry.body).toEqual(first.body);
    const other = await c.post('/api/v1/db/write', { table: 'reuse', operation: 'insert', data: { _id: 'b', n: 2 }, requestId: 'reuse-1' });
    expect(other.status).toBe(422);
    expect(other.body.error.code).toBe('DBAAS_WRITE_REQUEST_ID_REUSED');
    // Nothing was applied and no seq was used: the next write takes the next seq.
    const next = await c.post('/api/v1/db/write', { table: 'reuse', operation: 'insert', data: { _id: 'c' } });
    expect(next.body.seq).toBe(first.body.seq + 1);
    const docs = await c.post('/api/v1/db/read', { table: 'reuse', where: {}, sort: { _id: 1 }, afterSeq: next.body.seq });
    expect(docs.body).toEqual([{ _id: 'a', n: 1, s: 'x' }, { _id: 'c' }]);

    // Arriving together (one batch on the master): the first body wins, the others are refused.
    const together = await Promise.all(
      [1, 2, 1, 3].map((v) => c.post('/api/v1/db/write', { table: 'reuse', operation: 'insert', data: { _id: `t${v}` }, requestId: 'reuse-2' })),
    );
    const winners = together.filter((r) => r.status === 200);
    expect(new Set(winners.map((r) => JSON.stringify(r.body))).size).toBe(1);
    expect(together.filter((r) => r.status === 422).every((r) => r.body.error.code === 'DBAAS_WRITE_REQUEST_ID_REUSED')).toBe(true);
    expect(winners.length + together.filter((r) => r.status === 422).length).toBe(4);
    const applied = await c.post('/api/v1/db/read', { table: 'reuse', where: { _id: { $regex: '^t' } }, afterSeq: winners[0]?.body.seq });
    expect(applied.body).toHaveLength(1);
  });

  it('200 concurrent reads each get their own answer', async () => {
    const docs = Array.from({ length: 200 }, (_, i) => ({ _id: `p${i}`, i }));
    const w = await c.post('/api/v1/db/write', { table: 'many', operation: 'insert', data: docs });
    expect(w.status).toBe(200);
    const reads = await Promise.all(
      docs.map((d) => c.post('/api/v1/db/read', { table: 'many', where: { _id: d._id }, afterSeq: w.body.seq })),
    );
    reads.forEach((r, i) => {
      expect(r.status).toBe(200);
      expect(r.body).toEqual([{ _id: `p${i}`, i }]);
    });
  });

  it('afterSeq beyond anything written answers 504 DBAAS_READ_SEQ_TIMEOUT, not a hang', async () => {
    const r = await c.post('/api/v1/db/read', { table: 'many', where: {}, afterSeq: 10_000_000 });
    expect(r.status).toBe(504);
    expect(r.body.error.code).toBe('DBAAS_READ_SEQ_TIMEOUT');
  });
});
