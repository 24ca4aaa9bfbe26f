/**
 * The cluster a benchmark measures: a real `node dist/orchestrator/main.js`
 * child process (process runtime, its own namespace and data directory), so that
 * the orchestrator's CPU and memory are its own and not the load generator's.
 * The benchmark talks to it through the typed client (client/).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AmqpConnection } from '../../common/amqp-connection.js';
import { clusterEnv, type OrchestratorConfig } from '../../common/config.js';
import { createLogger } from '../../common/logger.js';
import { NODE_ENV_VARS, NODE_FLAGS } from '../../common/node-flags.js';
import { readJsonFile } from '../../common/state-file.js';
import { clusterNames } from '../../common/names.js';
import { removeTree, withZkSession } from '../../coordination/namespace.js';
import { zkPaths } from '../../coordination/paths.js';
import { DbaasClient } from '../../client/dbaas-client.js';
import type { WorkerInfo, WriteBody, WriteResult } from '../../client/types.js';
import { dropWorkerDatabases, readSpare, spareMarkers } from '../../orchestrator/runtimes/postgresql-databases.js';

export interface BenchClusterOptions {
  slaves: number;
  /** Environment of the orchestrator (DBAAS_DB_BIN, DBAAS_AMQP_URL, …); namespace, port, data dir and scaling are set here. */
  env: Record<string, string>;
  log: (line: string) => void;
  /** The orchestrator's port and namespace; a random port (20000–39999) and `bench-<hex>` when not given. */
  port?: number;
  namespace?: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resident set size of a process in bytes (0 when it is gone). */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export class BenchCluster {
  readonly namespace: string;
  readonly dataDir = mkdtempSync(path.join(os.tmpdir(), 'dbaas-bench-'));
  url = '';
  private child: ChildProcess | undefined;
  private exited = false;
  private api: DbaasClient | undefined;
  /** The orchestrator's recent output lines (its JSON log). */
  private readonly lines: string[] = [];

  constructor(private readonly opts: BenchClusterOptions) {
    this.namespace = opts.namespace ?? `bench-${randomBytes(3).toString('hex')}`;
  }

  get pid(): number {
    return this.child?.pid ?? 0;
  }

  async start(timeoutMs = 90_000): Promise<void> {
    // dist/tools/bench/ → dist/orchestrator/main.js
    const entry = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../orchestrator/main.js');
    const port = this.opts.port ?? 20_000 + Math.floor(Math.random() * 20_000);
    this.url = `http://127.0.0.1:${port}`;
    // Loading data must succeed: a write answered 503/504 (or not at all) is
    // retried with the same requestId, which is what a client of dbaas should do.
    this.api = new DbaasClient({
      url: this.url,
      timeoutMs: 120_000,
      retry: { attempts: 10 },
      readYourWrites: false,
      onRetry: ({ method, path: route, attempt, error }) => this.opts.log(`${method} ${route} failed (${error.code}, try ${attempt}); retrying`),
    });
    const child = spawn(process.execPath, [...NODE_FLAGS, entry], {
      env: {
        ...NODE_ENV_VARS,
        ...this.opts.env,
        DBAAS_NAMESPACE: this.namespace,
        DBAAS_DATA_DIR: this.dataDir,
        DBAAS_PORT: String(port),
        DBAAS_HOST: '127.0.0.1',
        DBAAS_INITIAL_SLAVES: String(this.opts.slaves),
        DBAAS_MIN_SLAVES: '1',
        // No autoscaling window may fire during a run: the slave count is the benchmark's to set.
        DBAAS_SCALE_INTERVAL_MS: '86400000',
        DBAAS_RUNTIME: 'process',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    let output = '';
    let partial = '';
    const keep = (buf: Buffer): void => {
      output = (output + buf.toString()).slice(-20_000);
      const lines = (partial + buf.toString()).split('\n');
      partial = lines.pop() ?? '';
      this.lines.push(...lines);
      if (this.lines.length > 20_000) this.lines.splice(0, this.lines.length - 10_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.once('exit', () => (this.exited = true));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.exited) throw new Error(`the orchestrator exited during start:\n${output.slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`the cluster was not ready after ${timeoutMs} ms:\n${output.slice(-3000)}`);
      const ready = await this.client
        .readiness()
        .then((r) => r.ready)
        .catch(() => false);
      if (ready && (await this.workers()).filter((w) => w.state === 'slave').length >= this.opts.slaves) break;
      await sleep(200);
    }
  }

  /** The typed client of this cluster (once {@link start} has begun). */
  get client(): DbaasClient {
    if (!this.api) throw new Error('the benchmark cluster has not been started');
    return this.api;
  }

  /** A write that must succeed (loading data); retried with one requestId on 503, 504 and no answer. */
  write(body: WriteBody): Promise<WriteResult> {
    return this.client.write(body);
  }

  /** The orchestrator's log lines (JSON) since `since` (ms since the epoch) with message `msg`. */
  orchestratorLog(msg: string, since = 0): Array<Record<string, unknown> & { time: number }> {
    return this.lines.flatMap((l) => {
      try {
        const o = JSON.parse(l) as Record<string, unknown> & { time: number };
        return o.msg === msg && o.time >= since ? [o] : [];
      } catch {
        return [];
      }
    });
  }

  /** The workers, or none when the orchestrator does not answer. */
  async workers(): Promise<WorkerInfo[]> {
    return this.client.workers().catch(() => []);
  }

  /** A worker's database port and pid (from the process runtime's unit file). */
  unit(workerId: string): { port: number; dbPid: number; workerPid: number } {
    const unit = readJsonFile<{ port: number; dbPid: number; workerPid: number }>(path.join(this.dataDir, this.namespace, workerId, 'unit.json'));
    if (!unit) throw new Error(`no unit file for worker ${workerId}`);
    return unit;
  }

  /**
   * Waits until the process runtime has its spare PostgreSQL databases made (DBAAS_SPARE_DATABASES with the
   * postgresql backend, orchestrator/runtimes/spare-databases.ts), so a new slave starts as one would on a cluster
   * that had a moment since its last start; returns how many and how long that took (none: at once).
   */
  async sparesReady(timeoutMs = 60_000): Promise<{ spares: number; waitedMs: number }> {
    const env = this.opts.env;
    const n = env.DBAAS_DB_BACKEND === 'postgresql' && !path.basename(env.DBAAS_DB_BIN ?? '').startsWith('mongod') ? Number(env.DBAAS_SPARE_DATABASES ?? 1) : 0;
    const started = Date.now();
    const nsDir = path.join(this.dataDir, this.namespace);
    while (spareMarkers(nsDir).filter((m) => !readSpare(m.file)?.making).length < n) {
      if (Date.now() - started > timeoutMs) throw new Error(`no ${n} spare database(s) made in ${nsDir} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return { spares: n, waitedMs: Date.now() - started };
  }

  /** The MongoDB URL of a worker's own database. */
  dbUrl(workerId: string): string {
    return `mongodb://127.0.0.1:${this.unit(workerId).port}/`;
  }

  /** Waits until every worker has applied the master's seq (replication has caught up). */
  async settled(timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ws = await this.workers();
      const master = ws.find((w) => w.role === 'master');
      if (master && ws.every((w) => w.appliedSeq === master.appliedSeq && w.state !== 'syncing')) return;
      if (Date.now() > deadline) throw new Error(`replicas did not catch up within ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  /**
   * Stops the orchestrator (SIGINT: it stops its workers), kills whatever of the
   * cluster is still running after `timeoutMs` (so a stuck stop leaves no worker
   * or database behind), then removes the data, the queues and exchanges, and
   * the znodes of the benchmark's namespace.
   */
  async stop(amqpUrl: string, zkConnect: string, timeoutMs = 30_000): Promise<void> {
    const child = this.child;
    // Read before the stop (the orchestrator removes the files of the workers it stops) and after it (a worker it started meanwhile).
    const units = this.units();
    if (child && !this.exited) {
      child.kill('SIGINT');
      const deadline = Date.now() + timeoutMs;
      while (!this.exited && Date.now() < deadline) await sleep(100);
      if (!this.exited) {
        this.opts.log('the orchestrator did not stop in time: killing it and its workers');
        child.kill('SIGKILL');
      }
    }
    for (const u of [...units, ...this.units()]) {
      // Only processes that are still this benchmark's (pids are reused).
      if (processHas(u.workerPid, `DBAAS_WORKER_ID=${u.id}`)) process.kill(u.workerPid, 'SIGKILL');
      if (processHas(u.dbPid, path.join(this.dataDir, this.namespace, u.id))) process.kill(u.dbPid, 'SIGKILL');
    }
    // The workers' PostgreSQL databases (DBAAS_DB_BACKEND=postgresql), named in their directories.
    await dropWorkerDatabases(path.join(this.dataDir, this.namespace)).catch((err: unknown) => {
      this.opts.log(`could not drop the workers' PostgreSQL databases: ${(err as Error).message}`);
    });
    rmSync(this.dataDir, { recursive: true, force: true });
    await removeNamespace(this.namespace, units.map((u) => u.id), amqpUrl, zkConnect).catch((err: unknown) => {
      this.opts.log(`could not remove the namespace's queues and znodes: ${(err as Error).message}`);
    });
  }

  /** Every worker the process runtime started for this cluster (from its unit files). */
  private units(): Array<{ id: string; workerPid: number; dbPid: number }> {
    const dir = path.join(this.dataDir, this.namespace);
    if (!existsSync(dir)) return [];
    return readdirSync(dir).flatMap((id) => readJsonFile<{ id: string; workerPid: number; dbPid: number }>(path.join(dir, id, 'unit.json')) ?? []);
  }
}

/** True when process `pid` runs and its environment or command line contains `marker`. */
function processHas(pid: number, marker: string): boolean {
  if (!pid) return false;
  for (const file of ['environ', 'cmdline']) {
    try {
      if (readFileSync(`/proc/${pid}/${file}`, 'utf8').split('\0').some((part) => part.includes(marker))) return true;
    } catch {
      return false;
    }
  }
  return false;
}

/** Deletes a stopped benchmark cluster's queues, exchanges and znodes; the broker and ensemble are shared. */
async function removeNamespace(namespace: string, workerIds: string[], amqpUrl: string, zkConnect: string): Promise<void> {
  const names = clusterNames(namespace);
  const logger = createLogger('bench-cleanup', 'warn');
  const amqp = new AmqpConnection({ url: amqpUrl, name: 'dbaas-bench-cleanup', logger, setup: async () => undefined });
  amqp.start();
  try {
    await amqp.waitUntilReady(10_000);
    const queues = [names.writeQueue, names.readQueue, names.deadLetterQueue, ...workerIds.flatMap((id) => [names.syncQueue(id), names.controlQueue(id)])];
    for (const q of queues) {
      const ch = await amqp.connection?.createChannel();
      ch?.on('error', () => undefined);
      await ch?.deleteQueue(q).catch(() => undefined);
      await ch?.close().catch(() => undefined);
    }
    for (const ex of [names.syncExchange, names.deadLetterExchange, names.poisonExchange]) {
      const ch = await amqp.connection?.createChannel();
      ch?.on('error', () => undefined);
      await ch?.deleteExchange(ex).catch(() => undefined);
      await ch?.close().catch(() => undefined);
    }
  } finally {
    await amqp.close();
  }
  await withZkSession(zkConnect, logger, 10_000, (zk) => removeTree(zk, zkPaths(namespace).root));
}

/**
 * The orchestrator environment of a benchmark cluster: the cluster settings, the
 * database server and storage of .dbaas/runtime.env, info logs, a 10 s request
 * timeout (override what differs). Throws when DBAAS_DB_BIN is not set up.
 */
export function benchEnv(config: OrchestratorConfig): Record<string, string> {
  if (!config.dbBin) throw new Error('DBAAS_DB_BIN is not set: run the benchmark through npm (it sets it up first)');
  return {
    ...clusterEnv(config),
    DBAAS_DB_BIN: config.dbBin,
    // The storage scripts/setup.sh chose: PostgreSQL unless DBAAS_DB_BACKEND=sqlite.
    DBAAS_DB_BACKEND: config.dbBackend,
    ...(config.pgUrl ? { DBAAS_PG_URL: config.pgUrl } : {}),
    DBAAS_SPARE_DATABASES: String(config.spareDatabases),
    DBAAS_WORKER_START_NICE: String(config.workerStartNice),
    DBAAS_LOG_LEVEL: 'info',
    DBAAS_REQUEST_TIMEOUT_MS: '10000',
  };
}
