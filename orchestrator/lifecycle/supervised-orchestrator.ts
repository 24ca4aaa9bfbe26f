/**
 * The orchestrator a lifecycle manager runs (`node dist/orchestrator/main.js`,
 * what `npm start` ran before the manager existed), as a supervised service.
 *
 * Its pid is kept in `.dbaas/lifecycle/orchestrator-<port>.pid`, so that a
 * manager started again (scripts/start.sh restarts a manager that died) adopts
 * the orchestrator still running instead of starting a second one on the same
 * port. It runs in a process group of its own: a Ctrl-C reaches it once,
 * through the manager, which forwards it.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import path from 'node:path';
import { NODE_ENV_VARS, NODE_FLAGS } from '../../common/node-flags.js';
import { writeFileAtomic } from '../../common/state-file.js';
import type { ServiceSpec } from './platform-services.js';
import { probeHttp, processAlive, readPidFile } from './probes.js';

const ENTRY = 'dist/orchestrator/main.js';

export interface SupervisedOrchestratorOptions {
  readonly root: string;
  readonly port: number;
  /** The environment it runs with (the manager's own). */
  readonly env: NodeJS.ProcessEnv;
  /** Where its output goes (appended); default: the manager's own stdout and stderr. */
  readonly logFile?: string;
  /** Called with its exit status when a process this manager spawned exits. */
  readonly onExit?: (pid: number, code: number | null, signal: NodeJS.Signals | null) => void;
}

export class SupervisedOrchestrator implements ServiceSpec {
  readonly kind = 'orchestrator' as const;
  readonly managed = true;
  readonly shared = false;
  readonly name: string;
  readonly address: string;
  private readonly pidFile: string;

  constructor(private readonly o: SupervisedOrchestratorOptions) {
    this.name = `orchestrator-${o.port}`;
    this.address = `http://127.0.0.1:${o.port}`;
    this.pidFile = path.join(o.root, `.dbaas/lifecycle/orchestrator-${o.port}.pid`);
  }

  pid(): number | undefined {
    const pid = readPidFile(this.pidFile);
    return this.alive(pid) ? pid : undefined;
  }

  alive(pid: number | undefined): boolean {
    return processAlive(pid, ENTRY);
  }

  probe(timeoutMs: number): Promise<string | undefined> {
    return probeHttp(`${this.address}/healthz`, timeoutMs);
  }

  async start(): Promise<void> {
    if (this.o.logFile !== undefined) mkdirSync(path.dirname(this.o.logFile), { recursive: true });
    const out = this.o.logFile === undefined ? 'inherit' : openSync(this.o.logFile, 'a');
    const child = spawn(process.execPath, [...NODE_FLAGS, ENTRY], { cwd: this.o.root, env: { ...NODE_ENV_VARS, ...this.o.env }, detached: true, stdio: out === 'inherit' ? out : ['ignore', out, out] });
    if (out !== 'inherit') closeSync(out);
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    const pid = child.pid!;
    mkdirSync(path.dirname(this.pidFile), { recursive: true });
    writeFileAtomic(this.pidFile, `${pid}\n`);
    child.on('exit', (code, signal) => this.o.onExit?.(pid, code, signal));
  }

  /** Sends `signal` to the running orchestrator and waits (up to `timeoutMs`) for it to exit; SIGKILL after that. */
  async stop(signal: NodeJS.Signals, timeoutMs = 60_000): Promise<void> {
    const pid = this.pid();
    if (pid !== undefined) {
      try {
        process.kill(pid, signal);
      } catch {
        // gone already
      }
      const deadline = Date.now() + timeoutMs;
      while (this.alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      if (this.alive(pid)) process.kill(pid, 'SIGKILL');
    }
    rmSync(this.pidFile, { force: true });
  }
}
