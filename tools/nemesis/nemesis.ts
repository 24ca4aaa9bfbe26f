/**
 * A Jepsen-style run: start an own cluster (an orchestrator child process on a
 * fresh namespace and data directory), let concurrent clients write with
 * requestIds and retries, inject faults one after another (each followed by a
 * recovery wait based on readiness polling, and by acknowledged writes before
 * the next), heal, let every replica catch up, then check the history against
 * each replica's own database and the replicas against each other.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type Docker from 'dockerode';
import os from 'node:os';
import path from 'node:path';
import { DbaasClient } from '../../client/dbaas-client.js';
import type { WorkerInfo } from '../../client/types.js';
import { checkHistory, type CheckResult } from './checker.js';
import { inject, pollUntil, waitHealthy, workersOf, type FaultContext, type FaultKind } from './faults.js';
import { purgeNamespace, runProcesses, workerDirs, workerProcesses } from './infra.js';
import { OrchestratorProcess } from './orchestrator-process.js';
import { dumpReplicas } from './replicas.js';
import { seededRandom } from './random.js';
import { containerUrls } from './containers.js';
import { Readers, Workload, type ReadStats, type WorkloadStats } from './workload.js';
import type { OpRecord } from './history.js';

export interface NemesisOptions {
  /** Faults keep coming until this much time has passed (every selected kind at least once). */
  durationMs: number;
  clients: number;
  faults: FaultKind[];
  seed: number;
  port: number;
  secondPort: number;
  /** The orchestrator to run: `dist/orchestrator/main.js` of a checkout. */
  entry: string;
  /** Where data and logs go (a fresh temporary directory when absent). */
  workDir?: string;
  /** Keep the work directory even when every check passed. */
  keep: boolean;
  writeDeadlineMs: number;
  tryTimeoutMs: number;
  recoveryTimeoutMs: number;
  zkSessionTimeoutMs: number;
  zkDownMs: number;
  /** Acknowledged writes to wait for after a recovery before the next fault. */
  acksBetweenFaults: number;
  keysPerClient: number;
  thinkMs: number;
  /** More DBAAS_* settings for the orchestrator. */
  env?: Record<string, string>;
  log: (line: string) => void;
  /** Polled between faults: true stops injecting (an interrupt), the checks still run. */
  stopRequested?: () => boolean;
  /** Readers beside the writing clients (a mixed load; default none). */
  readers?: number;
  /** Workers in containers (DBAAS_RUNTIME docker or swarm): the engine, for container faults and replica dumps. */
  docker?: Docker;
  /** Runs after the orchestrator stopped and the namespace was purged (removing containers, services). */
  afterTeardown?: (namespace: string) => Promise<void>;
  /** The namespace's first word (default `nemesis`). */
  name?: string;
}

export interface FaultRecord {
  kind: FaultKind;
  /** ms since the run started */
  atMs: number;
  text: string;
  error?: string;
  recovered: boolean;
  recoveryMs: number;
  /** Writes acknowledged after the recovery, before the next fault. */
  acksAfter: number;
  /** What the fault did that the service promises never to do (a second orchestrator stopping the first one's workers). */
  violations: string[];
}

