/**
 * The services a lifecycle manager watches, each with how to find its process,
 * how to probe it and how to start it again:
 *
 * - single platform: the ZooKeeper server and the RabbitMQ node of
 *   scripts/setup.sh (restarted with `scripts/setup.sh --only …`);
 * - HA platform: the three ZooKeeper servers and three RabbitMQ nodes of
 *   scripts/platform-ha.sh (restarted one at a time with `scripts/platform-ha.sh
 *   start-one zookeeper|rabbitmq N`; a node rejoins with its own data);
 * - the orchestrator the manager runs (supervised-orchestrator.ts).
 *
 * The scripts are the one place that knows how to start a service; the pid
 * files and ports here are the ones they write and use.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { parseAmqpUrls } from '../../common/amqp-urls.js';
import type { PlatformServiceKind } from '../../coordination/schemas.js';
import { probeRabbitmq, probeZookeeper, processAlive, readPidFile } from './probes.js';

export interface ServiceSpec {
  readonly name: string;
  readonly kind: PlatformServiceKind;
  /** Where clients reach it. */
  readonly address: string;
  /** Restarted by this manager (it was started by this `npm start`), or only watched. */
  readonly managed: boolean;
  /** A platform service, shared by every manager of this checkout: only the holder of the platform lock acts on it. */
  readonly shared: boolean;
  /** Its current pid, if it has a process. */
  pid(): number | undefined;
  /** Whether that pid is a live process of this service. */
  alive(pid: number | undefined): boolean;
  /** Undefined when it answered; else why not. */
  probe(timeoutMs: number): Promise<string | undefined>;
  /** Starts it again (what was left of it already killed); resolves once started (or throws why not). */
  start(): Promise<void>;
}

