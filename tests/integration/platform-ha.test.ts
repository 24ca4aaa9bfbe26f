/**
 * DBAAS_PLATFORM=ha on the real ensemble and cluster (issue 18): the platform is
 * started through scripts/platform-ha.sh (idempotent: a running one is reused)
 * and supervised by a lifecycle manager (orchestrator/lifecycle/, in this test's
 * process) that also runs two orchestrators, P and Q, as processes on one
 * namespace (the test itself is no orchestrator: it reads the cluster from
 * ZooKeeper and asks P or Q over HTTP). Under a writer (the typed client with
 * both orchestrators' URLs) this kills, DBAAS_HA_KILLS times each (default 1),
 * one kind per test: the RabbitMQ node leading the write queue; a second
 * RabbitMQ node after the first came back (not the one killed last: the
 * master worker's own broker node when it can be, else not the write queue's
 * leader); the node of P's own broker connection; the ZooKeeper leader; a ZooKeeper follower after the first came back; a SIGSTOPped
 * (wedged) follower (once); the orchestrator leading of the two (the client's
 * first address). Each time: every acknowledged write is on every replica
 * exactly once, the replicas verify equal, the master's pid is unchanged and no
 * failover is audited (the platform fault alone causes none), the killed
 * service is restarted by the lifecycle manager (not by the test) and its
 * restart audited in the namespace's shared audit log; the longest pause between
 * two acknowledgements from the kill on must be under 2 s. Every pause, with the
 * load average at the kill, goes to $DBAAS_TEST_LOG_DIR/platform-ha/pauses.json
 * and a min/median/p90/max table to pauses.md (default under the temp
 * directory; docs/FAILOVER.md).
 *
 * In `npm test` (DBAAS_HA_TEST unset): one kill of five kinds, each a
 * different client path: the write queue's leader node (the quorum queues
 * elect, the master sets up again), orchestrator P's own broker node (the
 * orchestrator reconnects), the ZooKeeper leader (the ensemble elects), a
 * wedged follower (the clients on it must leave a server that answers nothing)
 * and the leading orchestrator (the manager restarts it, the client moves to
 * the other); about 2 min with the platform started from nothing and stopped
 * at the end. Safety, recovery and the restart are asserted there; the 2 s
 * goal is a latency figure, asserted by the opt-in distribution run, not in a
 * suite that runs under any load. `npm run test:ha` (DBAAS_HA_TEST=1) adds the
 * second RabbitMQ node (the master's own broker node) and a ZooKeeper follower
 * killed after the first came back, and asserts the 2 s goal for every kind;
 * `DBAAS_HA_KILLS=10 npm run test:ha` is the 10-kill run of docs/FAILOVER.md,
 * `-- -t 'ZooKeeper leader'` picks kinds. DBAAS_HA_TEST=0 skips the file.
 *
 * The platform is this checkout's (scripts/platform-ha.sh: .dbaas/ha/, ports
 * 2281-2283 and 5682-5684). When none of it was running (or what runs was
 * left by a test run that is gone), this file started it and stops it at the
 * end; the integration project's global teardown stops it too if this file's
 * process died first (a marker in .dbaas/ha/ names the vitest run). A platform
 * someone started by hand is reused and left running.
 */
import type { GetMessage } from 'amqplib';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DbaasClient } from '../../client/index.js';
import { connectToAny } from '../../common/amqp-connection.js';
import { createLogger } from '../../common/logger.js';
import { encode, WIRE_VERSION, type WriteEnvelope } from '../../common/messages.js';
import { clusterNames } from '../../common/names.js';
import { assertTopology, WRITE_DELIVERY_LIMIT } from '../../common/topology.js';
import { removeTree, withZkSession } from '../../coordination/namespace.js';
import { ClusterView } from '../../coordination/cluster-view.js';
import { zkPaths } from '../../coordination/paths.js';
import { ZkSession } from '../../coordination/zk-session.js';
import { LifecycleManager } from '../../orchestrator/lifecycle/lifecycle-manager.js';
import { haPlatform } from '../../orchestrator/lifecycle/platform-services.js';
import { SupervisedOrchestrator } from '../../orchestrator/lifecycle/supervised-orchestrator.js';
import { dropWorkerDatabases } from '../../orchestrator/runtimes/postgresql-databases.js';
import { runProcesses } from '../../tools/nemesis/infra.js';
import { platformHa as platform, startHaPlatform, stopHaPlatformOf } from './ha-platform.js';
import { eventually } from './harness.js';
import { freePort } from './infra.js';
import { dumpAllReplicas } from './replicas.js';

const root = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);
/** `all`: `npm run test:ha` (DBAAS_HA_TEST=1); `default`: the kinds of `npm test`; `off`: DBAAS_HA_TEST=0. */
const mode = process.env.DBAAS_HA_TEST === '1' ? 'all' : process.env.DBAAS_HA_TEST === '0' ? 'off' : 'default';
const enabled = mode !== 'off';
/** A kind that only `npm run test:ha` runs. */
const itAll = mode === 'all' ? it : it.skip;
/** Kills of each kind (DBAAS_HA_KILLS, default 1; docs/FAILOVER.md reports a run with 10). */
const KILLS = Math.max(1, Number(process.env.DBAAS_HA_KILLS ?? 1) || 1);
const TABLE = 'ha_writes';

