/**
 * The `process` runtime: each worker and its own database server (FerretDB, or
 * mongod) run as child processes of the orchestrator, with their data under
 * `<dataDir>/<namespace>/<workerId>/`. FerretDB keeps a worker's data either in
 * SQLite files in that directory (`DBAAS_DB_BACKEND=sqlite`) or in a PostgreSQL
 * database of the worker's own (`postgresql`, see postgresql-databases.ts),
 * which that directory then names. A worker keeps the storage it was created
 * with, whatever the setting says when it is restarted in place.
 *
 * When either process of a pair dies, the other is killed too: a worker is never
 * left half alive, and the pair is reported dead once, when both are gone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../../common/backoff.js';
import { canConnect, isAlive, pingOnce } from '../../common/probes.js';
import type { DbBackend } from '../../common/config.js';
import type { Logger } from '../../common/logger.js';
import { NODE_ENV_VARS, NODE_FLAGS } from '../../common/node-flags.js';
import { readJsonFile, writeFileAtomic } from '../../common/state-file.js';
import { ferretdbUrl, PG_MARKER, PostgresDatabases, readMarker } from './postgresql-databases.js';
import { PendingDrops } from './pending-drops.js';
import { SpareDatabases } from './spare-databases.js';
import { StartPriority } from './start-priority.js';
import { failureCause } from './failure-cause.js';
import type { ExitInfo, ExitListener, Runtime, WorkerHandle, WorkerSpec } from './runtime.js';
import { makeWorkerCollections } from '../../common/worker-collections.js';

export interface ProcessRuntimeOptions {
  dataDir: string;
  namespace: string;
  /** FerretDB or mongod binary. */
  dbBin: string;
  /** Where a new worker's FerretDB keeps its data (default sqlite); mongod ignores it. */
  dbBackend?: DbBackend;
  /** A superuser connection to the PostgreSQL server of the `postgresql` backend (`DBAAS_PG_URL`). */
  pgUrl?: string;
  /** DBAAS_* settings every worker shares. */
  clusterEnv: Record<string, string>;
  logger: Logger;
  /** The compiled worker entry point; found next to this build by default. */
  workerEntry?: string;
  dbStartTimeoutMs?: number;
  /** Empty PostgreSQL databases kept made ahead for new workers (`DBAAS_SPARE_DATABASES`; default 0), spare-databases.ts. */
  spareDatabases?: number;
  /** A starting worker's and its database's nice (`DBAAS_WORKER_START_NICE`, -20…0; default 0: none), start-priority.ts. */
  startNice?: number;
  /** The workers' MongoDB database (`DBAAS_WORKER_DB_NAME`): where a spare's worker collections are made (default `dbaas`). */
  dbName?: string;
}

interface Unit {
  id: string;
  pid: number;
  dir: string;
  expected: boolean;
  exited: Promise<void>;
  signalWorker(sig: NodeJS.Signals): void;
  signalDb(sig: NodeJS.Signals): void;
}

/** Written beside each worker's data so a restarted orchestrator can adopt it. */
interface UnitFile {
  id: string;
  workerPid: number;
  dbPid: number;
  port: number;
}

const UNIT_FILE = 'unit.json';

/**
 * Removes a worker's unit file if it still describes process `workerPid`. By the time an exit is
 * reported it may describe a newer process of the worker (another orchestrator restarted it in place
 * while this one was paused), and without it no orchestrator adopts that process any more.
 */
function removeOwnUnitFile(dir: string, workerPid: number): void {
  const file = path.join(dir, UNIT_FILE);
  // Gone, or not ours to judge: left alone.
  if (readJsonFile<UnitFile>(file)?.workerPid !== workerPid) return;
  rmSync(file, { force: true });
}

