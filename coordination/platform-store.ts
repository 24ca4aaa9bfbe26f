/**
 * The lifecycle manager's view of the platform in ZooKeeper: one persistent znode
 * per supervised service under `/<ns>/platform`, rewritten by the manager that
 * watches it (orchestrator/lifecycle/lifecycle-manager.ts) and read by every
 * orchestrator for `GET /api/v1/platform`. Persistent, not ephemeral: while a
 * manager is being restarted its last word stays readable, and `updatedAt`
 * tells how old it is.
 */
import type { ZkPaths } from './paths.js';
import { decodePlatformServiceZnode, encodeZnode, type PlatformServiceZnode } from './schemas.js';
import { CreateMode, isNodeExists, isNoNode, readZnode, type ZkStore } from './zk-session.js';

export class PlatformStore {
  constructor(
    private readonly zk: ZkStore,
    private readonly paths: ZkPaths,
  ) {}

  /** Writes one service's znode (creating it, and its parents, the first time). */
  async publish(service: PlatformServiceZnode): Promise<void> {
    const path = this.paths.platformService(service.name);
    const data = encodeZnode(service);
    try {
      await this.zk.setData(path, data);
    } catch (err) {
      if (!isNoNode(err)) throw err;
      await this.zk.mkdirp(this.paths.platform);
      await this.zk.create(path, data, CreateMode.PERSISTENT).catch((e: unknown) => (isNodeExists(e) ? this.zk.setData(path, data) : Promise.reject(e)));
    }
  }

  /** Every service, by name ([] before a manager wrote any); a znode that does not decode is left out. */
  async list(): Promise<PlatformServiceZnode[]> {
    const names = await this.zk.getChildren(this.paths.platform).catch((err: unknown) => (isNoNode(err) ? [] : Promise.reject(err)));
    const out: PlatformServiceZnode[] = [];
    for (const name of names.sort()) {
      const service = await readZnode(this.zk, this.paths.platformService(name), decodePlatformServiceZnode);
      if (service) out.push(service);
    }
    return out;
  }
}
