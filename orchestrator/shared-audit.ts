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
import { AUDIT_MAX, AuditStore } from '../coordination/audit-store.js';
import type { ZkPaths } from '../coordination/paths.js';
import type { AuditZnode } from '../coordination/schemas.js';
import type { ZkStore } from '../coordination/zk-session.js';
import type { AuditEvent, AuditKind, AuditLog } from './audit-log.js';

export const SHARED_AUDIT_MAX = AUDIT_MAX;

export class SharedAudit {
  /** Events read from ZooKeeper, by znode name. */
  private readonly cache = new Map<string, AuditEvent>();
  private appending: Promise<void> = Promise.resolve();
  private readonly store: AuditStore;

  constructor(
    zk: ZkStore,
    paths: ZkPaths,
    private readonly local: AuditLog,
    private readonly by: string,
  ) {
    this.store = new AuditStore(zk, paths, SHARED_AUDIT_MAX);
    local.onRecord((event) => {
      // In order, one at a time: the znodes' sequence follows the order of recording here.
      this.appending = this.appending.then(() => this.append(event)).catch(() => undefined);
    });
  }

  private async append(event: AuditEvent): Promise<void> {
    const { seq: _local, ...rest } = event;
    const stored: AuditZnode = { ...rest, by: this.by };
    for (const name of await this.store.append(stored)) this.cache.delete(name);
  }

  /** The namespace's events, oldest first, only those after `afterSeq`; this orchestrator's own when ZooKeeper cannot answer. */
  async list(afterSeq = 0): Promise<AuditEvent[]> {
    try {
      // Appends of this process first, so an event it just recorded is there.
      await this.appending;
      const entries = await this.store.names();
      const out: AuditEvent[] = [];
      for (const { name, seq } of entries) {
        if (!(seq > afterSeq)) continue;
        let event = this.cache.get(name);
        if (!event) {
          const stored = await this.store.read(name);
          if (!stored) continue; // trimmed meanwhile
          event = { ...stored, kind: stored.kind as AuditKind, seq };
          this.cache.set(name, event);
        }
        out.push(event);
      }
      const present = new Set(entries.map((e) => e.name));
      for (const name of [...this.cache.keys()]) if (!present.has(name)) this.cache.delete(name);
      return out;
    } catch {
      return this.local.list(afterSeq);
    }
  }
}
