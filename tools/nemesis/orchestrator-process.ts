/**
 * An orchestrator the nemesis runs as a child process (`node dist/orchestrator/main.js`),
 * so that it can be SIGKILLed and started again on the same namespace and data
 * directory, or joined by a second one. Its output goes to a log file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { amqpUrl, repoRoot } from './infra.js';

export interface OrchestratorProcessOptions {
  /** The built entry point, `dist/orchestrator/main.js` of a checkout. */
  entry: string;
  port: number;
  namespace: string;
  dataDir: string;
  logFile: string;
  /** More DBAAS_* settings (they win over the ones made here). */
  env?: Record<string, string>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** `KEY=VALUE` lines of `.dbaas/runtime.env` (values as the set-up's `printf %q` wrote them). */
export function runtimeEnv(root = repoRoot()): Record<string, string> {
  const file = path.join(root, '.dbaas/runtime.env');
  const out: Record<string, string> = {};
  if (!existsSync(file)) return out;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (!m?.[1] || m[2] === undefined) continue;
    const raw = m[2];
    out[m[1]] = /^'.*'$/.test(raw) ? raw.slice(1, -1) : raw.replace(/\\(.)/g, '$1');
  }
  return out;
}

export class OrchestratorProcess {
  private child: ChildProcess | undefined;
  private exit: Promise<number | null> = Promise.resolve(null);
  private exitCode: number | null | undefined;
  private starts = 0;

  constructor(readonly opts: OrchestratorProcessOptions) {}

  get url(): string {
    return `http://127.0.0.1:${this.opts.port}`;
  }

  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  get running(): boolean {
    return this.child !== undefined && this.exitCode === undefined;
  }

  /** How many times it was started. */
  get startCount(): number {
    return this.starts;
  }

  /** Spawns it; does not wait. */
  spawn(): void {
    if (this.running) throw new Error('this orchestrator already runs');
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DBAAS_'))) as Record<string, string>;
    const fromSetup = runtimeEnv();
    const dbBin = process.env.DBAAS_DB_BIN ?? fromSetup['DBAAS_DB_BIN'];
    const env: Record<string, string> = {
      ...inherited,
      ...(dbBin ? { DBAAS_DB_BIN: dbBin } : {}),
      DBAAS_AMQP_URL: amqpUrl(),
      DBAAS_PORT: String(this.opts.port),
      DBAAS_HOST: '127.0.0.1',
      DBAAS_NAMESPACE: this.opts.namespace,
      DBAAS_DATA_DIR: this.opts.dataDir,
      DBAAS_INITIAL_SLAVES: '2',
      DBAAS_MIN_SLAVES: '2',
      DBAAS_MAX_SLAVES: '2',
      DBAAS_LOG_LEVEL: 'info',
      ...this.opts.env,
    };
    const fd = openSync(this.opts.logFile, 'a');
    try {
      this.child = spawn(process.execPath, [this.opts.entry], { env, stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    this.starts++;
    this.exitCode = undefined;
    const child = this.child;
    this.exit = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? -1 : null);
        resolve(this.exitCode);
      });
      child.once('error', () => {
        this.exitCode = -1;
        resolve(-1);
      });
    });
  }

  /**
   * Spawns it and waits until `/readyz` answers 200. Rejects when it exits first
   * (with the end of its log) or is not ready within `timeoutMs`.
   */
  async start(timeoutMs: number): Promise<void> {
    this.spawn();
    const outcome = await this.waitReadyOrExit(timeoutMs);
    if (outcome !== 'ready') throw new Error(`the orchestrator on port ${this.opts.port} ${outcome}:\n${this.logTail(8)}`);
  }

  /** 'ready', or why not ('exited with code N', 'was not ready within N ms'). */
  async waitReadyOrExit(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) return `exited with code ${this.exitCode}`;
      try {
        const res = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(2000) });
        await res.text();
        if (res.status === 200) return 'ready';
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    return `was not ready within ${timeoutMs} ms`;
  }

  /** Sends a signal (nothing when it is not running). */
  signal(sig: NodeJS.Signals): void {
    if (this.running) this.child?.kill(sig);
  }

  /** Waits for its exit; SIGKILLs it after `timeoutMs`. Answers the exit code (-1: killed by a signal). */
  async waitExit(timeoutMs: number): Promise<{ code: number | null; killed: boolean }> {
    if (!this.child) return { code: null, killed: false };
    const timer = sleep(timeoutMs).then(() => 'timeout' as const);
    const r = await Promise.race([this.exit, timer]);
    if (r !== 'timeout') return { code: r, killed: false };
    this.signal('SIGKILL');
    return { code: await this.exit, killed: true };
  }

  /** The last lines of its log. */
  logTail(lines: number): string {
    try {
      return readFileSync(this.opts.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }
}
