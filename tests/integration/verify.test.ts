/**
 * Replica checksums end to end: GET /api/v1/verify under load reports every
 * replica equal at one seq; a slave corrupted behind the service's back is named
 * with its tables, the control loop replaces it, and verify is equal again.
 */
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WIRE_VERSION, type ChecksumReply } from '../../common/messages.js';
import { clusterNames } from '../../common/names.js';
import type { AuditEvent } from '../../orchestrator/audit-log.js';
import type { VerifyReport } from '../../orchestrator/verify.js';
import { eventually, startTestCluster, type TestCluster } from './harness.js';

const TOKEN = 'verify-admin-token';
let c: TestCluster;

async function verify(): Promise<{ status: number; body: VerifyReport }> {
  const res = await c.orch.app.inject({ method: 'GET', url: '/api/v1/verify', headers: { authorization: `Bearer ${TOKEN}` } });
  return { status: res.statusCode, body: res.json() as VerifyReport };
}

beforeAll(async () => {
  // Periodic runs off: every run here is one the test asked for.
  // A long wait for each replica: the cost measurement below hashes 100,000 documents on each.
  c = await startTestCluster({ DBAAS_INITIAL_SLAVES: '2', DBAAS_VERIFY_INTERVAL_MS: '0', DBAAS_VERIFY_WAIT_MS: '120000', DBAAS_ADMIN_TOKEN: TOKEN });
});

afterAll(async () => {
  await c?.close();
});

