/**
 * The nemesis' hands on the machine: restarting the shared RabbitMQ and
 * ZooKeeper the way they were started, finding a worker's processes, and
 * removing what a run's namespace leaves on the broker and the ensemble.
 * (tests/integration/infra.ts does the same for the test files; tools do not
 * import from tests/.)
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, openSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Channel } from 'amqplib';
import { connectToAny } from '../../common/amqp-connection.js';
import { waitFor } from '../../common/backoff.js';
import { createLogger } from '../../common/logger.js';
import { clusterNames } from '../../common/names.js';
import { canConnect } from '../../common/probes.js';
import { readJsonFile } from '../../common/state-file.js';
import { removeTree, withZkSession } from '../../coordination/namespace.js';
import { zkPaths } from '../../coordination/paths.js';

const run = promisify(execFile);

/** The broker of the local set-up (DBAAS_AMQP_URL when set); the nemesis restarts it, so it must be on this machine. */
export function amqpUrl(): string {
  return process.env.DBAAS_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
}

/** The checkout this file belongs to (from the sources or from dist/). */
export function repoRoot(): string {
  let dir = import.meta.dirname;
  for (;;) {
    try {
      if ((JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string }).name === 'dbaas') return dir;
    } catch {
      // no package.json here
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no dbaas checkout above ${import.meta.dirname}`);
    dir = up;
  }
}

// As root, the sbin wrapper switches to the rabbitmq user (and its Erlang cookie).
const rabbitmqctl = existsSync('/usr/sbin/rabbitmqctl') ? '/usr/sbin/rabbitmqctl' : 'rabbitmqctl';

/**
 * Has the broker close every AMQP connection named `connectionName` (a worker's is `dbaas-worker-<id>`), as it does
 * for a client that missed its heartbeats; returns how many it closed.
 */
export async function closeBrokerConnections(connectionName: string): Promise<number> {
  const { stdout } = await run(rabbitmqctl, ['-q', 'list_connections', 'pid', 'client_properties'], { timeout: 30_000 });
  const pids = stdout
    .split('\n')
    .filter((line) => line.includes(`{"connection_name","${connectionName}"}`))
    .map((line) => line.split('\t')[0] as string);
  for (const pid of pids) await run(rabbitmqctl, ['-q', 'close_connection', pid, 'closed by a test'], { timeout: 30_000 });
  return pids.length;
}

export async function stopBroker(): Promise<void> {
  await run(rabbitmqctl, ['stop_app'], { timeout: 60_000 });
}

/** Starts the broker's application again and waits until it accepts AMQP connections. */
export async function startBroker(): Promise<void> {
  await run(rabbitmqctl, ['start_app'], { timeout: 120_000 });
  await waitFor(
    async () => {
      const conn = await connectToAny(amqpUrl(), 'dbaas-nemesis');
      await conn.close();
      return true;
    },
    60_000,
    () => new Error('RabbitMQ did not accept connections after start_app'),
    200,
  );
}

function zooKeeperPid(root: string): number {
  const pidFile = path.join(root, '.dbaas/zookeeper/zookeeper.pid');
  if (existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('zookeeper')) return pid;
    } catch {
      // stale pid file: fall through
    }
  }
  // Other processes may listen on :2181 too (the Docker set-up relays it with socat): take the JVM.
  const out = execFileSync('ss', ['-ltnpH', 'sport = :2181'], { encoding: 'utf8' });
  const m = /\("java",pid=(\d+)/.exec(out);
  if (!m?.[1]) throw new Error(`cannot find the ZooKeeper JVM listening on 2181:\n${out}`);
  return Number(m[1]);
}

/** Pauses the ZooKeeper server (SIGSTOP) for `pausedMs`, then lets it go on (SIGCONT). */
export async function pauseZooKeeper(pausedMs: number): Promise<void> {
  const pid = zooKeeperPid(repoRoot());
  process.kill(pid, 'SIGSTOP');
  try {
    await new Promise((r) => setTimeout(r, pausedMs));
  } finally {
    process.kill(pid, 'SIGCONT');
  }
}

/** Stops ZooKeeper, keeps it down for `downMs`, and starts it again with the same command line, same data. */
export async function restartZooKeeper(downMs: number): Promise<void> {
  const root = repoRoot();
  const pid = zooKeeperPid(root);
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
  const cwd = readlinkSync(`/proc/${pid}/cwd`);
  process.kill(pid, 'SIGTERM');
  await waitFor(async () => ((await canConnect(2181)) ? undefined : true), 20_000, () => new Error('ZooKeeper did not stop'));
  await new Promise((r) => setTimeout(r, downMs));
  const logFile = path.join(root, '.dbaas/zookeeper/zookeeper.log');
  const log = existsSync(path.dirname(logFile)) ? openSync(logFile, 'a') : 'ignore';
  const [cmd, ...args] = argv;
  const child = spawn(cmd as string, args, { cwd, detached: true, stdio: ['ignore', log, log] });
  child.unref();
  const pidFile = path.join(root, '.dbaas/zookeeper/zookeeper.pid');
  if (existsSync(path.dirname(pidFile)) && child.pid) writeFileSync(pidFile, String(child.pid));
  await waitFor(async () => ((await canConnect(2181)) ? true : undefined), 60_000, () => new Error('ZooKeeper did not come back'), 100);
}

interface UnitFile {
  workerPid: number;
  dbPid: number;
  port: number;
}

/** The process runtime's record of a worker (`<dataDir>/<namespace>/<id>/unit.json`), if it is there. */
export function unitOf(dataDir: string, namespace: string, workerId: string): UnitFile | undefined {
  return readJsonFile<UnitFile>(path.join(dataDir, namespace, workerId, 'unit.json'));
}

/** Worker processes of a namespace that run now, found in /proc by their environment: pid → worker id. */
export function workerProcesses(namespace: string): Map<number, string> {
  const found = new Map<number, string>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (!env.includes(`DBAAS_NAMESPACE=${namespace}`)) continue;
      const id = env.find((e) => e.startsWith('DBAAS_WORKER_ID='))?.slice('DBAAS_WORKER_ID='.length);
      if (id !== undefined && !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${entry}/stat`, 'utf8'))) found.set(Number(entry), id);
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