export class ProcessRuntime implements Runtime {
  readonly kind = 'process';
  readonly passesSnapshotAsked = true;
  private readonly units = new Map<string, Unit>();
  /** Workers started or adopted here (running or dead): the only ones whose data remove() deletes. */
  private readonly owned = new Set<string>();
  /** Workers whose start is under way: their database may already run. */
  private readonly starting = new Map<string, { abort: () => void }>();
  private closed = false;
  private readonly listeners: ExitListener[] = [];
  private readonly workerEntry: string;
  private readonly postgres: PostgresDatabases | undefined;
  private readonly spares: SpareDatabases | undefined;
  private readonly drops: PendingDrops | undefined;
  private readonly priority: StartPriority;

  constructor(private readonly opts: ProcessRuntimeOptions) {
    this.workerEntry = opts.workerEntry ?? findWorkerEntry();
    if (opts.dbBackend === 'postgresql' && !opts.pgUrl) throw new Error('the postgresql backend needs DBAAS_PG_URL');
    this.postgres = opts.pgUrl ? new PostgresDatabases({ adminUrl: opts.pgUrl, namespace: opts.namespace }) : undefined;
    this.priority = new StartPriority(opts.startNice ?? 0, opts.logger);
    this.drops = this.postgres && new PendingDrops({ postgres: this.postgres, nsDir: path.resolve(opts.dataDir, opts.namespace), logger: opts.logger });
    const spares = opts.spareDatabases ?? 0;
    this.spares =
      this.postgres && opts.dbBackend === 'postgresql' && spares > 0 && !path.basename(opts.dbBin).startsWith('mongod')
        ? new SpareDatabases({
            postgres: this.postgres,
            namespace: opts.namespace,
            nsDir: path.resolve(opts.dataDir, opts.namespace),
            size: spares,
            busy: () => this.starting.size > 0,
            prepare: (url) => this.prepareSpare(url),
            logger: opts.logger,
          })
        : undefined;
  }

  startEnded(id: string): void {
    this.priority.lower(id);
  }