describe('replica verification', () => {
  it('needs the admin token when one is set', async () => {
    const res = await c.orch.app.inject({ method: 'GET', url: '/api/v1/verify' });
    expect(res.statusCode).toBe(401);
  });

  it('reports every replica equal at one seq while writes flow', async () => {
    let stop = false;
    const seqs: number[] = [];
    const writer = async (n: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const body =
          i % 3 === 2
            ? { table: 'counters', operation: 'upsert', where: { _id: `c${n}-${i % 5}` }, data: { $inc: { hits: 1 }, $push: { log: i } } }
            : { table: 'events', operation: 'insert', data: { writer: n, i, nested: { b: i, a: [n, i] } } };
        const r = await c.post('/api/v1/db/write', body);
        expect(r.status).toBe(200);
        seqs.push(r.body.seq as number);
      }
    };
    const writers = [writer(1), writer(2), writer(3)];
    while (seqs.length < 50) await new Promise((r) => setTimeout(r, 10));
    const reports: VerifyReport[] = [];
    for (let k = 0; k < 3; k++) {
      const { status, body } = await verify();
      expect(status).toBe(200);
      reports.push(body);
    }
    stop = true;
    await Promise.all(writers);

    for (const report of reports) {
      expect(report.result).toBe('equal');
      expect(report.replicas).toHaveLength(3);
      expect(report.replicas.map((r) => r.status)).toEqual(['equal', 'equal', 'equal']);
      expect(report.tables.events?.count).toBeGreaterThan(0);
      // Writes were acknowledged on both sides of the checkpoint: "one seq" held under load.
      expect(seqs.some((s) => s < report.seq)).toBe(true);
    }
    const last = reports.at(-1) as VerifyReport;
    expect(seqs.some((s) => s > (reports[0] as VerifyReport).seq)).toBe(true);
    expect(last.seq).toBeGreaterThan((reports[0] as VerifyReport).seq);

    const metrics = await c.get('/metrics');
    expect(String(metrics.body)).toMatch(/dbaas_verify_runs_total\{result="equal"\} 3/);
    expect(String(metrics.body)).toMatch(new RegExp(`dbaas_verify_last_seq ${last.seq}\\b`));
    const audit = c.orch.audit.list().filter((e) => e.kind === 'verify');
    expect(audit.at(-1)?.reason).toBe(`verify at seq ${last.seq}: all 3 replicas equal`);
  });

  it('stays equal while databases are created, written, indexed and dropped beside the checksum', async () => {
    const admin = async (method: 'POST' | 'DELETE', url: string, body: unknown): Promise<{ status: number; body: any }> => {
      const res = await c.orch.app.inject({ method, url, payload: JSON.stringify(body), headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' } });
      return { status: res.statusCode, body: res.json() };
    };
    // Enough documents that the master's scan takes a while: the churn's clears land inside its window.
    for (let k = 0; k < 10; k++) {
      const docs = Array.from({ length: 500 }, (_, i) => ({ k, i, pad: 'x'.repeat(200) }));
      expect((await c.post('/api/v1/db/write', { table: 'bulk', operation: 'insert', data: docs })).status).toBe(200);
    }
    let stop = false;
    const clears: number[] = [];
    const churn = async (n: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const name = `churn${n}_${i}`;
        expect((await admin('POST', '/api/v1/db/databases', { name })).status).toBe(201);
        expect((await c.post('/api/v1/db/write', { table: 'items', operation: 'insert', data: { i }, database: name })).status).toBe(200);
        const index = await admin('POST', '/api/v1/db/indexes', { table: 'items', keys: 'i', database: name });
        expect(index.status).toBe(200);
        expect((await admin('DELETE', '/api/v1/db/indexes', { table: 'items', name: index.body.index.name, database: name })).status).toBe(200);
        const drop = await admin('DELETE', `/api/v1/db/databases/${name}`, {});
        expect(drop.status).toBe(200);
        clears.push(drop.body.seq as number);
      }
    };
    const churning = Promise.all([churn(1), churn(2)]);
    // A failed churn step ends the wait (the race rejects) instead of leaving it to the test's timeout.
    while (clears.length < 2) await Promise.race([new Promise((r) => setTimeout(r, 10)), churning]);
    const reports: VerifyReport[] = [];
    try {
      for (let k = 0; k < 3; k++) reports.push((await verify()).body);
      // A drop after the last checkpoint too (waited for, not assumed): the churn ran on both sides of each.
      const last = (reports.at(-1) as VerifyReport).seq;
      while (!clears.some((s) => s > last)) await Promise.race([new Promise((r) => setTimeout(r, 10)), churning]);
    } finally {
      stop = true;
      await churning;
    }
    for (const report of reports) {
      expect(report.result, JSON.stringify(report.replicas)).toBe('equal');
      expect(report.tables.bulk?.count).toBe(5000);
    }
    // Databases were dropped on both sides of each checkpoint.
    for (const report of reports) expect(clears.some((s) => s > report.seq)).toBe(true);
  });

  it('names a corrupted slave and its tables, replaces it, and is equal again', async () => {
    const masterId = c.orch.view.master?.id as string;
    const slaves = [...c.orch.view.workers.values()].filter((w) => w.id !== masterId);
    const victim = slaves[0];
    expect(victim).toBeDefined();
    if (!victim) return;
    const client = new MongoClient(victim.dbUrl, { serverSelectionTimeoutMS: 5000 });
    await client.connect();
    try {
      const db = client.db(c.config.dbName);
      const changed = await db.collection('events').updateOne({ writer: 2 }, { $set: { tampered: true } });
      expect(changed.modifiedCount).toBe(1);
      const removed = await db.collection('counters').deleteOne({});
      expect(removed.deletedCount).toBe(1);
    } finally {
      await client.close();
    }

    const auditBefore = c.orch.audit.list().at(-1)?.seq ?? 0;
    const { status, body } = await verify();
    expect(status).toBe(200);
    expect(body.result).toBe('divergent');
    expect(body.suspect).toBeUndefined();
    const verdicts = new Map(body.replicas.map((r) => [r.id, r]));
    expect(verdicts.get(victim.id)).toMatchObject({ status: 'divergent', tables: ['counters', 'events'] });
    expect(verdicts.get(masterId)?.status).toBe('equal');
    for (const s of slaves.slice(1)) expect(verdicts.get(s.id)?.status).toBe('equal');

    // The control loop removes it and starts a fresh copy of the master.
    let events: AuditEvent[] = [];
    await eventually(
      () => {
        events = c.orch.audit.list(auditBefore);
        return events.some((e) => e.kind === 'replacement');
      },
      60_000,
      'the divergent slave to be replaced',
    );
    const detection = events.find((e) => e.kind === 'detection');
    expect(detection?.reason).toMatch(new RegExp(`^slave ${victim.id} \\(pid \\d+\\) differs from the master at seq ${body.seq} in table\\(s\\) counters, events; removing it`));
    expect(c.orch.view.workers.has(victim.id)).toBe(false);
    expect(String((await c.get('/metrics')).body)).toMatch(/dbaas_verify_runs_total\{result="divergent"\} 1/);

    await eventually(() => c.orch.view.servingSlaves().length === 2, 30_000, 'two serving slaves again');
    const again = await verify();
    expect(again.body.result).toBe('equal');
    expect(again.body.replicas.map((r) => r.status)).toEqual(['equal', 'equal', 'equal']);
    expect(again.body.replicas.some((r) => r.id === victim.id)).toBe(false);
    expect(String((await c.get('/metrics')).body)).toMatch(/dbaas_verify_divergent_replicas 0/);
  });

  it('a failover does not wait for a slave that is hashing: the promotion interrupts it', { timeout: 180_000 }, async () => {
    for (let k = 0; k < 30; k++) {
      const docs = Array.from({ length: 1000 }, (_, i) => ({ k, i, owner: `user${i % 97}`, tags: ['a', 'b'] }));
      expect((await c.post('/api/v1/db/write', { table: 'many', operation: 'insert', data: docs })).status).toBe(200);
    }
    await eventually(() => c.orch.view.servingSlaves().length === 2, 30_000, 'two serving slaves');
    const ns = clusterNames(c.namespace);
    const oldMaster = c.orch.view.master?.id as string;
    const slaves = [...c.orch.view.workers.values()].filter((w) => w.id !== oldMaster);
    // A checkpoint of our own, then the master dies while the slaves hash 30,000 documents.
    const written = (await c.orch.rpc.call(ns.writeQueue, { v: WIRE_VERSION, requestId: `verify-failover-${Date.now()}`, command: { kind: 'verify' } }, { timeoutMs: 10_000, persistent: true })) as { seq: number };
    const auditBefore = c.orch.audit.list().at(-1)?.seq ?? 0;
    const crash = await c.orch.app.inject({ method: 'POST', url: '/api/v1/crash/master', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(crash.statusCode).toBe(200);
    let promotion: AuditEvent | undefined;
    await eventually(
      () => {
        promotion = c.orch.audit.list(auditBefore).find((e) => e.kind === 'promotion');
        return promotion !== undefined;
      },
      30_000,
      'a promotion',
    );
    const promoted = (promotion?.details as { to: string }).to;
    const other = slaves.find((w) => w.id !== promoted);
    expect(other).toBeDefined();
    const ask = (id: string): Promise<ChecksumReply> =>
      c.orch.rpc.call(ns.controlQueue(id), { v: WIRE_VERSION, type: 'checksum', seq: written.seq, waitMs: 60_000 }, { timeoutMs: 70_000 }) as Promise<ChecksumReply>;
    const [atPromoted, atOther] = await Promise.all([ask(promoted), ask((other as { id: string }).id)]);
    expect(atPromoted).toMatchObject({ seq: written.seq, comparable: false });
    expect(atPromoted.comparable === false && atPromoted.reason).toMatch(/interrupted|being promoted/);
    expect(atOther.comparable).toBe(true);
    const hashMs = atOther.comparable ? atOther.ms : 0;
    console.log(`promotion took ${promotion?.durationMs} ms while the other slave hashed ${atOther.comparable ? atOther.documents : 0} documents for ${hashMs} ms`);
    expect(promotion?.durationMs ?? Infinity).toBeLessThan(hashMs / 2);

    await eventually(() => c.orch.view.servingSlaves().length === 2, 60_000, 'two serving slaves after the failover');
    const after = await verify();
    if (after.body.result !== 'equal') console.log(JSON.stringify(after.body.replicas));
    expect({ result: after.body.result, replicas: after.body.replicas }).toMatchObject({ result: 'equal' });
    expect(after.body.master).toBe(promoted);
  });

  // The blocking cost (docs/OPERATIONS.md): each replica applies nothing while it hashes.
  // DBAAS_VERIFY_COST=1 npx vitest run tests/integration/verify.test.ts
  it.runIf(process.env.DBAAS_VERIFY_COST === '1')('measures the hashing time at 10,000 and 100,000 documents, and the write stall', { timeout: 900_000 }, async () => {
    let inserted = 0;
    const fill = async (upTo: number): Promise<void> => {
      while (inserted < upTo) {
        const docs = Array.from({ length: 1000 }, (_, i) => ({ n: inserted + i, owner: `user${(inserted + i) % 97}`, tags: ['a', 'b'], at: { day: (inserted + i) % 31, slot: i % 4 } }));
        const r = await c.post('/api/v1/db/write', { table: 'bulk', operation: 'insert', data: docs });
        expect(r.status).toBe(200);
        inserted += docs.length;
      }
    };
    for (const size of [10_000, 100_000]) {
      await fill(size);
      let stop = false;
      const latencies: Array<{ at: number; ms: number }> = [];
      const writer = (async () => {
        for (let i = 0; !stop; i++) {
          const t0 = Date.now();
          const r = await c.post('/api/v1/db/write', { table: 'probe', operation: 'insert', data: { size, i } });
          expect(r.status).toBe(200);
          latencies.push({ at: t0, ms: Date.now() - t0 });
        }
      })();
      await new Promise((r) => setTimeout(r, 1000));
      const t0 = Date.now();
      const { body } = await verify();
      const t1 = Date.now();
      await new Promise((r) => setTimeout(r, 500));
      stop = true;
      await writer;
      expect({ result: body.result, replicas: body.replicas }).toMatchObject({ result: 'equal' });
      const before = latencies.filter((l) => l.at < t0).map((l) => l.ms);
      const during = latencies.filter((l) => l.at >= t0 && l.at <= t1).map((l) => l.ms);
      const p50 = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
      console.log(
        `verify at ${body.tables.bulk?.count} bulk documents: ${body.durationMs} ms in all; hashing per replica: ${body.replicas.map((r) => `${r.role} ${r.hashMs} ms`).join(', ')}; ` +
          `single-insert latency before: median ${p50(before)} ms, max ${Math.max(...before)} ms; during verify: ${during.length} writes, max ${Math.max(0, ...during)} ms`,
      );
    }
  });
});
