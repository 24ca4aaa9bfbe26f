/**
 * A write the master's own database refuses every time must not stop the cluster
 * (docs/DECISIONS.md, "A write the storage refuses becomes a void entry").
 *
 * The refusal used here is one validation does not cover: on FerretDB/PostgreSQL a
 * value of a secondarily indexed field larger than a B-tree index row (2,704 bytes;
 * random text does not compress) is refused by PostgreSQL (SQLSTATE 54000). Before
 * the fix the entry reached the oplog and every slave first: every worker died
 * applying it, and each restart replayed it. SQLite takes such values, so the test
 * runs only on PostgreSQL (the storage npm test sets up). Since session 9 the master
 * refuses such a value before the write takes a seq (an index entry holds at most 1,024
 * bytes: 400 DBAAS_INDEX_KEY_TOO_LARGE), so the void entry is left to the unit tests
 * (tests/unit/void-batch.test.ts); the test still holds the cluster to exactness under
 * refused writes, concurrent writers and a master crash.
 *
 * Concurrent writers insert small documents into the indexed table (so refused
 * and accepted inserts share batches) and `$inc` counters, each retried with its
 * requestId until acknowledged; refused writes come in meanwhile; the master is
 * crashed in the middle. Then: every refused write got a 4xx, every replica holds
 * exactly the acknowledged writes, once each, and the cluster still serves.
 */
import { randomBytes } from 'node:crypto';
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

const INDEXED = 'refusal_items';
const COUNTERS = 'refusal_counters';
const WRITERS = 12;
const COUNTER_DOCS = 3;

/** A value PostgreSQL cannot put in a B-tree index row: 6,000 random bytes as base64. */
function oversizedKey(): string {
  return randomBytes(6000).toString('base64');
}

/** Set when the test ends, passed or not: the writers stop retrying. */
let over = false;

/** Posts until an answer that is not 5xx (a crash in between: 503/504), with the same requestId; 599 once the test is over. */
async function settled(body: Record<string, unknown>): Promise<{ status: number; body: Record<string, unknown> }> {
  while (!over) {
    const r = await c.post('/api/v1/db/write', body);
    if (r.status < 500) return r as { status: number; body: Record<string, unknown> };
    await new Promise((res) => setTimeout(res, 50));
  }
  return { status: 599, body: {} };
}

describe.skipIf(!process.env.DBAAS_PG_URL)('a write the storage refuses', () => {
  it('is refused 4xx before its seq, under concurrent writers and a master crash; replicas stay equal and exact', async () => {
    expect((await c.post('/api/v1/db/indexes', { table: INDEXED, keys: 'k' })).status).toBe(200);
    const counters = Array.from({ length: COUNTER_DOCS }, (_, i) => ({ _id: `c${i}`, n: 0, log: [] }));
    expect((await c.post('/api/v1/db/write', { table: COUNTERS, operation: 'insert', data: counters })).status).toBe(200);

    const ackedItems = new Set<string>();
    const ackedIncs = new Map<string, string[]>();
    const refusals: Array<{ status: number; code: unknown }> = [];
    let total = 0;
    let stop = false;

    const writer = async (w: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const requestId = `w${w}-${i}`;
        if (i % 2 === 0) {
          const id = `i-${w}-${i}`;
          const r = await settled({ table: INDEXED, operation: 'insert', data: { _id: id, k: `small-${w}-${i}`, w }, requestId });
          if (r.status !== 200) throw new Error(`insert ${id}: unexpected ${r.status} ${JSON.stringify(r.body)}`);
          ackedItems.add(id);
        } else {
          const id = `c${(w + i) % COUNTER_DOCS}`;
          const r = await settled({ table: COUNTERS, operation: 'update', where: { _id: id }, data: { $inc: { n: 1 }, $push: { log: requestId } }, requestId });
          if (r.status !== 200) throw new Error(`$inc ${id}: unexpected ${r.status} ${JSON.stringify(r.body)}`);
          ackedIncs.set(id, [...(ackedIncs.get(id) ?? []), requestId]);
        }
        total += 1;
      }
    };
    /** Refused writes: an insert with an oversized indexed value, alone or beside a small document. */
    const refuser = async (): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const data = i % 2 === 0 ? { _id: `bad-${i}`, k: oversizedKey() } : [{ _id: `bad-${i}-a`, k: `fine-${i}` }, { _id: `bad-${i}-b`, k: oversizedKey() }];
        const r = await settled({ table: INDEXED, operation: 'insert', data, requestId: `bad-${i}` });
        refusals.push({ status: r.status, code: (r.body.error as { code?: unknown } | undefined)?.code });
        // A retry of a refused write is refused again (a void entry keeps no ledger record).
        if (i === 0) {
          const again = await settled({ table: INDEXED, operation: 'insert', data, requestId: `bad-${i}` });
          refusals.push({ status: again.status, code: (again.body.error as { code?: unknown } | undefined)?.code });
        }
        await new Promise((res) => setTimeout(res, 100));
      }
    };

    const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));
    const refusing = refuser();
    try {
      await eventually(() => total >= 150 && refusals.length >= 3, 90_000, 'writes and refusals before the master crash');
      const oldMaster = c.orch.view.master?.id;
      expect((await c.post('/api/v1/crash/master')).status).toBe(200);
      await eventually(() => c.orch.view.master !== undefined && c.orch.view.master.id !== oldMaster, 60_000, 'a new master');
      const afterCrash = { total, refusals: refusals.length };
      await eventually(() => total >= afterCrash.total + 150 && refusals.length >= afterCrash.refusals + 3, 90_000, 'writes and refusals after the crash');
      stop = true;
      await Promise.all([...writers, refusing]);
    } finally {
      stop = true;
      over = true;
      await Promise.allSettled([...writers, refusing]);
    }

    // Every refused write: 4xx, never applied. Since session 9 the master refuses the value itself, before a seq
    // (400 DBAAS_INDEX_KEY_TOO_LARGE, common/index-spec.ts); it was the storage's 422 and a void entry.
    expect(refusals.length).toBeGreaterThanOrEqual(6);
    for (const r of refusals) expect(r).toEqual({ status: 400, code: 'DBAAS_INDEX_KEY_TOO_LARGE' });

    // The cluster still serves, with its three workers.
    await eventually(() => c.orch.view.servingSlaves().length === 2, 90_000, 'two serving slaves again');
    const last = await c.post('/api/v1/db/write', { table: INDEXED, operation: 'insert', data: { _id: 'last', k: 'last' } });
    expect(last.status).toBe(200);
    ackedItems.add('last');

    const dumps = await dumpAllReplicas(c.orch, 60_000, 3);
    expect(dumps.size).toBe(3);
    const wantItems = [...ackedItems].sort();
    for (const [worker, dump] of dumps) {
      const items = ((dump[INDEXED] ?? []) as Array<{ _id: string }>).map((d) => d._id).sort();
      expect({ worker, items }).toEqual({ worker, items: wantItems });
      const docs = (dump[COUNTERS] ?? []) as Array<{ _id: string; n: number; log: string[] }>;
      expect({ worker, counters: docs.length }).toEqual({ worker, counters: COUNTER_DOCS });
      for (const doc of docs) {
        const want = ackedIncs.get(doc._id) ?? [];
        expect({ worker, id: doc._id, n: doc.n, log: [...doc.log].sort() }).toEqual({ worker, id: doc._id, n: want.length, log: [...want].sort() });
      }
    }
  }, 360_000);
});