  /**
   * Makes a spare database's worker collections (common/worker-collections.ts) through a FerretDB
   * started for that alone and stopped once they are made, off any start's path: the worker that
   * takes the spare finds them there (issue 16). FerretDB then holds them in its own metadata,
   * exactly as if that worker had made them.
   */
  private async prepareSpare(pgUrl: string): Promise<void> {
    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'dbaas-spare-'));
    const port = await freePort();
    // Not detached: it lives for a few hundred milliseconds, and goes with a Ctrl-C of the orchestrator.
    const db = spawn(this.opts.dbBin, dbArgs(this.opts.dbBin, stateDir, port, pgUrl), { stdio: 'ignore' });
    let dead = false;
    const exited = new Promise<void>((resolve) => {
      db.once('exit', () => resolve());
      db.once('error', () => resolve());
    });
    void exited.then(() => (dead = true));
    try {
      await waitFor(async () => (dead || (await canConnect(port)) ? true : undefined), this.opts.dbStartTimeoutMs ?? 20_000, () => new Error(`the FerretDB preparing a spare database did not listen on port ${port}`), 50);
      if (dead) throw new Error('the FerretDB preparing a spare database exited at start');
      // Loaded here only: nothing else of the orchestrator speaks MongoDB.
      const { MongoClient } = await import('mongodb');
      const client = new MongoClient(`mongodb://127.0.0.1:${port}/`, { serverSelectionTimeoutMS: 10_000 });
      try {
        await makeWorkerCollections(client.db(this.opts.dbName ?? 'dbaas'));
      } finally {
        await client.close();
      }
    } finally {
      db.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000).unref())]);
      if (!dead) db.kill('SIGKILL');
      rmSync(stateDir, { recursive: true, force: true });
    }
  }

  failureCause(id: string): string | undefined {
    return failureCause(this.unitDir(id));
  }

  onExit(listener: ExitListener): void {
    this.listeners.push(listener);
  }

  list(): WorkerHandle[] {
    return [...this.units.values()].map((u) => ({ id: u.id, pid: u.pid }));
  }

  private unitDir(id: string): string {
    return path.resolve(this.opts.dataDir, this.opts.namespace, id);
  }

  async startWorker(spec: WorkerSpec): Promise<WorkerHandle> {
    if (this.closed) throw new Error('the runtime is closed');
    if (this.units.has(spec.id) || this.starting.has(spec.id)) throw new Error(`worker ${spec.id} is already running`);
    // Known from the first moment, so a kill or a close during the start reaches its processes too.
    const pending = { abort: (): void => undefined };
    this.starting.set(spec.id, pending);
    this.owned.add(spec.id);
    try {
      return await this.launch(spec, pending);
    } finally {
      this.starting.delete(spec.id);
      // Made while no start is under way: a start's own steps go first (issue 16).
      this.spares?.schedule();
    }
  }

  private async launch(spec: WorkerSpec, pending: { abort: () => void }): Promise<WorkerHandle> {
    const dir = this.unitDir(spec.id);
    const dbDir = path.join(dir, 'db');
    const launchStarted = Date.now();
    // A close or kill may come at any await below: it is noted at once, and kills whatever was spawned by then.
    let aborted = false;
    let killSpawned = (): void => undefined;
    pending.abort = () => {
      aborted = true;
      killSpawned();
    };
    const storage = this.storage(spec.id, dbDir);
    const port = await freePort();
    if (aborted) throw new Error(`the start of worker ${spec.id} was cancelled`);
    // The worker first, so it loads its code while its storage is made and its database starts (issue 16: a
    // new slave's start); it waits for the database's port itself (worker.ts). Either failing kills the other.
    const worker = this.spawnLogged(process.execPath, [...NODE_FLAGS, this.workerEntry], path.join(dir, 'worker.log'), {
      ...NODE_ENV_VARS,
      ...this.opts.clusterEnv,
      DBAAS_WORKER_ID: spec.id,
      DBAAS_WORKER_ROLE: spec.role,
      DBAAS_WORKER_TERM: String(spec.term),
      DBAAS_WORKER_MONGO_URL: `mongodb://127.0.0.1:${port}/`,
      // Its own PostgreSQL database, for the master's consistent snapshot copy (worker/pg-snapshot.ts).
      ...(storage.pgUrl ? { DBAAS_WORKER_PG_URL: storage.pgUrl } : {}),
      // Its first snapshot page already asked for by the orchestrator (common/snapshot-request.ts).
      ...(spec.snapshotAsked ? { DBAAS_WORKER_SNAPSHOT_ASKED: '1' } : {}),
    });
    const pid = worker.pid;
    if (pid === undefined) throw new Error(`could not start worker ${spec.id}`);
    // Until the orchestrator sees it serve (startEnded), ahead of the steady writes' processes for the CPU (issue 16).
    this.priority.raise(spec.id, pid);
    const workerExited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
      worker.once('exit', (code, signal) => resolve({ code, signal }));
      worker.once('error', () => resolve({ code: null, signal: null }));
    });
    killSpawned = () => worker.kill('SIGKILL');
    let db: ChildProcess | undefined;
    let dbDead = false;
    let dbExited: Promise<void> = Promise.resolve();
    let storageMs = 0;
    try {
      const pgUrl = await storage.prepare();
      storageMs = Date.now() - launchStarted;
      if (pgUrl !== storage.pgUrl) throw new Error(`worker ${spec.id}'s database is at ${pgUrl}, not ${storage.pgUrl}`);
      if (aborted) throw new Error(`the start of worker ${spec.id} was cancelled`);
      const dbChild = this.spawnLogged(this.opts.dbBin, dbArgs(this.opts.dbBin, dbDir, port, pgUrl), path.join(dir, 'db.log'), {});
      db = dbChild;
      this.priority.raise(spec.id, dbChild.pid);
      killSpawned = () => {
        worker.kill('SIGKILL');
        dbChild.kill('SIGKILL');
      };
      // A spawn failure emits 'error' and possibly no 'exit'.
      dbExited = new Promise<void>((resolve) => {
        dbChild.once('exit', () => resolve());
        dbChild.once('error', () => resolve());
      });
      void dbExited.then(() => (dbDead = true));
      await waitFor(
        // A dead database ends the wait at once; the checks below say why.
        async () => (dbDead || aborted || (await canConnect(port)) ? true : undefined),
        this.opts.dbStartTimeoutMs ?? 20_000,
        () => new Error(`the database of worker ${spec.id} did not listen on port ${port}`),
        50,
      );
      if (aborted) throw new Error(`the start of worker ${spec.id} was cancelled`);
      if (dbDead) throw new Error(`the database of worker ${spec.id} exited at start; see ${path.join(dir, 'db.log')}`);
      // FerretDB opens its PostgreSQL connections on its first request: one ping now, while the worker still
      // loads its code, takes that off the worker's first request (0.1-0.4 s under load; issue 16).
      void pingOnce(port, 5000);
    } catch (err) {
      worker.kill('SIGKILL');
      db?.kill('SIGKILL');
      this.priority.lower(spec.id);
      throw err;
    }
    const dbChild = db;
    const unit: Unit = {
      id: spec.id,
      pid,
      dir,
      expected: false,
      exited: Promise.resolve(),
      signalWorker: (sig) => worker.kill(sig),
      signalDb: (sig) => dbChild.kill(sig),
    };
    // Either half dying takes the other with it.
    void workerExited.then(() => {
      if (!dbDead) dbChild.kill(unit.expected ? 'SIGTERM' : 'SIGKILL');
    });
    void dbExited.then(() => {
      if (worker.exitCode === null && worker.signalCode === null) worker.kill('SIGKILL');
    });
    unit.exited = Promise.all([workerExited, dbExited]).then(([w]) => {
      this.priority.lower(spec.id);
      this.reportExit(unit, w.code, w.signal);
    });
    this.units.set(spec.id, unit);
    this.owned.add(spec.id);
    const file: UnitFile = { id: spec.id, workerPid: pid, dbPid: dbChild.pid ?? 0, port };
    writeFileAtomic(path.join(dir, UNIT_FILE), JSON.stringify(file));
    // Where a start went before the worker's own log says more: its storage made, then its database listening.
    this.opts.logger.info({ id: spec.id, workerPid: pid, storageMs, dbListeningMs: Date.now() - launchStarted - storageMs, ...(storage.spare ? { spareDatabase: true } : {}) }, 'worker process started');
    return { id: spec.id, pid };
  }

  /**
   * The worker's storage: `pgUrl` when its FerretDB keeps the data in PostgreSQL
   * (known before that database exists, so the worker can start meanwhile), and
   * `prepare()`, which makes it ready and resolves to the same URL. A worker with
   * data keeps its storage: a marker means PostgreSQL, SQLite files mean SQLite;
   * a new one gets the configured backend.
   */
  private storage(id: string, dbDir: string): { pgUrl: string | undefined; prepare: () => Promise<string | undefined>; spare?: true } {
    const existed = existsSync(dbDir);
    mkdirSync(dbDir, { recursive: true });
    const none = { pgUrl: undefined, prepare: () => Promise.resolve(undefined) };
    if (path.basename(this.opts.dbBin).startsWith('mongod')) return none;
    const marker = readMarker(dbDir);
    const hasSqlite = existed && readdirSync(dbDir).some((f) => f.endsWith('.sqlite'));
    if (!marker && (hasSqlite || this.opts.dbBackend !== 'postgresql')) return none;
    const postgres = this.postgres;
    if (!postgres) throw new Error(`worker ${id} keeps its data in PostgreSQL (${path.join(dbDir, PG_MARKER)}) but DBAAS_PG_URL is not set`);
    // A new worker takes a database made ahead when there is one (spare-databases.ts): nothing to wait for.
    const spare = marker ? undefined : this.spares?.take(id, dbDir);
    if (spare) return { pgUrl: spare.url, prepare: () => Promise.resolve(spare.url), spare: true };
    return { pgUrl: postgres.urlOf(id, dbDir), prepare: () => postgres.ensure(id, dbDir) };
  }

  private reportExit(unit: Unit, code: number | null, signal: string | null): void {
    this.units.delete(unit.id);
    removeOwnUnitFile(unit.dir, unit.pid);
    const info: ExitInfo = { id: unit.id, pid: unit.pid, code, signal, expected: unit.expected };
    this.opts.logger.info({ ...info, pid: undefined, workerPid: info.pid }, 'worker exited');
    for (const l of this.listeners) l(info);
  }

  async adopt(): Promise<WorkerHandle[]> {
    // Removed workers' databases an earlier run could not drop (pending-drops.ts): dropped now, retried from here on.
    this.drops?.resume();
    // Spares are made again after a detach() (this orchestrator leads again).
    this.spares?.reopen();
    const root = path.resolve(this.opts.dataDir, this.opts.namespace);
    if (!existsSync(root)) return [];
    for (const id of readdirSync(root)) {
      if (this.units.has(id)) continue;
      const dir = path.join(root, id);
      const file = readJsonFile<UnitFile>(path.join(dir, UNIT_FILE));
      if (!file) continue;
      const workerAlive = isOurProcess(file.workerPid, id);
      const dbAlive = isAlive(file.dbPid);
      if (!workerAlive) {
        // Half a worker is no worker: finish it off.
        if (dbAlive) signalPid(file.dbPid, 'SIGKILL');
        rmSync(path.join(dir, UNIT_FILE), { force: true });
        continue;
      }
      this.adoptUnit(file, dir);
    }
    return this.list();
  }

  /** Watches processes that are not our children: their exit is seen by polling. */
  private adoptUnit(file: UnitFile, dir: string): void {
    // Its start may have ended with the orchestrator that raised its priority (start-priority.ts).
    for (const pid of [file.workerPid, file.dbPid]) StartPriority.normal(pid);
    const unit: Unit = {
      id: file.id,
      pid: file.workerPid,
      dir,
      expected: false,
      exited: Promise.resolve(),
      signalWorker: (sig) => signalPid(file.workerPid, sig),
      signalDb: (sig) => signalPid(file.dbPid, sig),
    };
    unit.exited = new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const workerAlive = isAlive(file.workerPid);
        const dbAlive = isAlive(file.dbPid);
        if (workerAlive && dbAlive) return;
        if (workerAlive) signalPid(file.workerPid, 'SIGKILL');
        if (dbAlive) signalPid(file.dbPid, unit.expected ? 'SIGTERM' : 'SIGKILL');
        if (!isAlive(file.workerPid) && !isAlive(file.dbPid)) {
          clearInterval(timer);
          this.reportExit(unit, null, null);
          resolve();
        }
      }, 100);
    });
    this.units.set(file.id, unit);
    this.owned.add(file.id);
    this.opts.logger.info({ id: file.id, workerPid: file.workerPid }, 'adopted a running worker');
  }

  private spawnLogged(cmd: string, args: string[], logFile: string, env: Record<string, string>): ChildProcess {
    const fd = openSync(logFile, 'a');
    try {
      // A process group of its own: a Ctrl-C in the orchestrator's terminal must not reach the workers,
      // which outlive the orchestrator when it hands the cluster over to another one (or crashes).
      const child = spawn(cmd, args, { env, stdio: ['ignore', fd, fd], detached: true });
      child.on('error', (err) => this.opts.logger.error({ cmd, err: err.message }, 'spawn failed'));
      return child;
    } finally {
      closeSync(fd);
    }
  }

  async kill(id: string): Promise<boolean> {
    this.starting.get(id)?.abort();
    const unit = this.units.get(id);
    if (!unit) return this.owned.has(id);
    unit.expected = true;
    unit.signalWorker('SIGKILL');
    unit.signalDb('SIGKILL');
    await unit.exited;
    return true;
  }

  async stop(id: string, timeoutMs: number): Promise<void> {
    this.starting.get(id)?.abort();
    const unit = this.units.get(id);
    if (!unit) return;
    unit.expected = true;
    unit.signalWorker('SIGTERM');
    const timer = setTimeout(() => {
      unit.signalWorker('SIGKILL');
      unit.signalDb('SIGKILL');
    }, timeoutMs);
    await unit.exited;
    clearTimeout(timer);
  }

  /**
   * The worker's `db/` directory exists and, when it names a PostgreSQL database,
   * that database exists too (asked synchronously with psql; a server that does
   * not answer counts as "there": the data is not known to be lost).
   */
  hasData(id: string): boolean {
    const dbDir = path.join(this.unitDir(id), 'db');
    if (!existsSync(dbDir)) return false;
    const marker = readMarker(dbDir);
    if (!marker || !this.postgres) return true;
    return this.postgres.existsSync(marker) ?? true;
  }

  /**
   * Deletes the worker's directory, and first its PostgreSQL database if it has one; a drop that
   * fails (PostgreSQL down) is remembered and retried (pending-drops.ts), the directory goes anyway.
   */
  async remove(id: string): Promise<void> {
    if (this.units.has(id)) throw new Error(`worker ${id} is still running`);
    if (!this.owned.has(id)) throw new Error(`worker ${id} was not started or adopted here; its data is not ours to delete`);
    const marker = readMarker(path.join(this.unitDir(id), 'db'));
    if (marker) {
      if (!this.drops) throw new Error(`worker ${id}'s PostgreSQL database ${marker.database} cannot be dropped: DBAAS_PG_URL is not set`);
      await this.drops.drop(marker);
    }
    rmSync(this.unitDir(id), { recursive: true, force: true });
    this.owned.delete(id);
  }

  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    for (const pending of this.starting.values()) pending.abort();
    await Promise.all([...this.units.keys()].map((id) => this.stop(id, timeoutMs)));
    // A spare being made is finished (its file then names it for the next start or a teardown).
    await this.spares?.close();
    await this.drops?.pause();
  }

  /** Leaves the workers to another orchestrator: no more spare databases are made here until adopt(). */
  detach(): void {
    void this.spares?.close();
    void this.drops?.pause();
  }
}

