/**
 * The newest oplog entries of this worker, in memory, by requestId.
 *
 * Retries come for recent writes: after a failover the dead master's
 * unanswered writes are redelivered, and clients resend theirs, all within
 * seconds. On FerretDB a lookup of an entry by requestId scans the whole oplog
 * (it filters outside SQLite), so a promoted master answering a handful of
 * retries took time that grew with its history (about 2.5 s once in a
 * 20-crash drill). This keeps the newest entries, bounded in count and in the
 * documents they carry, so such retries are answered from memory; an older
 * one still falls back to the database, which stays the authority.
 */
import type { SyncEntry } from '../common/messages.js';

export class RecentEntries {
  private readonly byRequestId = new Map<string, SyncEntry>();
  private ops = 0;

  /**
   * @param maxEntries most entries kept
   * @param maxOps most resulting-state ops kept over all entries (an entry can carry a thousand documents)
   */
  constructor(
    private readonly maxEntries = 4096,
    private readonly maxOps = 50_000,
  ) {}

  get size(): number {
    return this.byRequestId.size;
  }

  /** Records entries in seq order; the oldest go first when a bound is passed. */
  add(entries: readonly SyncEntry[]): void {
    for (const e of entries) {
      const had = this.byRequestId.get(e.requestId);
      if (had) {
        if (had.seq >= e.seq) continue;
        this.byRequestId.delete(e.requestId);
        this.ops -= had.ops.length;
      }
      if (e.ops.length > this.maxOps) continue;
      this.byRequestId.set(e.requestId, e);
      this.ops += e.ops.length;
    }
    for (const [id, e] of this.byRequestId) {
      if (this.byRequestId.size <= this.maxEntries && this.ops <= this.maxOps) break;
      this.byRequestId.delete(id);
      this.ops -= e.ops.length;
    }
  }

  get(requestId: string): SyncEntry | undefined {
    return this.byRequestId.get(requestId);
  }

  clear(): void {
    this.byRequestId.clear();
    this.ops = 0;
  }
}
