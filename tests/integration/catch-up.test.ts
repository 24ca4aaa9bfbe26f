/**
 * Issue 16: a new slave catches up under load from a snapshot taken at batch
 * boundaries (worker/snapshot.ts), builds its request ledger (worker/request-ledger.ts),
 * and a promoted one still answers retries; a retry past the horizon is refused.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import { afterEach, describe, expect, it } from 'vitest';
import { timedRequestId } from '../../common/request-time.js';
import { LEDGER } from '../../worker/request-ledger.js';
import { eventually, startTestCluster, type TestCluster } from './harness.js';
import { startLoad } from './load.js';
import { dumpAllReplicas } from './replicas.js';

const clusters: TestCluster[] = [];

async function cluster(env: Record<string, string> = {}): Promise<TestCluster> {
  const c = await startTestCluster(env);
  clusters.push(c);
  return c;
}

afterEach(async () => {
  for (const c of clusters.splice(0)) await c.close();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('catch-up', () => {
  it('a slave added under a steady writer (inserts, $inc, deletes all over the key space) serves and ends equal to the master', async () => {
    // Small pages: the copy takes many pages, each read between two batches, while writes land on both sides of its cursor.
    const c = await cluster({ DBAAS_SNAPSHOT_PAGE_DOCS: '300', DBAAS_LOG_LEVEL: 'debug' });
    // Data spread over three tables and many keys, so the copy takes several pages while writes land on both sides of its cursor.
    for (let t = 0; t < 3; t++) {
      for (let part = 0; part < 4; part++) {
        const docs = Array.from({ length: 500 }, (_, i) => ({ _id: `d${String(part * 500 + i).padStart(5, '0')}`, n: 0 }));
        expect((await c.post('/api/v1/db/write', { table: `tab${t}`, operation: 'insert', data: docs })).status).toBe(200);
      }
    }
    let stop = false;
    let acked = 0;
    const failures: unknown[] = [];
    const writer = async (w: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const table = `tab${(i + w) % 3}`;
        const key = (k: number): string => `d${String((i * 7919 + w * 13 + k) % 2000).padStart(5, '0')}`;
        const id = key(0);
        const r = i % 5;
        // Deletes (20 keys at once) go to the table copied last (keys in table order), so those during a copy mostly hit keys a later part still holds.
        const body =
          r === 0
            ? { table: 'tab2', operation: 'delete', where: { _id: { $in: Array.from({ length: 20 }, (_, k) => key(k)) } } }
            : r === 1
              ? { table, operation: 'insert', data: { w, i } }
              : { table, operation: 'upsert', where: { _id: id }, data: { $inc: { n: 1 } } };
        const res = await c.post('/api/v1/db/write', body);
        if (res.status !== 200) failures.push(res.body);
        acked += 1;
        await sleep(5);
      }
    };
    const writers = [writer(1), writer(2), writer(3), writer(4)];
    while (acked < 40) await sleep(10);
    const before = new Set(c.orch.view.workers.keys());
    const started = Date.now();
    c.orch.cluster.scaleTo(2, 'test: a slave joins under a steady writer');
    await eventually(() => c.orch.view.servingSlaves().length === 2, 60_000, 'the new slave to serve');
    const servedAfterMs = Date.now() - started;
    const ackedAtServe = acked;
    while (acked < ackedAtServe + 60) await sleep(10);
    stop = true;
    await Promise.all(writers);
    expect(failures).toEqual([]);

    const newSlave = [...c.orch.view.workers.keys()].find((id) => !before.has(id)) as string;
    const dumps = await dumpAllReplicas(c.orch, 20_000, 3);
    expect(dumps.size).toBe(3);
    const master = dumps.get(c.orch.view.master?.id as string);
    // On a difference, say where before the comparison below fails (which replica, which documents, what happened).
    for (const [id, dump] of dumps) {
      if (JSON.stringify(dump) === JSON.stringify(master)) continue;
      const diffs: string[] = [];
      for (const table of new Set([...Object.keys(master ?? {}), ...Object.keys(dump)])) {
        const mine = new Map(((dump[table] ?? []) as Array<{ _id: string }>).map((d) => [d._id, JSON.stringify(d)]));
        const theirs = new Map(((master?.[table] ?? []) as Array<{ _id: string }>).map((d) => [d._id, JSON.stringify(d)]));
        for (const [k, v] of theirs) if (mine.get(k) !== v) diffs.push(`${table}/${k}: master ${v}, replica ${mine.get(k) ?? 'missing'}`);
        for (const [k, v] of mine) if (!theirs.has(k)) diffs.push(`${table}/${k}: master missing, replica ${v}`);
      }
      const events = ((await c.get('/api/v1/events')).body as Array<{ at: string; reason: string }>).map((e) => `${e.at} ${e.reason}`);
      const pageLines = [id, c.orch.view.master?.id as string].flatMap((w) =>
        readFileSync(path.join(c.dataDir, c.namespace, w, 'worker.log'), 'utf8')
          .split('\n')
          .filter((l) => /snapshot|page|resum|ask/.test(l))
          .map((l) => `${w}: ${l.slice(0, 400)}`),
      );
      console.error(`replica ${id} (${id === newSlave ? 'the new slave' : 'an older worker'}) differs:\n${diffs.slice(0, 20).join('\n')}\nevents:\n${events.join('\n')}\npages:\n${pageLines.join('\n')}`);
    }
    expect(Object.values(master ?? {}).flat().length).toBeGreaterThan(4000);
    for (const [id, dump] of dumps) expect({ id, dump }).toEqual({ id, dump: master });
    expect(dumps.has(newSlave)).toBe(true);
    // On PostgreSQL the copy is a stream read from one REPEATABLE READ transaction (worker/pg-snapshot.ts), here in parts of 300,
    // whose rows the new slave writes below its FerretDB (pg-layout.ts copyRows): the replicas compared above are that copy.
    if (process.env.DBAAS_DB_BACKEND === 'postgresql') {
      const log = readFileSync(path.join(c.dataDir, c.namespace, newSlave, 'worker.log'), 'utf8');
      expect(log).toContain('snapshot stream started');
      const copied = log.split('\n').find((l) => l.includes('snapshot copied from master'));
      console.log(`the new slave: ${copied?.slice(0, 300)}`);
      expect(Number(/"rowsWritten":(\d+)/.exec(copied ?? '')?.[1])).toBeGreaterThan(1000);
      // The orchestrator asked for the new slave's first page while its process started (common/snapshot-request.ts),
      // and the master answered it; the slave used that answer unless its own broker set-up came first (it then asks itself).
      const masterLog = readFileSync(path.join(c.dataDir, c.namespace, c.orch.view.master?.id as string, 'worker.log'), 'utf8');
      expect(masterLog).toContain(`"id":"${newSlave}-first"`);
      console.log(`the new slave's first page: ${log.includes(`"id":"${newSlave}-first"`) ? 'the one the orchestrator asked for' : 'asked by itself'}`);
    }
    console.log(`catch-up under a writer: new slave served after ${servedAfterMs} ms; ${acked} writes acknowledged`);
  });

  it("a new slave copies every database's tables, nested documents as they are (on PostgreSQL: one stream over each database's schema)", async () => {
    const c = await cluster({ DBAAS_LOG_LEVEL: 'info' });
    expect((await c.post('/api/v1/db/databases', { name: 'shop' })).status).toBe(201);
    const docs = (p: string) => Array.from({ length: 300 }, (_, i) => ({ _id: `${p}${i}`, n: i, nested: { tags: ['a', { deep: i % 2 === 0 }], at: { lat: i / 7, lon: null } } }));
    expect((await c.post('/api/v1/db/write', { table: 'cu', operation: 'insert', data: docs('d') })).status).toBe(200);
    expect((await c.post('/api/v1/db/write', { table: 'rides', database: 'shop', operation: 'insert', data: docs('s') })).status).toBe(200);
    const before = new Set(c.orch.view.workers.keys());
    c.orch.cluster.scaleTo(2, 'test: a slave joins a cluster with two databases');
    await eventually(() => c.orch.view.servingSlaves().length === 2, 60_000, 'the new slave to serve');
    const newSlave = [...c.orch.view.workers.keys()].find((id) => !before.has(id)) as string;
    const dumps = await dumpAllReplicas(c.orch);
    const master = dumps.get(c.orch.view.master?.id as string);
    expect(Object.keys(master ?? {}).sort()).toEqual(['cu', 'shop.rides']);
    expect((master?.['shop.rides'] ?? []).length).toBe(300);
    for (const [id, dump] of dumps) expect({ id, dump }).toEqual({ id, dump: master });
    if (process.env.DBAAS_DB_BACKEND === 'postgresql') {
      expect(readFileSync(path.join(c.dataDir, c.namespace, newSlave, 'worker.log'), 'utf8')).toContain('snapshot stream started');
    }
  });

  it('after a switchover the old master rejoins as a slave under its own id, resuming from its own data (no snapshot), and ends equal', async () => {
    // Info lines in the workers' logs: the old master's says how it started.
    const c = await cluster({ DBAAS_INITIAL_SLAVES: '2', DBAAS_LOG_LEVEL: 'info' });
    const ids = new Set(c.orch.view.workers.keys());
    const oldMaster = c.orch.view.master?.id as string;
    let stop = false;
    let acked = 0;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        const r = await c.post('/api/v1/db/write', { table: 'rj', operation: 'upsert', where: { _id: `k${i % 50}` }, data: { $inc: { n: 1 } }, requestId: timedRequestId() });
        if (r.status === 200) acked += 1;
        else await sleep(25);
      }
    })();
    while (acked < 50) await sleep(10);
    const target = c.orch.view.servingSlaves()[0]?.id as string;
    const res = await c.post('/api/v1/switchover', { target });
    expect(res.status).toBe(200);
    await eventually(
      () => c.orch.view.master?.id === target && c.orch.view.workers.get(oldMaster)?.role === 'slave' && c.orch.view.workers.get(oldMaster)?.state === 'slave',
      45_000,
      'the old master serving as a slave',
    );
    const at = acked;
    while (acked < at + 50) await sleep(10);
    stop = true;
    await writer;
    // No new worker: the same three ids, the old master among the slaves.
    expect(new Set(c.orch.view.workers.keys())).toEqual(ids);
    const log = readFileSync(path.join(c.dataDir, c.namespace, oldMaster, 'worker.log'), 'utf8');
    expect(log).toContain('resumed from its own data and sync queue');
    expect(log).not.toContain('snapshot copied from master');
    const events = (await c.get('/api/v1/events')).body as Array<{ reason: string }>;
    expect(events.some((e) => e.reason.includes(`old master ${oldMaster}`) && e.reason.includes('rejoined as a slave from its own data'))).toBe(true);
    const dumps = await dumpAllReplicas(c.orch, 30_000);
    const master = dumps.get(target);
    expect(((master?.rj ?? []) as Array<{ n: number }>).reduce((sum, d) => sum + d.n, 0)).toBe(acked);
    for (const [id, dump] of dumps) expect({ id, dump }).toEqual({ id, dump: master });
  });

  it('a slave killed under concurrent writes is restarted in place and resumes from its own data (no snapshot); no acknowledged write lost or doubled, replicas equal', async () => {
    const c = await cluster({ DBAAS_INITIAL_SLAVES: '1', DBAAS_LOG_LEVEL: 'info' });
    const ids = new Set(c.orch.view.workers.keys());
    const slave = c.orch.view.servingSlaves()[0] as { id: string; pid: number };
    const master = c.orch.view.master?.id as string;
    const load = startLoad(c, 'rs', 3, 0);
    await eventually(() => (c.orch.view.masterStatus()?.appliedSeq ?? 0) > 40, 20_000, 'some writes');
    const logFile = (id: string): string => path.join(c.dataDir, c.namespace, id, 'worker.log');
    const slaveLogAt = readFileSync(logFile(slave.id)).length;
    const masterLogAt = readFileSync(logFile(master)).length;
    const crashedAt = Date.now();
    const crash = await c.post('/api/v1/crash/slave');
    expect(crash.body).toEqual([String(slave.pid)]);
    await eventually(
      () => {
        const w = c.orch.view.workers.get(slave.id);
        return w?.state === 'slave' && w.pid !== slave.pid && c.orch.audit.list().some((e) => e.kind === 'replacement' && e.reason.includes(`slave ${slave.id}`) && e.reason.includes('restarted in place'));
      },
      45_000,
      'the slave restarted in place and serving',
    );
    const resumedMs = Date.now() - crashedAt;
    const seqAtServe = c.orch.view.masterStatus()?.appliedSeq ?? 0;
    await eventually(() => (c.orch.view.masterStatus()?.appliedSeq ?? 0) > seqAtServe + 40, 20_000, 'writes after the restart');
    const { acked, outcomes } = await load.stop();
    // The same workers: no fresh slave was started.
    expect(new Set(c.orch.view.workers.keys())).toEqual(ids);
    const after = readFileSync(logFile(slave.id)).subarray(slaveLogAt).toString('utf8');
    expect(after).toContain('resumed from its own data and sync queue');
    expect(after).not.toContain('snapshot copied from master');
    // The master served no snapshot (page or stream) after the crash.
    expect(readFileSync(logFile(master)).subarray(masterLogAt).toString('utf8')).not.toMatch(/snapshot (page served|stream opened)/);
    const dumps = await dumpAllReplicas(c.orch, 30_000);
    const keys = ((dumps.get(master)?.rs ?? []) as Array<{ key: string }>).map((d) => d.key);
    // Every acknowledged insert is there exactly once (each was retried under one requestId until acknowledged).
    expect(keys.length).toBe(new Set(keys).size);
    expect(new Set(keys)).toEqual(acked);
    for (const [id, dump] of dumps) expect({ id, dump }).toEqual({ id, dump: dumps.get(master) });
    // A slave's death does not touch the write path.
    expect(outcomes.filter((o) => o.status !== 200)).toEqual([]);
    console.log(`restart in place: slave ${slave.id} serving again ${resumedMs} ms after the crash; ${acked.size} writes acknowledged`);
  });

  it('a slave that dies before its request ledger is copied resumes, copies it again and becomes promotable; a master lost under concurrent writes then promotes it, retries answer the first result, replicas equal', async () => {
    const c = await cluster({ DBAAS_INITIAL_SLAVES: '1', DBAAS_LOG_LEVEL: 'info' });
    expect((await c.post('/api/v1/db/write', { table: 'lacct', operation: 'insert', data: { _id: 'a', n: 0 } })).status).toBe(200);
    const writes = Array.from({ length: 20 }, () => ({ table: 'lacct', operation: 'update', where: { _id: 'a' }, data: { $inc: { n: 1 } }, requestId: timedRequestId() }));
    const first = [];
    for (const w of writes) first.push(await c.post('/api/v1/db/write', w));
    expect(first.map((r) => r.status)).toEqual(writes.map(() => 200));
    const slave = c.orch.view.servingSlaves()[0] as { id: string; pid: number; dbUrl: string };
    const load = startLoad(c, 'lr', 3, 0);
    let stopped: Promise<Awaited<ReturnType<typeof load.stop>>> | undefined;
    const stopLoad = (): ReturnType<typeof load.stop> => (stopped ??= load.stop());
    try {
      await eventually(() => (c.orch.view.masterStatus()?.appliedSeq ?? 0) > 60, 20_000, 'some writes');

      // The fault: the slave dies with a ledger that does not cover the horizon, as when it dies after it served and
      // before its copy of the master's ledger ended (worker/slave-role.ts startLedgerCopy): its coverage starts now,
      // and the records it had are gone (the copy brings them back, or the retries below would apply twice).
      const db = new MongoClient(slave.dbUrl, { serverSelectionTimeoutMS: 5000 });
      try {
        await db.db(c.config.dbName).collection<{ _id: string; coveredSince: number }>('_dbaas_meta').replaceOne({ _id: 'ledger' }, { coveredSince: Date.now() }, { upsert: true });
        await db.db(c.config.dbName).collection(LEDGER).deleteMany({});
      } finally {
        await db.close();
      }
      const crash = await c.post('/api/v1/crash/slave');
      expect(crash.body).toEqual([String(slave.pid)]);
      // Before: it resumed from its own data and stayed unpromotable for the whole horizon (10 min), so a lost
      // master was restarted in place instead.
      await eventually(
        () => {
          const w = c.orch.view.workers.get(slave.id);
          return w?.state === 'slave' && w.pid !== slave.pid && w.promotable === true;
        },
        45_000,
        'the slave restarted in place, serving, its ledger copied again (promotable)',
      );
      const log = readFileSync(path.join(c.dataDir, c.namespace, slave.id, 'worker.log'), 'utf8');
      expect(log).toContain('resumed from its own data and sync queue');
      expect(log).toContain('request ledger copied from master');

      const seqAtKill = c.orch.view.masterStatus()?.appliedSeq ?? 0;
      expect((await c.post('/api/v1/crash/master')).status).toBe(200);
      await eventually(() => c.orch.view.master?.id === slave.id && c.orch.view.masterStatus()?.state === 'master', 60_000, 'the restarted slave promoted');
      await eventually(() => c.orch.audit.list().some((e) => e.kind === 'promotion' && e.reason.includes(slave.id)), 10_000, 'the promotion in the audit log');
      await eventually(() => (c.orch.view.masterStatus()?.appliedSeq ?? 0) > seqAtKill + 40, 30_000, 'writes after the promotion');
      const { acked } = await stopLoad();

      // Every retry of the writes made before the fault answers as the first attempt did, and none applies again.
      for (const [i, w] of writes.entries()) {
        const again = await c.post('/api/v1/db/write', w);
        expect({ i, status: again.status, body: again.body }).toEqual({ i, status: 200, body: first[i]?.body });
      }
      // The old master's place goes to a new slave: every replica is dumped once it serves.
      await eventually(() => c.orch.view.workers.size === 2 && c.orch.view.servingSlaves().length === 1, 60_000, 'a new slave serving beside the promoted one');
      const dumps = await dumpAllReplicas(c.orch, 30_000);
      const now = dumps.get(slave.id);
      expect(now?.lacct).toEqual([{ _id: 'a', n: 20 }]);
      const keys = ((now?.lr ?? []) as Array<{ key: string }>).map((d) => d.key);
      expect(keys.length).toBe(new Set(keys).size);
      expect(new Set(keys)).toEqual(acked);
      for (const [id, dump] of dumps) expect({ id, dump }).toEqual({ id, dump: now });
    } finally {
      await stopLoad();
    }
  });

  it('a promoted slave whose snapshot copied only the ledger (no oplog) answers retries with the first result and applies nothing twice', async () => {
    // No restart in place: the crashed slave's place goes to a fresh one that copies a snapshot.
    const c = await cluster({ DBAAS_INITIAL_SLAVES: '1', DBAAS_SLAVE_RESTARTS_IN_PLACE: '0' });
    expect((await c.post('/api/v1/db/write', { table: 'acct', operation: 'insert', data: { _id: 'a', n: 0 } })).status).toBe(200);
    const writes = Array.from({ length: 30 }, (_, i) => ({ table: 'acct', operation: 'update', where: { _id: 'a' }, data: { $inc: { n: 1 }, $push: { log: i } }, requestId: timedRequestId() }));
    const first = [];
    for (const w of writes) first.push(await c.post('/api/v1/db/write', w));
    expect(first.map((r) => r.status)).toEqual(writes.map(() => 200));

    // The only slave is replaced: the replacement copies the data in pages and the master's ledger, not its oplog.
    const oldSlave = c.orch.view.servingSlaves()[0]?.id as string;
    expect((await c.post('/api/v1/crash/slave')).status).toBe(200);
    await eventually(
      () => {
        const s = c.orch.view.servingSlaves();
        return s.length === 1 && s[0]?.id !== oldSlave && s[0]?.promotable === true;
      },
      60_000,
      'a replacement slave serving, its ledger complete',
    );
    const replacement = c.orch.view.servingSlaves()[0]?.id as string;

    expect((await c.post('/api/v1/crash/master')).status).toBe(200);
    await eventually(() => c.orch.view.master?.id === replacement && c.orch.view.masterStatus()?.state === 'master', 60_000, 'the replacement promoted');

    // Every retry answers as the first attempt did, and none applies again.
    for (const [i, w] of writes.entries()) {
      const again = await c.post('/api/v1/db/write', w);
      expect({ i, status: again.status, body: again.body }).toEqual({ i, status: 200, body: first[i]?.body });
    }
    const last = first.at(-1)?.body.seq as number;
    const doc = await c.post('/api/v1/db/read', { table: 'acct', where: { _id: 'a' }, afterSeq: last });
    expect(doc.status).toBe(200);
    expect(doc.body).toEqual([{ _id: 'a', n: 30, log: writes.map((_, i) => i) }]);
  });

  it('a retry past the retry horizon gets 409 DBAAS_WRITE_REQUEST_ID_EXPIRED and is not applied again; one within it answers the first result', async () => {
    const c = await cluster({ DBAAS_REQUEST_ID_TTL_MS: '2000' });
    expect((await c.post('/api/v1/db/write', { table: 'cnt', operation: 'insert', data: { _id: 'x', n: 0 } })).status).toBe(200);
    const w = { table: 'cnt', operation: 'update', where: { _id: 'x' }, data: { $inc: { n: 1 } }, requestId: timedRequestId() };
    const first = await c.post('/api/v1/db/write', w);
    expect(first.status).toBe(200);
    const soon = await c.post('/api/v1/db/write', w);
    expect(soon.body).toEqual(first.body);
    await sleep(2500);
    const late = await c.post('/api/v1/db/write', w);
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe('DBAAS_WRITE_REQUEST_ID_EXPIRED');
    // A requestId whose time is past the horizon is refused even if it was never seen: whether it was cannot be told.
    const stale = await c.post('/api/v1/db/write', { ...w, requestId: timedRequestId(Date.now() - 10_000) });
    expect(stale.status).toBe(409);
    expect(stale.body.error.code).toBe('DBAAS_WRITE_REQUEST_ID_EXPIRED');
    const doc = await c.post('/api/v1/db/read', { table: 'cnt', where: { _id: 'x' }, afterSeq: first.body.seq });
    expect(doc.body).toEqual([{ _id: 'x', n: 1 }]);

    // A client whose clock is 10 s behind (5x the horizon here) made this id: the age it reports (its own measure,
    // 0 ms: a first attempt) dates the request, so it is applied, not refused as expired; a later retry of it is a retry.
    const skewed = { table: 'cnt', operation: 'update', where: { _id: 'x' }, data: { $inc: { n: 10 } }, requestId: timedRequestId(Date.now() - 10_000) };
    const inject = (body: unknown, age: string) =>
      c.orch.app.inject({ method: 'POST', url: '/api/v1/db/write', payload: JSON.stringify(body), headers: { 'content-type': 'application/json', 'x-dbaas-request-age-ms': age } });
    const applied = await inject(skewed, '0');
    expect(applied.statusCode, applied.body).toBe(200);
    const again = await inject(skewed, '300');
    expect(again.json()).toEqual(applied.json());
    // Past the horizon by the client's own measure: refused.
    const old = await inject({ ...skewed, requestId: timedRequestId() }, '5000');
    expect(old.statusCode).toBe(409);
    expect(old.json().error.code).toBe('DBAAS_WRITE_REQUEST_ID_EXPIRED');
    // A malformed age is a 400 and changes nothing.
    for (const bad of ['-1', 'soon', '1e3', String(8 * 86_400_000)]) {
      const refused = await inject({ ...skewed, requestId: timedRequestId() }, bad);
      expect(refused.statusCode, bad).toBe(400);
      expect(refused.json().error.code).toBe('DBAAS_REQ_INVALID');
    }
    const after = await c.post('/api/v1/db/read', { table: 'cnt', where: { _id: 'x' }, afterSeq: applied.json().seq });
    expect(after.body).toEqual([{ _id: 'x', n: 11 }]);
  });
});
