/**
 * Reproductions of the ways issue 12 found to lose or corrupt acknowledged
 * writes, each as a test that failed on the code before its fix.
 */
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { zkPaths } from '../../coordination/paths.js';
import { ZkSession } from '../../coordination/zk-session.js';
import { eventually, startTestCluster, type TestCluster } from './harness.js';
import { alive } from './infra.js';
import { dumpAllReplicas } from './replicas.js';

let clusters: TestCluster[] = [];

async function cluster(env: Record<string, string> = {}, opts: Parameters<typeof startTestCluster>[1] = {}): Promise<TestCluster> {
  const c = await startTestCluster(env, opts);
  clusters.push(c);
  return c;
}

afterEach(async () => {
  for (const c of clusters) await c.close().catch(() => undefined);
  clusters = [];
});

interface WorkerRow {
  id: string;
  role: string;
  pid: number;
  state: string;
}

async function workers(c: TestCluster): Promise<WorkerRow[]> {
  return (await c.get('/api/v1/workers')).body as WorkerRow[];
}

/** Writes with a requestId, retrying on 503/504 until a 200 (or a deadline). */
async function ackWrite(c: TestCluster, body: Record<string, unknown>): Promise<{ status: number; body: any }> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await c.post('/api/v1/db/write', body);
    if ((r.status !== 503 && r.status !== 504) || Date.now() > deadline) return r;
    await new Promise((res) => setTimeout(res, 50));
  }
}

