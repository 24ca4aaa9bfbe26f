/**
 * DBAAS_PLATFORM=ha on the real ensemble and cluster (issue 18): the platform is
 * started through scripts/platform-ha.sh (idempotent: a running one is reused)
 * and supervised by a lifecycle manager (orchestrator/lifecycle/, in this test's
 * process) that also runs orchestrator P as a process; orchestrator T (in this
 * process, for the replica checks) follows on the same namespace. Under a writer
 * (the typed client with both orchestrators' URLs, P first) this kills, one
 * episode each: the RabbitMQ node leading the write queue, a second RabbitMQ
 * node after the first came back, the node of P's own broker connection; the
 * ZooKeeper leader, a second ZooKeeper server (a follower) after the first came
 * back, a SIGSTOPped (wedged) follower; and orchestrator P itself. Each time:
 * every acknowledged write is on every replica exactly once, the replicas verify
 * equal, the master's pid is unchanged and no failover is audited (the platform
 * fault alone causes none), the killed service is restarted by the lifecycle
 * manager (not by the test) and its restart audited in the namespace's shared
 * audit log; the longest pause between two acknowledgements from the kill on is
 * printed and written to $DBAAS_TEST_LOG_DIR/platform-ha/pauses.json (default under the temp directory)
 * (docs/FAILOVER.md). After a kill of the RabbitMQ node leading the write queue,
 * of the ZooKeeper leader and of an orchestrator it must be under 2 s.
 *
 * Opt-in (DBAAS_HA_TEST=1, or `npm run test:ha`; DBAAS_HA_KILLS=N repeats the
 * leader kills N times each): about 35 s to start the platform from nothing,
 * then 1-2 min per episode, more than the default suite's budget.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DbaasClient } from '../../client/index.js';
import { connectToAny } from '../../common/amqp-connection.js';
import { createLogger } from '../../common/logger.js';
import { clusterNames } from '../../common/names.js';
import { removeTree, withZkSession } from '../../coordination/namespace.js';
import { zkPaths } from '../../coordination/paths.js';
import { ZkSession } from '../../coordination/zk-session.js';
import { LifecycleManager } from '../../orchestrator/lifecycle/lifecycle-manager.js';
import { haPlatform } from '../../orchestrator/lifecycle/platform-services.js';
import { SupervisedOrchestrator } from '../../orchestrator/lifecycle/supervised-orchestrator.js';
import { runProcesses } from '../../tools/nemesis/infra.js';
import { eventually, startTestCluster, type TestCluster } from './harness.js';
import { freePort } from './infra.js';
import { dumpAllReplicas } from './replicas.js';

const root = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);
const enabled = process.env.DBAAS_HA_TEST === '1';
/** Kills of each kind (DBAAS_HA_KILLS, default 1; docs/FAILOVER.md reports a run with more). */
const KILLS = Math.max(1, Number(process.env.DBAAS_HA_KILLS ?? 1) || 1);
const TABLE = 'ha_writes';

