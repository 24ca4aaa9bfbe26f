/**
 * The newest records of this worker, in memory, by requestId.
 *
 * Retries come for recent writes: after a failover the dead master's
 * unanswered writes are redelivered, and clients resend theirs, all within
 * seconds. On FerretDB a lookup by requestId scans the whole collection (it
 * filters outside SQLite), so a promoted master answering a handful of retries
 * took time that grew with its history (about 2.5 s once in a 20-crash drill).
 * This keeps the newest records (request-ledger.ts), bounded in count and in
 * weight (the resulting-state ops an oplog entry carries, if any), so such
 * retries are answered from memory; an older one still falls back to the
 * database, which stays the authority.
 */

interface Keyed {
  requestId: string;
  seq: number;
  ops?: readonly unknown[];
}

function weight(e: Keyed): number {
  return e.ops?.length ?? 1;
}

export class RecentEntries<E extends Keyed = Keyed> {
  private readonly byRequestId = new Map<string, E>();
  private load = 0;

  /**
   * @param maxEntries most records kept
   * @param maxOps most weight kept over all records (an oplog entry can carry a thousand documents)
   */
  constructor(
    private readonly maxEntries = 4096,
    private readonly maxOps = 50_000,
  ) {}

  get size(): number {
    return this.byRequestId.size;
  }

  /** Records in seq order; the oldest go first when a bound is passed. */
  add(entries: readonly E[]): void {
    for (const e of entries) {
      const had = this.byRequestId.get(e.requestId);
      if (had) {
        if (had.seq >= e.seq) continue;
        this.byRequestId.delete(e.requestId);
        this.load -= weight(had);
      }
      if (weight(e) > this.maxOps) continue;
      this.byRequestId.set(e.requestId, e);
      this.load += weight(e);
    }
    for (const [id, e] of this.byRequestId) {
      if (this.byRequestId.size <= this.maxEntries && this.load <= this.maxOps) break;
      this.byRequestId.delete(id);
      this.load -= weight(e);
    }
  }

  get(requestId: string): E | undefined {
    return this.byRequestId.get(requestId);
  }

  /** Forgets one requestId's record (its write was voided). */
  delete(requestId: string): void {
    const had = this.byRequestId.get(requestId);
    if (!had) return;
    this.byRequestId.delete(requestId);
    this.load -= weight(had);
  }

  clear(): void {
    this.byRequestId.clear();
    this.load = 0;
  }
}