export interface NemesisReport {
  namespace: string;
  workDir: string;
  seed: number;
  /** When the run started (epoch ms; fault times are relative to it). */
  startedAt: number;
  durationMs: number;
  faults: FaultRecord[];
  checks: CheckResult[];
  stats: WorkloadStats;
  history: OpRecord[];
  /** What the readers did, when there were any. */
  reads?: ReadStats;
  /** Acknowledged-write latency in ms. */
  latency: { p50: number; p99: number; max: number; over5s: number };
  replicasChecked: number;
  ok: boolean;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

function check(name: string, problems: string[], counts: string): CheckResult {
  return { name, passed: problems.length === 0, counts, problems };
}

/** Faults in rounds: each round has every selected kind once, in a seeded order. */
function* schedule(kinds: readonly FaultKind[], random: () => number): Generator<FaultKind> {
  if (kinds.length === 0) return;
  for (;;) {
    const round = [...kinds];
    for (let i = round.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [round[i], round[j]] = [round[j] as FaultKind, round[i] as FaultKind];
    }
    yield* round;
  }
}

export async function runNemesis(o: NemesisOptions): Promise<NemesisReport> {
  const t0 = Date.now();
  const log = (line: string): void => o.log(`[nemesis +${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}`);
  const workDir = o.workDir ?? mkdtempSync(path.join(os.tmpdir(), 'dbaas-nemesis-'));
  const dataDir = path.join(workDir, 'data');
  mkdirSync(dataDir, { recursive: true });
  const namespace = `${o.name ?? 'nemesis'}-${o.seed.toString(36)}-${Date.now().toString(36)}`;
  const primary = new OrchestratorProcess({
    entry: o.entry,
    port: o.port,
    namespace,
    dataDir,
    logFile: path.join(workDir, 'orchestrator.log'),
    env: { DBAAS_ZK_SESSION_TIMEOUT_MS: String(o.zkSessionTimeoutMs), ...o.env },
  });
  const api = new DbaasClient({ url: primary.url, timeoutMs: 5000, retry: { attempts: 1 } });
  const random = seededRandom(o.seed);
  const ctx: FaultContext = {
    primary,
    api,
    namespace,
    dataDir,
    secondPort: o.secondPort,
    zkSessionTimeoutMs: o.zkSessionTimeoutMs,
    zkDownMs: o.zkDownMs,
    expectedWorkers: 3,
    stableMs: o.zkSessionTimeoutMs * 2,
    random,
    log,
    ...(o.docker ? { docker: o.docker } : {}),
  };
  const faults: FaultRecord[] = [];
  const extraChecks: CheckResult[] = [];
  let checks: CheckResult[] = [];
  let replicasChecked = 0;
  const workload = new Workload({
    url: primary.url,
    clients: o.clients,
    seed: o.seed,
    writeDeadlineMs: o.writeDeadlineMs,
    tryTimeoutMs: o.tryTimeoutMs,
    thinkMs: o.thinkMs,
    keysPerClient: o.keysPerClient,
  });
  const readers = new Readers({ url: primary.url, readers: o.readers ?? 0, seed: o.seed, tryTimeoutMs: o.tryTimeoutMs });
  const acked = (): number => workload.history.filter((r) => r.outcome === 'ok').length;
  log(`namespace ${namespace}, work directory ${workDir}, seed ${o.seed}, ${o.clients} clients, faults ${o.faults.join(', ') || 'none'}`);

  try {
    await primary.start(120_000);
    const first = await waitHealthy(ctx, o.recoveryTimeoutMs);
    if (!first.ok) throw new Error(`the new cluster did not become whole: ${first.last}`);
    log(`cluster ready on ${primary.url} (orchestrator pid ${primary.pid})`);
    workload.start();
    readers.start();
    const baseline = await pollUntil(() => acked() >= o.acksBetweenFaults, o.recoveryTimeoutMs);
    if (!baseline) throw new Error(`no ${o.acksBetweenFaults} acknowledged writes on the fresh cluster: ${JSON.stringify(workload.stats())}`);

    const nth = new Map<FaultKind, number>();
    const order = schedule(o.faults, random);
    let sinceRound = 0;
    for (const kind of order) {
      // Every kind once per round; a new round only while time is left.
      if (sinceRound === 0 && faults.length > 0 && Date.now() - t0 >= o.durationMs) break;
      if (o.stopRequested?.()) break;
      sinceRound = (sinceRound + 1) % o.faults.length;
      const n = nth.get(kind) ?? 0;
      nth.set(kind, n + 1);
      const rec: FaultRecord = { kind, atMs: Date.now() - t0, text: '', recovered: false, recoveryMs: 0, acksAfter: 0, violations: [] };
      faults.push(rec);
      log(`fault ${faults.length}: ${kind} …`);
      let gone: { pids?: number[]; ids?: string[] } = {};
      const injectedAt = Date.now();
      try {
        const r = await inject(kind, ctx, n);
        rec.text = r.text;
        gone = r.gone ?? {};
        rec.violations = r.violations ?? [];
      } catch (err) {
        rec.error = (err as Error).message;
        rec.text = `failed to inject: ${rec.error}`;
      }
      const health = await waitHealthy(ctx, o.recoveryTimeoutMs, gone);
      rec.recovered = health.ok;
      rec.recoveryMs = Date.now() - injectedAt;
      log(`  ${rec.text}`);
      log(`  ${health.ok ? `whole again ${rec.recoveryMs} ms after the injection began` : `NOT whole within ${o.recoveryTimeoutMs} ms: ${health.last}`}`);
      if (!health.ok) break;
      const before = acked();
      await pollUntil(() => acked() - before >= o.acksBetweenFaults, o.recoveryTimeoutMs);
      rec.acksAfter = acked() - before;
      const s = workload.stats();
      log(`  ${rec.acksAfter} writes acknowledged after it; so far ${s.ok} acknowledged, ${s.unknown} unknown, ${s.refused} refused, ${s.retries} retries`);
    }

    // Heal and settle.
    const healed = await waitHealthy(ctx, o.recoveryTimeoutMs);
    log(`faults over; stopping the clients (cluster ${healed.ok ? 'whole' : `not whole: ${healed.last}`})`);
    await Promise.all([workload.stop(), readers.stop()]);
    let final: WorkerInfo[] = [];
    let masterSeq = 0;
    const settled = await pollUntil(async () => {
      final = await workersOf(api);
      const master = final.find((w) => w.role === 'master');
      masterSeq = master?.appliedSeq ?? 0;
      return master !== undefined && final.length === ctx.expectedWorkers && final.every((w) => (w.state === 'slave' || w.state === 'master') && w.appliedSeq === masterSeq);
    }, o.recoveryTimeoutMs);
    extraChecks.push(
      check(
        'cluster settled: every worker at the master seq',
        settled ? [] : [`not settled within ${o.recoveryTimeoutMs} ms: ${final.map((w) => `${w.id} ${w.role}/${w.state} seq ${w.appliedSeq}`).join('; ')}`],
        `${final.length} workers at seq ${masterSeq}`,
      ),
    );
    log(`settled: ${settled}; workers ${final.map((w) => `${w.id} ${w.role} seq ${w.appliedSeq}`).join(', ')}`);

    // No worker process of this namespace the orchestrator does not list (a paused master that never fenced itself, an orphan).
    const listed = new Set(final.map((w) => w.id));
    let strays: Array<[number, string]> = [];
    await pollUntil(() => {
      strays = [...workerProcesses(namespace)].filter(([, id]) => !listed.has(id));
      return strays.length === 0;
    }, 10_000);
    extraChecks.push(check('no stray worker processes', strays.map(([pid, id]) => `worker ${id} pid ${pid} runs but is not in the worker list`), `${listed.size} listed`));

    const docker = o.docker;
    const { replicas, problems: dumpProblems } = await dumpReplicas(final, dataDir, namespace, docker ? (w) => containerUrls(docker, namespace, w.id) : undefined);
    replicasChecked = replicas.length;
    extraChecks.push(check('every replica readable', dumpProblems, `${replicas.length} of ${final.length} replicas`));
    extraChecks.push(await verifyThroughApi(primary.url));
    const recovered = faults.filter((f) => f.recovered).length;
    extraChecks.push(
      check(
        'cluster whole again after every fault',
        faults.filter((f) => !f.recovered || f.error).map((f) => `${f.kind} at +${(f.atMs / 1000).toFixed(1)}s: ${f.error ?? 'did not recover'}`),
        `${recovered} of ${faults.length} faults`,
      ),
    );
    const seconds = faults.filter((f) => f.kind === 'second-orchestrator');
    if (seconds.length > 0) {
      extraChecks.push(check('a second orchestrator touched no worker', seconds.flatMap((f) => f.violations), `${seconds.length} second orchestrator(s)`));
    }
    extraChecks.push(
      check(
        'writes acknowledged after every fault',
        faults.filter((f) => f.recovered && f.acksAfter === 0).map((f) => `${f.kind} at +${(f.atMs / 1000).toFixed(1)}s: no write acknowledged within ${o.recoveryTimeoutMs} ms after recovery`),
        `${faults.length} faults`,
      ),
    );
    checks = [...extraChecks, ...checkHistory(workload.history, replicas)];
  } catch (err) {
    log(`run aborted: ${(err as Error).message}`);
    checks = [...extraChecks, check('run completed', [(err as Error).message], '')];
    await Promise.all([workload.stop(), readers.stop()]);
  } finally {
    await teardown(primary, namespace, dataDir, log);
    await o.afterTeardown?.(namespace).catch((err: unknown) => log(`could not remove the namespace's containers: ${(err as Error).message}`));
  }

  const latencies = workload.history
    .filter((r) => r.outcome === 'ok')
    .map((r) => r.endMs - r.startMs)
    .sort((a, b) => a - b);
  const ok = checks.every((c) => c.passed);
  if (ok && !o.keep && !o.workDir) rmSync(workDir, { recursive: true, force: true });
  else log(`data and logs kept in ${workDir}`);
  return {
    namespace,
    workDir,
    seed: o.seed,
    startedAt: t0,
    durationMs: Date.now() - t0,
    faults,
    checks,
    stats: workload.stats(),
    history: workload.history,
    ...(o.readers ? { reads: readers.stats() } : {}),
    latency: { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), max: latencies.at(-1) ?? NaN, over5s: latencies.filter((l) => l > 5000).length },
    replicasChecked,
    ok,
  };
}

