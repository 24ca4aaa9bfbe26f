/**
 * DBAAS_PLATFORM=ha on the real ensemble and cluster (issue 18): the platform is
 * started through scripts/platform-ha.sh (idempotent: a running one is reused),
 * an orchestrator with its addresses runs a master and two slaves, and under a
 * writer (the typed client, with its retries) one RabbitMQ node (the one leading
 * the write queue) and then one ZooKeeper server (the leader) are SIGKILLed.
 * Each time: every acknowledged write is on every replica exactly once, the
 * replicas verify equal, the master's pid is unchanged (the platform fault alone
 * causes no failover), and the longest pause between two acknowledgements from
 * the kill on is measured and printed; after a ZooKeeper leader's kill it must
 * be under 2 s (after a RabbitMQ node's it is printed only, see docs/FAILOVER.md). The
 * killed service is started again by the script.
 *
 * Opt-in (DBAAS_HA_TEST=1, or `npm run test:ha`): about 35 s to start the
 * platform from nothing, then 1-2 min per kill of each kind (2 kills of each:
 * 283 s), and a RabbitMQ kill can hold writes until the node is back (the 20 s
 * wait), which is more than the default suite's 3-minute budget for a file.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DbaasClient } from '../../client/index.js';
import { connectToAny } from '../../common/amqp-connection.js';
import { createLogger } from '../../common/logger.js';
import { clusterNames } from '../../common/names.js';
import { removeTree, withZkSession } from '../../coordination/namespace.js';
import { zkPaths } from '../../coordination/paths.js';
import { eventually, startTestCluster, type TestCluster } from './harness.js';
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

/** The longest time without an acknowledgement from the kill on (the kill itself counts as the start of the first pause). */
function longestPauseMs(acked: Writer['acked'], killedAt: number, windowMs = 15_000): number {
  let prev = killedAt;
  let longest = 0;
  for (const { at } of acked) {
    if (at <= killedAt) continue;
    if (at > killedAt + windowMs) break;
    longest = Math.max(longest, at - prev);
    prev = at;
  }
  return longest;
}

let env: Record<string, string> = {};
let c: TestCluster | undefined;
let client: DbaasClient;
const pauses: Record<string, number[]> = {};

async function masterPid(): Promise<number> {
  const workers = (await c!.get('/api/v1/workers')).body as Array<{ role: string; pid: number }>;
  const master = workers.find((w) => w.role === 'master');
  if (!master) throw new Error('no master');
  return master.pid;
}

/** Control actions a lost worker would cause (detected, promoted, replaced), as `kind: reason`. A platform fault alone must cause none. */
const failovers = (): string[] =>
  c!.orch.audit
    .list()
    .filter((e) => e.kind === 'detection' || e.kind === 'promotion' || e.kind === 'replacement')
    .map((e) => `${e.kind}: ${e.reason}`);

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
  /** Whether 40 writes were acknowledged within 20 s of the kill, before the killed service was started again. */
  resumedWithout: boolean;
}

/**
 * Writes; SIGKILLs with `kill` after 30 acknowledged writes; gives the writes up
 * to 20 s to go on without the killed service; starts it again with the
 * project's script either way; then requires 10 more acknowledged writes and
 * checks: nothing failed, no failover, every acknowledged write on every replica
 * exactly once, verify equal.
 */
async function episode(tag: string, kill: () => Promise<void>): Promise<Episode> {
  const pidBefore = await masterPid();
  const failoversBefore = failovers();
  const w = startWriter(client, tag);
  try {
    await eventually(() => w.acked.length >= 30, 60_000, `${tag}: 30 writes before the kill`);
    const killedAt = performance.now();
    await kill();
    const resumedWithout = await eventually(() => w.acked.filter((a) => a.at > killedAt).length >= 40, 20_000, `${tag}: 40 writes after the kill`).then(
      () => true,
      () => false,
    );
    // The killed service back, through the project's script (it starts only what is not running).
    await platform('start');
    const mark = w.acked.length;
    await eventually(() => w.acked.length >= mark + 10, 120_000, `${tag}: 10 writes after the restart`);
    await w.stop();
    const pauseMs = Math.round(longestPauseMs(w.acked, killedAt, 180_000));
    (pauses[tag.replace(/-\d+$/, '')] ??= []).push(pauseMs);
    process.stdout.write(
      `[platform-ha] ${tag}: ${w.acked.length} writes acknowledged, ${w.failed.length} failed, longest pause from the kill ${pauseMs} ms, ` +
        `${resumedWithout ? 'resumed before' : 'resumed only after'} the restart\n`,
    );
    expect(w.failed).toEqual([]);
    // The platform fault alone causes no failover.
    expect(await masterPid()).toBe(pidBefore);
    expect(failovers().slice(failoversBefore.length)).toEqual([]);
    await checkReplicas(w.acked, tag);
    return { pauseMs, resumedWithout };
  } finally {
    await w.stop();
    await platform('start');
  }
}

