/**
 * The cluster manager: starts the master and slaves through the runtime, knows
 * who is alive (from the {@link ClusterView}), and answers "is there a master /
 * a serving slave" for the request path.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { waitFor } from '../common/backoff.js';
import type { OrchestratorConfig } from '../common/config.js';
import { DbaasError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { WorkerStatus } from '../common/messages.js';
import type { ClusterNames } from '../common/names.js';
import { CreateMode, isBadVersion, isNodeExists, type ZkSession } from '../common/zk-session.js';
import type { ClusterView, MasterInfo } from './cluster-view.js';
import type { RpcClient } from './rpc-client.js';
import type { ExitInfo, Runtime } from './runtimes/runtime.js';

export interface ClusterDeps {
  config: OrchestratorConfig;
  names: ClusterNames;
  runtime: Runtime;
  zk: ZkSession;
  view: ClusterView;
  rpc: RpcClient;
  logger: Logger;
}

/** What survives a restart of the whole service: which worker's data is the master's. */
interface ClusterFile {
  masterId: string;
}

export function newWorkerId(): string {
  return `w${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export class ClusterManager {
  private readonly exited = new Map<string, ExitInfo>();
  private stopping = false;

  constructor(private readonly d: ClusterDeps) {
    d.runtime.onExit((info) => this.exited.set(info.id, info));
  }

  private get clusterFile(): string {
    return path.resolve(this.d.config.dataDir, this.d.config.namespace, 'cluster.json');
  }

  /**
   * Starts a master and the initial slaves. If the previous run left a master's
   * data behind, that worker is started again as master so its data is kept.
   */
  async start(): Promise<void> {
    const { config, logger } = this.d;
    const previous = this.readClusterFile();
    const masterId = previous?.masterId ?? newWorkerId();
    const term = await this.bumpTerm();
    logger.info({ masterId, term, reused: previous !== undefined }, 'starting the master');
    await this.startWorkerAndWait({ id: masterId, role: 'master', term }, 'master');
    this.writeClusterFile({ masterId });
    await Promise.all(Array.from({ length: config.initialSlaves }, () => this.addSlave()));
  }

  /** Starts one slave and resolves when it serves reads. */
  async addSlave(): Promise<string> {
    const id = newWorkerId();
    await this.startWorkerAndWait({ id, role: 'slave', term: 0 }, 'slave');
    return id;
  }

  private async startWorkerAndWait(spec: { id: string; role: 'master' | 'slave'; term: number }, state: WorkerStatus['state']): Promise<void> {
    const started = Date.now();
    await this.d.runtime.startWorker(spec);
    await waitFor(
      () => {
        const exit = this.exited.get(spec.id);
        if (exit) throw new Error(`worker ${spec.id} exited while starting (code ${exit.code}, signal ${exit.signal})`);
        return this.d.view.workers.get(spec.id)?.state === state ? true : undefined;
      },
      this.d.config.workerStartTimeoutMs,
      () => new Error(`worker ${spec.id} did not reach state ${state} within ${this.d.config.workerStartTimeoutMs} ms`),
      20,
    ).catch(async (err: unknown) => {
      // waitFor swallows probe errors until the deadline; surface an early exit's reason instead.
      const exit = this.exited.get(spec.id);
      await this.d.runtime.kill(spec.id);
      throw exit ? new Error(`worker ${spec.id} exited while starting (code ${exit.code}, signal ${exit.signal})`) : err;
    });
    this.d.logger.info({ id: spec.id, role: spec.role, ms: Date.now() - started }, 'worker ready');
  }

  /** Increments the persistent term counter in ZooKeeper (optimistic concurrency). */
  private async bumpTerm(): Promise<number> {
    const { zk, names } = this.d;
    await zk.mkdirp(names.zkRoot);
    for (;;) {
      try {
        await zk.create(names.zkTerm, Buffer.from('0'), CreateMode.PERSISTENT);
      } catch (err) {
        if (!isNodeExists(err)) throw err;
      }
      const { data, stat } = await zk.getData(names.zkTerm);
      const next = Number(data?.toString() ?? '0') + 1;
      try {
        await zk.setData(names.zkTerm, Buffer.from(String(next)), stat.version);
        return next;
      } catch (err) {
        if (!isBadVersion(err)) throw err;
      }
    }
  }

  /** Resolves with the master, waiting up to `DBAAS_MASTER_WAIT_MS` for one; else 503. */
  async requireMaster(): Promise<MasterInfo> {
    const now = this.d.view.master;
    if (now && !this.stopping) return now;
    if (this.stopping) throw new DbaasError('DBAAS_SHUTTING_DOWN');
    return waitFor(
      () => this.d.view.master,
      this.d.config.masterWaitMs,
      () => new DbaasError('DBAAS_CLUSTER_NO_MASTER', `no master took over within ${this.d.config.masterWaitMs} ms; retry with the same requestId`),
      20,
    );
  }

  /** Throws 503 when no caught-up slave is there to answer a read. */
  requireSlave(): void {
    if (this.stopping) throw new DbaasError('DBAAS_SHUTTING_DOWN');
    if (this.d.view.servingSlaves().length === 0) throw new DbaasError('DBAAS_CLUSTER_NO_SLAVE');
  }

  /** Sorted OS pids of all live workers. */
  pids(): number[] {
    return [...this.d.view.workers.values()].map((w) => w.pid).sort((a, b) => a - b);
  }

  /** Ready: a master and at least one caught-up slave, and the broker reachable. */
  ready(): boolean {
    return !this.stopping && this.d.rpc.connected && this.d.view.master !== undefined && this.d.view.servingSlaves().length > 0;
  }

  /**
   * Stops every worker. Slaves' data and sync queues are removed (a new run starts
   * fresh slaves from a snapshot); the master's data is kept for the next start.
   */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    const slaves = this.d.view.slaves().map((w) => w.id);
    const masterId = this.d.view.master?.id;
    await Promise.all(slaves.map((id) => this.d.runtime.stop(id, timeoutMs)));
    if (masterId) await this.d.runtime.stop(masterId, timeoutMs);
    await this.d.runtime.close(timeoutMs);
    for (const id of slaves) {
      await this.d.rpc.deleteQueue(this.d.names.syncQueue(id)).catch(() => undefined);
      await this.d.runtime.remove(id).catch(() => undefined);
    }
  }

  private readClusterFile(): ClusterFile | undefined {
    if (!existsSync(this.clusterFile)) return undefined;
    try {
      const parsed = JSON.parse(readFileSync(this.clusterFile, 'utf8')) as Partial<ClusterFile>;
      const dir = path.resolve(this.d.config.dataDir, this.d.config.namespace, parsed.masterId ?? '');
      return parsed.masterId && existsSync(dir) ? { masterId: parsed.masterId } : undefined;
    } catch {
      return undefined;
    }
  }

  private writeClusterFile(file: ClusterFile): void {
    mkdirSync(path.dirname(this.clusterFile), { recursive: true });
    writeFileSync(this.clusterFile, JSON.stringify(file));
  }
}
