/**
 * Poison messages: garbage, unknown wire versions and well-formed envelopes with
 * malformed commands, published straight onto every queue a worker reads. None
 * may crash a worker or block its queue; each goes to the dead-letter queue.
 */
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterNames } from '../../common/names.js';
import { eventually, startTestCluster, type TestCluster } from './harness.js';
import { alive } from './infra.js';

let c: TestCluster;
let conn: amqp.ChannelModel;
let ch: amqp.Channel;

beforeAll(async () => {
  c = await startTestCluster();
  conn = await amqp.connect('amqp://guest:guest@127.0.0.1:5672');
  ch = await conn.createChannel();
});

afterAll(async () => {
  await conn?.close().catch(() => undefined);
  await c?.close();
});

const deadLetters = async (): Promise<number> => (await ch.checkQueue(clusterNames(c.namespace).deadLetterQueue)).messageCount;

const garbage = (): Buffer[] => [
  Buffer.from('not json at all'),
  Buffer.from('[1,2,3]'),
  Buffer.from(JSON.stringify({ v: 99, requestId: 'x', command: { kind: 'clear' } })),
];

describe('poison messages', () => {
  it('never crash a worker or block a queue, and end in the dead-letter queue', async () => {
    const names = clusterNames(c.namespace);
    const w0 = await c.post('/api/v1/db/write', { table: 'p', operation: 'insert', data: { _id: 'a' } });
    expect(w0.status).toBe(200);
    const pids = (await c.get('/api/v1/workers/list')).body as number[];
    const master = c.orch.view.master?.id as string;
    const slave = c.orch.view.servingSlaves()[0]?.id as string;
    const before = await deadLetters();

    const writes = [
      ...garbage(),
      Buffer.from(JSON.stringify({ v: 1, requestId: 'bad-1', command: { kind: 'explode', table: 'p' } })),
      Buffer.from(JSON.stringify({ v: 1, requestId: 'bad-2', command: { kind: 'insert', table: 'p', docs: 'nope' } })),
      Buffer.from(JSON.stringify({ v: 1, requestId: 'bad-3', command: { kind: 'update', table: 'p', where: { $where: 'sleep(1000)' }, update: { $set: { a: 1 } } } })),
      Buffer.from(JSON.stringify({ v: 1, requestId: 'bad-4', command: { kind: 'delete', table: '$p', where: {} } })),
    ];
    for (const body of writes) ch.sendToQueue(names.writeQueue, body, { persistent: true });
    const reads = [...garbage(), Buffer.from(JSON.stringify({ v: 1, command: { table: 'p', where: { $expr: {} }, count: false } }))];
    for (const body of reads) ch.sendToQueue(names.readQueue, body);
    const syncs = [
      ...garbage(),
      Buffer.from(JSON.stringify({ v: 1, seq: 999, term: 99, requestId: 'x', ts: 1, ops: [{ t: 'put', table: 'p' }], result: {} })),
    ];
    for (const body of syncs) ch.sendToQueue(names.syncQueue(slave), body, { persistent: true });
    for (const body of garbage()) ch.sendToQueue(names.controlQueue(master), body);

    const sent = writes.length + reads.length + syncs.length + garbage().length;
    await eventually(async () => (await deadLetters()) - before >= sent, 15_000, `${sent} dead letters`);

    // Every worker is alive and both queues still flow.
    for (const pid of pids) expect(alive(pid)).toBe(true);
    expect((await c.get('/api/v1/workers/list')).body).toEqual(pids);
    const w = await c.post('/api/v1/db/write', { table: 'p', operation: 'insert', data: { _id: 'b' } });
    expect(w.status).toBe(200);
    expect(w.body.seq).toBe(w0.body.seq + 1); // no poison write was applied
    const r = await c.post('/api/v1/db/read', { table: 'p', where: {}, sort: { _id: 1 }, afterSeq: w.body.seq });
    expect(r.body).toEqual([{ _id: 'a' }, { _id: 'b' }]);
    // Counted by the workers (their status reaches ZooKeeper within a second).
    const counted = async (): Promise<number> =>
      ((await c.get('/api/v1/workers')).body as Array<{ poisonMessages: number }>).reduce((n, x) => n + x.poisonMessages, 0);
    await eventually(async () => (await counted()) === sent, 5000, 'every poison message counted');
  });

  it('refuses a write whose oplog entry would be too large, without taking the master down', async () => {
    const big = 'x'.repeat(900_000);
    const docs = Array.from({ length: 12 }, (_, i) => ({ _id: `big${i}`, n: 0 }));
    expect((await c.post('/api/v1/db/write', { table: 'big', operation: 'insert', data: docs })).status).toBe(200);
    for (let i = 0; i < 12; i++) {
      expect((await c.post('/api/v1/db/write', { table: 'big', operation: 'update', where: { _id: `big${i}` }, data: { $set: { big } } })).status).toBe(200);
    }
    const pids = (await c.get('/api/v1/workers/list')).body as number[];
    // One update touching all 12 documents would need an entry of ~11 MB.
    const tooBig = await c.post('/api/v1/db/write', { table: 'big', operation: 'update', where: {}, data: { $inc: { n: 1 } } });
    expect(tooBig.status).toBe(400);
    expect(tooBig.body.error.code).toBe('DBAAS_REQ_LIMIT_EXCEEDED');
    expect((await c.get('/api/v1/workers/list')).body).toEqual(pids);
    const ok = await c.post('/api/v1/db/write', { table: 'big', operation: 'update', where: { _id: 'big0' }, data: { $inc: { n: 1 } } });
    expect(ok.status).toBe(200);
  });
});
