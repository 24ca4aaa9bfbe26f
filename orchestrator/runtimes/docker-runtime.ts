/**
 * The `docker` runtime: each worker is a worker container plus its own database
 * container (MongoDB, or FerretDB offline), both on the namespace's bridge
 * network (`dbaas-<namespace>` by default), managed through the Engine API.
 *
 * - Names: `dbaas-<ns>-<id>` (worker), `dbaas-<ns>-<id>-db` (database) and the
 *   named volume `dbaas-<ns>-<id>-db` (its data, kept until {@link remove}).
 *   The worker reaches its database, and slaves reach the master's for their
 *   snapshot, as `mongodb://dbaas-<ns>-<id>-db:27017/` on that network.
 * - Labels: `dbaas.managed=true`, `dbaas.namespace` (the cluster), `dbaas.worker-id`,
 *   `dbaas.role` (the role it started in) and `dbaas.part` (`worker` or `db`).
 * - pid: the worker container's `State.Pid`, the host's pid of its node process.
 * - Deaths are seen on the Engine's event stream (`die`, `destroy`); after the
 *   stream is lost and regained the containers are inspected again. When either
 *   half dies the other is stopped too, and the pair is reported once.
 * - `dataDir/<ns>/<id>/unit.json` records each worker's containers, so the
 *   cluster can tell which dead workers still have data (`hasData`).
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import { sleep } from '../../common/backoff.js';
import type { Logger } from '../../common/logger.js';
import { writeFileAtomic } from '../../common/state-file.js';
import { DockerEvents, type DockerEvent } from './docker-events.js';
import { causeFromLogs, lastLines } from './failure-cause.js';
import type { ExitInfo, ExitListener, Runtime, WorkerHandle, WorkerSpec } from './runtime.js';

export const DOCKER_LABELS = {
  managed: 'dbaas.managed',
  namespace: 'dbaas.namespace',
  workerId: 'dbaas.worker-id',
  role: 'dbaas.role',
  part: 'dbaas.part',
} as const;

/** Where a worker's database listens inside its container, and keeps its data. */
export const DB_PORT = 27017;
export const DB_DATA = '/data/db';
/** How long one Engine API call may take before it counts as hung. */
export const API_TIMEOUT_MS = 30_000;
/** How many lines of a failed worker's container logs, and how long reading them may take (failureCause). */
const CAUSE_LOG_LINES = 400;
const CAUSE_TIMEOUT_MS = 3000;

export interface DockerRuntimeOptions {
  docker: Docker;
  namespace: string;
  /** Where `unit.json` records are kept (`<dataDir>/<namespace>/<id>/`). */
  dataDir: string;
  /** The bridge network of the namespace; created (and removed on close) when missing. */
  network: string;
  workerImage: string;
  dbImage: string;
  /** DBAAS_* settings every worker shares, with addresses as seen from inside a container. */
  clusterEnv: Record<string, string>;
  logger: Logger;
  dbStartTimeoutMs?: number;
  /** Extra /etc/hosts lines for worker containers; by default the host as `host.docker.internal`. */
  extraHosts?: string[];
}

export type Part = 'worker' | 'db';
export const PARTS: readonly Part[] = ['worker', 'db'];

export interface Unit {
  id: string;
  pid: number;
  /** Container ids. */
  containers: Record<Part, string>;
  dead: Record<Part, boolean>;
  /** The worker container's exit code, once known. */
  code: number | null;
  expected: boolean;
  reported: boolean;
  exited: Promise<void>;
  resolveExited(): void;
}

/** Container, volume and network names of one worker. */
export function dockerNames(namespace: string, id: string): { worker: string; db: string; volume: string } {
  const base = `dbaas-${namespace}-${id}`;
  return { worker: base, db: `${base}-db`, volume: `${base}-db` };
}

export class DockerRuntime implements Runtime {
  readonly kind: string = 'docker';
  protected readonly units = new Map<string, Unit>();
  /** Workers started or adopted here (running or dead): the only ones whose data remove() deletes. */
  protected readonly owned = new Set<string>();
  /** Container id → its worker and which half it is. */
  protected readonly byContainer = new Map<string, { unit: Unit; part: Part }>();
  private readonly listeners: ExitListener[] = [];
  private readonly events: DockerEvents;
  protected readonly docker: Docker;
  private imagesChecked = false;
  protected closing: Promise<void> | undefined;