async function platform(cmd: 'start' | 'env' | 'status'): Promise<string> {
  const { stdout } = await run('bash', [path.join(root, 'scripts/platform-ha.sh'), cmd], { timeout: 400_000, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

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

/** Every retry the writer's client made (time, attempt, what it got), to tell what a long pause waited for. */
const retries: Array<{ at: number; attempt: number; delayMs: number; code: string; status: number }> = [];

let env: Record<string, string> = {};
let c: TestCluster | undefined;
let client: DbaasClient;
let manager: LifecycleManager | undefined;
let managerZk: ZkSession | undefined;
let orchestratorP: SupervisedOrchestrator | undefined;
const pauses: Record<string, number[]> = {};
const namespace = `t-ha-${process.pid}-${Date.now().toString(36)}`;
function appendLog(name: string, line: string): void {
  mkdirSync(keep, { recursive: true });
  writeFileSync(path.join(keep, name), line, { flag: 'a' });
}

/** Made in beforeAll (the file is loaded, and skipped, by the default suite too). */
let dataDir = '';
// Not under .dbaas/test-logs unless asked: another run's global set-up empties that directory.
const keep = path.join(process.env.DBAAS_TEST_LOG_DIR ?? path.join(os.tmpdir(), 'dbaas-test-logs'), 'platform-ha');

async function masterPid(): Promise<number> {
  const workers = (await c!.get('/api/v1/workers')).body as Array<{ role: string; pid: number }>;
  const master = workers.find((w) => w.role === 'master');
  if (!master) throw new Error('no master');
  return master.pid;
}

/** The namespace's shared audit log (every orchestrator's events, and the lifecycle manager's). */
async function events(): Promise<Array<{ kind: string; reason: string }>> {
  const res = await c!.get('/api/v1/events');
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

/** The RabbitMQ nodes (1-3) a process holds AMQP connections to: its sockets' peers among 5682-5684. */
function amqpNodesOf(pid: number): number[] {
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
      if (port >= 5682 && port <= 5684) nodes.push(port - 5681);
    }
  }
  return nodes;
}

/** Every acknowledged key is on every replica exactly once, nothing unasked is there, and verify says equal. */
async function checkReplicas(acked: Writer['acked'], tag: string): Promise<void> {
  const dumps = await dumpAllReplicas(c!.orch, 60_000);
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
  const verify = await c!.get('/api/v1/verify');
  expect(verify.status).toBe(200);
  const report = verify.body;
  expect(report.result).toBe('equal');
  expect((report.replicas as Array<{ status: string }>).map((r) => r.status)).toEqual(['equal', 'equal', 'equal']);
}

interface Episode {
  /** The longest time without an acknowledged write from the kill on. */
  pauseMs: number;
  /** Whether 40 writes were acknowledged within 20 s of the kill, before the killed service was back. */
  resumedWithout: boolean;
}

/**
 * Writes; kills with `kill` after 30 acknowledged writes; gives the writes up to
 * 20 s to go on without the killed service; waits for the lifecycle manager to
 * have restarted `name` (running, one restart more) and audited it; then requires
 * 10 more acknowledged writes and checks: nothing failed, no failover, every
 * acknowledged write on every replica exactly once, verify equal.
 */
async function episode(tag: string, name: string, kill: () => Promise<void>): Promise<Episode> {
  const pidBefore = await masterPid();
  const failoversBefore = (await failovers()).length;
  const restartsBefore = service(name).restarts;
  const w = startWriter(client, tag);
  try {
    await eventually(() => w.acked.length >= 30, 60_000, `${tag}: 30 writes before the kill`);
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
    (pauses[tag.replace(/-\d+$/, '')] ??= []).push(pauseMs);
    // What the longest pause waited for: the client's retries in it (ms from the kill), e.g. a 3 s client timeout.
    const during = retries
      .filter((r) => r.at >= pause.from && r.at <= pause.to)
      .map((r) => `+${Math.round(r.at - killedAt)} ms #${r.attempt} ${r.code}${r.status ? ` (${r.status})` : ''} wait ${r.delayMs} ms`);
    process.stdout.write(
      `[platform-ha] ${tag}: ${w.acked.length} writes acknowledged, ${w.failed.length} failed, longest pause from the kill ${pauseMs} ms ` +
        `(+${Math.round(pause.from - killedAt)} to +${Math.round(pause.to - killedAt)} ms; retries in it: ${during.join(', ') || 'none'}), ` +
        `${resumedWithout ? 'resumed before' : 'resumed only after'} the restart; ${name} back after ${Math.round(backAt - killedAt)} ms\n`,
    );
    appendLog('pauses.log', `${new Date().toISOString()} ${tag} killed at ${Math.round(killedAt)} pause ${pauseMs} ms from +${Math.round(pause.from - killedAt)} retries: ${during.join(', ') || 'none'}\n`);
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
    return { pauseMs, resumedWithout };
  } finally {
    await w.stop();
  }
}

describe.runIf(enabled)('DBAAS_PLATFORM=ha: a ZooKeeper ensemble and a RabbitMQ cluster', () => {
  beforeAll(async () => {
    mkdirSync(keep, { recursive: true });
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'dbaas-ha-'));
    await platform('start');
    env = parseEnv(await platform('env'));
    expect(env.DBAAS_PLATFORM).toBe('ha');
    const haEnv = { DBAAS_PLATFORM: 'ha', DBAAS_AMQP_URL: env.DBAAS_AMQP_URL ?? '', DBAAS_ZK_CONNECT: env.DBAAS_ZK_CONNECT ?? '', DBAAS_INITIAL_SLAVES: '2', DBAAS_VERIFY_INTERVAL_MS: '0' };
    // The lifecycle manager: the six platform services (which it may restart: managed) and orchestrator P, which it starts.
    const port = await freePort();
    const logger = createLogger('test-ha-lifecycle', process.env.DBAAS_TEST_LOG_LEVEL ?? 'info', {}, { write: (line: string) => appendLog('lifecycle.log', line) });
    orchestratorP = new SupervisedOrchestrator({
      root,
      port,
      env: { ...process.env, ...haEnv, DBAAS_PORT: String(port), DBAAS_HOST: '127.0.0.1', DBAAS_NAMESPACE: namespace, DBAAS_DATA_DIR: dataDir, DBAAS_LOG_LEVEL: 'info', DBAAS_LOG_FORMAT: 'json' },
      logFile: path.join(keep, `orchestrator-${port}.log`),
    });
    managerZk = new ZkSession({ connect: haEnv.DBAAS_ZK_CONNECT, sessionTimeoutMs: 5000, logger });
    managerZk.start();
    manager = new LifecycleManager({
      services: [...haPlatform({ root, zkConnect: haEnv.DBAAS_ZK_CONNECT, amqpUrl: haEnv.DBAAS_AMQP_URL, managed: ['platform-ha'], log: path.join(keep, 'lifecycle-scripts.log') }), orchestratorP],
      // Kills of one service follow each other within minutes here: a short window, small backoff.
      policy: { wedgedAfter: 3, maxRestarts: 10, restartWindowMs: 60_000, backoffMs: 500, startGraceMs: 180_000 },
      probeIntervalMs: 500,
      probeTimeoutMs: 2000,
      logger,
      zk: managerZk,
      paths: zkPaths(namespace),
      startNow: [orchestratorP.name],
    });
    manager.start();
    const pUrl = orchestratorP.address;
    await eventually(async () => (await fetch(`${pUrl}/readyz`).catch(() => undefined))?.status === 200, 120_000, 'orchestrator P ready');
    // T follows on the same namespace (adopting P's workers): its view serves the replica checks.
    c = await startTestCluster(haEnv, { listen: true, namespace, dataDir });
    await eventually(async () => (await c!.get('/readyz')).status === 200, 60_000, 'the cluster to be ready');
    await eventually(async () => ((await c!.get('/api/v1/workers')).body as unknown[]).length === 3, 60_000, 'three workers');
    client = new DbaasClient({
      url: `${pUrl},${c.url}`,
      timeoutMs: 3000,
      retry: { attempts: 40, baseDelayMs: 50, maxDelayMs: 500 },
      onRetry: ({ attempt, delayMs, error }) => retries.push({ at: performance.now(), attempt, delayMs, code: error.code, status: error.status }),
    });
  }, 600_000);

  afterAll(async () => {
    const ids = c ? [...c.orch.view.workers.keys()] : [];
    await manager?.close();
    await orchestratorP?.stop('SIGTERM');
    managerZk?.close();
    // The workers' own logs (their data directory goes with the cluster) beside the services' log.
    const nsDir = path.join(dataDir, namespace);
    for (const id of existsSync(nsDir) ? readdirSync(nsDir) : []) {
      const log = path.join(nsDir, id, 'worker.log');
      if (existsSync(log)) copyFileSync(log, path.join(keep, `${id}.log`));
    }
    await c?.close().catch(() => undefined);
    if (dataDir) {
      for (const pid of runProcesses(namespace, dataDir)) process.kill(pid, 'SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
    writeFileSync(path.join(keep, 'pauses.json'), `${JSON.stringify(pauses, null, 2)}\n`);
    for (const [kind, ms] of Object.entries(pauses)) {
      const sorted = [...ms].sort((a, b) => a - b);
      process.stdout.write(`[platform-ha] ${kind}: ${ms.length} kills, longest pause per kill (ms, sorted) ${sorted.join(' ')}\n`);
    }
    if (!env.DBAAS_AMQP_URL || !env.DBAAS_ZK_CONNECT) return;
    // The harness cleans the single-mode broker; this namespace lives on the HA platform.
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

  it('declares the write, read, sync and poison queues as quorum queues; control queues stay classic and exclusive', async () => {
    const names = clusterNames(c!.namespace);
    const types = await queueTypes(c!.namespace);
    expect(types.get(names.writeQueue)).toBe('quorum');
    expect(types.get(names.readQueue)).toBe('quorum');
    expect(types.get(names.deadLetterQueue)).toBe('quorum');
    const ids = [...c!.orch.view.workers.keys()];
    const slaves = [...c!.orch.view.workers.values()].filter((w) => w.role === 'slave').map((w) => w.id);
    expect(slaves).toHaveLength(2);
    for (const id of slaves) expect(types.get(names.syncQueue(id)), id).toBe('quorum');
    for (const id of ids) expect(types.get(names.controlQueue(id)), id).toBe('classic');
  });

  it('the lifecycle manager lists the three ZooKeeper servers, the three RabbitMQ nodes and orchestrator P, running and managed', async () => {
    await eventually(() => manager!.view().every((s) => s.state === 'running'), 60_000, 'every service running');
    const view = (await c!.get('/api/v1/platform')).body as { platform: string; services: Array<{ name: string; kind: string; state: string; managed: boolean; pid?: number; stale: boolean }> };
    expect(view.platform).toBe('ha');
    await eventually(async () => ((await c!.get('/api/v1/platform')).body as typeof view).services.length === 7, 30_000, 'seven services published');
    const listed = ((await c!.get('/api/v1/platform')).body as typeof view).services;
    expect(listed.map((s) => s.name)).toEqual([
      orchestratorP!.name,
      'rabbitmq-1',
      'rabbitmq-2',
      'rabbitmq-3',
      'zookeeper-1',
      'zookeeper-2',
      'zookeeper-3',
    ]);
    for (const s of listed) {
      expect(s.managed, s.name).toBe(true);
      expect(s.stale, s.name).toBe(false);
      expect(s.pid, s.name).toBeGreaterThan(0);
    }
  });

  // Safety and recovery are asserted for every kill; the 2 s goal for the write-queue leader's kills (docs/FAILOVER.md).
  it('SIGKILL of the RabbitMQ node leading the write queue, then of a second node once the first is back, then of the node of the orchestrator\'s own connection', async () => {
    const names = clusterNames(c!.namespace);
    const measured: Episode[] = [];
    let last = 0;
    for (let k = 1; k <= KILLS; k++) {
      const leader = await queueLeader(names.writeQueue);
      expect(leader.type).toBe('quorum');
      expect([1, 2, 3]).toContain(leader.node);
      const pid = await rabbitPid(leader.node);
      process.stdout.write(`[platform-ha] kill ${k}/${KILLS}: RabbitMQ node ${leader.node} (pid ${pid}), leader of ${names.writeQueue}\n`);
      measured.push(
        await episode(`rabbitmq-writeq-leader-${k}`, `rabbitmq-${leader.node}`, async () => {
          process.kill(pid, 'SIGKILL');
        }),
      );
      // Back in the cluster, and the write queue has a leader again.
      expect((await queueLeader(names.writeQueue)).node).toBeGreaterThan(0);
      last = leader.node;
    }
    // A second node, once the first is back: one that neither was killed last nor leads the write queue now.
    const leader = (await queueLeader(names.writeQueue)).node;
    const second = [1, 2, 3].find((n) => n !== last && n !== leader)!;
    const secondPid = await rabbitPid(second);
    process.stdout.write(`[platform-ha] second kill: RabbitMQ node ${second} (pid ${secondPid}), after node ${last} came back\n`);
    await episode('rabbitmq-second-node', `rabbitmq-${second}`, async () => {
      process.kill(secondPid, 'SIGKILL');
    });
    // The node orchestrator P (the client's first address) holds its broker connection to.
    const pPid = service(orchestratorP!.name).pid!;
    const own = amqpNodesOf(pPid);
    expect(own.length, `orchestrator P (pid ${pPid}) has an AMQP connection`).toBeGreaterThan(0);
    const ownPid = await rabbitPid(own[0]!);
    process.stdout.write(`[platform-ha] kill: RabbitMQ node ${own[0]} (pid ${ownPid}), orchestrator P's connection node\n`);
    await episode('rabbitmq-orchestrator-connection-node', `rabbitmq-${own[0]}`, async () => {
      process.kill(ownPid, 'SIGKILL');
    });
    // Every kill measured first (the distribution goes to docs/FAILOVER.md), then the bound.
    expect(measured.map((m) => m.resumedWithout)).not.toContain(false);
    expect(Math.max(...measured.map((m) => m.pauseMs))).toBeLessThan(2000);
  }, 600_000 * (KILLS + 2));

  it('SIGKILL of the ZooKeeper leader, then of a second server once the first is back, then a SIGSTOPped (wedged) server: writes resume within 2 s of a leader kill', async () => {
    const measured: Episode[] = [];
    let last = 0;
    for (let k = 1; k <= KILLS; k++) {
      const leader = await zkLeader();
      const pid = zkPid(leader);
      process.stdout.write(`[platform-ha] kill ${k}/${KILLS}: ZooKeeper server ${leader} (pid ${pid}), the ensemble's leader\n`);
      measured.push(
        await episode(`zookeeper-leader-${k}`, `zookeeper-${leader}`, async () => {
          process.kill(pid, 'SIGKILL');
        }),
      );
      expect(await zkLeader()).toBeGreaterThan(0);
      last = leader;
    }
    const leader = await zkLeader();
    const second = [1, 2, 3].find((n) => n !== last && n !== leader)!;
    const secondPid = zkPid(second);
    process.stdout.write(`[platform-ha] second kill: ZooKeeper server ${second} (pid ${secondPid}), a follower, after server ${last} came back\n`);
    await episode('zookeeper-second-server', `zookeeper-${second}`, async () => {
      process.kill(secondPid, 'SIGKILL');
    });
    // Wedged: the process is there, ruok gets no answer; the manager kills and restarts it.
    const wedged = [1, 2, 3].find((n) => n !== second && n !== leader) ?? second;
    const wedgedPid = zkPid(wedged);
    process.stdout.write(`[platform-ha] SIGSTOP: ZooKeeper server ${wedged} (pid ${wedgedPid})\n`);
    await episode('zookeeper-wedged', `zookeeper-${wedged}`, async () => {
      process.kill(wedgedPid, 'SIGSTOP');
    });
    expect(zkPid(wedged)).not.toBe(wedgedPid);
    // Every kill measured first (the distribution goes to docs/FAILOVER.md), then the bound.
    expect(measured.map((m) => m.resumedWithout)).not.toContain(false);
    expect(Math.max(...measured.map((m) => m.pauseMs))).toBeLessThan(2000);
  }, 600_000 * (KILLS + 2));

  it('SIGKILL of orchestrator P (the client\'s first address; the leader at first): writes go on through T within 2 s, the manager restarts P', async () => {
    const measured: Episode[] = [];
    for (let k = 1; k <= KILLS; k++) {
      const pid = service(orchestratorP!.name).pid!;
      const leads = ((await c!.get('/api/v1/orchestrators')).body as { leader: { pid: number } | null }).leader?.pid === pid;
      process.stdout.write(`[platform-ha] kill ${k}/${KILLS}: orchestrator P (pid ${pid}, ${leads ? 'the leader' : 'a follower'})\n`);
      measured.push(
        await episode(`orchestrator-${k}`, orchestratorP!.name, async () => {
          process.kill(pid, 'SIGKILL');
        }),
      );
    }
    expect(measured.map((m) => m.resumedWithout)).not.toContain(false);
    expect(Math.max(...measured.map((m) => m.pauseMs))).toBeLessThan(2000);
  }, 600_000 * KILLS);
});

describe.skipIf(enabled)('DBAAS_PLATFORM=ha (opt-in)', () => {
  it.skip('runs with DBAAS_HA_TEST=1 or npm run test:ha (it starts a ZooKeeper ensemble and a RabbitMQ cluster)', () => undefined);
});
