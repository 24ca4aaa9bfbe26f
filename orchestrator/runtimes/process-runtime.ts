/**
 * The `process` runtime: each worker and its own database server (FerretDB with
 * SQLite, or mongod) run as child processes of the orchestrator, with their data
 * under `<dataDir>/<namespace>/<workerId>/`.
 *
 * When either process of a pair dies, the other is killed too: a worker is never
 * left half alive, and the pair is reported dead once, when both are gone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../../common/backoff.js';
import type { Logger } from '../../common/logger.js';
import type { ExitInfo, ExitListener, Runtime, WorkerHandle, WorkerSpec } from './runtime.js';

export interface ProcessRuntimeOptions {
  dataDir: string;
  namespace: string;
  /** FerretDB or mongod binary. */
  dbBin: string;
  /** DBAAS_* settings every worker shares. */
  clusterEnv: Record<string, string>;
  logger: Logger;
  /** The compiled worker entry point; found next to this build by default. */
  workerEntry?: string;
  dbStartTimeoutMs?: number;
}

interface Unit {
  id: string;
  pid: number;
  worker: ChildProcess;
  db: ChildProcess;
  dir: string;
  expected: boolean;
  exited: Promise<void>;
}

export class ProcessRuntime implements Runtime {
  readonly kind = 'process';
  private readonly units = new Map<string, Unit>();
  private readonly listeners: ExitListener[] = [];
  private readonly workerEntry: string;

  constructor(private readonly opts: ProcessRuntimeOptions) {
    this.workerEntry = opts.workerEntry ?? findWorkerEntry();
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
    const dir = this.unitDir(spec.id);
    const dbDir = path.join(dir, 'db');
    mkdirSync(dbDir, { recursive: true });
    const port = await freePort();
    const db = this.spawnLogged(this.opts.dbBin, dbArgs(this.opts.dbBin, dbDir, port), path.join(dir, 'db.log'), {});
    // A spawn failure emits 'error' and possibly no 'exit'.
    const dbExited = new Promise<void>((resolve) => {
      db.once('exit', () => resolve());
      db.once('error', () => resolve());
    });
    let dbDead = false;
    void dbExited.then(() => (dbDead = true));
    try {
      await waitFor(
        async () => {
          if (dbDead) throw new Error('exited');
          return (await canConnect(port)) ? true : undefined;
        },
        this.opts.dbStartTimeoutMs ?? 20_000,
        () => new Error(`the database of worker ${spec.id} did not listen on port ${port}`),
        50,
      );
      if (dbDead) throw new Error(`the database of worker ${spec.id} exited at start; see ${path.join(dir, 'db.log')}`);
    } catch (err) {
      db.kill('SIGKILL');
      throw err;
    }

    const mongoUrl = `mongodb://127.0.0.1:${port}/`;
    const worker = this.spawnLogged(process.execPath, [this.workerEntry], path.join(dir, 'worker.log'), {
      ...this.opts.clusterEnv,
      DBAAS_WORKER_ID: spec.id,
      DBAAS_WORKER_ROLE: spec.role,
      DBAAS_WORKER_TERM: String(spec.term),
      DBAAS_WORKER_MONGO_URL: mongoUrl,
    });
    const pid = worker.pid;
    if (pid === undefined) {
      db.kill('SIGKILL');
      throw new Error(`could not start worker ${spec.id}`);
    }
    const workerExited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
      worker.once('exit', (code, signal) => resolve({ code, signal }));
      worker.once('error', () => resolve({ code: null, signal: null }));
    });
    const unit: Unit = { id: spec.id, pid, worker, db, dir, expected: false, exited: Promise.resolve() };
    // Either half dying takes the other with it.
    void workerExited.then(() => {
      if (!dbDead) db.kill(unit.expected ? 'SIGTERM' : 'SIGKILL');
    });
    void dbExited.then(() => {
      if (worker.exitCode === null && worker.signalCode === null) worker.kill('SIGKILL');
    });
    unit.exited = Promise.all([workerExited, dbExited]).then(([w]) => {
      this.units.delete(spec.id);
      const info: ExitInfo = { id: spec.id, pid, code: w.code, signal: w.signal, expected: unit.expected };
      this.opts.logger.info(info, 'worker exited');
      for (const l of this.listeners) l(info);
    });
    this.units.set(spec.id, unit);
    return { id: spec.id, pid };
  }

  private spawnLogged(cmd: string, args: string[], logFile: string, env: Record<string, string>): ChildProcess {
    const fd = openSync(logFile, 'a');
    try {
      const child = spawn(cmd, args, { env, stdio: ['ignore', fd, fd] });
      child.on('error', (err) => this.opts.logger.error({ cmd, err: err.message }, 'spawn failed'));
      return child;
    } finally {
      closeSync(fd);
    }
  }

  async kill(id: string): Promise<void> {
    const unit = this.units.get(id);
    if (!unit) return;
    unit.expected = true;
    unit.worker.kill('SIGKILL');
    unit.db.kill('SIGKILL');
    await unit.exited;
  }

  async stop(id: string, timeoutMs: number): Promise<void> {
    const unit = this.units.get(id);
    if (!unit) return;
    unit.expected = true;
    unit.worker.kill('SIGTERM');
    const timer = setTimeout(() => {
      unit.worker.kill('SIGKILL');
      unit.db.kill('SIGKILL');
    }, timeoutMs);
    await unit.exited;
    clearTimeout(timer);
  }

  async remove(id: string): Promise<void> {
    if (this.units.has(id)) throw new Error(`worker ${id} is still running`);
    rmSync(this.unitDir(id), { recursive: true, force: true });
  }

  async close(timeoutMs: number): Promise<void> {
    await Promise.all([...this.units.keys()].map((id) => this.stop(id, timeoutMs)));
  }
}

function dbArgs(bin: string, dir: string, port: number): string[] {
  if (path.basename(bin).startsWith('mongod')) {
    return ['--dbpath', dir, '--port', String(port), '--bind_ip', '127.0.0.1', '--quiet'];
  }
  return [
    '--handler=sqlite',
    `--sqlite-url=file:${dir}/`,
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

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/** The compiled worker: beside this build, or in dist/ of the repository when running from source. */
function findWorkerEntry(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const beside = path.resolve(here, '../../worker/main.js');
  if (existsSync(beside)) return beside;
  let dir = here;
  while (dir !== path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return path.join(dir, 'dist/worker/main.js');
    dir = path.dirname(dir);
  }
  throw new Error('cannot find the compiled worker (run npm run build)');
}
