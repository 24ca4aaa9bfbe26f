/**
 * `dbaas teardown --namespace NS`: removes everything a namespace left behind
 * once no orchestrator runs it: its queues and exchanges on RabbitMQ, its znode
 * tree in ZooKeeper, its Swarm services, Docker containers, volumes and network (by label), any
 * of its worker or database processes still running, and its data directory
 * (with the PostgreSQL databases it names).
 *
 * Invariant: nothing is removed while an orchestrator holds the namespace (the
 * leader's ephemeral `/<ns>/orchestrator`, or any member under
 * `/<ns>/orchestrators`): the teardown refuses and names it. Tearing down a
 * live cluster would delete acknowledged writes; stop it first.
 *
 * Which queues: the fixed ones (`writeQ`, `readQ`, `poisonQ`, the old `deadQ`),
 * the sync and control queues of every worker id known from ZooKeeper, the data
 * directory and Docker labels, and, when the broker is on this host and
 * `rabbitmqctl` works, every queue and exchange named `<ns>.…` (AMQP cannot list
 * queues). Deleting what does not exist is not an error, so a second run is a
 * no-op.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type amqp from 'amqplib';
import { connectToAny } from '../common/amqp-connection.js';
import { amqpHosts, parseAmqpUrls } from '../common/amqp-urls.js';
import type { OrchestratorConfig } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import { clusterNames, type ClusterNames } from '../common/names.js';
import { readJsonFile } from '../common/state-file.js';
import { describeInfo } from '../coordination/leader-election.js';
import { leaderOf, memberCount, registeredWorkerIds, removeTree, withZkSession, znodeTree } from '../coordination/namespace.js';
import { zkPaths, type ZkPaths } from '../coordination/paths.js';
import type { ZkStore } from '../coordination/zk-session.js';
import { DOCKER_LABELS } from './runtimes/docker-runtime.js';
import { dockerClient } from './runtimes/index.js';
import { dropMarkers, dropWorkerDatabases, readMarker, spareMarkers } from './runtimes/postgresql-databases.js';

export type TeardownConfig = Pick<OrchestratorConfig, 'namespace' | 'amqpUrl' | 'zkConnect' | 'dataDir' | 'dockerHost'>;

/** What a teardown removed (or, from {@link inventory}, what is there). */
export interface NamespaceObjects {
  queues: string[];
  exchanges: string[];
  /** Znodes under (and including) `/<ns>`. */
  znodes: string[];
  /** Swarm services (DBAAS_RUNTIME=swarm); removed before the containers they made. */
  services: string[];
  containers: string[];
  volumes: string[];
  networks: string[];
  /** Processes of the namespace (workers, databases) that were still running. */
  processes: number[];
  /** `<DBAAS_DATA_DIR>/<ns>` when it exists. */
  dataDir: string[];
  /** The workers' PostgreSQL databases (FerretDB on PostgreSQL), as their directories name them. */
  databases: string[];
  /** The relays to the HA platform's ports (scripts/setup-docker.sh) stopped, once no dbaas container was left to use them. */
  relays: string[];
  /** What could not be looked at (Docker not reachable, no rabbitmqctl, …). */
  notes: string[];
}

/** The teardown was refused: an orchestrator still holds the namespace. */
export class TeardownRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TeardownRefused';
  }
}

/**
 * The teardown could not finish: a service it needs did not answer. `removed` is what it did
 * remove; `left` names what is left, each with why. Nothing that a second run needs to find the
 * rest (the znodes, the data directory) is removed before what it finds.
 */
export class TeardownIncomplete extends Error {
  constructor(
    message: string,
    readonly removed: NamespaceObjects,
    readonly left: string[],
  ) {
    super(message);
    this.name = 'TeardownIncomplete';
  }
}

/** What to do when a service of the namespace's platform does not answer. */
function platformHint(config: TeardownConfig): string {
  const ha = /:228[1-3]\b/.test(config.zkConnect) || /:568[2-4]\b/.test(config.amqpUrl);
  return ha
    ? 'start the HA platform (bash scripts/platform-ha.sh start) and run the teardown again with its settings (.dbaas/ha/platform.env)'
    : 'start the platform the namespace ran on (bash scripts/setup.sh; for DBAAS_PLATFORM=ha, bash scripts/platform-ha.sh start and the settings of .dbaas/ha/platform.env) and run the teardown again';
}