/** The vitest process of this run (this file runs in its fork): the owner the HA platform's marker names. */
const runPid = process.ppid;
/** Whether this run started the platform (and so stops it at the end). */
let ownPlatform = false;

function parseEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^(DBAAS_[A-Z_]+)=(.*)$/.exec(line.trim());
    if (m?.[1] && m[2] !== undefined) out[m[1]] = m[2];
  }
  return out;
}

const haDir = path.join(root, '.dbaas/ha');
/** A RabbitMQ node's OS pid, as the script finds it (pid file, else the beam process named after the node). */
async function rabbitPid(n: number): Promise<number> {
  const status = await platform('status').catch((err: { stdout?: string }) => err.stdout ?? '');
  for (const line of status.split('\n')) {
    const [kind, name, , pid] = line.split('\t');
    if (kind === 'rabbitmq' && name?.startsWith(`dbaas-ha-${n}@`) && /^\d+$/.test(pid ?? '')) return Number(pid);
  }
  throw new Error(`no pid for RabbitMQ node ${n} in:\n${status}`);
}
const zkPid = (n: number): number => Number(readFileSync(path.join(haDir, `zookeeper/${n}/zookeeper.pid`), 'utf8').trim());

/** The RabbitMQ node (1-3) leading a quorum queue, from rabbitmqctl on a live node. */
async function queueLeader(queue: string): Promise<{ node: number; type: string }> {
  for (const n of [1, 2, 3]) {
    try {
      const { stdout } = await run('rabbitmqctl', ['-n', `dbaas-ha-${n}@${await shortHost()}`, '-q', 'list_queues', 'name', 'type', 'leader', '--formatter', 'json'], { timeout: 30_000 });
      const rows = JSON.parse(stdout) as Array<{ name: string; type: string; leader: string }>;
      const row = rows.find((r) => r.name === queue);
      if (!row) continue;
      const m = /^dbaas-ha-(\d)@/.exec(row.leader);
      return { node: Number(m?.[1] ?? 0), type: row.type };
    } catch {
      // that node is down: ask the next
    }
  }
  throw new Error(`no node knows ${queue}`);
}

/** Every queue of the namespace with its type. */
async function queueTypes(namespace: string): Promise<Map<string, string>> {
  const { stdout } = await run('rabbitmqctl', ['-n', `dbaas-ha-1@${await shortHost()}`, '-q', 'list_queues', 'name', 'type', '--formatter', 'json'], { timeout: 30_000 });
  const rows = JSON.parse(stdout) as Array<{ name: string; type: string }>;
  return new Map(rows.filter((r) => r.name.startsWith(`${namespace}.`)).map((r) => [r.name, r.type]));
}

let host: string | undefined;
async function shortHost(): Promise<string> {
  host ??= (await run('hostname', ['-s'])).stdout.trim();
  return host;
}

/** The ZooKeeper server (1-3) that leads the ensemble now. */
async function zkLeader(): Promise<number> {
  const status = await platform('status').catch((err: { stdout?: string }) => err.stdout ?? '');
  for (const line of status.split('\n')) {
    const [kind, name, , , state] = line.split('\t');
    if (kind === 'zookeeper' && state === 'leader') return Number(name?.replace('zk-', ''));
  }
  throw new Error(`no ZooKeeper leader in:\n${status}`);
}

interface Writer {
  acked: Array<{ key: string; at: number }>;
  failed: string[];
  stop(): Promise<void>;
}

