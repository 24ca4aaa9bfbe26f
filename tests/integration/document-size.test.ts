/**
 * A document past 16 MiB as BSON is bad input: 400 DBAAS_REQ_LIMIT_EXCEEDED,
 * nothing changed, no seq taken (common/bson-size.ts).
 *
 * BSON can be five times its JSON (an array of zeros), so a body well inside
 * the JSON bounds (DBAAS_BODY_LIMIT_BYTES, the 8 MiB one write may change) made
 * one. On PostgreSQL it was stored; on SQLite (every docker and swarm worker)
 * the driver refused to write it, after its entry was in the oplog: the master
 * gave up, the slave promoted in its place gave up on the same entry, and the
 * cluster could not start again. Inserts are refused by validation; updates
 * and upserts, whose resulting document only the master knows, by its build.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCluster, type TestCluster } from './harness.js';
import { dumpAllReplicas } from './replicas.js';

let c: TestCluster;

beforeAll(async () => {
  // Room for a 3.4 MB body: 170 arrays of 10,000 zeros, 16.8 MB as BSON.
  c = await startTestCluster({ DBAAS_BODY_LIMIT_BYTES: String(8 * 1_048_576) });
});

afterAll(async () => {
  await c?.close();
});

const TABLE = 'sized';

/** `{k0: [0 × 10,000], …}`: 3.4 MB of JSON, 16.8 MB of BSON for 170 arrays. */
function zeros(arrays: number): Record<string, number[]> {
  const doc: Record<string, number[]> = {};
  for (let i = 0; i < arrays; i++) doc[`k${i}`] = new Array<number>(10_000).fill(0);
  return doc;
}

describe('a document past 16 MiB as BSON', () => {
  it('is refused 400 DBAAS_REQ_LIMIT_EXCEEDED by insert, update and upsert, taking no seq and changing nothing', async () => {
    const first = await c.post('/api/v1/db/write', { table: TABLE, operation: 'insert', data: { _id: 'small', v: 1 } });
    expect(first.status).toBe(200);
    const big = zeros(170);
    const writes = {
      insert: { operation: 'insert', data: big },
      'insert beside a small document': { operation: 'insert', data: [{ _id: 'beside' }, { _id: 'big', ...big }] },
      'update growing a document': { operation: 'update', where: { _id: 'small' }, data: { $set: big } },
      'upsert of a new document': { operation: 'upsert', where: { _id: 'new' }, data: { $set: big } },
    };
    for (const [name, write] of Object.entries(writes)) {
      const r = await c.post('/api/v1/db/write', { table: TABLE, ...write });
      expect({ name, status: r.status, code: r.body?.error?.code }).toEqual({ name, status: 400, code: 'DBAAS_REQ_LIMIT_EXCEEDED' });
      expect(r.body.error.message).toMatch(/as BSON the document would be 168\d{5} bytes, over the 16760832 one stored document may hold/);
    }
    // No refused write took a seq (none is in the oplog, not even as a void entry).
    const next = await c.post('/api/v1/db/write', { table: TABLE, operation: 'insert', data: { _id: 'next' } });
    expect(next.status).toBe(200);
    expect(next.body.seq).toBe(first.body.seq + 1);
    const read = await c.post('/api/v1/db/read', { table: TABLE, afterSeq: next.body.seq, sort: { _id: 1 } });
    expect(read.body).toEqual([{ _id: 'next' }, { _id: 'small', v: 1 }]);
    const dumps = await dumpAllReplicas(c.orch, 20_000, 2);
    expect(dumps.size).toBe(2);
    for (const dump of dumps.values()) expect(dump[TABLE]).toEqual(read.body);
  }, 120_000);
});