/** The namespace's things on this host that are there now (no ZooKeeper or broker needed), each as "what: names". */
async function localLeftovers(config: TeardownConfig): Promise<string[]> {
  const left: string[] = [];
  const docker = await dockerObjects(config);
  if (typeof docker === 'string') left.push(`its Docker objects: not looked at (${docker})`);
  else {
    for (const [what, names] of [
      ['services', docker.services.map((sv) => sv.name)],
      ['containers', docker.containers.map((c) => c.name)],
      ['volumes', docker.volumes],
      ['networks', docker.networks.map((n) => n.name)],
    ] as const) {
      if (names.length > 0) left.push(`${what}: ${names.join(', ')}`);
    }
  }
  const processes = namespaceProcesses(config);
  if (processes.length > 0) left.push(`processes: ${processes.join(', ')}`);
  const dir = nsDataDir(config);
  const databases = [
    ...workerIdsOnDisk(config).flatMap((id) => readMarker(path.join(dir, id, 'db'))?.database ?? []),
    ...[...spareMarkers(dir), ...dropMarkers(dir)].map((m) => m.database),
  ];
  if (databases.length > 0) left.push(`PostgreSQL databases: ${databases.join(', ')}`);
  if (existsSync(dir)) left.push(`data directory: ${dir}`);
  return left;
}

/** The checkout this module runs from (orchestrator/ or dist/orchestrator/), when it has scripts/setup-docker.sh. */
function checkoutWithScripts(): string | undefined {
  return [path.resolve(import.meta.dirname, '..'), path.resolve(import.meta.dirname, '../..')].find((dir) => existsSync(path.join(dir, 'scripts/setup-docker.sh')));
}

/**
 * Stops the relays to the HA platform's ports that scripts/setup-docker.sh started for
 * `DBAAS_PLATFORM=ha DBAAS_RUNTIME=docker` (and npm start leaves running), once no dbaas
 * container (of any namespace) is left on the engine to use them.
 */
async function stopUnusedHaRelays(config: TeardownConfig, out: NamespaceObjects): Promise<void> {
  const root = checkoutWithScripts();
  const state = root && path.join(root, '.dbaas');
  if (!root || !state || !existsSync(state) || !readdirSync(state).some((f) => /^relay-\d+\.pid$/.test(f))) return;
  const timeout = new Promise<string>((resolve) => setTimeout(() => resolve(`Docker did not answer within ${DOCKER_TIMEOUT_MS} ms`), DOCKER_TIMEOUT_MS).unref());
  const listing = dockerClient(config.dockerHost)
    .listContainers({ all: true, filters: { label: [DOCKER_LABELS.namespace] } })
    .then((cs) => cs.length)
    .catch((err: unknown) => `Docker not reachable (${(err as Error).message})`);
  const containers = await Promise.race([listing, timeout]);
  if (typeof containers === 'string') {
    out.notes.push(`the relays to the HA platform were kept: ${containers}, so whether containers still use them cannot be told`);
    return;
  }
  if (containers > 0) {
    out.notes.push(`the relays to the HA platform were kept: ${containers} dbaas container(s) are left on the engine`);
    return;
  }
  try {
    const { stdout } = await promisify(execFile)('bash', [path.join(root, 'scripts/setup-docker.sh'), 'stop-ha-relays'], { timeout: 30_000 });
    out.relays = stdout.split('\n').filter((l) => l.trim() !== '');
  } catch (err) {
    out.notes.push(`stopping the relays to the HA platform failed: ${(err as Error).message.split('\n')[0] ?? ''}`);
  }
}

const ZK_CONNECT_TIMEOUT_MS = 10_000;
const DOCKER_TIMEOUT_MS = 15_000;

function empty(): NamespaceObjects {
  return { queues: [], exchanges: [], znodes: [], services: [], containers: [], volumes: [], networks: [], processes: [], dataDir: [], databases: [], relays: [], notes: [] };
}

/** True when `url` names this host, so this host's `rabbitmqctl` speaks for that broker. */
function brokerIsLocal(list: string): boolean {
  // rabbitmqctl asks the machine's default node (rabbit@<host>): the broker only when one URL is given.
  // A cluster's nodes (DBAAS_PLATFORM=ha) have names of their own; its queues are found by worker id.
  const urls = parseAmqpUrls(list);
  if (urls.length !== 1) return false;
  try {
    const host = new URL(urls[0] ?? '').hostname;
    return host === '127.0.0.1' || host === 'localhost' || host === '[::1]' || host === '::1';
  } catch {
    return false;
  }
}