/**
 * Replica checksums through the service (`GET /api/v1/verify`): passes when it
 * reports every replica equal at one seq, and no verify during the run (the
 * periodic ones, in the audit log) found a divergent replica. Skipped (passes,
 * says so) when the server has no such route.
 */
async function verifyThroughApi(url: string): Promise<CheckResult> {
  const name = 'replicas equal (GET /api/v1/verify)';
  try {
    const res = await fetch(`${url}/api/v1/verify`, { signal: AbortSignal.timeout(60_000) });
    const body = (await res.json().catch(() => undefined)) as
      | { result?: string; seq?: number; replicas?: Array<{ id: string; role: string; status: string; tables?: string[]; reason?: string }> }
      | undefined;
    if (res.status === 404) return check(name, [], 'skipped: this server has no /api/v1/verify');
    const problems: string[] = [];
    if (res.status !== 200 || body?.result !== 'equal') {
      problems.push(`answered ${res.status}, result ${body?.result}: ${JSON.stringify(body?.replicas ?? body).slice(0, 600)}`);
    }
    // Verifies that ran during the faults (periodic): none may have found a divergent replica.
    const events = (await (await fetch(`${url}/api/v1/events`, { signal: AbortSignal.timeout(10_000) })).json()) as Array<{ kind: string; reason: string; details?: { result?: string } }>;
    const verifies = Array.isArray(events) ? events.filter((e) => e.kind === 'verify') : [];
    for (const e of verifies) if (e.details?.result === 'divergent') problems.push(`during the run: ${e.reason}`);
    return check(name, problems, `${body?.replicas?.length ?? '?'} replicas at seq ${body?.seq ?? '?'}: ${body?.result}; ${verifies.length} verifies in the audit log`);
  } catch (err) {
    return check(name, [`no answer: ${(err as Error).message}`], '');
  }
}

/** Stops the orchestrator (SIGINT), then ends whatever of the run still runs and removes its queues and znodes. */
async function teardown(primary: OrchestratorProcess, namespace: string, dataDir: string, log: (line: string) => void): Promise<void> {
  primary.signal('SIGINT');
  const exit = await primary.waitExit(60_000);
  if (exit.killed) log('the orchestrator did not stop within 60 s of SIGINT: killed');
  const left = runProcesses(namespace, dataDir);
  for (const pid of left) {
    try {
      process.kill(pid, 'SIGCONT');
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  if (left.length > 0) log(`killed ${left.length} process(es) the orchestrator left: ${left.join(', ')}`);
  await purgeNamespace(namespace, workerDirs(dataDir, namespace)).catch((err: unknown) => log(`could not purge the namespace: ${(err as Error).message}`));
}
