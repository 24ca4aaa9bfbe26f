/**
 * Wide writes beside a steady writer: updates and deletes whose filter matches
 * 20,000 documents of ~1 KB. The master builds writes one batch at a time, so
 * whatever a write reads before it is refused holds every write queued behind
 * it (session 5: `update where {}` here held the serial stage for 13.7 s and
 * its client got a 504). An update whose oplog entry would pass a bound
 * (common/limits.ts: MAX_ENTRY_BYTES as published, MAX_STORED_ENTRY_BYTES with
 * the documents as they were before it) is refused with DBAAS_REQ_LIMIT_EXCEEDED
 * having read only part of the table (the refusal says how much), changing
 * nothing; a wide delete reads only `_id`s past 1 MiB and is built alone. The
 * small writes beside them are all acknowledged, and every replica ends equal.
 * The request timeout is raised, so a stall shows as latency (printed), not as 504s;
 * the tests' own bounds are wide (the machine may be loaded).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCluster, type TestCluster } from './harness.js';
import { dumpAllReplicas } from './replicas.js';

let c: TestCluster;

beforeAll(async () => {
  c = await startTestCluster({ DBAAS_REQUEST_TIMEOUT_MS: '60000' });
});

afterAll(async () => {
  await c?.close();
});

const DOCS = 20_000;
const PAD = 'p'.repeat(1000);

/** The table `wide`, filled once (each test may also run alone). */
let filled: Promise<void> | undefined;
const wideTable = (): Promise<void> => (filled ??= fill('wide'));

/** Inserts DOCS documents of ~1 KB into `table`, 1,000 per write. */
async function fill(table: string): Promise<void> {
  for (let i = 0; i < DOCS; i += 1000) {
    const docs = Array.from({ length: 1000 }, (_, j) => ({ _id: `${table}-${i + j}`, n: i + j, pad: PAD }));
    const r = await c.post('/api/v1/db/write', { table, operation: 'insert', data: docs });
    expect(r.status).toBe(200);
  }
}

/** Small writes, four at a time, until stopped: each must be acknowledged; how long each took, and the last seq. */
function steadyWriter(): { stop(): Promise<{ latencies: number[]; lastSeq: number }> } {
  let stopped = false;
  const latencies: number[] = [];
  let lastSeq = 0;
  const one = async (w: number): Promise<void> => {
    for (let i = 0; !stopped; i++) {
      const started = performance.now();
      const r = await c.post('/api/v1/db/write', { table: 'steady', operation: 'insert', data: { w, i } });
      expect(r.status).toBe(200);
      latencies.push(performance.now() - started);
      lastSeq = Math.max(lastSeq, r.body.seq as number);
    }
  };
  const run = Promise.all([0, 1, 2, 3].map(one));
  return {
    stop: async () => {
      stopped = true;
      await run;
      return { latencies, lastSeq };
    },
  };
}

/** A wide write beside the steady writer: its answer, and the steady writes' last seq. */
async function beside(body: unknown, what: string): Promise<{ status: number; body: any; lastSeq: number }> {
  const writer = steadyWriter();
  const started = performance.now();
  const r = await c.post('/api/v1/db/write', body);
  const ms = Math.round(performance.now() - started);
  const { latencies, lastSeq } = await writer.stop();
  console.log(`${what}: answered ${r.status} in ${ms} ms (${JSON.stringify(r.body.error?.details ?? {})}); ${latencies.length} steady writes, slowest ${Math.round(Math.max(...latencies))} ms`);
  return { ...r, lastSeq };
}

describe('wide writes', () => {
  it('an update of 20 MB is refused having read part of the table; the writes beside it are acknowledged; nothing changes', async () => {
    await wideTable();
    const wide = await beside({ table: 'wide', operation: 'update', where: {}, data: { $set: { tag: 'x' } } }, 'update $set over 20 MB');
    expect(wide.status).toBe(400);
    expect(wide.body.error.code).toBe('DBAAS_REQ_LIMIT_EXCEEDED');
    // Stopped at the bound: about 8 MiB of post-images, fewer than half the table.
    expect(wide.body.error.details.documentsRead).toBeLessThan(DOCS / 2);
    const tagged = await c.post('/api/v1/db/read', { table: 'wide', where: { tag: { $exists: true } }, count: true, afterSeq: wide.lastSeq });
    expect(tagged.body).toEqual({ count: 0 });
  }, 180_000);

  it('an update that shrinks 20 MB of documents is refused: its undo ops would hold them all', async () => {
    await wideTable();
    // Its entry as published is small (1.6 MB); stored with the documents as they were, 21 MB: over MongoDB's 16 MiB.
    const wide = await beside({ table: 'wide', operation: 'update', where: {}, data: { $unset: { pad: '' } } }, 'update $unset over 20 MB');
    expect(wide.status).toBe(400);
    expect(wide.body.error.code).toBe('DBAAS_REQ_LIMIT_EXCEEDED');
    expect(wide.body.error.details.documentsRead).toBeLessThan(DOCS);
    const padded = await c.post('/api/v1/db/read', { table: 'wide', where: { pad: PAD }, count: true, afterSeq: wide.lastSeq });
    expect(padded.body).toEqual({ count: DOCS });
  }, 180_000);

  it('a delete of 20 MB beside other writes: applied once, and every replica ends equal', async () => {
    await wideTable();
    const del = await beside({ table: 'wide', operation: 'delete', where: { n: { $gte: 0 } } }, 'delete of 20 MB');
    expect(del.status).toBe(200);
    expect(del.body.deleted).toBe(DOCS);
    const dumps = [...(await dumpAllReplicas(c.orch, 60_000)).values()];
    expect(dumps.length).toBe(2);
    expect(dumps[0]?.['wide'] ?? []).toEqual([]);
    expect(dumps[1]).toEqual(dumps[0]);
  }, 180_000);
});