/** Alive and really our worker, not a recycled pid. */
function isOurProcess(pid: number, id: string): boolean {
  if (!isAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`DBAAS_WORKER_ID=${id}`);
  } catch {
    return false;
  }
}

function signalPid(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

function dbArgs(bin: string, dir: string, port: number, pgUrl: string | undefined): string[] {
  if (path.basename(bin).startsWith('mongod')) {
    return ['--dbpath', dir, '--port', String(port), '--bind_ip', '127.0.0.1', '--quiet'];
  }
  return [
    ...(pgUrl ? ['--handler=postgresql', `--postgresql-url=${ferretdbUrl(pgUrl)}`] : ['--handler=sqlite', `--sqlite-url=file:${dir}/`]),
    `--listen-addr=127.0.0.1:${port}`,
    `--state-dir=${dir}`,
    '--debug-addr=-',
    '--telemetry=disable',
    '--log-level=warn',
  ];
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** The compiled worker: beside this build, or in dist/ of the repository when running from source. */
function findWorkerEntry(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const beside = path.resolve(here, '../../worker/main.js');
  if (existsSync(beside)) return bundledIfCurrent(beside);
  let dir = here;
  while (dir !== path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return bundledIfCurrent(path.join(dir, 'dist/worker/main.js'));
    dir = path.dirname(dir);
  }
  throw new Error('cannot find the compiled worker (run npm run build)');
}

/**
 * The worker bundled in one file with its V8 code cache, through its loader
 * (scripts/bundle-worker.mjs: a new worker loads its code in a third of the CPU),
 * when it was made from this `main.js` or a newer one; else
 * `main.js` itself. tsc rewrites every file it emits, so a build by tsc alone
 * (without `npm run build:service`) leaves an older bundle, which is not used.
 */
function bundledIfCurrent(main: string): string {
  const bundle = path.resolve(path.dirname(main), '../worker-bundle/main.cjs');
  try {
    return statSync(bundle).mtimeMs >= statSync(main).mtimeMs ? bundle : main;
  } catch {
    return main;
  }
}