/** Runs `bash <script> <args>` from the checkout, its output appended to `log`; rejects with the exit status. */
export function runScript(root: string, log: string, script: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  return new Promise((resolve, reject) => {
    mkdirSync(path.dirname(log), { recursive: true });
    const out = createWriteStream(log, { flags: 'a' });
    // A log that cannot be written must not take the manager down.
    out.on('error', () => undefined);
    out.write(`\n===== ${new Date().toISOString()} the lifecycle manager runs ${script} ${args.join(' ')}\n`);
    // Its own session (detached): a Ctrl-C in the terminal does not reach a service it starts.
    const child = spawn('bash', [path.join(root, script), ...args], { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(out, { end: false });
    child.stderr.pipe(out, { end: false });
    child.on('error', (err) => {
      out.end();
      reject(err);
    });
    child.on('close', (code, signal) => {
      out.end();
      if (code === 0) resolve();
      else reject(new Error(`${script} ${args.join(' ')} exited with ${signal ?? code} (its output: ${path.relative(root, log)})`));
    });
  });
}

function hostPort(hp: string, defaultPort: number): { host: string; port: number } {
  const i = hp.lastIndexOf(':');
  return i > 0 ? { host: hp.slice(0, i), port: Number(hp.slice(i + 1)) } : { host: hp, port: defaultPort };
}

function amqpAddress(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || '5672'}`;
}

/** A directory the scripts may have moved under /var/lib (when the service's user cannot reach the checkout). */
function movedDir(file: string, fallback: string): string {
  try {
    const dir = readFileSync(file, 'utf8').trim();
    return dir === '' ? fallback : dir;
  } catch {
    return fallback;
  }
}

/** The beam process whose environment names this RabbitMQ node (the pid file is written a little into the boot). */
function beamByNodeName(nodeName: string): number | undefined {
  const want = `RABBITMQ_NODENAME=${nodeName}`;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== 'beam.smp') continue;
      if (readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0').includes(want)) return Number(entry);
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return undefined;
}

export interface PlatformOptions {
  /** The checkout (scripts/, .dbaas/). */
  readonly root: string;
  readonly zkConnect: string;
  readonly amqpUrl: string;
  /** What this `npm start` started: `zookeeper`, `rabbitmq`, `platform-ha`. */
  readonly managed: readonly string[];
  /** Where the scripts' output goes. */
  readonly log: string;
}

/** The single platform: one ZooKeeper server, one RabbitMQ node (the first address of each setting). */
export function singlePlatform(o: PlatformOptions): ServiceSpec[] {
  const state = path.join(o.root, '.dbaas');
  const zk = hostPort(o.zkConnect.split('/')[0]?.split(',')[0] ?? '', 2181);
  const amqp = parseAmqpUrls(o.amqpUrl)[0] ?? 'amqp://127.0.0.1:5672';
  const rabbitDir = movedDir(path.join(state, 'rabbitmq-dir'), path.join(state, 'rabbitmq'));
  const host = hostname().split('.')[0] ?? 'localhost';
  return [
    {
      name: 'zookeeper',
      kind: 'zookeeper',
      address: `${zk.host}:${zk.port}`,
      managed: o.managed.includes('zookeeper'),
      shared: true,
      pid: () => readPidFile(path.join(state, 'zookeeper/zookeeper.pid')),
      alive: (pid) => processAlive(pid, 'org.apache.zookeeper.server'),
      probe: (timeoutMs) => probeZookeeper(zk.host, zk.port, timeoutMs),
      start: () => runScript(o.root, o.log, 'scripts/setup.sh', ['--only', 'zookeeper']),
    },
    {
      name: 'rabbitmq',
      kind: 'rabbitmq',
      address: amqpAddress(amqp),
      managed: o.managed.includes('rabbitmq'),
      shared: true,
      pid: () => readPidFile(path.join(rabbitDir, `mnesia/rabbit@${host}.pid`)) ?? beamByNodeName(`rabbit@${host}`),
      alive: (pid) => processAlive(pid, 'beam'),
      probe: (timeoutMs) => probeRabbitmq(amqp, timeoutMs),
      start: () => runScript(o.root, o.log, 'scripts/setup.sh', ['--only', 'rabbitmq']),
    },
  ];
}

/** The HA platform of scripts/platform-ha.sh: server/node i (1-3) is the i-th address of DBAAS_ZK_CONNECT / DBAAS_AMQP_URL. */
export function haPlatform(o: PlatformOptions): ServiceSpec[] {
  const ha = path.join(o.root, '.dbaas/ha');
  const managed = o.managed.includes('platform-ha');
  const host = hostname().split('.')[0] ?? 'localhost';
  const rabbitBase = movedDir(path.join(ha, 'rabbitmq-dir'), path.join(ha, 'rabbitmq'));
  // One server or node at a time: `start` would also wait for every other service's checks (about a minute here).
  const start = (kind: 'zookeeper' | 'rabbitmq', n: number) => (): Promise<void> => runScript(o.root, o.log, 'scripts/platform-ha.sh', ['start-one', kind, String(n)]);
  const zks = (o.zkConnect.split('/')[0] ?? '').split(',').map((hp, i): ServiceSpec => {
    const { host: h, port } = hostPort(hp, 2181);
    return {
      name: `zookeeper-${i + 1}`,
      kind: 'zookeeper',
      address: `${h}:${port}`,
      managed,
      shared: true,
      pid: () => readPidFile(path.join(ha, `zookeeper/${i + 1}/zookeeper.pid`)),
      alive: (pid) => processAlive(pid, 'org.apache.zookeeper.server'),
      probe: (timeoutMs) => probeZookeeper(h, port, timeoutMs),
      start: start('zookeeper', i + 1),
    };
  });
  const rabbits = parseAmqpUrls(o.amqpUrl).map((url, i): ServiceSpec => {
    const node = `dbaas-ha-${i + 1}@${host}`;
    return {
      name: `rabbitmq-${i + 1}`,
      kind: 'rabbitmq',
      address: amqpAddress(url),
      managed,
      shared: true,
      pid: () => {
        const pid = readPidFile(path.join(rabbitBase, `${i + 1}/node.pid`));
        return processAlive(pid, 'beam') ? pid : beamByNodeName(node);
      },
      alive: (pid) => processAlive(pid, 'beam'),
      probe: (timeoutMs) => probeRabbitmq(url, timeoutMs),
      start: start('rabbitmq', i + 1),
    };
  });
  return [...zks, ...rabbits];
}
