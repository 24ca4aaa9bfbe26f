/**
 * One orchestrator per namespace: an ephemeral znode `/<ns>/orchestrator` that
 * the orchestrator holds for as long as it manages the cluster.
 *
 * Invariant: only the holder adopts, starts, kills, promotes or removes workers
 * of the namespace. A second orchestrator started on the same namespace waits a
 * few session timeouts (an orchestrator that was just killed leaves its znode
 * until its session expires), then refuses to start, saying who holds it; it
 * never touches a worker. A holder that loses its ZooKeeper session takes the
 * lock again on its next session; if someone else took it meanwhile, the holder
 * is deposed and must stop acting at once (`onLost`).
 *
 * Several orchestrators with an elected leader and followers that serve the
 * API is the next step (issue 15); this lock is the safety floor under it.
 */
import os from 'node:os';
import { waitFor } from '../common/backoff.js';
import { DbaasError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { ClusterNames } from '../common/names.js';
import { CreateMode, isNodeExists, isNoNode, type ZkSession } from '../common/zk-session.js';

/** What the lock's znode says about its holder. */
export interface LockHolder {
  host: string;
  pid: number;
  port: number;
  startedAt: string;
  /** Random per process: tells this holder from another with the same pid on another host. */
  token: string;
}

export function parseHolder(data: Buffer | undefined): Partial<LockHolder> {
  try {
    const parsed: unknown = JSON.parse(data?.toString() ?? '{}');
    return typeof parsed === 'object' && parsed !== null ? (parsed as Partial<LockHolder>) : {};
  } catch {
    return {};
  }
}

export function describeHolder(h: Partial<LockHolder>): string {
  return `pid ${h.pid ?? '?'} on ${h.host ?? '?'}, port ${h.port ?? '?'}, since ${h.startedAt ?? '?'}`;
}

export class NamespaceLock {
  private held = false;
  private readonly me: LockHolder;

  constructor(
    private readonly zk: ZkSession,
    private readonly names: ClusterNames,
    private readonly namespace: string,
    port: number,
    private readonly logger: Logger,
    private readonly onLost: (why: string) => void,
  ) {
    this.me = { host: os.hostname(), pid: process.pid, port, startedAt: new Date().toISOString(), token: Math.random().toString(36).slice(2) };
  }

  get path(): string {
    return `${this.names.zkRoot}/orchestrator`;
  }

  /** True while this process holds the lock. */
  get holding(): boolean {
    return this.held;
  }

  /**
   * Takes the lock, waiting up to `waitMs` for a holder whose session is ending.
   * Throws DBAAS_ORCHESTRATOR_RUNNING naming the holder when it stays held.
   */
  async acquire(waitMs: number): Promise<void> {
    await this.zk.mkdirp(this.names.zkRoot);
    let holder: Partial<LockHolder> = {};
    try {
      await waitFor(
        async () => {
          const got = await this.tryCreate();
          if (got === true) return true;
          holder = got;
          return undefined;
        },
        waitMs,
        () => new Error('held'),
        100,
      );
    } catch {
      throw new DbaasError(
        'DBAAS_ORCHESTRATOR_RUNNING',
        `another orchestrator manages namespace ${this.namespace} (${describeHolder(holder)}); stop it first, or give this one another DBAAS_NAMESPACE`,
      );
    }
    this.held = true;
    // A new session (the old one expired) has lost the ephemeral znode: take it again, or stand down.
    this.zk.onSession(async () => {
      if (!this.held) return;
      const got = await this.tryCreate();
      if (got !== true) {
        this.held = false;
        this.onLost(`the namespace lock was taken by another orchestrator (${describeHolder(got)}) while this one's ZooKeeper session was lost`);
      }
    });
  }

  /** true when this process holds the znode now; else what the holder wrote. */
  private async tryCreate(): Promise<true | Partial<LockHolder>> {
    const data = Buffer.from(JSON.stringify(this.me));
    try {
      await this.zk.create(this.path, data, CreateMode.EPHEMERAL);
      return true;
    } catch (err) {
      if (!isNodeExists(err)) throw err;
    }
    try {
      const { data: held } = await this.zk.getData(this.path);
      const holder = parseHolder(held);
      // Ours from a session that is ending: it goes with that session; wait for it.
      if (holder.token === this.me.token) this.logger.info('waiting for the namespace lock of an earlier session of this process to go');
      return holder;
    } catch (err) {
      if (isNoNode(err)) return {};
      throw err;
    }
  }

  /** Gives the lock up (the znode goes with the session anyway). Idempotent. */
  async release(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    try {
      const { data } = await this.zk.getData(this.path);
      if (parseHolder(data).token === this.me.token) await this.zk.remove(this.path);
    } catch {
      // gone already, or ZooKeeper unreachable: the session's end removes it
    }
  }
}
