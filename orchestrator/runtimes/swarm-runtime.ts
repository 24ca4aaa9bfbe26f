/**
 * The `swarm` runtime: each worker is two Docker Swarm services of one replica
 * each — the worker (`dbaas-<ns>-<id>`) and its own database
 * (`dbaas-<ns>-<id>-db`, with the named volume `dbaas-<ns>-<id>-db`) — on the
 * namespace's attachable overlay network (`dbaas-<namespace>` by default),
 * created through a Swarm manager's API. Labels are those of the `docker`
 * runtime, on the services and on their containers.
 *
 * - Placement: Swarm places the database task; the worker service is then
 *   constrained to that node (`node.id==…`), and the node is recorded in
 *   `dataDir/<ns>/<id>/unit.json`, so a master restarted on its data goes back
 *   to the node that holds its volume. `constraints` add the operator's own.
 * - Restart policy `none` on both services: Swarm never restarts or reschedules
 *   a task; a dead worker is replaced by dbaas alone (a promotion, a new slave
 *   that copies the master's data), exactly as with the other runtimes, so no
 *   worker is ever replaced twice (docs/DECISIONS.md).
 * - pid and container: from the task's status (`ContainerStatus.PID`, the
 *   host's pid on the task's node; `ContainerStatus.ContainerID`).
 * - Deaths: the engine's container events (`die`, `destroy`) for tasks on this
 *   node, as in the `docker` runtime, and the task states the manager reports
 *   (read every `taskPollMs`) for every node; ZooKeeper's session remains the
 *   third, slowest detector.
 * - Crash (`kill`): SIGKILL of the task's container when it runs on this
 *   node; on another node, whose containers this engine cannot reach, the
 *   service is removed (Swarm stops the task: SIGTERM, then SIGKILL after its
 *   grace period).
 * - Database endpoints use DNS round robin (`dnsrr`), not a virtual IP: a
 *   worker and the slaves that copy from it reach `dbaas-<ns>-<id>-db:27017`
 *   at the task's own address (there is one task), with no IPVS in between.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type Docker from 'dockerode';
import { sleep } from '../../common/backoff.js';
import { readJsonFile } from '../../common/state-file.js';
import {
  API_TIMEOUT_MS,
  DB_DATA,
  DB_PORT,
  DOCKER_LABELS,
  DockerRuntime,
  dockerNames,
  removeDockerNamespace,
  statusOf,
  timed,
  type DockerRuntimeOptions,
  type Part,
  type Unit,
} from './docker-runtime.js';
import type { WorkerHandle, WorkerSpec } from './runtime.js';

export interface SwarmRuntimeOptions extends DockerRuntimeOptions {
  /** How often the manager's task states are read (the detector for tasks on other nodes). */
  taskPollMs?: number;
  /** Placement constraints added to every service, e.g. `node.labels.dbaas==true`. */
  constraints?: string[];
  /** How long a task may take to be running (image present, node found). */
  taskStartTimeoutMs?: number;
}

/** The part of a Swarm task this runtime reads. */
export interface SwarmTask {
  ID: string;
  ServiceID: string;
  NodeID?: string;
  DesiredState: string;
  Status: {
    State: string;
    Err?: string;
    Message?: string;
    ContainerStatus?: { ContainerID?: string; PID?: number; ExitCode?: number };
  };
}

/** Task states after which the task's container runs no more. */
const TERMINAL = new Set(['complete', 'failed', 'shutdown', 'rejected', 'orphaned', 'remove']);

/** The task of a one-replica service that is (or will be) its current one: the newest not shut down by Swarm. */
export function currentTask(tasks: SwarmTask[], serviceId: string): SwarmTask | undefined {
  return tasks.filter((t) => t.ServiceID === serviceId).sort((a, b) => (a.Status.State === 'running' ? -1 : b.Status.State === 'running' ? 1 : 0))[0];
}

