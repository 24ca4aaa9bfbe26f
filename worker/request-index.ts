/**
 * Which requestIds this worker's oplog may hold, in memory, so that the master
 * does not ask its database on every write whether a write is a retry.
 *
 * It is a filter, not the answer: `mayContain` false means the oplog certainly
 * has no entry with that requestId (no database lookup needed); true means it
 * may (a retry, a hash collision, or an index not loaded yet), and the caller
 * looks the entry up in the database, which stays the authority. It keeps a
 * 53-bit hash and the seq per requestId: a few tens of bytes each, a few MB for
 * the default 100,000-entry oplog.
 */

/** cyrb53: a fast 53-bit string hash (public domain, bryc). Not cryptographic; collisions only cost a lookup. */
export function hash53(s: string): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

export class RequestIndex {
  /** hash → highest seq recorded with it. Insertion order is (mostly) seq order. */
  private readonly seqs = new Map<number, number>();
  private complete: boolean;

  /**
   * @param complete whether the index starts out knowing the whole oplog (true for an
   *   empty oplog; false for one with entries not loaded yet, when every lookup must go to the database)
   */
  constructor(complete: boolean) {
    this.complete = complete;
  }

  get size(): number {
    return this.seqs.size;
  }

  get isComplete(): boolean {
    return this.complete;
  }

  /** Records that the oplog holds an entry `seq` with this requestId. */
  add(requestId: string, seq: number): void {
    const h = hash53(requestId);
    const had = this.seqs.get(h);
    if (had === undefined || had < seq) this.seqs.set(h, seq);
  }

  /** False only when no oplog entry can have this requestId. */
  mayContain(requestId: string): boolean {
    return !this.complete || this.seqs.has(hash53(requestId));
  }

  /** The whole oplog has been loaded (entries added meanwhile count too). */
  markComplete(): void {
    this.complete = true;
  }

  /** Forgets everything: the oplog is now empty (true) or unknown (false). */
  reset(complete: boolean): void {
    this.seqs.clear();
    this.complete = complete;
  }

  /** Forgets requestIds whose newest entry is at or below `seq` (they were trimmed from the oplog). */
  dropUpTo(seq: number): void {
    for (const [h, s] of this.seqs) if (s <= seq) this.seqs.delete(h);
  }
}
