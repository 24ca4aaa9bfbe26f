/**
 * The faults the nemesis injects while the clients write. Each one returns a
 * sentence saying what it did; the caller then waits for recovery (readiness
 * and the worker list polled, no fixed sleeps where a condition can be polled).
 */
import type Docker from 'dockerode';
import { DbaasClient, DbaasClientError } from '../../client/dbaas-client.js';
import type { WorkerInfo } from '../../client/types.js';
import { restartZooKeeper, startBroker, stopBroker, unitOf, workerProcesses } from './infra.js';
import { OrchestratorProcess } from './orchestrator-process.js';
import { killContainer } from './containers.js';
import { pick } from './random.js';

export const FAULT_KINDS = [
  'crash-slave',
  'crash-master',
  'pause-master',
  'pause-slave',
  'kill-db',
  'restart-broker',
  'restart-zookeeper',
  'restart-orchestrator',
  'second-orchestrator',
  'kill-worker',
  'kill-database',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultContext {
  /** The orchestrator the clients talk to (restarted in place by restart-orchestrator). */
  primary: OrchestratorProcess;
  /** Control calls to the primary: never retried. */
  api: DbaasClient;
  namespace: string;
  dataDir: string;
  /** A free port for the second orchestrator. */
  secondPort: number;
  zkSessionTimeoutMs: number;
  /** How long ZooKeeper stays down in restart-zookeeper. */
  zkDownMs: number;
  /** Master + slaves when whole. */
  expectedWorkers: number;
  /**
   * How long the cluster must stay whole (same workers, same master) to count
   * as healed: a ZooKeeper session lost in a fault may expire a moment after
   * everything looked fine.
   */
  stableMs: number;
  random: () => number;
  log: (line: string) => void;
  /** Workers in containers (the docker and swarm runtimes): the engine they run on. */
  docker?: Docker;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` every `intervalMs` until it answers true or `timeoutMs` passes; answers whether it did. */
export async function pollUntil(probe: () => Promise<boolean> | boolean, timeoutMs: number, intervalMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await probe()) return true;
    } catch {
      // not yet
    }
    if (Date.now() >= deadline) return false;
    await sleep(intervalMs);
  }
}

export async function workersOf(api: DbaasClient): Promise<WorkerInfo[]> {
  return api.workers();
}

/**
 * Whole again: ready, the expected number of workers, one master, every one
 * serving, none of `gone` among them, and all that unchanged for
 * `ctx.stableMs`. Answers how it looked when it gave up.
 */
export async function waitHealthy(ctx: FaultContext, timeoutMs: number, gone: { pids?: number[]; ids?: string[] } = {}): Promise<{ ok: boolean; ms: number; last: string }> {
  const started = Date.now();
  let last = 'no answer';
  let shape = '';
  let wholeSince = 0;
  const ok = await pollUntil(async () => {
    const ready = await ctx.api.readiness();
    const ws = await workersOf(ctx.api);
    last = `ready ${ready.ready}, broker ${ready.broker}; workers ${ws.map((w) => `${w.id}/${w.role}/${w.state}/pid ${w.pid}/seq ${w.appliedSeq}`).join(', ') || 'none'}`;
    const whole =
      ready.ready &&
      ws.length === ctx.expectedWorkers &&
      ws.filter((w) => w.role === 'master' && w.state === 'master').length === 1 &&
      ws.every((w) => w.state === 'master' || w.state === 'slave') &&
      ws.every((w) => !gone.pids?.includes(w.pid) && !gone.ids?.includes(w.id));
    const now = ws.map((w) => `${w.id}/${w.pid}/${w.role}`).sort().join(',');
    if (!whole || now !== shape || wholeSince === 0) {
      shape = now;
      wholeSince = whole ? Date.now() : 0;
      return whole && ctx.stableMs <= 0;
    }
    return Date.now() - wholeSince >= ctx.stableMs;
  }, timeoutMs);
  if (!ok && !ctx.primary.running) last = `the orchestrator process has exited: ${ctx.primary.logTail(3).replace(/\s+/g, ' ').slice(0, 400)}`;
  return { ok, ms: Date.now() - started, last };
}

function signalPid(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

async function crash(ctx: FaultContext, role: 'master' | 'slave'): Promise<{ text: string; gone: { pids: number[] } }> {
  // A 409 (nothing to kill right now) is retried until a worker of that role serves.
  for (let tries = 0; ; tries++) {
    try {
      const pid = await ctx.api.crash(role);
      return { text: `POST /api/v1/crash/${role} killed pid ${pid}`, gone: { pids: [pid] } };
    } catch (err) {
      if (!(err instanceof DbaasClientError) || err.status !== 409 || tries >= 50) throw err;
      await sleep(200);
    }
  }
}

/**
 * SIGSTOP of a worker past the ZooKeeper session timeout: held until the
 * orchestrator has acted (a successor master / the slave dropped from the
 * list), at least 1.5 session timeouts, at most `maxMs`; then SIGCONT.
 */
async function pause(ctx: FaultContext, role: 'master' | 'slave'): Promise<{ text: string }> {
  const ws = await workersOf(ctx.api);
  const target = role === 'master' ? ws.find((w) => w.role === 'master') : pick(ws.filter((w) => w.role === 'slave'), ctx.random);
  if (!target) throw new Error(`no ${role} to pause (workers: ${JSON.stringify(ws)})`);
  const minMs = Math.round(ctx.zkSessionTimeoutMs * 1.5);
  const maxMs = Math.max(ctx.zkSessionTimeoutMs * 6, 20_000);
  const stoppedAt = Date.now();
  if (!signalPid(target.pid, 'SIGSTOP')) throw new Error(`cannot SIGSTOP pid ${target.pid}`);
  let acted = false;
  try {
    acted = await pollUntil(async () => {
      if (Date.now() - stoppedAt < minMs) return false;
      const now = await workersOf(ctx.api);
      return role === 'master'
        ? now.some((w) => w.role === 'master' && w.state === 'master' && w.id !== target.id)
        : !now.some((w) => w.id === target.id);
    }, maxMs);
  } finally {
    signalPid(target.pid, 'SIGCONT');
  }
  const heldMs = Date.now() - stoppedAt;
  const what = role === 'master' ? (acted ? 'a successor was promoted' : 'no successor was promoted') : acted ? 'it was dropped from the worker list' : 'it was still listed';
  // Whether it ends (killed as lost, or fencing itself) or comes back, the cluster must end whole: the caller waits for that.
  const ended = await pollUntil(() => !workerProcesses(ctx.namespace).has(target.pid), 5_000);
  return { text: `SIGSTOP ${role} ${target.id} pid ${target.pid} for ${heldMs} ms (${what}), SIGCONT; its process ${ended ? 'ended' : 'runs on'}` };
}

/**
 * SIGKILL of a worker's database process (a slave's first, then master and slave
 * in turn; for workers in containers, `docker kill` of its database container);
 * its worker must go and be replaced.
 */
async function killDb(ctx: FaultContext, nth: number): Promise<{ text: string; gone: { pids: number[] } }> {
  const role = nth % 2 === 0 ? 'slave' : 'master';
  const ws = await workersOf(ctx.api);
  const target = role === 'master' ? ws.find((w) => w.role === 'master') : pick(ws.filter((w) => w.role === 'slave'), ctx.random);
  if (!target) throw new Error(`no ${role} to kill the database of`);
  if (ctx.docker) {
    const name = await killContainer(ctx.docker, ctx.namespace, target.id, 'db');
    return { text: `docker kill of the database container ${name} of ${role} ${target.id} (worker pid ${target.pid})`, gone: { pids: [target.pid] } };
  }
  const unit = unitOf(ctx.dataDir, ctx.namespace, target.id);
  if (!unit?.dbPid) throw new Error(`no unit.json with a database pid for worker ${target.id}`);
  if (!signalPid(unit.dbPid, 'SIGKILL')) throw new Error(`cannot SIGKILL database pid ${unit.dbPid}`);
  // Its worker goes with it, and is replaced or (a slave) restarted in place on its data: a new pid either way.
  return { text: `SIGKILL of the database (pid ${unit.dbPid}) of ${role} ${target.id} (worker pid ${target.pid})`, gone: { pids: [target.pid] } };
}

/**
 * kube-monkey style: SIGKILL, from outside the service, of a random worker of
 * any role (its container, for workers in containers), or of a random worker's
 * database. The worker must go (a database takes its worker with it) and be
 * replaced or restarted, whatever the orchestrator chooses: a new pid either way.
 */
async function killFromOutside(ctx: FaultContext, part: 'worker' | 'db'): Promise<{ text: string; gone: { pids: number[] } }> {
  const target = pick(await workersOf(ctx.api), ctx.random);
  if (!target) throw new Error('no worker to kill');
  const whose = `${target.role} ${target.id} (worker pid ${target.pid})`;
  if (ctx.docker) {
    const name = await killContainer(ctx.docker, ctx.namespace, target.id, part);
    return { text: `docker kill of the ${part === 'db' ? 'database' : 'worker'} container ${name} of ${whose}`, gone: { pids: [target.pid] } };
  }
  const pid = part === 'worker' ? target.pid : unitOf(ctx.dataDir, ctx.namespace, target.id)?.dbPid;
  if (!pid || !signalPid(pid, 'SIGKILL')) throw new Error(`cannot SIGKILL the ${part} of ${whose}`);
  return { text: `SIGKILL of the ${part === 'db' ? `database (pid ${pid})` : 'worker'} of ${whose}`, gone: { pids: [target.pid] } };
}

async function restartBroker(ctx: FaultContext): Promise<string> {
  const started = Date.now();
  let sawOutage = false;
  try {
    await stopBroker();
    // The orchestrator notices the outage (readiness says broker: false): the fault took.
    sawOutage = await pollUntil(async () => {
      try {
        return !(await ctx.api.readiness()).broker;
      } catch {
        return false;
      }
    }, 15_000);
  } finally {
    // Whatever happened, the shared broker comes back.
    await startBroker();
  }
  return `rabbitmqctl stop_app, start_app: broker down ${Date.now() - started} ms${sawOutage ? ' (readiness reported it)' : ' (readiness never reported it)'}`;
}

async function restartZk(ctx: FaultContext): Promise<string> {
  const started = Date.now();
  await restartZooKeeper(ctx.zkDownMs);
  return `ZooKeeper stopped, down ${ctx.zkDownMs} ms, started again (${Date.now() - started} ms in all)`;
}

async function restartOrchestrator(ctx: FaultContext): Promise<string> {
  const pid = ctx.primary.pid;
  ctx.primary.signal('SIGKILL');
  await ctx.primary.waitExit(10_000);
  const started = Date.now();
  await ctx.primary.start(120_000);
  return `SIGKILL of the orchestrator (pid ${pid}), started again on the same namespace and data: ready after ${Date.now() - started} ms (pid ${ctx.primary.pid})`;
}

/**
 * A second orchestrator on the same namespace and data, on another port, then
 * SIGINT. Refusing to start, or following the first one, are both fine; either
 * way it must touch no worker. Its own log says what it did: a worker it
 * stopped is logged by its runtime as an expected exit, and every start,
 * promotion, retirement, kill or restart by its control loop is logged too.
 * (Workers of the first one that end meanwhile for other reasons, e.g. a
 * session lost in an earlier ZooKeeper restart, are only mentioned.)
 */
async function secondOrchestrator(ctx: FaultContext, nth: number): Promise<{ text: string; violations: string[] }> {
  const before = await workersOf(ctx.api);
  const second = new OrchestratorProcess({
    ...ctx.primary.opts,
    port: ctx.secondPort,
    logFile: ctx.primary.opts.logFile.replace(/(\.log)?$/, `.second-${nth + 1}.log`),
  });
  second.spawn();
  const outcome = await second.waitReadyOrExit(60_000);
  let text: string;
  if (outcome !== 'ready' && !second.running) {
    // Its own words, not the JSON log lines before them.
    const said = second.logTail(40).split('\n').filter((l) => l.startsWith('[dbaas]')).at(-1) ?? second.logTail(1);
    text = `second orchestrator (port ${ctx.secondPort}) refused to start (${outcome}): ${said.slice(0, 300)}`;
  } else {
    second.signal('SIGINT');
    const exit = await second.waitExit(30_000);
    text = `second orchestrator on port ${ctx.secondPort} ${outcome === 'ready' ? 'started and served' : outcome}, SIGINT: exited ${exit.killed ? 'only after SIGKILL' : `with code ${exit.code}`}`;
  }
  const violations: string[] = [];
  for (const line of second.logTail(100_000).split('\n')) {
    if (/"component":"runtime"/.test(line) && /"expected":true/.test(line) && /"msg":"worker exited"/.test(line)) {
      violations.push(`the second orchestrator stopped worker ${/"id":"([^"]+)"/.exec(line)?.[1] ?? '?'} (pid ${/"workerPid":(\d+)/.exec(line)?.[1] ?? '?'}), which the first one runs`);
    }
    const m = /"component":"cluster".*"msg":"((?:starting|promot|retir|kill|stopp|replac|restart)[^"]*)"/i.exec(line);
    if (m) violations.push(`the second orchestrator acted on the cluster: ${m[1]} ${/"id":"([^"]+)"/.exec(line)?.[1] ?? ''}`.trim());
  }
  const running = workerProcesses(ctx.namespace);
  const ended = before.filter((w) => running.get(w.pid) !== w.id);
  if (ended.length > 0) text += `; meanwhile ${ended.length} of the first one's ${before.length} workers ended (${ended.map((w) => `${w.role} ${w.id}`).join(', ')})`;
  if (violations.length > 0) text += `; ${violations.length} action(s) of the second one on the cluster`;
  return { text, violations };
}