/**
 * Whether the half of a worker that runs in `containerId` is dead, judged from
 * the manager's tasks: dead when its task ended, or when no task has that
 * container any more (the service was removed). Undefined: still running.
 */
export function deathFromTasks(tasks: SwarmTask[], containerId: string): { code: number | null } | undefined {
  const task = tasks.find((t) => t.Status.ContainerStatus?.ContainerID === containerId);
  if (!task) return { code: null };
  if (!TERMINAL.has(task.Status.State)) return undefined;
  return { code: task.Status.ContainerStatus?.ExitCode ?? null };
}

/** Whether `/proc/<pid>/net/tcp{,6}` shows a socket listening on `port` (the task's network namespace). */
export function listensOn(pid: number, port: number): boolean | undefined {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  let seen = false;
  for (const file of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${file}`, 'utf8');
    } catch {
      continue;
    }
    seen = true;
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // local_address is ADDR:PORT in hex; state 0A is LISTEN.
      if (cols[1]?.endsWith(`:${hexPort}`) && cols[3] === '0A') return true;
    }
  }
  return seen ? false : undefined;
}

export class SwarmRuntime extends DockerRuntime {
  override readonly kind: string = 'swarm';
  /** This engine's node id in the swarm (its containers are the ones it can kill and inspect). */
  private nodeId: string | undefined;
  /** Container id → the node its task runs on. */
  private readonly nodeOf = new Map<string, string>();
  private pollTimer: NodeJS.Timeout | undefined;
  private polling = false;

  constructor(private readonly swarm: SwarmRuntimeOptions) {
    super(swarm);
  }

  protected override networkDriver(): { Driver: string; Attachable?: boolean } {
    // Attachable: the tests, the chaos tool and an operator's debugging container may join it.
    return { Driver: 'overlay', Attachable: true };
  }

  /** Checks that the engine is a manager of an active swarm, once. */
  private async manager(): Promise<string> {
    if (this.nodeId) return this.nodeId;
    const info = (await timed(this.docker.info(), API_TIMEOUT_MS, 'docker info')) as {
      Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean; NodeID?: string };
    };
    const swarm = info.Swarm;
    if (swarm?.LocalNodeState !== 'active' || !swarm.ControlAvailable || !swarm.NodeID) {
      throw new Error(
        `the Docker Engine at ${this.swarmHost()} is not a Swarm manager (swarm state ${swarm?.LocalNodeState ?? 'unknown'}): ` +
          'scripts/setup-swarm.sh makes a single-node swarm, or point DBAAS_DOCKER_HOST at a manager',
      );
    }
    this.nodeId = swarm.NodeID;
    return this.nodeId;
  }

  private swarmHost(): string {
    const modem = this.docker.modem as { socketPath?: string; host?: string; port?: number };
    return modem.socketPath ? `unix://${modem.socketPath}` : `tcp://${modem.host}:${modem.port}`;
  }

  // ------------------------------------------------------------- starting --

  override async startWorker(spec: WorkerSpec): Promise<WorkerHandle> {
    if (this.closing) throw new Error('the swarm runtime is closed');
    if (this.units.has(spec.id)) throw new Error(`worker ${spec.id} is already running`);
    this.owned.add(spec.id);
    await this.manager();
    await this.prepare();
    await this.ensureNetwork();
    this.startPolling();
    const names = dockerNames(this.opts.namespace, spec.id);
    // A master restarted on its data goes back to the node that has its volume.
    const earlierNode = this.recordedNode(spec.id);
    // Services of an earlier life of this worker.
    await this.removeServices(spec.id);

    let unit: Unit | undefined;
    try {
      await timed(this.docker.createService(this.dbServiceSpec(spec, earlierNode)), API_TIMEOUT_MS, `docker service create ${names.db}`);
      const db = await this.waitForTask(names.db, `the database of worker ${spec.id}`);
      await this.waitForListening(db, spec.id);
      const node = db.NodeID ?? '';
      const dbUrl = `mongodb://${names.db}:${DB_PORT}/`;
      await timed(this.docker.createService(this.workerServiceSpec(spec, dbUrl, node)), API_TIMEOUT_MS, `docker service create ${names.worker}`);
      const worker = await this.waitForTask(names.worker, `worker ${spec.id}`);
      const containers = { worker: worker.Status.ContainerStatus?.ContainerID ?? '', db: db.Status.ContainerStatus?.ContainerID ?? '' };
      this.nodeOf.set(containers.worker, worker.NodeID ?? '');
      this.nodeOf.set(containers.db, node);
      unit = this.track(spec.id, containers, worker.Status.ContainerStatus?.PID ?? 0);
      // A death between the task's start and the tracking had no one to hear it.
      await this.settle(unit);
      if (unit.reported) throw new Error(`worker ${spec.id} exited at start`);
      this.writeUnitRecord(spec.id, { ...names, node });
    } catch (err) {
      if (!unit) await this.removeServices(spec.id).catch(() => undefined);
      throw err;
    }
    return { id: spec.id, pid: unit.pid };
  }

  private constraints(node: string | undefined): string[] {
    return [...(this.swarm.constraints ?? []), ...(node ? [`node.id==${node}`] : [])];
  }

  private dbServiceSpec(spec: WorkerSpec, node: string | undefined): Docker.CreateServiceOptions {
    const names = dockerNames(this.opts.namespace, spec.id);
    const labels = this.labels(spec.id, spec.role, 'db');
    return this.serviceSpec(names.db, labels, node, {
      Image: this.opts.dbImage,
      Mounts: [{ Type: 'volume', Source: names.volume, Target: DB_DATA, VolumeOptions: { Labels: labels } as never }],
    });
  }

  /** One replica, restarted by no one but dbaas, on the namespace's network, reached by DNS round robin; `node` pins it. */
  private serviceSpec(name: string, labels: Record<string, string>, node: string | undefined, container: Docker.ContainerSpec): Docker.CreateServiceOptions {
    return {
      Name: name,
      Labels: labels,
      TaskTemplate: {
        ContainerSpec: { ...container, Labels: labels, StopGracePeriod: 10_000_000_000 },
        RestartPolicy: { Condition: 'none' },
        Placement: { Constraints: this.constraints(node) },
        Networks: [{ Target: this.opts.network }],
        LogDriver: { Name: 'json-file', Options: { 'max-size': '10m', 'max-file': '3' } },
      },
      Mode: { Replicated: { Replicas: 1 } },
      EndpointSpec: { Mode: 'dnsrr' },
    };
  }

  private workerServiceSpec(spec: WorkerSpec, dbUrl: string, node: string): Docker.CreateServiceOptions {
    const labels = this.labels(spec.id, spec.role, 'worker');
    // Swarm's hosts lines are "address name", Docker's extra hosts "name:address".
    const hosts = (this.opts.extraHosts ?? ['host.docker.internal:host-gateway']).map((h) => {
      const i = h.indexOf(':');
      return `${h.slice(i + 1)} ${h.slice(0, i)}`;
    });
    return this.serviceSpec(dockerNames(this.opts.namespace, spec.id).worker, labels, node, {
      Image: this.opts.workerImage,
      Env: this.workerEnv(spec, dbUrl),
      Hosts: hosts,
      StopSignal: 'SIGTERM',
      // The worker needs no privilege and writes nothing but logs.
      CapabilityDrop: ['ALL'],
      ReadOnly: true,
      Mounts: [{ Type: 'tmpfs', Target: '/tmp', Source: '', TmpfsOptions: { SizeBytes: 16 * 1024 * 1024, Mode: 0o1777 } }],
    });
  }

  /**
   * The tasks of those of `services` (names or ids) that still exist: a removed
   * service has no tasks left, and naming it would fail the whole listing (the
   * engine answers "service not found"), so a worker crashed on another node
   * (its services removed) would hide every other worker's death.
   */
  private async tasksOf(services: string[]): Promise<SwarmTask[]> {
    if (services.length === 0) return [];
    const wanted = new Set(services);
    const existing = (
      await timed(
        this.docker.listServices({ filters: { label: [`${DOCKER_LABELS.namespace}=${this.opts.namespace}`] } }),
        API_TIMEOUT_MS,
        'docker service ls',
      )
    ).flatMap((s) => (s.ID && (wanted.has(s.ID) || wanted.has(s.Spec?.Name ?? '')) ? [s.ID] : []));
    if (existing.length === 0) return [];
    return (await timed(this.docker.listTasks({ filters: { service: existing } }), API_TIMEOUT_MS, 'docker service ps')) as SwarmTask[];
  }

  /** Waits for the one task of a service to run; fails when it ends or is rejected (no node, no image). */
  private async waitForTask(service: string, what: string): Promise<SwarmTask> {
    const timeoutMs = this.swarm.taskStartTimeoutMs ?? this.opts.dbStartTimeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    let last: SwarmTask | undefined;
    for (;;) {
      const tasks = await this.tasksOf([service]);
      last = tasks[0];
      for (const t of tasks) {
        const c = t.Status.ContainerStatus;
        if (t.Status.State === 'running' && c?.ContainerID && c.PID) return t;
        if (TERMINAL.has(t.Status.State)) {
          const logs = c?.ContainerID ? await this.logTail(this.docker.getContainer(c.ContainerID)) : '';
          throw new Error(`${what} ended at start (task ${t.Status.State}: ${t.Status.Err ?? t.Status.Message ?? ''})${logs ? `: ${logs}` : ''}`);
        }
      }
      if (Date.now() >= deadline) {
        throw new Error(`${what} was not running within ${timeoutMs} ms (task ${last?.Status.State ?? 'not created'}${last?.Status.Err ? `: ${last.Status.Err}` : ''})`);
      }
      await sleep(100);
    }
  }

  /**
   * Resolves once the database listens, when its task runs on this node (its
   * network namespace is visible in /proc). On another node the worker's own
   * connection retries cover the last moments of the database's start.
   */
  private async waitForListening(task: SwarmTask, id: string): Promise<void> {
    const pid = task.Status.ContainerStatus?.PID ?? 0;
    if (task.NodeID !== this.nodeId || !pid) return;
    const timeoutMs = this.opts.dbStartTimeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const listening = listensOn(pid, DB_PORT);
      if (listening !== false) return; // listening, or not visible from here
      if (Date.now() >= deadline) throw new Error(`the database of worker ${id} did not listen on :${DB_PORT} within ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  // ------------------------------------------------------ tracking deaths --

  private isLocal(containerId: string): boolean {
    return this.nodeOf.get(containerId) === this.nodeId;
  }

  protected override async partState(unit: Unit, part: Part): Promise<{ dead: boolean; code: number | null } | undefined> {
    const container = unit.containers[part];
    if (this.isLocal(container)) return super.partState(unit, part);
    try {
      const names = dockerNames(this.opts.namespace, unit.id);
      const death = deathFromTasks(await this.tasksOf([part === 'db' ? names.db : names.worker]), container);
      return death ? { dead: true, code: death.code } : { dead: false, code: null };
    } catch {
      return undefined;
    }
  }

  protected override async signal(unit: Unit, part: Part, how: 'stop' | 'kill', stopTimeoutMs = 10_000): Promise<void> {
    if (unit.dead[part] || this.isLocal(unit.containers[part])) return super.signal(unit, part, how, stopTimeoutMs);
    // Another node's container: only the manager's service API reaches it.
    const names = dockerNames(this.opts.namespace, unit.id);
    await this.removeService(part === 'db' ? names.db : names.worker).catch((err: unknown) =>
      this.opts.logger.warn({ id: unit.id, part, err: (err as Error).message }, 'docker service rm failed'),
    );
  }

  private startPolling(): void {
    if (this.pollTimer || this.closing) return;
    this.pollTimer = setInterval(() => void this.poll(), this.swarm.taskPollMs ?? 1000);
    this.pollTimer.unref();
  }

  private stopPolling(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }

  /** Reads every tracked worker's tasks from the manager; a task that ended is a death. */
  private async poll(): Promise<void> {
    if (this.polling || this.units.size === 0) return;
    this.polling = true;
    try {
      const units = [...this.units.values()];
      const tasks = await this.tasksOf(units.flatMap((u) => Object.values(dockerNames(this.opts.namespace, u.id)).slice(0, 2)));
      for (const unit of units) {
        for (const part of ['worker', 'db'] as const) {
          if (unit.reported || unit.dead[part]) continue;
          const death = deathFromTasks(tasks, unit.containers[part]);
          if (death) this.markDead(unit, part, death.code);
        }
      }
    } catch (err) {
      this.opts.logger.debug({ err: (err as Error).message }, 'reading swarm tasks failed');
    } finally {
      this.polling = false;
    }
  }

  // ------------------------------------------------------------ controls --

  override async remove(id: string): Promise<void> {
    if (this.units.has(id)) throw new Error(`worker ${id} is still running`);
    if (!this.owned.has(id)) throw new Error(`worker ${id} was not started or adopted here; its data is not ours to delete`);
    await this.removeServices(id);
    // The containers are gone with the services; the volume (on this node) and the record remain.
    await super.remove(id);
  }

  /** Removes a worker's two services and waits until their containers on this node are gone (their volume is then free). */
  private async removeServices(id: string): Promise<void> {
    const names = dockerNames(this.opts.namespace, id);
    await Promise.all([this.removeService(names.worker), this.removeService(names.db)]);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const left = await timed(
        this.docker.listContainers({ all: true, filters: { label: [`${DOCKER_LABELS.namespace}=${this.opts.namespace}`, `${DOCKER_LABELS.workerId}=${id}`] } }),
        API_TIMEOUT_MS,
        'docker ps',
      );
      if (left.length === 0) return;
      if (Date.now() >= deadline) throw new Error(`the containers of worker ${id} were still there 30 s after its services were removed`);
      await sleep(100);
    }
  }

  private async removeService(name: string): Promise<void> {
    try {
      await timed(this.docker.getService(name).remove(), API_TIMEOUT_MS, `docker service rm ${name}`);
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
  }

  override async adopt(): Promise<WorkerHandle[]> {
    await this.manager();
    await this.prepare();
    this.startPolling();
    const services = await timed(
      this.docker.listServices({ filters: { label: [`${DOCKER_LABELS.namespace}=${this.opts.namespace}`] } }),
      API_TIMEOUT_MS,
      'docker service ls',
    );
    const groups = new Map<string, Partial<Record<Part, string>>>();
    for (const s of services) {
      const labels = (s.Spec?.Labels ?? {}) as Record<string, string>;
      const id = labels[DOCKER_LABELS.workerId];
      const part = labels[DOCKER_LABELS.part];
      if (!id || (part !== 'worker' && part !== 'db') || !s.ID) continue;
      groups.set(id, { ...groups.get(id), [part]: s.ID });
    }
    const tasks = await this.tasksOf([...groups.values()].flatMap((g) => Object.values(g)));
    const adopted: Unit[] = [];
    for (const [id, group] of groups) {
      if (this.units.has(id)) continue;
      const running = (serviceId: string | undefined): SwarmTask | undefined => {
        const t = serviceId ? currentTask(tasks, serviceId) : undefined;
        return t?.Status.State === 'running' && t.Status.ContainerStatus?.ContainerID ? t : undefined;
      };
      const worker = running(group.worker);
      const db = running(group.db);
      if (worker && db) {
        const containers = { worker: worker.Status.ContainerStatus?.ContainerID ?? '', db: db.Status.ContainerStatus?.ContainerID ?? '' };
        this.nodeOf.set(containers.worker, worker.NodeID ?? '');
        this.nodeOf.set(containers.db, db.NodeID ?? '');
        adopted.push(this.track(id, containers, worker.Status.ContainerStatus?.PID ?? 0));
        this.opts.logger.info({ id, workerPid: worker.Status.ContainerStatus?.PID }, 'adopted a running worker');
      } else if (worker || db) {
        // Half a worker is no worker: finish it off.
        const half = (worker ?? db) as SwarmTask;
        const cid = half.Status.ContainerStatus?.ContainerID ?? '';
        if (half.NodeID === this.nodeId) {
          await timed(this.docker.getContainer(cid).kill({ signal: 'SIGKILL' }), API_TIMEOUT_MS, 'docker kill').catch(() => undefined);
        } else {
          await this.removeService(half.ServiceID).catch(() => undefined);
        }
      }
    }
    await Promise.all(adopted.map((u) => this.settle(u)));
    return this.list();
  }

  /** The namespace's worker services whose task runs, with the task's pid (on its node), read only (a follower's listing). */
  override async observe(): Promise<WorkerHandle[]> {
    const services = await timed(
      this.docker.listServices({ filters: { label: [`${DOCKER_LABELS.namespace}=${this.opts.namespace}`, `${DOCKER_LABELS.part}=worker`] } }),
      API_TIMEOUT_MS,
      'docker service ls',
    );
    const tasks = await this.tasksOf(services.flatMap((s) => (s.ID ? [s.ID] : [])));
    return services.flatMap((s) => {
      const id = (s.Spec?.Labels as Record<string, string> | undefined)?.[DOCKER_LABELS.workerId];
      const task = s.ID ? currentTask(tasks, s.ID) : undefined;
      const pid = task?.Status.State === 'running' ? (task.Status.ContainerStatus?.PID ?? 0) : 0;
      return id && pid > 0 ? [{ id, pid }] : [];
    });
  }

  override detach(): void {
    this.stopPolling();
    super.detach();
  }

  override async close(timeoutMs: number): Promise<void> {
    await super.close(timeoutMs);
    this.stopPolling();
  }

  /** The overlay network goes only when no service of the namespace is left on it (a kept master's are). */
  protected override async removeNetworkIfUnused(): Promise<void> {
    const left = await timed(
      this.docker.listServices({ filters: { label: [`${DOCKER_LABELS.namespace}=${this.opts.namespace}`] } }),
      API_TIMEOUT_MS,
      'docker service ls',
    ).catch(() => undefined);
    if (left === undefined || left.length > 0) {
      this.opts.logger.info({ network: this.opts.network }, 'overlay network still used by services of the namespace; kept');
      return;
    }
    await super.removeNetworkIfUnused();
  }

  // ------------------------------------------------------------- records --

  private recordedNode(id: string): string | undefined {
    return readJsonFile<{ node?: string }>(path.join(this.unitDir(id), 'unit.json'))?.node || undefined;
  }
}

/**
 * Removes every service of a namespace, then (once their containers are gone)
 * its containers, volumes and network. Tests and cleaning up by hand; not for a live cluster.
 */
export async function removeSwarmNamespace(docker: Docker, namespace: string): Promise<void> {
  const filter = { label: [`${DOCKER_LABELS.namespace}=${namespace}`] };
  const services = await docker.listServices({ filters: filter });
  await Promise.all(services.map((s) => docker.getService(s.ID ?? '').remove().catch(() => undefined)));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && (await docker.listContainers({ all: true, filters: filter })).length > 0) await sleep(200);
  await removeDockerNamespace(docker, namespace);
}

