/**
 * The namespace's audit log in ZooKeeper: one persistent sequential znode per
 * event under `/<ns>/audit`, bounded to the newest {@link AUDIT_MAX}. An
 * event's `seq` is its znode's sequence number + 1, the same for every reader.
 * orchestrator/shared-audit.ts appends to it and answers GET /api/v1/events.
 */
import type { ZkPaths } from './paths.js';
import { decodeAuditZnode, encodeZnode, type AuditZnode } from './schemas.js';
import { CreateMode, isNoNode, type ZkStore } from './zk-session.js';

export const AUDIT_MAX = 1000;

/** An event's znode name (`e-0000000041`) and its seq (42). */
export interface AuditEntryName {
  name: string;
  seq: number;
}

export class AuditStore {
  constructor(
    private readonly zk: ZkStore,
    private readonly paths: ZkPaths,
    private readonly max = AUDIT_MAX,
  ) {}

  /** Appends one event, then deletes the oldest beyond the bound; answers the names it deleted. */
  async append(event: AuditZnode): Promise<string[]> {
    await this.zk.mkdirp(this.paths.audit);
    await this.zk.create(this.paths.auditPrefix, encodeZnode(event), CreateMode.PERSISTENT_SEQUENTIAL);
    const children = (await this.zk.getChildren(this.paths.audit)).sort();
    const dropped = children.slice(0, Math.max(0, children.length - this.max));
    for (const name of dropped) await this.zk.remove(`${this.paths.audit}/${name}`).catch(() => undefined);
    return dropped;
  }

  /** Every event's name and seq, oldest first ([] before the first event). */
  async names(): Promise<AuditEntryName[]> {
    const children = await this.zk.getChildren(this.paths.audit).catch((err: unknown) => (isNoNode(err) ? [] : Promise.reject(err)));
    return children.sort().map((name) => ({ name, seq: Number(name.slice(2)) + 1 }));
  }

  /** One event, or undefined when it was trimmed meanwhile or does not decode. */
  async read(name: string): Promise<AuditZnode | undefined> {
    try {
      return decodeAuditZnode((await this.zk.getData(`${this.paths.audit}/${name}`)).data);
    } catch {
      return undefined;
    }
  }
}