/** `rabbitmqctl list_<what> name`, or undefined when that cannot be asked here. */
async function rabbitmqctlNames(what: 'queues' | 'exchanges'): Promise<string[] | undefined> {
  try {
    const { stdout } = await promisify(execFile)('rabbitmqctl', [`list_${what}`, '-q', '--no-table-headers', 'name'], { timeout: 60_000 });
    return stdout
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '');
  } catch {
    return undefined;
  }
}

async function withZk<T>(config: TeardownConfig, logger: Logger, fn: (zk: ZkStore) => Promise<T>): Promise<T> {
  return withZkSession(config.zkConnect, logger, ZK_CONNECT_TIMEOUT_MS, fn);
}

/** Refuses while an orchestrator leads or follows in the namespace. */
async function refuseIfHeld(zk: ZkStore, paths: ZkPaths, namespace: string): Promise<void> {
  const leader = await leaderOf(zk, paths);
  if (leader) {
    throw new TeardownRefused(`an orchestrator runs namespace ${namespace} (${describeInfo(leader)}): stop it first (Ctrl-C, or SIGTERM to that pid)`);
  }
  const members = await memberCount(zk, paths);
  if (members > 0) {
    throw new TeardownRefused(`${members} orchestrator(s) are registered in namespace ${namespace} (${paths.orchestrators}): stop them first`);
  }
}

function nsDataDir(config: TeardownConfig): string {
  return path.join(path.resolve(config.dataDir), config.namespace);
}

/** Worker ids the namespace is known to have had: its data directory and its live znodes. */
function workerIdsOnDisk(config: TeardownConfig): string[] {
  const dir = nsDataDir(config);
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name);
}

/** Running processes of the namespace: the pids in its units' unit.json that still belong to it. */
function namespaceProcesses(config: TeardownConfig): number[] {
  const dir = nsDataDir(config);
  const found: number[] = [];
  for (const id of workerIdsOnDisk(config)) {
    const unit = readJsonFile<{ workerPid?: number; dbPid?: number } | null>(path.join(dir, id, 'unit.json'));
    if (!unit) continue;
    for (const pid of [unit.workerPid, unit.dbPid]) {
      if (typeof pid !== 'number' || pid <= 0) continue;
      // A pid may have been reused since: only one whose command line or environment names this unit is ours.
      try {
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        const environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
        if (cmdline.includes(path.join(dir, id)) || environ.split('\0').includes(`DBAAS_WORKER_ID=${id}`)) found.push(pid);
      } catch {
        // not running, or not ours to read
      }
    }
  }
  return found;
}

interface DockerObjects {
  services: Array<{ id: string; name: string; workerId?: string }>;
  containers: Array<{ id: string; name: string; workerId?: string }>;
  volumes: string[];
  networks: Array<{ id: string; name: string }>;
}

