/**
 * Batched updates (issue 17): many concurrent `$inc`s on few documents, so the
 * master's batches hold several updates of one document (their post-images
 * compose in memory, the documents are read once per batch, the replaces go
 * several at a time), through a master crash and a slave crash. Every write is
 * retried with its requestId until acknowledged, so each counts exactly once:
 * on every replica each document's `n` equals the writes acknowledged for it,
 * and its `log` holds exactly their requestIds (none lost, none doubled).
 * One table has a unique index (the replaces that keep their keys go several at
 * a time, tables.ts writeUniqueTable), one has none.
 *
 * Then the table under those writes is dropped again and again (`db/clear`) and
 * re-created by the next upsert, across a master crash: the table locations each
 * worker remembers (pg-layout.ts TableLocations) must follow, so every replica
 * holds exactly the writes acknowledged after the last clear.
 */
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

const TABLES = ['tally_unique', 'tally_plain'];
const DOCS = 4;
const WRITERS = 24;

/** POSTs until answered 200 (the same body, so the same requestId): a write applied before a crash is answered from the ledger. */
async function until200(path: string, body: unknown): Promise<{ seq: number }> {
  for (;;) {
    const r = await c.post(path, body);
    if (r.status === 200) return r.body as { seq: number };
    if (r.status < 500) throw new Error(`unexpected ${r.status} ${JSON.stringify(r.body)}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

describe('batched updates', () => {
  it('concurrent $inc on few documents across a master and a slave crash: exact sums on every replica', async () => {
    for (const table of TABLES) {
      const docs = Array.from({ length: DOCS }, (_, i) => ({ _id: `d${i}`, name: `${table}-${i}`, n: 0, log: [] }));
      expect((await c.post('/api/v1/db/write', { table, operation: 'insert', data: docs })).status).toBe(200);
    }
    expect((await c.post('/api/v1/db/indexes', { table: 'tally_unique', keys: 'name', unique: true })).status).toBe(200);

    const acked = new Map<string, string[]>();
    let total = 0;
    let stop = false;
    const writer = async (w: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const table = TABLES[(w + i) % TABLES.length] as string;
        const id = `d${(w * 7 + i) % DOCS}`;
        const requestId = `w${w}-${i}`;
        const body = { table, operation: 'update', where: { _id: id }, data: { $inc: { n: 1 }, $push: { log: requestId } }, requestId };
        // The same requestId until acknowledged: a write applied before a crash is answered from the ledger.
        for (;;) {
          const r = await c.post('/api/v1/db/write', body);
          if (r.status === 200) {
            expect(r.body.modified).toBe(1);
            break;
          }
          if (r.status < 500) throw new Error(`unexpected ${r.status} ${JSON.stringify(r.body)}`);
          await new Promise((res) => setTimeout(res, 50));
        }
        const key = `${table}/${id}`;
        acked.set(key, [...(acked.get(key) ?? []), requestId]);
        total += 1;
      }
    };
    const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));

    await eventually(() => total >= 150, 60_000, 'updates before the master crash');
    const oldMaster = c.orch.view.master?.id;
    expect((await c.post('/api/v1/crash/master')).status).toBe(200);
    await eventually(() => c.orch.view.master !== undefined && c.orch.view.master.id !== oldMaster, 30_000, 'a new master');
    const afterPromotion = total;
    await eventually(() => total >= afterPromotion + 100, 60_000, 'updates after the promotion');
    expect((await c.post('/api/v1/crash/slave')).status).toBe(200);
    const afterSlaveCrash = total;
    await eventually(() => total >= afterSlaveCrash + 100, 60_000, 'updates after the slave crash');
    stop = true;
    await Promise.all(writers);
    await eventually(() => c.orch.view.servingSlaves().length === 2, 60_000, 'two serving slaves again');

    const dumps = await dumpAllReplicas(c.orch, 60_000, 3);
    expect(dumps.size).toBe(3);
    for (const [worker, dump] of dumps) {
      for (const table of TABLES) {
        const docs = (dump[table] ?? []) as Array<{ _id: string; n: number; log: string[] }>;
        expect({ worker, table, docs: docs.length }).toEqual({ worker, table, docs: DOCS });
        for (const doc of docs) {
          const want = acked.get(`${table}/${doc._id}`) ?? [];
          expect({ worker, table, id: doc._id, n: doc.n }).toEqual({ worker, table, id: doc._id, n: want.length });
          expect({ worker, table, id: doc._id, log: [...doc.log].sort() }).toEqual({ worker, table, id: doc._id, log: [...want].sort() });
        }
      }
    }
  });

  it('a table dropped (db/clear) and re-created under concurrent upserts, across a master crash: every replica holds the writes after the last clear', async () => {
    const TABLE = 'churn';
    const acked: Array<{ id: string; requestId: string; seq: number }> = [];
    const clears: number[] = [];
    let stop = false;
    const writer = async (w: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const id = `d${(w + i) % DOCS}`;
        const requestId = `churn-w${w}-${i}`;
        const { seq } = await until200('/api/v1/db/write', { table: TABLE, operation: 'upsert', where: { _id: id }, data: { $inc: { n: 1 }, $push: { log: requestId } }, requestId });
        acked.push({ id, requestId, seq });
      }
    };
    const writers = Array.from({ length: 12 }, (_, w) => writer(w));
    /** A clear once `n` more writes were acknowledged, so that each clear drops a table being written. */
    const clearAfter = async (n: number): Promise<void> => {
      const at = acked.length;
      await eventually(() => acked.length >= at + n, 60_000, `${n} upserts before clear ${clears.length + 1}`);
      clears.push((await until200('/api/v1/db/clear', { requestId: `churn-clear-${clears.length}` })).seq);
    };
    await clearAfter(40);
    await clearAfter(40);
    const oldMaster = c.orch.view.master?.id;
    expect((await c.post('/api/v1/crash/master')).status).toBe(200);
    await eventually(() => c.orch.view.master !== undefined && c.orch.view.master.id !== oldMaster, 30_000, 'a new master');
    await clearAfter(40);
    await clearAfter(40);
    const afterLast = acked.length;
    await eventually(() => acked.length >= afterLast + 60, 60_000, 'upserts after the last clear');
    stop = true;
    await Promise.all(writers);
    await eventually(() => c.orch.view.servingSlaves().length === 2, 60_000, 'two serving slaves again');

    const last = Math.max(...clears);
    const want = new Map<string, string[]>();
    for (const a of acked) if (a.seq > last) want.set(a.id, [...(want.get(a.id) ?? []), a.requestId]);
    expect(want.size).toBeGreaterThan(0);
    const dumps = await dumpAllReplicas(c.orch, 60_000, 3);
    expect(dumps.size).toBe(3);
    for (const [worker, dump] of dumps) {
      const docs = (dump[TABLE] ?? []) as Array<{ _id: string; n: number; log: string[] }>;
      expect({ worker, ids: docs.map((d) => d._id).sort() }).toEqual({ worker, ids: [...want.keys()].sort() });
      for (const doc of docs) {
        const log = want.get(doc._id) ?? [];
        expect({ worker, id: doc._id, n: doc.n, log: [...doc.log].sort() }).toEqual({ worker, id: doc._id, n: log.length, log: [...log].sort() });
      }
    }
  });
});