  constructor(protected readonly opts: DockerRuntimeOptions) {
    this.docker = opts.docker;
    this.events = new DockerEvents({
      subscribe: (since) =>
        this.docker.getEvents({
          // The Engine takes `seconds.nanoseconds`; the typings only know whole numbers.
          ...(since === undefined ? {} : { since: since as unknown as number }),
          filters: { type: ['container'], event: ['die', 'destroy'], label: [`${DOCKER_LABELS.namespace}=${opts.namespace}`] },
        }),
      onEvent: (e) => this.onEvent(e),
      onReconnect: () => void this.settleAll(),
      logger: opts.logger,
    });
  }

  onExit(listener: ExitListener): void {
    this.listeners.push(listener);
  }

  list(): WorkerHandle[] {
    return [...this.units.values()].filter((u) => u.pid > 0 && !u.reported).map((u) => ({ id: u.id, pid: u.pid }));
  }

  hasData(id: string): boolean {
    return existsSync(this.unitDir(id));
  }

  protected unitDir(id: string): string {
    return path.resolve(this.opts.dataDir, this.opts.namespace, id);
  }

  protected labels(id: string, role: string, part: Part): Record<string, string> {
    return {
      [DOCKER_LABELS.managed]: 'true',
      [DOCKER_LABELS.namespace]: this.opts.namespace,
      [DOCKER_LABELS.workerId]: id,
      [DOCKER_LABELS.role]: role,
      [DOCKER_LABELS.part]: part,
    };
  }

  // ------------------------------------------------------------- starting --

  /** Subscribes to events and makes sure the engine answers and the images exist. */
  protected async prepare(): Promise<void> {
    try {
      await timed(this.events.start(), API_TIMEOUT_MS, 'subscribing to docker events');
    } catch (err) {
      throw new Error(`cannot reach the Docker Engine: ${(err as Error).message} (is dockerd running? scripts/setup-docker.sh starts one)`);
    }
    if (!this.imagesChecked) {
      await Promise.all([this.ensureImage(this.opts.workerImage), this.ensureImage(this.opts.dbImage)]);
      this.imagesChecked = true;
    }
  }

