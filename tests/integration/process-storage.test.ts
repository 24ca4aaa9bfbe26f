/**
 * The process runtime's storage choice (DBAAS_DB_BACKEND): a worker restarted in
 * place keeps the storage it was created with, whatever the setting says now, so
 * changing the default never starts a master on an empty database; a worker whose
 * PostgreSQL database is gone has no data and refuses to start. Needs the
 * PostgreSQL server `npm test` sets up (DBAAS_PG_URL).
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import { afterEach, describe, expect, it } from 'vitest';
import { loadOrchestratorConfig, type DbBackend } from '../../common/config.js';
import { createLogger } from '../../common/logger.js';
import { ProcessRuntime } from '../../orchestrator/runtimes/process-runtime.js';
import { mayRaise, schedulingNice, START_PRIORITY_MAX_MS } from '../../orchestrator/runtimes/start-priority.js';
import { databaseUrl, dropMarkers, dropWorkerDatabases, findPsql, readMarker, readSpare, spareMarkers } from '../../orchestrator/runtimes/postgresql-databases.js';
import { waitFor } from '../../common/backoff.js';
import { purgeNamespace, tcpProxy, type ZkProxy } from './infra.js';

const pgUrl = process.env.DBAAS_PG_URL;

describe.skipIf(!pgUrl || !process.env.DBAAS_DB_BIN)('process runtime storage', () => {
  let ns = '';
  let dataDir = '';
  const runtimes: ProcessRuntime[] = [];
  const ids: string[] = [];
  /** A proxy to PostgreSQL a case cuts (its workers' markers name it): up again for the clean-up, then closed. */
  let pgProxy: ZkProxy | undefined;

  const runtime = (backend: DbBackend, spareDatabases = 0, viaUrl = pgUrl, startNice = 0): ProcessRuntime => {
    const config = loadOrchestratorConfig({
      DBAAS_NAMESPACE: ns,
      DBAAS_DATA_DIR: dataDir,
      DBAAS_DB_BIN: process.env.DBAAS_DB_BIN,
      DBAAS_DB_BACKEND: backend,
      DBAAS_PG_URL: viaUrl,
      DBAAS_LOG_LEVEL: 'warn',
    });
    const r = new ProcessRuntime({
      dataDir,
      namespace: ns,
      dbBin: config.dbBin ?? '',
      dbBackend: config.dbBackend,
      pgUrl: config.pgUrl ?? '',
      clusterEnv: { DBAAS_NAMESPACE: ns, DBAAS_AMQP_URL: config.amqpUrl, DBAAS_ZK_CONNECT: config.zkConnect, DBAAS_LOG_LEVEL: 'warn' },
      logger: createLogger('test-runtime', 'warn'),
      spareDatabases,
      startNice,
    });
    runtimes.push(r);
    return r;
  };

  const unit = (id: string): { dbPid: number; port: number; workerPid: number } =>
    JSON.parse(readFileSync(path.join(dataDir, ns, id, 'unit.json'), 'utf8')) as { dbPid: number; port: number; workerPid: number };
  const handlerOf = (id: string): string => {
    const args = readFileSync(`/proc/${unit(id).dbPid}/cmdline`, 'utf8').split('\0');
    return args.find((a) => a.startsWith('--handler=')) ?? '';
  };
  /** Writes or reads a document straight in the worker's own database. */
  const withDb = async <T>(id: string, fn: (c: MongoClient) => Promise<T>): Promise<T> => {
    const client = await MongoClient.connect(`mongodb://127.0.0.1:${unit(id).port}/`);
    try {
      return await fn(client);
    } finally {
      await client.close();
    }
  };

  const begin = (): void => {
    ns = `t-${randomBytes(4).toString('hex')}`;
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'dbaas-storage-'));
  };

  afterEach(async () => {
    for (const r of runtimes.splice(0)) await r.close(5000).catch(() => undefined);
    pgProxy?.up();
    await dropWorkerDatabases(path.join(dataDir, ns));
    await pgProxy?.close();
    pgProxy = undefined;
    await purgeNamespace(ns, ids.splice(0));
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('a worker created on SQLite stays on SQLite, with its data, when restarted under DBAAS_DB_BACKEND=postgresql', async () => {
    begin();
    const id = `wsq-${randomBytes(3).toString('hex')}`;
    ids.push(id);
    const first = runtime('sqlite');
    await first.startWorker({ id, role: 'master', term: 1 });
    expect(handlerOf(id)).toBe('--handler=sqlite');
    await withDb(id, (c) => c.db('probe').collection('t').insertOne({ _id: 'kept' as never, v: 1 }));
    await first.stop(id, 10_000);

    const second = runtime('postgresql');
    expect(second.hasData(id)).toBe(true);
    await second.startWorker({ id, role: 'master', term: 2 });
    expect(handlerOf(id)).toBe('--handler=sqlite');
    expect(readMarker(path.join(dataDir, ns, id, 'db'))).toBeUndefined();
    expect(await withDb(id, (c) => c.db('probe').collection('t').findOne({ _id: 'kept' as never }))).toMatchObject({ v: 1 });
  });

  it('a worker created on PostgreSQL stays there under DBAAS_DB_BACKEND=sqlite; once its database is gone it has no data and refuses to start', async () => {
    begin();
    const id = `wpg-${randomBytes(3).toString('hex')}`;
    ids.push(id);
    const first = runtime('postgresql');
    await first.startWorker({ id, role: 'master', term: 1 });
    expect(handlerOf(id)).toBe('--handler=postgresql');
    await withDb(id, (c) => c.db('probe').collection('t').insertOne({ _id: 'kept' as never, v: 2 }));
    await first.stop(id, 10_000);

    const second = runtime('sqlite');
    expect(second.hasData(id)).toBe(true);
    await second.startWorker({ id, role: 'master', term: 2 });
    expect(handlerOf(id)).toBe('--handler=postgresql');
    expect(await withDb(id, (c) => c.db('probe').collection('t').findOne({ _id: 'kept' as never }))).toMatchObject({ v: 2 });
    await second.stop(id, 10_000);

    // The database dropped behind the runtime's back (a wiped PostgreSQL): not an empty restart.
    const marker = readMarker(path.join(dataDir, ns, id, 'db'));
    expect(marker).toBeDefined();
    execFileSync(findPsql(), ['-X', '-q', '-d', pgUrl ?? '', '-c', `DROP DATABASE "${marker?.database ?? ''}" WITH (FORCE)`]);
    expect(second.hasData(id)).toBe(false);
    await expect(second.startWorker({ id, role: 'master', term: 3 })).rejects.toThrow(/is gone/);
  });

  it('a removed worker whose database cannot be dropped (PostgreSQL unreachable): the drop is remembered and retried while the runtime runs and at its next start', async () => {
    begin();
    const nsDir = path.join(dataDir, ns);
    const proxy = await tcpProxy(Number(new URL(pgUrl ?? '').port || 5432));
    pgProxy = proxy;
    // The runtime reaches PostgreSQL through a proxy only it uses: an outage of its own, the shared server untouched.
    const u = new URL(pgUrl ?? '');
    u.host = `127.0.0.1:${proxy.port}`;
    const exists = (db: string): boolean =>
      execFileSync(findPsql(), ['-X', '-q', '-A', '-t', '-d', pgUrl ?? '', '-c', `SELECT count(*) FROM pg_database WHERE datname = '${db}'`], { encoding: 'utf8' }).trim() === '1';
    const gone = (db: string): Promise<true> =>
      waitFor(() => Promise.resolve(!exists(db) && dropMarkers(nsDir).length === 0 ? true : undefined), 30_000, () => new Error(`${db} was not dropped`), 50);
    const removedDuringOutage = async (r: ProcessRuntime): Promise<string> => {
      const id = `wdr-${randomBytes(3).toString('hex')}`;
      ids.push(id);
      await r.startWorker({ id, role: 'master', term: 1 });
      const database = readMarker(path.join(nsDir, id, 'db'))?.database ?? '';
      await r.stop(id, 10_000);
      proxy.down();
      await r.remove(id); // resolves: the failed drop is remembered, the directory goes
      expect(existsSync(path.join(nsDir, id))).toBe(false);
      expect(exists(database)).toBe(true);
      expect(dropMarkers(nsDir).map((m) => m.database)).toEqual([database]);
      return database;
    };

    // Retried while the runtime runs: PostgreSQL back, the database goes without anyone asking.
    const first = runtime('postgresql', 0, u.toString());
    const lost = await removedDuringOutage(first);
    proxy.up();
    await gone(lost);

    // Retried at the next start: a runtime closed during the outage leaves its file; the next one drops it when it adopts.
    const leftover = await removedDuringOutage(first);
    await first.close(10_000);
    proxy.up();
    expect(exists(leftover)).toBe(true);
    const second = runtime('postgresql', 0, u.toString());
    await second.adopt();
    await gone(leftover);

    // A teardown (dropWorkerDatabases) drops what a drop-*.json still names.
    const forTeardown = await removedDuringOutage(second);
    await second.close(10_000);
    proxy.up();
    expect(await dropWorkerDatabases(nsDir)).toEqual([forTeardown]);
    expect(exists(forTeardown)).toBe(false);
  });

  // Raising needs CAP_SYS_NICE (root, outside a container that drops it); start-priority.test.ts has the refused case.
  it('a starting worker and its database run at the raised CPU priority until the start ends; a runtime adopting a worker mid-start puts it back', async (ctx) => {
    const probe = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
    const allowed = probe.pid !== undefined && mayRaise(probe.pid);
    probe.kill('SIGKILL');
    if (!allowed) ctx.skip();
    begin();
    const id = `wnice-${randomBytes(3).toString('hex')}`;
    ids.push(id);
    const first = runtime('postgresql', 0, pgUrl, -10);
    const niceOf = (): number[] => [schedulingNice(unit(id).workerPid), schedulingNice(unit(id).dbPid)];
    /** Raised until the start ends, or START_PRIORITY_MAX_MS after the spawn (a start slower than that under load). */
    const startRaised = async (term: number): Promise<void> => {
      const started = Date.now();
      await first.startWorker({ id, role: 'master', term });
      const seen = niceOf();
      if (Date.now() - started < START_PRIORITY_MAX_MS - 1000) expect(seen).toEqual([-10, -10]);
    };
    await startRaised(1);
    first.startEnded(id);
    expect(niceOf()).toEqual([0, 0]);
    await first.stop(id, 10_000);

    // Restarted in place, and its orchestrator goes away mid-start: the next one adopts it at normal priority.
    await startRaised(2);
    first.detach();
    const second = runtime('postgresql');
    expect((await second.adopt()).map((w) => w.id)).toEqual([id]);
    expect(niceOf()).toEqual([0, 0]);
  });

  it('spare databases: made after a start, taken by the next new worker, made again, kept across a new runtime, dropped with the namespace', async () => {
    begin();
    const nsDir = path.join(dataDir, ns);
    const psql = (sql: string): string => execFileSync(findPsql(), ['-X', '-q', '-A', '-t', '-d', pgUrl ?? '', '-c', sql], { encoding: 'utf8' }).trim();
    const databases = (): string[] => psql(`SELECT datname FROM pg_database WHERE datname LIKE '${ns}\\_%' ORDER BY 1`).split('\n').filter(Boolean);
    const comment = (db: string): string => psql(`SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '${db}'`);
    /** The one spare made (not being made), once there is one other than `not`. */
    const madeSpare = (not?: string): Promise<string> =>
      waitFor(
        () => {
          const made = spareMarkers(nsDir).filter((m) => !readSpare(m.file)?.making && m.database !== not);
          return Promise.resolve(made.length === 1 ? made[0]?.database : undefined);
        },
        60_000,
        () => new Error(`no spare database was made in ${nsDir}`),
        50,
      );
    const worker = async (r: ProcessRuntime, role: 'master' | 'slave'): Promise<string> => {
      const id = `wsp-${randomBytes(3).toString('hex')}`;
      ids.push(id);
      await r.startWorker({ id, role, term: 1 });
      return id;
    };

    const first = runtime('postgresql', 1);
    const master = await worker(first, 'master');
    expect(readMarker(path.join(nsDir, master, 'db'))?.database).not.toContain('spare');
    const spare1 = await madeSpare();
    expect(databases()).toContain(spare1);
    expect(comment(spare1)).toBe(`dbaas worker (spare) of namespace ${ns}, data directory ${nsDir}`);
    // With the worker's own collections made ahead (common/worker-collections.ts), the ledger's index and its GIN
    // companion too, by a FerretDB of its own that is gone again: no connection to the spare is left.
    const inSpare = (sql: string): string => execFileSync(findPsql(), ['-X', '-q', '-A', '-t', '-d', databaseUrl(pgUrl ?? '', spare1), '-c', sql], { encoding: 'utf8' }).trim();
    expect(inSpare(`SELECT string_agg(_jsonb->>'_id', ',' ORDER BY _jsonb->>'_id') FROM dbaas._ferretdb_database_metadata`)).toBe('_dbaas_ledger,_dbaas_meta,_dbaas_oplog');
    expect(inSpare(`SELECT count(*) FROM pg_indexes WHERE schemaname = 'dbaas' AND indexdef LIKE '%USING gin%requestId%'`)).toBe('1');
    await waitFor(() => Promise.resolve(psql(`SELECT count(*) FROM pg_stat_activity WHERE datname = '${spare1}'`) === '0' || undefined), 10_000, () => new Error(`connections to ${spare1} left`), 50);

    // The next new worker takes it: its marker names the spare, and its FerretDB keeps data there.
    const second = await worker(first, 'slave');
    expect(readMarker(path.join(nsDir, second, 'db'))?.database).toBe(spare1);
    expect(spareMarkers(nsDir).map((m) => m.database)).not.toContain(spare1);
    expect(handlerOf(second)).toBe('--handler=postgresql');
    await withDb(second, (c) => c.db('probe').collection('t').insertOne({ _id: 'in-spare' as never, v: 3 }));
    expect(await withDb(second, (c) => c.db('probe').collection('t').findOne({ _id: 'in-spare' as never }))).toMatchObject({ v: 3 });

    // The pool is topped up, and the taken database's comment names its worker now.
    const spare2 = await madeSpare(spare1);
    expect(comment(spare1)).toBe(`dbaas worker ${second} of namespace ${ns}, data directory ${path.join(nsDir, second, 'db')}`);
    await first.close(10_000);

    // A new runtime (the service restarted) takes the spare made before.
    const again = runtime('postgresql', 1);
    const third = await worker(again, 'slave');
    expect(readMarker(path.join(nsDir, third, 'db'))?.database).toBe(spare2);
    await again.close(10_000);

    // Dropping the namespace's databases drops the spares too, made or being made: nothing of it is left.
    await dropWorkerDatabases(nsDir);
    expect(databases()).toEqual([]);
  });
});