describe('data safety', () => {
  it('an acknowledged delete never comes back on a slave built from a snapshot taken while writes flow', async () => {
    const c = await cluster({ DBAAS_INITIAL_SLAVES: '1' });
    // Enough data that a snapshot copy takes a while, so writes land in the middle of it.
    for (let b = 0; b < 6; b++) {
      const docs = Array.from({ length: 1000 }, (_, i) => ({ _id: `bulk-${b}-${i}`, pad: 'x'.repeat(200) }));
      expect((await ackWrite(c, { table: 'bulk', operation: 'insert', data: docs })).status).toBe(200);
    }
    let stop = false;
    const problems: string[] = [];
    let pairs = 0;
    const churn = async (w: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const id = `c-${w}-${i}`;
        const ins = await ackWrite(c, { table: 'churn', operation: 'insert', data: { _id: id, w }, requestId: `ins-${id}` });
        if (ins.status !== 200) problems.push(`insert ${id}: ${ins.status}`);
        const del = await ackWrite(c, { table: 'churn', operation: 'delete', where: { _id: id }, requestId: `del-${id}` });
        if (del.status !== 200) problems.push(`delete ${id}: ${del.status}`);
        pairs += 1;
      }
    };
    const running = [0, 1, 2, 3].map((w) => churn(w));
    // Three slave replacements while the churn runs: each new slave copies a snapshot under load.
    for (let round = 0; round < 3; round++) {
      const before = c.orch.audit.list().filter((e) => e.kind === 'replacement').length;
      const crash = await c.post('/api/v1/crash/slave');
      expect(crash.status).toBe(200);
      await eventually(() => c.orch.audit.list().filter((e) => e.kind === 'replacement').length > before, 45_000, 'a replacement slave that serves');
    }
    stop = true;
    await Promise.all(running);
    expect(problems).toEqual([]);
    expect(pairs).toBeGreaterThan(20);
    const dumps = await dumpAllReplicas(c.orch, 30_000);
    for (const [id, dump] of dumps) {
      expect({ id, churn: dump.churn ?? [] }).toEqual({ id, churn: [] });
      expect({ id, bulk: (dump.bulk ?? []).length }).toEqual({ id, bulk: 6000 });
    }
  }, 240_000);

  it('an upsert that matches nothing never overwrites the document whose _id its filter names (409, nothing changed)', async () => {
    const c = await cluster();
    expect((await ackWrite(c, { table: 'acct', operation: 'insert', data: { _id: 'acct1', owner: 'ana', balance: 100 } })).status).toBe(200);
    const steal = await c.post('/api/v1/db/write', { table: 'acct', operation: 'upsert', where: { _id: 'acct1', owner: 'mallory' }, data: { $set: { note: 'x' } } });
    expect(steal.status).toBe(409);
    expect(steal.body.error.code).toBe('DBAAS_WRITE_DUPLICATE_ID');
    const own = await c.post('/api/v1/db/write', { table: 'acct', operation: 'upsert', where: { _id: 'acct1', owner: 'ana' }, data: { $inc: { balance: 1 } } });
    expect(own.body).toMatchObject({ ok: true, matched: 1, modified: 1, inserted: 0 });
    for (const dump of (await dumpAllReplicas(c.orch)).values()) expect(dump.acct).toEqual([{ _id: 'acct1', owner: 'ana', balance: 101 }]);
  });

  it('a write whose oplog entry would pass the database document limit gets a 400 and leaves the master serving', async () => {
    const c = await cluster({ DBAAS_BODY_LIMIT_BYTES: String(40 * 1_048_576) });
    const masterBefore = (await workers(c)).find((w) => w.role === 'master');
    // 1,000 documents of 17 KiB: 17 MiB in one entry, over MongoDB's 16 MiB document limit.
    const big = Array.from({ length: 1000 }, (_, i) => ({ _id: `big-${i}`, pad: 'y'.repeat(17 * 1024) }));
    const r = await c.post('/api/v1/db/write', { table: 'big', operation: 'insert', data: big, requestId: 'too-big' });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('DBAAS_REQ_LIMIT_EXCEEDED');
    // Refused and acked: the same master still serves, nothing was written, the next write goes through.
    const next = await c.post('/api/v1/db/write', { table: 'big', operation: 'insert', data: { _id: 'small' } });
    expect(next.status).toBe(200);
    const masterAfter = (await workers(c)).find((w) => w.role === 'master');
    expect(masterAfter?.pid).toBe(masterBefore?.pid);
    expect(alive(masterBefore?.pid ?? 0)).toBe(true);
    expect(c.orch.audit.list().filter((e) => e.kind === 'promotion')).toEqual([]);
    for (const dump of (await dumpAllReplicas(c.orch)).values()) expect(dump.big).toEqual([{ _id: 'small' }]);
  }, 120_000);

  it('an update whose post-images together pass what one string can hold gets a 400, at once, from the same master', async () => {
    const c = await cluster();
    const masterBefore = (await workers(c)).find((w) => w.role === 'master');
    const seeded = await c.post('/api/v1/db/write', { table: 'many', operation: 'insert', data: Array.from({ length: 620 }, (_, i) => ({ _id: `m-${i}` })) });
    expect(seeded.status).toBe(200);
    // A 0.9 MB body that gives each of 620 documents the same 0.9 MB value: 560 MB of post-images, past
    // V8's largest string (512 MiB). Measured whole, the master froze, lost its ZooKeeper session or threw,
    // and died; the write, handed back to the queue, could take the next master with it.
    const started = Date.now();
    const r = await c.post('/api/v1/db/write', { table: 'many', operation: 'update', where: {}, data: { $set: { pad: 'p'.repeat(900_000) } }, requestId: 'fat-update' });
    expect({ status: r.status, code: r.body?.error?.code }).toEqual({ status: 400, code: 'DBAAS_REQ_LIMIT_EXCEEDED' });
    expect(Date.now() - started).toBeLessThan(3_000);
    const next = await c.post('/api/v1/db/write', { table: 'many', operation: 'insert', data: { _id: 'after' } });
    expect(next.status).toBe(200);
    expect(next.body.seq).toBe(seeded.body.seq + 1);
    const masterAfter = (await workers(c)).find((w) => w.role === 'master');
    expect(masterAfter?.pid).toBe(masterBefore?.pid);
    expect(c.orch.audit.list().filter((e) => e.kind === 'promotion')).toEqual([]);
  }, 120_000);

  it('a second orchestrator on the same namespace follows: it starts, stops, kills and deletes nothing', async () => {
    const c = await cluster({ DBAAS_INITIAL_SLAVES: '2' }, { listen: true });
    for (let i = 0; i < 20; i++) expect((await ackWrite(c, { table: 't', operation: 'insert', data: { _id: `d${i}` } })).status).toBe(200);
    const before = (await workers(c)).map((w) => w.pid).sort();
    const second = await cluster({ DBAAS_INITIAL_SLAVES: '2' }, { namespace: c.namespace, dataDir: c.dataDir, listen: true });
    expect(second.orch.election.isLeader).toBe(false);
    expect(c.orch.election.isLeader).toBe(true);
    // It serves the data API, and forwards an admin action to the leader.
    expect((await ackWrite(second, { table: 't', operation: 'insert', data: { _id: 'via-follower' } })).status).toBe(200);
    const crash = await second.post('/api/v1/crash/slave');
    expect(crash.status).toBe(200);
    expect(before.map(String)).toContain(crash.body[0]);
    await eventually(() => c.orch.audit.list().some((e) => e.kind === 'replacement'), 45_000, 'the leader to replace the slave killed through the follower');
    const after = (await workers(c)).map((w) => w.pid);
    // Stopping the follower touches nothing.
    await second.close();
    clusters = clusters.filter((x) => x !== second);
    expect(after.every((pid) => alive(pid))).toBe(true);
    expect((await workers(c)).map((w) => w.pid).sort()).toEqual(after.slice().sort());
    for (const w of c.orch.view.workers.values()) expect(existsSync(path.join(c.dataDir, c.namespace, w.id))).toBe(true);
    expect((await ackWrite(c, { table: 't', operation: 'insert', data: { _id: 'after' } })).status).toBe(200);
    for (const dump of (await dumpAllReplicas(c.orch)).values()) expect((dump.t ?? []).length).toBe(22);
  }, 120_000);

  it("a restart that finds the recorded master's data missing refuses to start empty, unless forced", async () => {
    const c = await startTestCluster();
    expect((await ackWrite(c, { table: 't', operation: 'insert', data: { _id: 'kept' } })).status).toBe(200);
    const masterId = c.orch.view.master?.id ?? '';
    expect(masterId).not.toBe('');
    await c.handOver('stop');
    rmSync(path.join(c.dataDir, c.namespace, masterId), { recursive: true, force: true });
    await expect(startTestCluster({}, { namespace: c.namespace, dataDir: c.dataDir })).rejects.toThrow(/DBAAS_FORCE_NEW_CLUSTER=1/);
    const forced = await cluster({ DBAAS_FORCE_NEW_CLUSTER: '1' }, { namespace: c.namespace, dataDir: c.dataDir });
    expect(forced.orch.view.master?.id).not.toBe(masterId);
    expect((await forced.post('/api/v1/db/read', { table: 't', where: {} })).body).toEqual([]);
  }, 90_000);

  it('a record left by a removed deployment elsewhere on this machine (its whole data directory gone) does not block a new one', async () => {
    const old = await startTestCluster();
    expect((await ackWrite(old, { table: 't', operation: 'insert', data: { _id: 'gone' } })).status).toBe(200);
    await old.handOver('stop');
    // The other checkout is deleted: its data directory no longer exists at all.
    rmSync(old.dataDir, { recursive: true, force: true });
    const fresh = await cluster({}, { namespace: old.namespace });
    expect(fresh.dataDir).not.toBe(old.dataDir);
    expect(fresh.orch.audit.list().some((e) => e.kind === 'restart' && e.reason.includes('no longer exists'))).toBe(true);
    expect((await fresh.post('/api/v1/db/read', { table: 't', where: {} })).body).toEqual([]);
  }, 90_000);

  it('a promoted master fences itself as soon as the term moves past its own', async () => {
    const c = await cluster({ DBAAS_INITIAL_SLAVES: '2' });
    expect((await ackWrite(c, { table: 't', operation: 'insert', data: { a: 1 } })).status).toBe(200);
    await c.post('/api/v1/crash/master');
    await eventually(() => c.orch.audit.list().some((e) => e.kind === 'promotion'), 20_000, 'a promotion');
    // The promoted worker's own znode says `master` up to half a second after the audit's entry (it publishes every 500 ms).
    let promoted: WorkerRow | undefined;
    await eventually(async () => (promoted = (await workers(c)).find((w) => w.role === 'master')) !== undefined, 10_000, 'the promoted worker listed as master');
    // Someone else moves the term on (a newer orchestrator's failover): the promoted master must step down.
    const zk = new ZkSession({ connect: '127.0.0.1:2181', sessionTimeoutMs: 5000, logger: createLogger('test-zk', 'warn') });
    zk.start();
    try {
      await zk.waitUntilConnected(10_000);
      const termPath = zkPaths(c.namespace).term;
      const { data, stat } = await zk.getData(termPath);
      await zk.setData(termPath, Buffer.from(String(Number(data?.toString() ?? '0') + 5)), stat.version);
    } finally {
      zk.close();
    }
    await eventually(() => !alive(promoted?.pid ?? 0), 10_000, `the promoted master (pid ${promoted?.pid}) to fence itself and exit`);
  }, 90_000);
});