  private async ensureImage(name: string): Promise<void> {
    try {
      await timed(this.docker.getImage(name).inspect(), API_TIMEOUT_MS, `docker image inspect ${name}`);
      return;
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
    this.opts.logger.info({ image: name }, 'pulling image');
    try {
      const stream = await this.docker.pull(name);
      await new Promise<void>((resolve, reject) => this.docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve())));
    } catch (err) {
      throw new Error(
        `image ${name} is not here and could not be pulled (${(err as Error).message}); build the images (scripts/setup-docker.sh offline, or docker compose build)`,
      );
    }
  }

  /** What kind of network the namespace's containers share: a bridge on one host. */
  protected networkDriver(): { Driver: string; Attachable?: boolean } {
    return { Driver: 'bridge' };
  }

  protected async ensureNetwork(): Promise<void> {
    const { network, namespace } = this.opts;
    try {
      await timed(this.docker.getNetwork(network).inspect(), API_TIMEOUT_MS, `docker network inspect ${network}`);
      return;
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
    try {
      await timed(
        this.docker.createNetwork({
          Name: network,
          ...this.networkDriver(),
          CheckDuplicate: true,
          Labels: { [DOCKER_LABELS.managed]: 'true', [DOCKER_LABELS.namespace]: namespace },
        }),
        API_TIMEOUT_MS,
        `docker network create ${network}`,
      );
      this.opts.logger.info({ network }, 'created docker network');
    } catch (err) {
      if (statusOf(err) !== 409) throw err; // created meanwhile by someone else
    }
  }

  async startWorker(spec: WorkerSpec): Promise<WorkerHandle> {
    if (this.closing) throw new Error('the docker runtime is closed');
    if (this.units.has(spec.id)) throw new Error(`worker ${spec.id} is already running`);
    this.owned.add(spec.id);
    await this.prepare();
    await this.ensureNetwork();
    const names = dockerNames(this.opts.namespace, spec.id);
    // Containers of an earlier life of this worker (a master restarted on its data).
    await Promise.all([this.removeContainer(names.worker), this.removeContainer(names.db)]);
    await timed(
      this.docker.createVolume({ Name: names.volume, Labels: this.labels(spec.id, spec.role, 'db') }),
      API_TIMEOUT_MS,
      `docker volume create ${names.volume}`,
    );

    let unit: Unit | undefined;
    const created: string[] = [];
    try {
      const db = await timed(this.docker.createContainer(this.dbContainerSpec(spec, names)), API_TIMEOUT_MS, `docker create ${names.db}`);
      created.push(db.id);
      await timed(db.start(), API_TIMEOUT_MS, `docker start ${names.db}`);
      await this.waitForDb(db, spec.id);

      const dbUrl = `mongodb://${names.db}:${DB_PORT}/`;
      const worker = await timed(
        this.docker.createContainer(this.workerContainerSpec(spec, names.worker, dbUrl)),
        API_TIMEOUT_MS,
        `docker create ${names.worker}`,
      );
      created.push(worker.id);
      // Tracked before it starts, so that no death goes unseen.
      unit = this.track(spec.id, { worker: worker.id, db: db.id });
      try {
        await timed(worker.start(), API_TIMEOUT_MS, `docker start ${names.worker}`);
      } catch (err) {
        this.untrack(unit);
        unit = undefined;
        throw err;
      }
      const info = await timed(worker.inspect(), API_TIMEOUT_MS, `docker inspect ${names.worker}`);
      if (!info.State.Running || !info.State.Pid) {
        // Its death is reported through the event stream as any other.
        throw new Error(`worker ${spec.id} exited at start (code ${info.State.ExitCode}): ${await this.logTail(worker)}`);
      }
      unit.pid = info.State.Pid;
    } catch (err) {
      if (!unit) await Promise.all(created.map((c) => this.removeContainer(c)));
      throw err;
    }
    this.writeUnitRecord(spec.id, names);
    return { id: spec.id, pid: unit.pid };
  }

  /** Records that the worker has data here (`dataDir/<ns>/<id>/unit.json`), and where. */
  protected writeUnitRecord(id: string, record: Record<string, string>): void {
    mkdirSync(this.unitDir(id), { recursive: true });
    writeFileAtomic(path.join(this.unitDir(id), 'unit.json'), JSON.stringify({ id, ...record }));
  }

  private dbContainerSpec(spec: WorkerSpec, names: { db: string; volume: string }): Docker.ContainerCreateOptions {
    return {
      name: names.db,
      Image: this.opts.dbImage,
      Labels: this.labels(spec.id, spec.role, 'db'),
      HostConfig: {
        NetworkMode: this.opts.network,
        Mounts: [{ Type: 'volume', Source: names.volume, Target: DB_DATA }],
        RestartPolicy: { Name: 'no' },
        LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } },
      },
    };
  }

  /** The worker's environment (`KEY=value` lines): the cluster's settings and its own. */
  protected workerEnv(spec: WorkerSpec, dbUrl: string): string[] {
    const env: Record<string, string> = {
      ...this.opts.clusterEnv,
      DBAAS_WORKER_ID: spec.id,
      DBAAS_WORKER_ROLE: spec.role,
      DBAAS_WORKER_TERM: String(spec.term),
      DBAAS_WORKER_MONGO_URL: dbUrl,
      DBAAS_WORKER_ADVERTISED_MONGO_URL: dbUrl,
    };
    return Object.entries(env).map(([k, v]) => `${k}=${v}`);
  }

  private workerContainerSpec(spec: WorkerSpec, name: string, dbUrl: string): Docker.ContainerCreateOptions {
    return {
      name,
      Image: this.opts.workerImage,
      Env: this.workerEnv(spec, dbUrl),
      Labels: this.labels(spec.id, spec.role, 'worker'),
      StopSignal: 'SIGTERM',
      HostConfig: {
        NetworkMode: this.opts.network,
        ExtraHosts: this.opts.extraHosts ?? ['host.docker.internal:host-gateway'],
        RestartPolicy: { Name: 'no' },
        // The worker needs no privilege and writes nothing but logs.
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        ReadonlyRootfs: true,
        Tmpfs: { '/tmp': 'rw,noexec,nosuid,size=16m' },
        LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } },
      },
    };
  }

  /** Resolves once the database container accepts TCP connections on its network address. */
  private async waitForDb(db: Docker.Container, id: string): Promise<void> {
    const timeoutMs = this.opts.dbStartTimeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    let address = '';
    for (;;) {
      const info = await timed(db.inspect(), API_TIMEOUT_MS, `docker inspect ${db.id}`);
      if (!info.State.Running) {
        throw new Error(`the database of worker ${id} exited at start (code ${info.State.ExitCode}): ${await this.logTail(db)}`);
      }
      address = info.NetworkSettings.Networks[this.opts.network]?.IPAddress ?? '';
      if (address && (await canConnect(address, DB_PORT))) return;
      if (Date.now() >= deadline) {
        throw new Error(`the database of worker ${id} did not accept connections on ${address || '?'}:${DB_PORT} within ${timeoutMs} ms: ${await this.logTail(db)}`);
      }
      await sleep(100);
    }
  }

  /**
   * What worker `id`'s containers' logs say about its failure (failure-cause.ts): the worker's fatal line and its
   * database's last errors, from the newest container of each half that the engine here still has (a swarm task's
   * container on another node is not read). Bounded: the last {@link CAUSE_LOG_LINES} lines of each, within
   * {@link CAUSE_TIMEOUT_MS}; undefined when the engine does not answer in time.
   */
  async failureCause(id: string): Promise<string | undefined> {
    const read = async (): Promise<string | undefined> => {
      const found = await this.docker.listContainers({
        all: true,
        filters: { label: [`${DOCKER_LABELS.namespace}=${this.opts.namespace}`, `${DOCKER_LABELS.workerId}=${id}`] },
      });
      const logOf = async (part: Part): Promise<{ name: string; lines: string[] }> => {
        const c = found.filter((x) => x.Labels[DOCKER_LABELS.part] === part).sort((x, y) => y.Created - x.Created)[0];
        if (!c) return { name: part, lines: [] };
        const buf = (await this.docker.getContainer(c.Id).logs({ stdout: true, stderr: true, tail: CAUSE_LOG_LINES })) as unknown as Buffer;
        return { name: c.Names[0]?.replace(/^\//, '') ?? part, lines: lastLines(demuxLogs(buf)) };
      };
      const [worker, db] = await Promise.all([logOf('worker'), logOf('db')]);
      return causeFromLogs(worker, db);
    };
    try {
      return await timed(read(), CAUSE_TIMEOUT_MS, `docker logs of worker ${id}`);
    } catch (err) {
      this.opts.logger.warn({ id, err: (err as Error).message }, 'could not read the logs of a worker that failed to start');
      return undefined;
    }
  }

  protected async logTail(c: Docker.Container): Promise<string> {
    try {
      const buf = (await timed(c.logs({ stdout: true, stderr: true, tail: 15 }), 5000, 'docker logs')) as unknown as Buffer;
      return demuxLogs(buf).trim().slice(-2000) || '(no output)';
    } catch (err) {
      return `(no logs: ${(err as Error).message})`;
    }
  }

  // ------------------------------------------------------ tracking deaths --

  protected track(id: string, containers: Record<Part, string>, pid = 0): Unit {
    let resolveExited = (): void => undefined;
    const exited = new Promise<void>((resolve) => (resolveExited = resolve));
    const unit: Unit = {
      id,
      pid,
      containers,
      dead: { worker: false, db: false },
      code: null,
      expected: false,
      reported: false,
      exited,
      resolveExited,
    };
    this.units.set(id, unit);
    this.owned.add(id);
    for (const part of PARTS) this.byContainer.set(containers[part], { unit, part });
    return unit;
  }

  protected untrack(unit: Unit): void {
    if (this.units.get(unit.id) === unit) this.units.delete(unit.id);
    for (const part of PARTS) this.byContainer.delete(unit.containers[part]);
  }

  private onEvent(e: DockerEvent): void {
    if (e.Type !== 'container' || (e.Action !== 'die' && e.Action !== 'destroy')) return;
    const entry = this.byContainer.get(e.Actor.ID);
    if (!entry) return;
    const raw = e.Actor.Attributes.exitCode;
    const code = raw === undefined || raw === '' ? null : Number(raw);
    this.markDead(entry.unit, entry.part, Number.isInteger(code) ? code : null);
  }

  /** One half is gone: finish off the other; when both are gone, report once. */
  protected markDead(unit: Unit, part: Part, code: number | null): void {
    if (unit.reported || unit.dead[part]) return;
    unit.dead[part] = true;
    if (part === 'worker') unit.code = code;
    const other: Part = part === 'worker' ? 'db' : 'worker';
    if (unit.dead[other]) {
      this.report(unit);
      return;
    }
    // A planned stop lets the database shut down cleanly; a failure takes it down at once.
    void this.signal(unit, other, unit.expected && other === 'db' ? 'stop' : 'kill');
  }

  private report(unit: Unit): void {
    unit.reported = true;
    this.untrack(unit);
    const { code, signal } = splitExitCode(unit.code);
    const info: ExitInfo = { id: unit.id, pid: unit.pid, code, signal, expected: unit.expected };
    this.opts.logger.info({ ...info, pid: undefined, workerPid: info.pid }, 'worker exited');
    unit.resolveExited();
    for (const l of this.listeners) l(info);
    // A worker that gave up says why in its log (which goes when its container is removed).
    if (!unit.expected && signal === null) {
      void this.logTail(this.docker.getContainer(unit.containers.worker)).then((tail) =>
        this.opts.logger.warn({ id: unit.id, code, log: tail }, 'worker failed; the end of its log'),
      );
    }
  }

  /** Stops or kills one half; a container already gone or stopped counts as dead. */
  protected async signal(unit: Unit, part: Part, how: 'stop' | 'kill', stopTimeoutMs = 10_000): Promise<void> {
    if (unit.dead[part]) return;
    const c = this.docker.getContainer(unit.containers[part]);
    try {
      if (how === 'kill') await timed(c.kill({ signal: 'SIGKILL' }), API_TIMEOUT_MS, 'docker kill');
      else await timed(c.stop({ t: Math.max(1, Math.ceil(stopTimeoutMs / 1000)) }), stopTimeoutMs + API_TIMEOUT_MS, 'docker stop');
    } catch (err) {
      const status = statusOf(err);
      // 304: already stopped, 404: no such container, 409: not running.
      if (status === 304 || status === 404 || status === 409) {
        await this.settle(unit);
        return;
      }
      this.opts.logger.warn({ id: unit.id, part, err: (err as Error).message }, `docker ${how} failed`);
    }
  }

  /** Asks the engine about each half not yet known dead (after missed events). */
  protected async settle(unit: Unit): Promise<void> {
    for (const part of PARTS) {
      if (unit.dead[part] || unit.reported) continue;
      const state = await this.partState(unit, part);
      if (state?.dead) this.markDead(unit, part, state.code);
    }
  }

  /** Whether one half has died (and its exit code) as the engine tells; undefined when it cannot tell. */
  protected async partState(unit: Unit, part: Part): Promise<{ dead: boolean; code: number | null } | undefined> {
    try {
      const info = await timed(this.docker.getContainer(unit.containers[part]).inspect(), API_TIMEOUT_MS, 'docker inspect');
      return { dead: !info.State.Running, code: info.State.ExitCode };
    } catch (err) {
      return statusOf(err) === 404 ? { dead: true, code: null } : undefined;
    }
  }

  private async settleAll(): Promise<void> {
    await Promise.all([...this.units.values()].map((u) => this.settle(u)));
  }

  /** Waits for the pair to be reported dead, asking the engine again now and then. */
  private async awaitExit(unit: Unit, pollMs: number): Promise<void> {
    for (let round = 0; round < 5; round++) {
      const done = await Promise.race([unit.exited.then(() => true), sleep(pollMs).then(() => false)]);
      if (done) return;
      await this.settle(unit);
    }
    if (!unit.reported) throw new Error(`worker ${unit.id} did not die (docker engine unresponsive?)`);
  }

  // ------------------------------------------------------------ controls --

  async kill(id: string): Promise<boolean> {
    const unit = this.units.get(id);
    if (!unit) return this.owned.has(id);
    unit.expected = true;
    await Promise.all(PARTS.map((p) => this.signal(unit, p, 'kill')));
    await this.awaitExit(unit, 3000);
    return true;
  }

  async stop(id: string, timeoutMs: number): Promise<void> {
    const unit = this.units.get(id);
    if (!unit) return;
    unit.expected = true;
    // docker stop: SIGTERM, then SIGKILL after the timeout; the database follows (markDead).
    await this.signal(unit, 'worker', 'stop', timeoutMs);
    await this.awaitExit(unit, 3000);
  }

  async remove(id: string): Promise<void> {
    if (this.units.has(id)) throw new Error(`worker ${id} is still running`);
    if (!this.owned.has(id)) throw new Error(`worker ${id} was not started or adopted here; its data is not ours to delete`);
    this.owned.delete(id);
    const names = dockerNames(this.opts.namespace, id);
    await Promise.all([this.removeContainer(names.worker), this.removeContainer(names.db)]);
    try {
      await timed(this.docker.getVolume(names.volume).remove(), API_TIMEOUT_MS, `docker volume rm ${names.volume}`);
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
    rmSync(this.unitDir(id), { recursive: true, force: true });
  }

  protected async removeContainer(nameOrId: string): Promise<void> {
    try {
      await timed(this.docker.getContainer(nameOrId).remove({ force: true, v: true }), API_TIMEOUT_MS, `docker rm ${nameOrId}`);
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
  }

  async adopt(): Promise<WorkerHandle[]> {
    await this.prepare();
    const found = await timed(
      this.docker.listContainers({ all: true, filters: { label: [`${DOCKER_LABELS.namespace}=${this.opts.namespace}`] } }),
      API_TIMEOUT_MS,
      'docker ps',
    );
    const groups = new Map<string, Partial<Record<Part, Docker.ContainerInfo>>>();
    for (const c of found) {
      const id = c.Labels[DOCKER_LABELS.workerId];
      const part = c.Labels[DOCKER_LABELS.part];
      if (!id || (part !== 'worker' && part !== 'db')) continue;
      const group = groups.get(id) ?? {};
      group[part] = c;
      groups.set(id, group);
    }
    const adopted: Unit[] = [];
    for (const [id, group] of groups) {
      if (this.units.has(id)) continue;
      const workerRunning = group.worker?.State === 'running';
      const dbRunning = group.db?.State === 'running';
      if (workerRunning && dbRunning && group.worker && group.db) {
        const info = await timed(this.docker.getContainer(group.worker.Id).inspect(), API_TIMEOUT_MS, 'docker inspect');
        if (!info.State.Running || !info.State.Pid) continue;
        adopted.push(this.track(id, { worker: group.worker.Id, db: group.db.Id }, info.State.Pid));
        this.opts.logger.info({ id, workerPid: info.State.Pid }, 'adopted a running worker');
      } else if (workerRunning || dbRunning) {
        // Half a worker is no worker: finish it off.
        const half = workerRunning ? group.worker : group.db;
        if (half) await timed(this.docker.getContainer(half.Id).kill({ signal: 'SIGKILL' }), API_TIMEOUT_MS, 'docker kill').catch(() => undefined);
      }
    }
    // Deaths between the listing and the tracking had no one to hear them.
    await Promise.all(adopted.map((u) => this.settle(u)));
    return this.list();
  }

  /** The namespace's running worker containers and their `State.Pid`, read only (a follower's listing). */
  async observe(): Promise<WorkerHandle[]> {
    const found = await timed(
      this.docker.listContainers({ filters: { label: [`${DOCKER_LABELS.namespace}=${this.opts.namespace}`, `${DOCKER_LABELS.part}=worker`], status: ['running'] } }),
      API_TIMEOUT_MS,
      'docker ps',
    );
    const seen = await Promise.all(
      found.map(async (c) => {
        const info = await timed(this.docker.getContainer(c.Id).inspect(), API_TIMEOUT_MS, 'docker inspect').catch(() => undefined);
        return { id: c.Labels[DOCKER_LABELS.workerId] ?? '', pid: info?.State.Running ? info.State.Pid : 0 };
      }),
    );
    return seen.filter((w) => w.id && w.pid > 0);
  }

  /**
   * Stops watching without touching the containers, which keep running for a
   * new orchestrator to adopt (the counterpart of the cluster's `detach`).
   * Not yet part of {@link Runtime}. Idempotent; the runtime is closed after it.
   */
  detach(): void {
    this.closing ??= Promise.resolve();
    this.events.close();
    for (const unit of [...this.units.values()]) this.untrack(unit);
  }

  async close(timeoutMs: number): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all([...this.units.keys()].map((id) => this.stop(id, timeoutMs).catch(() => undefined)));
      this.events.close();
      await this.removeNetworkIfUnused();
    })();
    return this.closing;
  }

  /** Removes the namespace's network when this project created it and nothing runs on it. */
  protected async removeNetworkIfUnused(): Promise<void> {
    const n = this.docker.getNetwork(this.opts.network);
    // The engine releases a stopped container's endpoint a moment after its `die` event.
    for (let attempt = 0; attempt < 10; attempt++) {
      try {
        const info = (await timed(n.inspect(), API_TIMEOUT_MS, 'docker network inspect')) as {
          Labels?: Record<string, string>;
          Containers?: Record<string, unknown>;
        };
        if (info.Labels?.[DOCKER_LABELS.managed] !== 'true') return;
        if (Object.keys(info.Containers ?? {}).length === 0) {
          await timed(n.remove(), API_TIMEOUT_MS, 'docker network rm');
          this.opts.logger.info({ network: this.opts.network }, 'removed docker network');
          return;
        }
      } catch (err) {
        if (statusOf(err) === 404) return;
        this.opts.logger.debug({ network: this.opts.network, err: (err as Error).message }, 'docker network not removed yet');
      }
      await sleep(300);
    }
    this.opts.logger.info({ network: this.opts.network }, 'docker network still in use; kept');
  }
}