describe.runIf(enabled)('DBAAS_PLATFORM=ha: a ZooKeeper ensemble and a RabbitMQ cluster', () => {
  beforeAll(async () => {
    await platform('start');
    env = parseEnv(await platform('env'));
    expect(env.DBAAS_PLATFORM).toBe('ha');
    c = await startTestCluster(
      { DBAAS_PLATFORM: 'ha', DBAAS_AMQP_URL: env.DBAAS_AMQP_URL ?? '', DBAAS_ZK_CONNECT: env.DBAAS_ZK_CONNECT ?? '', DBAAS_INITIAL_SLAVES: '2', DBAAS_VERIFY_INTERVAL_MS: '0' },
      { listen: true },
    );
    await eventually(async () => (await c!.get('/readyz')).status === 200, 60_000, 'the cluster to be ready');
    await eventually(async () => ((await c!.get('/api/v1/workers')).body as unknown[]).length === 3, 60_000, 'three workers');
    client = new DbaasClient({ url: c.url, timeoutMs: 3000, retry: { attempts: 40, baseDelayMs: 50, maxDelayMs: 500 } });
  }, 600_000);

  afterAll(async () => {
    const namespace = c?.namespace;
    const ids = c ? [...c.orch.view.workers.keys()] : [];
    // The workers' own logs (their data directory goes with the cluster) beside the services' log.
    if (c) {
      const nsDir = path.join(c.dataDir, c.namespace);
      const keep = path.join(root, '.dbaas/test-logs/platform-ha');
      mkdirSync(keep, { recursive: true });
      for (const id of existsSync(nsDir) ? readdirSync(nsDir) : []) {
        const log = path.join(nsDir, id, 'worker.log');
        if (existsSync(log)) copyFileSync(log, path.join(keep, `${id}.log`));
      }
    }
    await c?.close();
    if (!namespace || !env.DBAAS_AMQP_URL || !env.DBAAS_ZK_CONNECT) return;
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
    for (const [kind, ms] of Object.entries(pauses)) {
      const sorted = [...ms].sort((a, b) => a - b);
      process.stdout.write(`[platform-ha] ${kind}: ${ms.length} kills, longest pause per kill (ms, sorted) ${sorted.join(' ')}\n`);
    }
  }, 120_000);

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

  // The 2 s goal is printed, not asserted, for RabbitMQ kills: too few kills since the fixes of docs/FAILOVER.md
  // (worst 1.5 s) to hold a bound on a shared machine. Safety and recovery are asserted.
  it('SIGKILL of the RabbitMQ node leading the write queue: no acknowledged write lost or doubled, no failover, writes go on once it is back', async () => {
    const names = clusterNames(c!.namespace);
    for (let k = 1; k <= KILLS; k++) {
      const leader = await queueLeader(names.writeQueue);
      expect(leader.type).toBe('quorum');
      expect([1, 2, 3]).toContain(leader.node);
      const pid = await rabbitPid(leader.node);
      process.stdout.write(`[platform-ha] kill ${k}/${KILLS}: RabbitMQ node ${leader.node} (pid ${pid}), leader of ${names.writeQueue}\n`);
      await episode(`rabbitmq-writeq-leader-${k}`, async () => {
        process.kill(pid, 'SIGKILL');
      });
      // Back in the cluster, and the write queue has a leader again.
      expect((await queueLeader(names.writeQueue)).node).toBeGreaterThan(0);
    }
  }, 400_000 * KILLS);

  it('SIGKILL of the ZooKeeper leader: no acknowledged write lost or doubled, no failover, writes resume within 2 s', async () => {
    const measured: Episode[] = [];
    for (let k = 1; k <= KILLS; k++) {
      const leader = await zkLeader();
      const pid = zkPid(leader);
      process.stdout.write(`[platform-ha] kill ${k}/${KILLS}: ZooKeeper server ${leader} (pid ${pid}), the ensemble's leader\n`);
      measured.push(
        await episode(`zookeeper-leader-${k}`, async () => {
          process.kill(pid, 'SIGKILL');
        }),
      );
      expect(await zkLeader()).toBeGreaterThan(0);
    }
    // Every kill measured first (the distribution goes to docs/FAILOVER.md), then the bound.
    expect(measured.map((m) => m.resumedWithout)).not.toContain(false);
    expect(Math.max(...measured.map((m) => m.pauseMs))).toBeLessThan(2000);
  }, 400_000 * KILLS);
});

describe.skipIf(enabled)('DBAAS_PLATFORM=ha (opt-in)', () => {
  it.skip('runs with DBAAS_HA_TEST=1 or npm run test:ha (it starts a ZooKeeper ensemble and a RabbitMQ cluster)', () => undefined);
});