async function dockerObjects(config: TeardownConfig): Promise<DockerObjects | string> {
  const docker = dockerClient(config.dockerHost);
  const filters = { label: [`${DOCKER_LABELS.namespace}=${config.namespace}`] };
  const timeout = new Promise<string>((resolve) => setTimeout(() => resolve(`Docker did not answer within ${DOCKER_TIMEOUT_MS} ms`), DOCKER_TIMEOUT_MS).unref());
  const listing = (async () => {
    try {
      const [services, containers, volumes, networks] = await Promise.all([
        // An engine that manages no swarm answers 503: no services then.
        docker.listServices({ filters }).catch(() => []),
        docker.listContainers({ all: true, filters }),
        docker.listVolumes({ filters }),
        docker.listNetworks({ filters }),
      ]);
      return {
        services: services.map((sv) => {
          const workerId = (sv.Spec?.Labels as Record<string, string> | undefined)?.[DOCKER_LABELS.workerId];
          return { id: sv.ID ?? '', name: sv.Spec?.Name ?? sv.ID ?? '', ...(workerId === undefined ? {} : { workerId }) };
        }),
        containers: containers.map((c) => {
          const workerId = c.Labels[DOCKER_LABELS.workerId];
          return { id: c.Id, name: (c.Names[0] ?? c.Id).replace(/^\//, ''), ...(workerId === undefined ? {} : { workerId }) };
        }),
        volumes: (volumes.Volumes ?? []).map((v) => v.Name),
        networks: networks.map((n) => ({ id: n.Id, name: n.Name })),
      };
    } catch (err) {
      return `Docker not reachable at ${config.dockerHost} (${(err as Error).message}): nothing of Docker looked at`;
    }
  })();
  return Promise.race([listing, timeout]);
}

/** Every queue and exchange name of the namespace that can be known (see the module header). */
async function brokerNames(config: TeardownConfig, names: ClusterNames, workerIds: Iterable<string>, notes: string[]): Promise<{ queues: string[]; exchanges: string[] }> {
  const queues = new Set([names.writeQueue, names.readQueue, names.deadLetterQueue, names.legacyDeadLetterQueue]);
  for (const id of workerIds) {
    queues.add(names.syncQueue(id));
    queues.add(names.controlQueue(id));
  }
  const exchanges = new Set([names.syncExchange, names.deadLetterExchange, names.poisonExchange]);
  const prefix = `${config.namespace}.`;
  if (brokerIsLocal(config.amqpUrl)) {
    const listedQueues = await rabbitmqctlNames('queues');
    const listedExchanges = await rabbitmqctlNames('exchanges');
    if (listedQueues && listedExchanges) {
      for (const q of listedQueues) if (q.startsWith(prefix)) queues.add(q);
      for (const x of listedExchanges) if (x.startsWith(prefix)) exchanges.add(x);
    } else notes.push('rabbitmqctl did not answer: only the queues of known worker ids were looked at');
  } else notes.push('the broker is on another host: only the queues of known worker ids were looked at (AMQP cannot list queues)');
  return { queues: [...queues], exchanges: [...exchanges] };
}

/** Which of `queues` / `exchanges` exist, by passive declares (each on its own channel: a miss closes it). */
async function existing(conn: amqp.ChannelModel, kind: 'queue' | 'exchange', candidates: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  for (const name of candidates) {
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    try {
      if (kind === 'queue') await ch.checkQueue(name);
      else await ch.checkExchange(name);
      found.push(name);
      await ch.close();
    } catch {
      // not there (the channel is closed by the broker)
    }
  }
  return found;
}

/**
 * What of the namespace exists now (nothing is changed). The same look the
 * teardown takes, so a test can assert that nothing is left afterwards.
 */
export async function inventory(config: TeardownConfig, logger: Logger): Promise<NamespaceObjects> {
  const names = clusterNames(config.namespace);
  const paths = zkPaths(config.namespace);
  const out = empty();
  const ids = new Set(workerIdsOnDisk(config));
  out.znodes = await withZk(config, logger, async (zk) => {
    const tree = await znodeTree(zk, paths.root);
    for (const id of await registeredWorkerIds(zk, paths)) ids.add(id);
    return tree;
  });
  const docker = await dockerObjects(config);
  if (typeof docker === 'string') out.notes.push(docker);
  else {
    out.services = docker.services.map((sv) => sv.name);
    out.containers = docker.containers.map((c) => c.name);
    out.volumes = docker.volumes;
    out.networks = docker.networks.map((n) => n.name);
    for (const c of docker.containers) if (c.workerId) ids.add(c.workerId);
  }
  const { queues, exchanges } = await brokerNames(config, names, ids, out.notes);
  const conn = await connectToAny(config.amqpUrl, 'dbaas-teardown');
  try {
    out.queues = await existing(conn, 'queue', queues);
    out.exchanges = await existing(conn, 'exchange', exchanges);
  } finally {
    await conn.close().catch(() => undefined);
  }
  out.processes = namespaceProcesses(config);
  if (existsSync(nsDataDir(config))) out.dataDir = [nsDataDir(config)];
  out.databases = [
    ...workerIdsOnDisk(config).flatMap((id) => readMarker(path.join(nsDataDir(config), id, 'db'))?.database ?? []),
    ...[...spareMarkers(nsDataDir(config)), ...dropMarkers(nsDataDir(config))].map((s) => s.database),
  ];
  return out;
}

/**
 * Removes everything of the namespace. Throws {@link TeardownRefused} while an
 * orchestrator holds it; otherwise returns what it removed. Idempotent.
 */
export async function teardownNamespace(config: TeardownConfig, logger: Logger): Promise<NamespaceObjects> {
  const names = clusterNames(config.namespace);
  const paths = zkPaths(config.namespace);
  const out = empty();
  const ids = new Set(workerIdsOnDisk(config));

  // 1. ZooKeeper first: it says whether an orchestrator still runs the namespace. Without it that cannot be
  // told, so nothing of the namespace is removed: what is left is named, and how to finish.
  try {
    await withZk(config, logger, async (zk) => {
      await refuseIfHeld(zk, paths, config.namespace);
      for (const id of await registeredWorkerIds(zk, paths)) ids.add(id);
    });
  } catch (err) {
    if (err instanceof TeardownRefused) throw err;
    await stopUnusedHaRelays(config, out);
    const left = [...(await localLeftovers(config)), `its znodes on ${config.zkConnect} and its queues and exchanges on ${amqpHosts(config.amqpUrl).join(', ')}: not looked at`];
    throw new TeardownIncomplete(
      `ZooKeeper did not answer (${(err as Error).message}), so whether an orchestrator still runs namespace ${config.namespace} cannot be told: nothing of it was removed; ${platformHint(config)}`,
      out,
      left,
    );
  }

  // 2. Processes left running (an orchestrator killed with SIGKILL leaves its workers): they would re-create queues and znodes.
  out.processes = namespaceProcesses(config);
  for (const pid of out.processes) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }

  // 3. Docker: Swarm services (their tasks stop), containers (which also stops their workers), then volumes and the network.
  let docker = await dockerObjects(config);
  if (typeof docker !== 'string' && docker.services.length > 0) {
    const client = dockerClient(config.dockerHost);
    for (const sv of docker.services) {
      if (sv.workerId) ids.add(sv.workerId);
      await client.getService(sv.id).remove();
      out.services.push(sv.name);
    }
    // Swarm removes the services' containers by itself, a moment later; then their volumes are free.
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && (await client.listContainers({ all: true, filters: { label: [`${DOCKER_LABELS.namespace}=${config.namespace}`] } })).length > 0) {
      await new Promise((r) => setTimeout(r, 200));
    }
    docker = await dockerObjects(config);
  }
  if (typeof docker === 'string') out.notes.push(docker);
  else {
    const client = dockerClient(config.dockerHost);
    for (const c of docker.containers) {
      if (c.workerId) ids.add(c.workerId);
      await client.getContainer(c.id).remove({ force: true, v: true });
      out.containers.push(c.name);
    }
    for (const v of docker.volumes) {
      await client.getVolume(v).remove();
      out.volumes.push(v);
    }
    for (const n of docker.networks) {
      await client.getNetwork(n.id).remove();
      out.networks.push(n.name);
    }
  }

  // 4. The broker.
  const { queues, exchanges } = await brokerNames(config, names, ids, out.notes);
  const conn = await connectToAny(config.amqpUrl, 'dbaas-teardown').catch(async (err: unknown) => {
    // The znodes and the data directory stay: they name the worker ids a second run needs to find the queues.
    throw new TeardownIncomplete(`the broker did not answer (${(err as Error).message}): its queues and exchanges were not removed; ${platformHint(config)}`, out, [
      `queues and exchanges of namespace ${config.namespace} on ${amqpHosts(config.amqpUrl).join(', ')}: not looked at`,
      `znodes: kept under /${config.namespace} on ${config.zkConnect}`,
      ...(await localLeftovers(config)),
    ]);
  });
  try {
    const presentQueues = await existing(conn, 'queue', queues);
    const presentExchanges = await existing(conn, 'exchange', exchanges);
    const ch = await conn.createChannel();
    for (const q of presentQueues) await ch.deleteQueue(q);
    for (const x of presentExchanges) await ch.deleteExchange(x);
    await ch.close();
    out.queues = presentQueues;
    out.exchanges = presentExchanges;
  } finally {
    await conn.close().catch(() => undefined);
  }

  // 5. ZooKeeper: the whole tree, deepest first (checked again: nobody may have taken the namespace meanwhile).
  out.znodes = await withZk(config, logger, async (zk) => {
    await refuseIfHeld(zk, paths, config.namespace);
    return removeTree(zk, paths.root);
  });

  // 6. The data directory, last: until here it told which workers the namespace had; first the
  // PostgreSQL databases it names (a server that does not answer fails the teardown, so a second
  // run still finds them).
  const dir = nsDataDir(config);
  out.databases = await dropWorkerDatabases(dir);
  if (existsSync(dir)) {
    rmSync(dir, { recursive: true, force: true });
    out.dataDir = [dir];
  }

  // 7. The relays to the HA platform, when nothing on the engine uses them any more.
  await stopUnusedHaRelays(config, out);
  return out;
}