/** One client writing inserts one after another, each with a unique key, recording when each was acknowledged. */
function startWriter(client: DbaasClient, tag: string): Writer {
  const acked: Writer['acked'] = [];
  const failed: string[] = [];
  let stopped = false;
  const loop = (async () => {
    for (let i = 0; !stopped; i++) {
      const key = `${tag}-${i}`;
      try {
        await client.insert(TABLE, { key, tag, i });
        acked.push({ key, at: performance.now() });
      } catch (err) {
        failed.push(`${key}: ${(err as Error).message}`);
      }
    }
  })();
  return {
    acked,
    failed,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

/** The longest time without an acknowledgement from the kill on (the kill itself counts as the start of the first pause), and when it ended. */
function longestPause(acked: Writer['acked'], killedAt: number, windowMs = 15_000): { ms: number; from: number; to: number } {
  let prev = killedAt;
  let longest = { ms: 0, from: killedAt, to: killedAt };
  for (const { at } of acked) {
    if (at <= killedAt) continue;
    if (at > killedAt + windowMs) break;
    if (at - prev > longest.ms) longest = { ms: at - prev, from: prev, to: at };
    prev = at;
  }
  return longest;
}

/** Every retry the writers' clients made (time, attempt, what it got), to tell what a long pause waited for. */
const retries: Array<{ at: number; attempt: number; delayMs: number; code: string; status: number }> = [];

let env: Record<string, string> = {};
let manager: LifecycleManager | undefined;
let managerZk: ZkSession | undefined;
/** The namespace's workers as ZooKeeper has them (the replica checks read it; the test runs no orchestrator). */
let view: ClusterView | undefined;
/** The two orchestrators the lifecycle manager runs: P is the client's first address unless a kill says otherwise. */
let orchestratorP: SupervisedOrchestrator | undefined;
let orchestratorQ: SupervisedOrchestrator | undefined;
/** Per kind: the longest pause of each kill (ms) and the 1-minute load average at the kill. */
const pauses: Record<string, { ms: number[]; load1: number[] }> = {};
const namespace = `t-ha-${process.pid}-${Date.now().toString(36)}`;
function appendLog(name: string, line: string): void {
  mkdirSync(keep, { recursive: true });
  writeFileSync(path.join(keep, name), line, { flag: 'a' });
}

/** Made in beforeAll (the file is loaded, and skipped, by the default suite too). */
let dataDir = '';
// Not under .dbaas/test-logs unless asked: another run's global set-up empties that directory.
const keep = path.join(process.env.DBAAS_TEST_LOG_DIR ?? path.join(os.tmpdir(), 'dbaas-test-logs'), 'platform-ha');

const orchestrators = (): SupervisedOrchestrator[] => [orchestratorP!, orchestratorQ!];

/**
 * One API call to the first of P and Q that answers it with anything but 503
 * (one of them may be dead or starting after a kill); the last answer when none does.
 */
async function api(pathname: string): Promise<{ status: number; body: any }> {
  let last: { status: number; body: any } | undefined;
  let error: unknown;
  for (const o of orchestrators()) {
    try {
      const res = await fetch(`${o.address}${pathname}`, { signal: AbortSignal.timeout(60_000) });
      last = { status: res.status, body: await res.json().catch(() => undefined) };
      if (res.status !== 503) return last;
    } catch (err) {
      error = err;
    }
  }
  if (last) return last;
  throw new Error(`neither orchestrator answered ${pathname}: ${(error as Error | undefined)?.message ?? ''}`);
}

async function masterPid(): Promise<number> {
  const workers = (await api('/api/v1/workers')).body as Array<{ role: string; pid: number }>;
  const master = workers.find((w) => w.role === 'master');
  if (!master) throw new Error('no master');
  return master.pid;
}

/** The namespace's shared audit log (every orchestrator's events, and the lifecycle manager's). */
async function events(): Promise<Array<{ kind: string; reason: string }>> {
  const res = await api('/api/v1/events');
  expect(res.status).toBe(200);
  return res.body as Array<{ kind: string; reason: string }>;
}

/** Control actions a lost worker would cause (detected, promoted, replaced), as `kind: reason`. A platform fault alone must cause none. */
const failovers = async (): Promise<string[]> =>
  (await events()).filter((e) => e.kind === 'detection' || e.kind === 'promotion' || e.kind === 'replacement').map((e) => `${e.kind}: ${e.reason}`);

/** One service as the lifecycle manager sees it. */
function service(name: string): { state: string; restarts: number; pid?: number } {
  const s = manager!.view().find((x) => x.name === name);
  if (!s) throw new Error(`the lifecycle manager does not watch ${name}`);
  return s;
}

/** The orchestrator of the two that leads now (from the leader znode, as either answers it). */
async function leadingOrchestrator(): Promise<SupervisedOrchestrator> {
  const pid = ((await api('/api/v1/orchestrators')).body as { leader: { pid: number } | null }).leader?.pid;
  const leader = orchestrators().find((o) => service(o.name).pid === pid);
  if (!leader) throw new Error(`the leader (pid ${pid}) is neither P nor Q`);
  return leader;
}

/** A client whose first address is `first` (the other orchestrator second), recording its retries. */
function clientVia(first: SupervisedOrchestrator): DbaasClient {
  const urls = [first, ...orchestrators().filter((o) => o !== first)].map((o) => o.address);
  return new DbaasClient({
    url: urls.join(','),
    timeoutMs: 3000,
    retry: { attempts: 40, baseDelayMs: 50, maxDelayMs: 500 },
    onRetry: ({ attempt, delayMs, error }) => retries.push({ at: performance.now(), attempt, delayMs, code: error.code, status: error.status }),
  });
}

/** The RabbitMQ nodes (1-3) a process holds AMQP connections to: its sockets' peers among 5682-5684. */
const amqpNodesOf = (pid: number): number[] => serversOf(pid, 5682);
/** The ZooKeeper servers (1-3) a process holds sessions' connections to: its sockets' peers among 2281-2283. */
const zkServersOf = (pid: number): number[] => serversOf(pid, 2281);

/** The servers (1-3) a process holds established TCP connections to: its sockets' peers among first..first+2. */
function serversOf(pid: number, first: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m?.[1]) inodes.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  const nodes: number[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '01' || !inodes.has(f[9] ?? '')) continue;
      const port = parseInt(f[2]?.split(':')[1] ?? '', 16);
      if (port >= first && port <= first + 2) nodes.push(port - first + 1);
    }
  }
  return nodes;
}

