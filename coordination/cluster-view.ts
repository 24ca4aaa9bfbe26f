/**
 * The orchestrator's picture of the cluster, kept from ZooKeeper.
 *
 * Watches only refresh the picture and emit `change`; they never act. Watches
 * are one-shot, so every read re-arms its watch, and the child list is re-read
 * on every child event.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from '../common/logger.js';
import type { ZkPaths } from './paths.js';
import { decodeMasterZnode, decodeWorkerZnode, type MasterZnode, type WorkerZnode } from './schemas.js';
import { isNoNode, type Watcher, type ZkStore } from './zk-session.js';

/** The master as its znode names it. */
export type MasterInfo = MasterZnode;

export class ClusterView extends EventEmitter {
  readonly workers = new Map<string, WorkerZnode>();
  master: MasterInfo | undefined;
  /** True once the picture was read in the current ZooKeeper session; false while it may be stale. */
  ready = false;
  private readonly retryTimer: NodeJS.Timeout;

  constructor(
    private readonly zk: ZkStore,
    private readonly paths: ZkPaths,
    private readonly logger: Logger,
  ) {
    super();
    // A new session (or a reconnection, after which the server may not have kept our
    // watches) re-reads every worker, which also re-arms every data watch.
    zk.onSession(async () => {
      await zk.mkdirp(paths.workers);
      await Promise.all([this.refreshChildren(true), this.refreshMaster()]);
      this.ready = true;
      this.emit('change');
    });
    const stale = (): void => {
      this.ready = false;
      this.emit('change');
    };
    zk.on('disconnected', stale);
    zk.on('expired', stale);
    this.retryTimer = setInterval(() => void this.retryWhileStale().catch(this.warn), 1000);
    this.retryTimer.unref();
    zk.on('reconnected', () => {
      void Promise.all([this.refreshChildren(true), this.refreshMaster()]).then(() => {
        this.ready = true;
        this.emit('change');
      });
    });
  }

  /** Slaves in state `slave`: caught up and taking reads. */
  servingSlaves(): WorkerZnode[] {
    return [...this.workers.values()].filter((w) => w.role === 'slave' && w.state === 'slave');
  }

  slaves(): WorkerZnode[] {
    return [...this.workers.values()].filter((w) => w.role === 'slave');
  }

  masterStatus(): WorkerZnode | undefined {
    return this.master ? this.workers.get(this.master.id) : undefined;
  }

  /*
   * One watcher function per znode, reused by every read: the client keeps each
   * distinct function it is given, so a new closure per refresh would pile up
   * watchers (one more per reconnection) that all fire on the next event.
   */
  private readonly childWatcher = (): void => void this.refreshChildren().catch(this.warn);
  private readonly masterWatcher = (): void => void this.refreshMaster().catch(this.warn);
  private readonly workerWatchers = new Map<string, Watcher>();

  private workerWatcher(id: string): Watcher {
    let w = this.workerWatchers.get(id);
    if (!w) {
      w = (event) => {
        // A data change is re-read here, and so is a deletion: the child watch re-reads only ids it does not know,
        // so a znode deleted and created again before it read the list again (a worker registering on a new session
        // while its old session's znode was still there) kept the old data, with no watch on the new znode.
        const name = event.getName();
        if (name === 'NODE_DATA_CHANGED' || name === 'NODE_DELETED') void this.refreshWorker(id).then(() => this.emit('change'));
      };
      this.workerWatchers.set(id, w);
    }
    return w;
  }

  private async refreshChildren(all = false): Promise<boolean> {
    let children: string[];
    try {
      children = await this.zk.getChildren(this.paths.workers, this.childWatcher);
    } catch (err) {
      this.warn(err);
      return false;
    }
    for (const id of [...this.workers.keys()]) if (!children.includes(id)) this.workers.delete(id);
    for (const id of [...this.workerWatchers.keys()]) if (!children.includes(id)) this.workerWatchers.delete(id);
    await Promise.all(children.filter((id) => all || !this.workers.has(id)).map((id) => this.refreshWorker(id)));
    this.emit('change');
    return true;
  }

  private async refreshWorker(id: string): Promise<void> {
    try {
      const { data } = await this.zk.getData(this.paths.worker(id), this.workerWatcher(id));
      const status = decodeWorkerZnode(data);
      if (status) this.workers.set(id, status);
      else {
        this.workers.delete(id);
        this.logger.warn({ id }, 'a worker znode that does not decode; ignored');
      }
    } catch (err) {
      if (isNoNode(err)) this.workers.delete(id);
      else this.warn(err);
    }
  }

  private async refreshMaster(): Promise<boolean> {
    let ok = true;
    try {
      const stat = await this.zk.exists(this.paths.master, this.masterWatcher);
      if (!stat) {
        this.master = undefined;
      } else {
        const { data } = await this.zk.getData(this.paths.master);
        this.master = decodeMasterZnode(data);
      }
    } catch (err) {
      if (isNoNode(err)) this.master = undefined;
      else {
        ok = false;
        this.warn(err);
      }
    }
    this.emit('change');
    return ok;
  }

  /**
   * While the view is not ready (after a disconnection), try every second to
   * read it all again: a reconnection event can be missed, and a view that
   * never becomes ready again would freeze the control loop.
   */
  private async retryWhileStale(): Promise<void> {
    if (this.ready || !this.zk.connected) return;
    const [children, master] = await Promise.all([this.refreshChildren(true), this.refreshMaster()]);
    if (children && master && !this.ready) {
      this.ready = true;
      this.emit('change');
    }
  }

  /** Stops the retry timer. */
  close(): void {
    clearInterval(this.retryTimer);
  }

  private readonly warn = (err: unknown): void => {
    this.logger.warn({ err: (err as Error).message }, 'zookeeper read failed');
  };
}
