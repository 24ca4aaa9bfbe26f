/**
 * The audit log of a namespace, shared by its orchestrators and kept across
 * their restarts, like `patronictl history`: every event any of them records is
 * appended to ZooKeeper as a persistent sequential znode under `/<ns>/audit`,
 * and `GET /api/v1/events` answers from there, the same on every orchestrator.
 *
 * An event's `seq` is its znode's sequence number + 1, so it is the same
 * everywhere and `?after=` works across orchestrators and restarts. The log is
 * bounded: past {@link SHARED_AUDIT_MAX} events the oldest are deleted (by
 * whichever orchestrator appends). When ZooKeeper cannot be asked, the events
 * of this orchestrator alone are answered (its in-memory AuditLog).
 */
import type { ClusterNames } from '../common/names.js';
import { CreateMode, isNoNode, type ZkSession } from '../common/zk-session.js';
import type { AuditEvent, AuditLog } from './audit-log.js';

export const SHARED_AUDIT_MAX = 1000;

/** What one znode holds: the event without its seq, and who recorded it. */
type Stored = Omit<AuditEvent, 'seq'> & { by?: string };

export class SharedAudit {
  /** Events read from ZooKeeper, by znode name. */
  private readonly cache = new Map<string, AuditEvent>();
  private appending: Promise<void> = Promise.resolve();

  constructor(
    private readonly zk: ZkSession,
    private readonly names: ClusterNames,
    private readonly local: AuditLog,
    private readonly by: string,
  ) {
    local.onRecord((event) => {
      // In order, one at a time: the znodes' sequence follows the order of recording here.
      this.appending = this.appending.then(() => this.append(event)).catch(() => undefined);
    });
  }

  private get dir(): string {
    return `${this.names.zkRoot}/audit`;
  }

  private async append(event: AuditEvent): Promise<void> {
    const { seq: _local, ...rest } = event;
    const stored: Stored = { ...rest, by: this.by };
    await this.zk.mkdirp(this.dir);
    await this.zk.create(`${this.dir}/e-`, Buffer.from(JSON.stringify(stored)), CreateMode.PERSISTENT_SEQUENTIAL);
    await this.trim();
  }

  private async trim(): Promise<void> {
    const children = (await this.zk.getChildren(this.dir)).sort();
    for (const name of children.slice(0, Math.max(0, children.length - SHARED_AUDIT_MAX))) {
      await this.zk.remove(`${this.dir}/${name}`).catch(() => undefined);
      this.cache.delete(name);
    }
  }

  /** The namespace's events, oldest first, only those after `afterSeq`; this orchestrator's own when ZooKeeper cannot answer. */
  async list(afterSeq = 0): Promise<AuditEvent[]> {
    try {
      // Appends of this process first, so an event it just recorded is there.
      await this.appending;
      const children: string[] = await this.zk.getChildren(this.dir).catch((err: unknown) => (isNoNode(err) ? [] : Promise.reject(err)));
      const out: AuditEvent[] = [];
      for (const name of children.sort()) {
        const seq = Number(name.slice(2)) + 1;
        if (!(seq > afterSeq)) continue;
        let event = this.cache.get(name);
        if (!event) {
          try {
            const stored = JSON.parse((await this.zk.getData(`${this.dir}/${name}`)).data?.toString() ?? '{}') as Stored;
            event = { ...stored, seq };
            this.cache.set(name, event);
          } catch {
            continue; // trimmed meanwhile
          }
        }
        out.push(event);
      }
      for (const name of [...this.cache.keys()]) if (!children.includes(name)) this.cache.delete(name);
      return out;
    } catch {
      return this.local.list(afterSeq);
    }
  }
}