/** Every acknowledged key is on every replica exactly once, nothing unasked is there, and verify says equal. */
async function checkReplicas(acked: Writer['acked'], tag: string): Promise<void> {
  const dumps = await dumpAllReplicas({ view: view! }, 60_000, 3);
  expect(dumps.size).toBe(3);
  const want = new Set(acked.map((a) => a.key));
  for (const [id, dump] of dumps) {
    const counts = new Map<string, number>();
    for (const doc of dump[TABLE] ?? []) {
      const d = doc as unknown as { key: string; tag: string };
      if (d.tag === tag) counts.set(d.key, (counts.get(d.key) ?? 0) + 1);
    }
    const lost = [...want].filter((k) => !counts.has(k));
    const doubled = [...counts].filter(([, n]) => n > 1).map(([k]) => k);
    expect(lost, `${id}: acknowledged writes missing`).toEqual([]);
    expect(doubled, `${id}: writes applied twice`).toEqual([]);
    // At most the one write in flight when the writer stopped can be there unacknowledged.
    expect(counts.size - want.size, `${id}: unacknowledged writes present`).toBeLessThanOrEqual(1);
  }
  const verify = await api('/api/v1/verify');
  expect(verify.status).toBe(200);
  const report = verify.body;
  expect(report.result).toBe('equal');
  expect((report.replicas as Array<{ status: string }>).map((r) => r.status)).toEqual(['equal', 'equal', 'equal']);
}

/**
 * Writes (through `client`, P first by default); kills with `kill` after 30
 * acknowledged writes; requires 40 writes within 20 s of the kill (before the
 * killed service is back); waits for the lifecycle manager to have restarted
 * `name` (running, one restart more) and audited it; then requires 10 more
 * acknowledged writes and checks: nothing failed, no failover, every
 * acknowledged write on every replica exactly once, verify equal. Returns the
 * longest pause between two acknowledgements from the kill on (the kill itself
 * counts as the start of the first), recorded under `kind`.
 */
async function episode(kind: string, tag: string, name: string, kill: () => Promise<void>, client = clientVia(orchestratorP!)): Promise<number> {
  const pidBefore = await masterPid();
  const failoversBefore = (await failovers()).length;
  const restartsBefore = service(name).restarts;
  const w = startWriter(client, tag);
  try {
    await eventually(() => w.acked.length >= 30, 60_000, `${tag}: 30 writes before the kill`);
    const load1 = os.loadavg()[0] ?? 0;
    const killedAt = performance.now();
    await kill();
    const resumedWithout = await eventually(() => w.acked.filter((a) => a.at > killedAt).length >= 40, 20_000, `${tag}: 40 writes after the kill`).then(
      () => true,
      () => false,
    );
    // The killed service back, started by the lifecycle manager (the test starts nothing).
    await eventually(() => service(name).state === 'running' && service(name).restarts > restartsBefore, 300_000, `${tag}: ${name} restarted by the lifecycle manager`);
    const backAt = performance.now();
    const mark = w.acked.length;
    await eventually(() => w.acked.length >= mark + 10, 120_000, `${tag}: 10 writes after the restart`);
    await w.stop();
    const pause = longestPause(w.acked, killedAt, 180_000);
    const pauseMs = Math.round(pause.ms);
    const k = (pauses[kind] ??= { ms: [], load1: [] });
    k.ms.push(pauseMs);
    k.load1.push(Math.round(load1 * 10) / 10);
    // What the longest pause waited for: the client's retries in it (ms from the kill), e.g. a 3 s client timeout.
    const during = retries
      .filter((r) => r.at >= pause.from && r.at <= pause.to)
      .map((r) => `+${Math.round(r.at - killedAt)} ms #${r.attempt} ${r.code}${r.status ? ` (${r.status})` : ''} wait ${r.delayMs} ms`);
    process.stdout.write(
      `[platform-ha] ${tag}: ${w.acked.length} writes acknowledged, ${w.failed.length} failed, longest pause from the kill ${pauseMs} ms ` +
        `(+${Math.round(pause.from - killedAt)} to +${Math.round(pause.to - killedAt)} ms; retries in it: ${during.join(', ') || 'none'}), ` +
        `${resumedWithout ? 'resumed before' : 'resumed only after'} the restart; ${name} back after ${Math.round(backAt - killedAt)} ms; load ${load1.toFixed(1)}\n`,
    );
    appendLog(
      'pauses.log',
      `${new Date(performance.timeOrigin + killedAt).toISOString()} ${tag} killed; pause ${pauseMs} ms from +${Math.round(pause.from - killedAt)}; load ${load1.toFixed(1)}; retries: ${during.join(', ') || 'none'}\n`,
    );
    expect(w.failed).toEqual([]);
    // The platform fault alone causes no failover.
    expect(await masterPid()).toBe(pidBefore);
    expect((await failovers()).slice(failoversBefore)).toEqual([]);
    await checkReplicas(w.acked, tag);
    // The restart is in the namespace's shared audit log (the manager appends once ZooKeeper takes it).
    await eventually(
      async () => (await events()).some((e) => e.kind === 'platform' && e.reason.startsWith(`${name} (pid ${service(name).pid}) is back after restart ${service(name).restarts}`)),
      30_000,
      `${tag}: the restart of ${name} audited`,
    );
    expect(resumedWithout, `${tag}: 40 writes within 20 s of the kill, before ${name} was back`).toBe(true);
    return pauseMs;
  } finally {
    await w.stop();
  }
}

/** The goal of docs/FAILOVER.md: writes resume within 2 s of every kill (checked once all kills of a kind are measured; by `npm run test:ha` only). */
function expectUnder2s(kind: string): void {
  expect(pauses[kind]?.ms.length, `${kind}: kills measured`).toBe(KILLS);
  if (mode !== 'all') return;
  expect(Math.max(...(pauses[kind]?.ms ?? [])), `${kind}: longest pause (ms)`).toBeLessThan(2000);
}