/**
 * Injects one fault (`nth`: how many of its kind came before); answers what it
 * did and what must be gone before the cluster counts as whole.
 */
export async function inject(
  kind: FaultKind,
  ctx: FaultContext,
  nth: number,
): Promise<{ text: string; gone?: { pids?: number[]; ids?: string[] }; violations?: string[] }> {
  switch (kind) {
    case 'crash-slave':
      return crash(ctx, 'slave');
    case 'crash-master':
      return crash(ctx, 'master');
    case 'pause-master':
      return pause(ctx, 'master');
    case 'pause-slave':
      return pause(ctx, 'slave');
    case 'kill-db':
      return killDb(ctx, nth);
    case 'restart-broker':
      return { text: await restartBroker(ctx) };
    case 'restart-zookeeper':
      return { text: await restartZk(ctx) };
    case 'restart-orchestrator':
      return { text: await restartOrchestrator(ctx) };
    case 'second-orchestrator':
      return secondOrchestrator(ctx, nth);
    case 'kill-worker':
      return killFromOutside(ctx, 'worker');
    case 'kill-database':
      return killFromOutside(ctx, 'db');
  }
}

export function parseFaultKinds(list: string): FaultKind[] {
  if (list === 'all') return [...FAULT_KINDS];
  if (list === 'none' || list === '') return [];
  const kinds = list.split(',').map((k) => k.trim());
  const unknown = kinds.filter((k) => !(FAULT_KINDS as readonly string[]).includes(k));
  if (unknown.length > 0) throw new Error(`unknown fault kind(s) ${unknown.join(', ')}; known: ${FAULT_KINDS.join(', ')}, all, none`);
  return kinds as FaultKind[];
}