/** Every process of a run: databases under its data directory, workers and orchestrators of its namespace. */
export function runProcesses(namespace: string, dataDir: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
      if (cmdline.includes(dataDir) || environ.split('\0').includes(`DBAAS_NAMESPACE=${namespace}`)) found.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

/** Deletes the queues, exchanges and znodes of a namespace (its workers' sync and control queues included). */
export async function purgeNamespace(namespace: string, workerIds: Iterable<string> = []): Promise<void> {
  const names = clusterNames(namespace);
  const conn = await connectToAny(amqpUrl(), 'dbaas-nemesis');
  try {
    const queues = [names.writeQueue, names.readQueue, names.deadLetterQueue];
    for (const id of workerIds) queues.push(names.syncQueue(id), names.controlQueue(id));
    // One channel per delete: a control queue still held by a worker whose connection the broker has not
    // closed yet is refused (405 RESOURCE_LOCKED, an exclusive queue), which closes that channel; the
    // broker deletes such a queue itself once the connection goes.
    const each = async (fn: (ch: Channel) => Promise<unknown>): Promise<void> => {
      const ch = await conn.createChannel();
      ch.on('error', () => undefined);
      try {
        await fn(ch);
        await ch.close();
      } catch {
        // refused or gone: the channel is closed by the broker
      }
    };
    for (const q of queues) await each((ch) => ch.deleteQueue(q));
    for (const x of [names.syncExchange, names.deadLetterExchange, names.poisonExchange]) await each((ch) => ch.deleteExchange(x));
  } finally {
    await conn.close().catch(() => undefined);
  }
  await withZkSession('127.0.0.1:2181', createLogger('nemesis-zk', 'warn'), 10_000, (zk) => removeTree(zk, zkPaths(namespace).root));
}

/** The ids of the worker directories a run left (`<dataDir>/<namespace>/*`). */
export function workerDirs(dataDir: string, namespace: string): string[] {
  const dir = path.join(dataDir, namespace);
  return existsSync(dir) ? readdirSync(dir) : [];
}