/** min / median / p90 / max (p90: the value at rank ceil(0.9 n); the median halfway between the middle two). */
function summary(values: number[]): { min: number; median: number; p90: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  const mid = (s.length - 1) / 2;
  const median = Math.round(((s[Math.floor(mid)] ?? NaN) + (s[Math.ceil(mid)] ?? NaN)) / 2);
  return { min: s[0] ?? NaN, median, p90: s[Math.ceil(0.9 * s.length) - 1] ?? NaN, max: s.at(-1) ?? NaN };
}

/** The RabbitMQ node and the ZooKeeper server killed last (0: none yet), for the "second one after the first came back" kinds. */
let lastRabbit = 0;
let lastZk = 0;

async function killWriteQueueLeader(k: number): Promise<number> {
  const names = clusterNames(namespace);
  const leader = await queueLeader(names.writeQueue);
  expect(leader.type).toBe('quorum');
  expect([1, 2, 3]).toContain(leader.node);
  const pid = await rabbitPid(leader.node);
  process.stdout.write(`[platform-ha] kill ${k}/${KILLS}: RabbitMQ node ${leader.node} (pid ${pid}), leader of ${names.writeQueue}\n`);
  const ms = await episode('rabbitmq-writeq-leader', `rabbitmq-writeq-leader-${k}`, `rabbitmq-${leader.node}`, async () => {
    process.kill(pid, 'SIGKILL');
  });
  // Back in the cluster, and the write queue has a leader again.
  expect((await queueLeader(names.writeQueue)).node).toBeGreaterThan(0);
  lastRabbit = leader.node;
  return ms;
}