/**
 * Removes every container, volume and network of a namespace (tests, and
 * `scripts/setup-docker.sh`'s users cleaning up by hand). Not for a live cluster.
 */
export async function removeDockerNamespace(docker: Docker, namespace: string): Promise<void> {
  const filter = { label: [`${DOCKER_LABELS.namespace}=${namespace}`] };
  const containers = await docker.listContainers({ all: true, filters: filter });
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined)));
  const volumes = (await docker.listVolumes({ filters: filter })).Volumes ?? [];
  await Promise.all(volumes.map((v) => docker.getVolume(v.Name).remove().catch(() => undefined)));
  const networks = await docker.listNetworks({ filters: filter });
  await Promise.all(networks.map((n) => docker.getNetwork(n.Id).remove().catch(() => undefined)));
}

/** Docker reports a death by signal N as exit code 128 + N. */
export function splitExitCode(code: number | null): { code: number | null; signal: string | null } {
  if (code !== null && code > 128 && code < 128 + 65) {
    const name = Object.entries(osConstants.signals).find(([, n]) => n === code - 128)?.[0];
    if (name) return { code: null, signal: name };
  }
  return { code, signal: null };
}

/** Docker's log stream for a container without a TTY: frames of [stream, 0, 0, 0, size(4 bytes BE)] + payload. */
export function demuxLogs(buf: Buffer): string {
  let out = '';
  let i = 0;
  while (i + 8 <= buf.length) {
    const size = buf.readUInt32BE(i + 4);
    out += buf.subarray(i + 8, i + 8 + size).toString('utf8');
    i += 8 + size;
  }
  return i === 0 && buf.length > 0 ? buf.toString('utf8') : out;
}

export function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number } | undefined)?.statusCode;
}

/** A watchdog for Engine API calls that might never settle. */
export function timed<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host });
    sock.setTimeout(1000);
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.once('connect', () => done(true));
    sock.once('timeout', () => done(false));
    sock.once('error', () => done(false));
  });
}