describe.runIf(enabled)('DBAAS_PLATFORM=ha: a ZooKeeper ensemble and a RabbitMQ cluster', () => {
  // Registered first, so it runs last (vitest runs after-hooks as a stack), whatever the clean-up below did:
  // a platform this run started does not outlive it.
  afterAll(async () => {
    if (!ownPlatform) return;
    const t = performance.now();
    await stopHaPlatformOf(runPid);
    process.stdout.write(`[platform-ha] stopped the HA platform this run started (${Math.round(performance.now() - t)} ms)\n`);
  }, 180_000);

  beforeAll(async () => {
    mkdirSync(keep, { recursive: true });
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'dbaas-ha-'));
    ownPlatform = await startHaPlatform(runPid);
    env = parseEnv(await platform('env'));
    expect(env.DBAAS_PLATFORM).toBe('ha');
    const haEnv = { DBAAS_PLATFORM: 'ha', DBAAS_AMQP_URL: env.DBAAS_AMQP_URL ?? '', DBAAS_ZK_CONNECT: env.DBAAS_ZK_CONNECT ?? '', DBAAS_INITIAL_SLAVES: '2', DBAAS_VERIFY_INTERVAL_MS: '0' };
    const logger = createLogger('test-ha-lifecycle', process.env.DBAAS_TEST_LOG_LEVEL ?? 'info', {}, { write: (line: string) => appendLog('lifecycle.log', line) });
    // The lifecycle manager: the six platform services (which it may restart: managed) and orchestrators P and Q, which it starts.
    const supervised = async (): Promise<SupervisedOrchestrator> => {
      const port = await freePort();
      return new SupervisedOrchestrator({
        root,
        port,
        env: {
          ...process.env,
          ...haEnv,
          DBAAS_PORT: String(port),
          DBAAS_HOST: '127.0.0.1',
          DBAAS_NAMESPACE: namespace,
          DBAAS_DATA_DIR: dataDir,
          DBAAS_LOG_LEVEL: 'info',
          DBAAS_LOG_FORMAT: 'json',
        },
        logFile: path.join(keep, `orchestrator-${port}.log`),
      });
    };
    orchestratorP = await supervised();
    orchestratorQ = await supervised();
    managerZk = new ZkSession({ connect: haEnv.DBAAS_ZK_CONNECT, sessionTimeoutMs: 5000, logger });
    view = new ClusterView(managerZk, zkPaths(namespace), logger);
    managerZk.start();
    manager = new LifecycleManager({
      services: [...haPlatform({ root, zkConnect: haEnv.DBAAS_ZK_CONNECT, amqpUrl: haEnv.DBAAS_AMQP_URL, managed: ['platform-ha'], log: path.join(keep, 'lifecycle-scripts.log') }), orchestratorP, orchestratorQ],
      // Kills of one service follow each other within minutes here: a short window, small backoff.
      policy: { wedgedAfter: 3, maxRestarts: 10 * KILLS, restartWindowMs: 60_000, backoffMs: 500, startGraceMs: 180_000 },
      probeIntervalMs: 500,
      probeTimeoutMs: 2000,
      logger,
      zk: managerZk,
      paths: zkPaths(namespace),
      startNow: [orchestratorP.name, orchestratorQ.name],
    });
    manager.start();
    for (const o of orchestrators()) await eventually(async () => (await fetch(`${o.address}/readyz`).catch(() => undefined))?.status === 200, 120_000, `${o.name} ready`);
    await eventually(() => view!.ready && view!.workers.size === 3 && [...view!.workers.values()].every((w) => w.state === 'master' || w.state === 'slave'), 120_000, 'three workers serving');
  }, 600_000);

  afterAll(async () => {
    const ids = view ? [...view.workers.keys()] : [];
    await manager?.close();
    // The follower first (it leaves the workers alone), then the leader, which stops them when it is the last one.
    const leader = await leadingOrchestrator().catch(() => orchestratorP);
    for (const o of orchestrators().filter((x) => x !== leader)) await o?.stop('SIGTERM');
    await leader?.stop('SIGTERM');
    view?.close();
    managerZk?.close();
    // The workers' own logs beside the services' log, then whatever of the namespace is left.
    const nsDir = path.join(dataDir, namespace);
    for (const id of existsSync(nsDir) ? readdirSync(nsDir) : []) {
      const log = path.join(nsDir, id, 'worker.log');
      if (existsSync(log)) copyFileSync(log, path.join(keep, `${id}.log`));
    }
    if (dataDir) {
      for (const pid of runProcesses(namespace, dataDir)) process.kill(pid, 'SIGKILL');
      await dropWorkerDatabases(nsDir).catch(() => undefined);
      rmSync(dataDir, { recursive: true, force: true });
    }
    writeFileSync(path.join(keep, 'pauses.json'), `${JSON.stringify(pauses, null, 2)}\n`);
    const rows = Object.entries(pauses).map(([kind, { ms, load1 }]) => {
      const s = summary(ms);
      return `| ${kind} | ${ms.length} | ${s.min} | ${s.median} | ${s.p90} | ${s.max} | ${ms.filter((x) => x < 2000).length}/${ms.length} | ${Math.min(...load1)}-${Math.max(...load1)} |`;
    });
    writeFileSync(path.join(keep, 'pauses.md'), ['| kill | kills | min ms | median | p90 | max | under 2 s | load (1 min) |', '|---|---|---|---|---|---|---|---|', ...rows, ''].join('\n'));
    for (const [kind, { ms }] of Object.entries(pauses)) {
      process.stdout.write(`[platform-ha] ${kind}: ${ms.length} kills, longest pause per kill (ms, sorted) ${[...ms].sort((a, b) => a - b).join(' ')}\n`);
    }
    if (!env.DBAAS_AMQP_URL || !env.DBAAS_ZK_CONNECT) return;
    // This namespace lives on the HA platform (the harness cleans only the single-mode broker).
    const names = clusterNames(namespace);
    const conn = await connectToAny(env.DBAAS_AMQP_URL, 'test-ha-cleanup');
    try {
      for (const q of [names.writeQueue, names.readQueue, names.deadLetterQueue, ...ids.map((id) => names.syncQueue(id))]) {
        const ch = await conn.createChannel();
        ch.on('error', () => undefined);
        await ch.deleteQueue(q).catch(() => undefined);
        await ch.close().catch(() => undefined);
      }
      const ch = await conn.createChannel();
      for (const x of [names.syncExchange, names.deadLetterExchange, names.poisonExchange]) await ch.deleteExchange(x).catch(() => undefined);
      await ch.close().catch(() => undefined);
    } finally {
      await conn.close().catch(() => undefined);
    }
    await withZkSession(env.DBAAS_ZK_CONNECT, createLogger('test-ha-zk', 'warn'), 10_000, (zk) => removeTree(zk, zkPaths(namespace).root));
  }, 180_000);

  it('declares the write, read, sync and poison queues as quorum queues (a delivery limit on the write queue); control queues stay classic and exclusive', async () => {
    const names = clusterNames(namespace);
    const types = await queueTypes(namespace);
    expect(types.get(names.writeQueue)).toBe('quorum');
    expect(types.get(names.readQueue)).toBe('quorum');
    expect(types.get(names.deadLetterQueue)).toBe('quorum');
    const workers = [...view!.workers.values()];
    const slaves = workers.filter((w) => w.role === 'slave').map((w) => w.id);
    expect(slaves).toHaveLength(2);
    for (const id of slaves) expect(types.get(names.syncQueue(id)), id).toBe('quorum');
    for (const w of workers) expect(types.get(names.controlQueue(w.id)), w.id).toBe('classic');
  });

  it('a write handed back again and again leaves the HA write queue for the poison queue after WRITE_DELIVERY_LIMIT deliveries; a write queue declared without a limit is kept', async () => {
    // A namespace of its own, with only the topology: the test is the write queue's consumer, and one that never acks.
    const ns = `${namespace}-dl`;
    const names = clusterNames(ns);
    const settings = { platform: 'ha' as const, syncQueueExpiresMs: 3_600_000, deadLetterMaxBytes: 1_048_576, deadLetterTtlMs: 600_000 };
    const conn = await connectToAny(env.DBAAS_AMQP_URL ?? '', 'test-ha-delivery-limit');
    try {
      await assertTopology(conn, names, settings);
      const ch = await conn.createChannel();
      const write: WriteEnvelope = { v: WIRE_VERSION, requestId: 'poison-1', command: { kind: 'insert', table: TABLE, docs: [{ key: 'poison' }] } };
      ch.sendToQueue(names.writeQueue, encode(write), { persistent: true });
      let deliveries = 0;
      await ch.consume(names.writeQueue, (msg) => {
        if (!msg) return;
        deliveries++;
        ch.nack(msg, false, true);
      });
      const dead: { msg?: GetMessage } = {};
      await eventually(
        async () => {
          dead.msg ||= (await ch.get(names.deadLetterQueue, { noAck: true })) || undefined;
          return dead.msg !== undefined;
        },
        60_000,
        'the write in the poison queue',
      );
      // Once dead-lettered it is delivered no more: the count is final.
      expect(deliveries).toBe(WRITE_DELIVERY_LIMIT + 1);
      expect(dead.msg?.properties.headers?.['x-first-death-reason']).toBe('delivery_limit');
      expect(dead.msg?.properties.headers?.['x-first-death-queue']).toBe(names.writeQueue);
      expect((JSON.parse(dead.msg?.content.toString() ?? '{}') as WriteEnvelope).requestId).toBe('poison-1');
      expect((await ch.checkQueue(names.writeQueue)).messageCount).toBe(0);
      await ch.close();
      // A cluster upgraded from before the limit: its write queue (no x-delivery-limit) is kept as it is, not refused.
      const old = clusterNames(`${namespace}-old`);
      const och = await conn.createChannel();
      await och.assertQueue(old.writeQueue, { durable: true, arguments: { 'x-queue-type': 'quorum', 'x-single-active-consumer': true, 'x-dead-letter-exchange': old.deadLetterExchange } });
      await och.close();
      const kept: string[] = [];
      await assertTopology(conn, old, settings, (queue) => kept.push(queue));
      expect(kept).toEqual([old.writeQueue]);
    } finally {
      const ch = await conn.createChannel();
      for (const n of [names, clusterNames(`${namespace}-old`)]) {
        for (const q of [n.writeQueue, n.readQueue, n.deadLetterQueue]) await ch.deleteQueue(q).catch(() => undefined);
        for (const x of [n.syncExchange, n.deadLetterExchange, n.poisonExchange]) await ch.deleteExchange(x).catch(() => undefined);
      }
      await conn.close().catch(() => undefined);
    }
  });

  it('the lifecycle manager lists the three ZooKeeper servers, the three RabbitMQ nodes and orchestrators P and Q, running and managed', async () => {
    await eventually(() => manager!.view().every((s) => s.state === 'running'), 60_000, 'every service running');
    type Listed = { platform: string; services: Array<{ name: string; kind: string; state: string; managed: boolean; pid?: number; stale: boolean }> };
    await eventually(async () => ((await api('/api/v1/platform')).body as Listed).services.length === 8, 30_000, 'eight services published');
    const listed = (await api('/api/v1/platform')).body as Listed;
    expect(listed.platform).toBe('ha');
    expect(listed.services.map((s) => s.name)).toEqual([
      ...orchestrators().map((o) => o.name).sort(),
      'rabbitmq-1',
      'rabbitmq-2',
      'rabbitmq-3',
      'zookeeper-1',
      'zookeeper-2',
      'zookeeper-3',
    ]);
    for (const s of listed.services) {
      expect(s.managed, s.name).toBe(true);
      expect(s.stale, s.name).toBe(false);
      expect(s.pid, s.name).toBeGreaterThan(0);
    }
  });

  // Safety and recovery are asserted for every kill inside episode(); the 2 s goal once every kill of the kind is measured.
  it('SIGKILL of the RabbitMQ node leading the write queue', async () => {
    for (let k = 1; k <= KILLS; k++) await killWriteQueueLeader(k);
    expectUnder2s('rabbitmq-writeq-leader');
  }, 600_000 * KILLS);

  itAll("SIGKILL of a second RabbitMQ node after the first came back (the master's broker node when that is not the one killed last)", async () => {
    const names = clusterNames(namespace);
    // Run alone (-t), this kind needs a first kill to follow.
    if (lastRabbit === 0) await killWriteQueueLeader(0);
    for (let k = 1; k <= KILLS; k++) {
      const leader = (await queueLeader(names.writeQueue)).node;
      // The master's own connection node is the hard case (it must set up again elsewhere while sync queues elect): chosen when it can be.
      const masters = amqpNodesOf(await masterPid());
      const others = [1, 2, 3].filter((n) => n !== lastRabbit);
      const second = others.find((n) => masters.includes(n)) ?? others.find((n) => n !== leader) ?? others[0]!;
      const pid = await rabbitPid(second);
      process.stdout.write(
        `[platform-ha] kill ${k}/${KILLS}: RabbitMQ node ${second} (pid ${pid}), after node ${lastRabbit} came back (write queue leader: node ${leader}; the master's broker node: ${masters.join(', ') || 'none'})\n`,
      );
      await episode('rabbitmq-second-node', `rabbitmq-second-node-${k}`, `rabbitmq-${second}`, async () => {
        process.kill(pid, 'SIGKILL');
      });
      lastRabbit = second;
    }
    expectUnder2s('rabbitmq-second-node');
  }, 600_000 * (KILLS + 1));

  it("SIGKILL of the RabbitMQ node of orchestrator P's own broker connection (P is the client's first address)", async () => {
    for (let k = 1; k <= KILLS; k++) {
      const pPid = service(orchestratorP!.name).pid!;
      const own = amqpNodesOf(pPid);
      expect(own.length, `orchestrator P (pid ${pPid}) has an AMQP connection`).toBeGreaterThan(0);
      const node = own[0]!;
      const pid = await rabbitPid(node);
      process.stdout.write(`[platform-ha] kill ${k}/${KILLS}: RabbitMQ node ${node} (pid ${pid}), orchestrator P's connection node\n`);
      await episode('rabbitmq-orchestrator-connection-node', `rabbitmq-orchestrator-connection-node-${k}`, `rabbitmq-${node}`, async () => {
        process.kill(pid, 'SIGKILL');
      });
      lastRabbit = node;
    }
    expectUnder2s('rabbitmq-orchestrator-connection-node');
  }, 600_000 * KILLS);

  it('SIGKILL of the ZooKeeper leader', async () => {
    for (let k = 1; k <= KILLS; k++) {
      const leader = await zkLeader();
      const pid = zkPid(leader);
      process.stdout.write(`[platform-ha] kill ${k}/${KILLS}: ZooKeeper server ${leader} (pid ${pid}), the ensemble's leader\n`);
      await episode('zookeeper-leader', `zookeeper-leader-${k}`, `zookeeper-${leader}`, async () => {
        process.kill(pid, 'SIGKILL');
      });
      expect(await zkLeader()).toBeGreaterThan(0);
      lastZk = leader;
    }
    expectUnder2s('zookeeper-leader');
  }, 600_000 * KILLS);

  itAll('SIGKILL of a ZooKeeper follower after the first came back (not the one killed last)', async () => {
    for (let k = 1; k <= KILLS; k++) {
      const leader = await zkLeader();
      const follower = [1, 2, 3].find((n) => n !== lastZk && n !== leader)!;
      const pid = zkPid(follower);
      process.stdout.write(`[platform-ha] kill ${k}/${KILLS}: ZooKeeper server ${follower} (pid ${pid}), a follower, after server ${lastZk || 'none'} came back\n`);
      await episode('zookeeper-follower', `zookeeper-follower-${k}`, `zookeeper-${follower}`, async () => {
        process.kill(pid, 'SIGKILL');
      });
      lastZk = follower;
    }
    expectUnder2s('zookeeper-follower');
  }, 600_000 * KILLS);

  it('a SIGSTOPped (wedged) ZooKeeper follower is killed and restarted by the lifecycle manager', async () => {
    // The process is there, ruok gets no answer; the manager kills and restarts it. The follower the
    // master worker's session is connected to, when it is on one: its pings then reach no one, and the
    // client must move to another server within the session timeout or the master is lost.
    const leader = await zkLeader();
    const followers = [1, 2, 3].filter((n) => n !== leader);
    const masters = zkServersOf(await masterPid());
    const wedged = followers.find((n) => masters.includes(n)) ?? followers.find((n) => n !== lastZk)!;
    const pid = zkPid(wedged);
    process.stdout.write(`[platform-ha] SIGSTOP: ZooKeeper server ${wedged} (pid ${pid}; the master's ZooKeeper server: ${masters.join(', ') || 'none'})\n`);
    // The session that holds /master: one that expired (and took /master back) races the orchestrators' detection.
    const masterSession = async (): Promise<string | undefined> => (await managerZk!.exists(zkPaths(namespace).master))?.ephemeralOwner.toString('hex');
    const sessionBefore = await masterSession();
    await episode('zookeeper-wedged', 'zookeeper-wedged', `zookeeper-${wedged}`, async () => {
      process.kill(pid, 'SIGSTOP');
    });
    expect(zkPid(wedged)).not.toBe(pid);
    expect(await masterSession(), "the master's ZooKeeper session outlived the wedged server (its client moved to another)").toBe(sessionBefore);
    lastZk = wedged;
  }, 600_000);

  it('SIGKILL of the orchestrator leading of the two, the client\'s first address: writes go on through the other, the manager restarts it', async () => {
    for (let k = 1; k <= KILLS; k++) {
      const leader = await leadingOrchestrator();
      const pid = service(leader.name).pid!;
      process.stdout.write(`[platform-ha] kill ${k}/${KILLS}: ${leader.name} (pid ${pid}), the leader\n`);
      await episode(
        'orchestrator-leader',
        `orchestrator-leader-${k}`,
        leader.name,
        async () => {
          process.kill(pid, 'SIGKILL');
        },
        clientVia(leader),
      );
      // A leader elected after the kill, before the next one (an episode ends only once the killed one is back and
      // writes went on). Either may win: the dead leader's znode goes one session timeout after the kill, and the
      // killed one, restarted by then, races the other for it (CI run s6d: the restarted one won, epoch 2).
      await eventually(async () => service((await leadingOrchestrator()).name).pid !== pid, 30_000, 'a leader elected after the kill');
    }
    expectUnder2s('orchestrator-leader');
  }, 600_000 * KILLS);
});

describe.skipIf(enabled)('DBAAS_PLATFORM=ha (DBAAS_HA_TEST=0)', () => {
  it.skip('runs unless DBAAS_HA_TEST=0 (it starts a ZooKeeper ensemble and a RabbitMQ cluster); npm run test:ha runs every kind', () => undefined);
});
