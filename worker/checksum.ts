/**
 * Replica checksums: each replica hashes its user tables at one seq, so that the
 * orchestrator can prove every replica equals the master (GET /api/v1/verify).
 *
 * Invariant: two replicas whose user tables hold the same documents get the same
 * {@link TableChecksum} for every table, whatever the order in which the database
 * returns them and whatever the order of keys inside them; a table with no
 * documents is absent, so an empty table and a missing one compare equal; any
 * other difference (a field, a missing or an extra document) changes the count or
 * the sum, except with the probability of a SHA-256 collision. Internal
 * `_dbaas*` collections (the oplog) are never hashed.
 *
 * How: per document, SHA-256 of its canonical JSON (keys sorted at every level);
 * per table, the count and the sum of those digests modulo 2^256. A sum needs no
 * sort (FerretDB sorts outside SQLite, slowly) and, unlike XOR, two equal
 * digests do not cancel out.
 *
 * When: "one seq" is the checkpoint entry of a `verify` write (SyncEntry.checkpoint),
 * which is alone in its batch. A slave ends its apply run at the checkpoint and
 * hashes before it applies anything newer ({@link checkpointAfter}): it applies
 * nothing meanwhile (measured in docs/OPERATIONS.md). The master does not stop
 * taking writes: it hashes beside them and corrects for what they change
 * (checkpoint-window.ts). So every replica hashes exactly the state at that seq.
 * Results are kept in a small {@link ChecksumBook} keyed by seq, for the
 * orchestrator to collect over the control queue.
 */
import type { Doc } from '../common/commands.js';
import { TableHasher } from '../common/doc-hash.js';
import type { Logger } from '../common/logger.js';
import type { ChecksumReply, SyncEntry, TableChecksum } from '../common/messages.js';
import { INTERNAL_PREFIX } from './store.js';

/** What a checksum reads: the names of the user tables (internal ones excluded) and every document of one. */
export interface ChecksumSource {
  userTables(): Promise<string[]>;
  scanTable(name: string): AsyncIterable<Doc>;
}

/** A user table: not one of the worker's own `_dbaas*` collections, nor a system one. */
export function isUserTable(name: string): boolean {
  return !name.startsWith(INTERNAL_PREFIX) && !name.startsWith('system.');
}

export { docDigest, TableHasher } from '../common/doc-hash.js';

/** The checksum of documents given in any order (tests, and one table of {@link checksumTables}). */
export function checksumDocs(docs: Iterable<Doc>): TableChecksum {
  const h = new TableHasher();
  for (const doc of docs) h.add(doc);
  return h.result();
}

/** Hashes every non-empty user table of `src`; `signal` interrupts it (throws). */
export async function checksumTables(src: ChecksumSource, signal?: AbortSignal): Promise<{ tables: Record<string, TableChecksum>; documents: number }> {
  const tables: Record<string, TableChecksum> = {};
  let documents = 0;
  for (const name of (await src.userTables()).filter(isUserTable).sort()) {
    const h = new TableHasher();
    for await (const doc of src.scanTable(name)) {
      if (signal?.aborted) throw new Error('interrupted (this worker is being promoted or stopped)');
      h.add(doc);
    }
    if (h.count === 0) continue;
    tables[name] = h.result();
    documents += h.count;
  }
  return { tables, documents };
}

/** How many checkpoints a worker remembers; the orchestrator collects a result within seconds of taking it. */
export const CHECKSUM_BOOK_SIZE = 16;

/**
 * The checksums this worker took at checkpoints, by seq (bounded: the oldest go),
 * and how far its data has settled: the highest seq whose data is written and,
 * if it was a checkpoint, hashed. A checkpoint at or below the settled seq that
 * has no result was never taken here: not comparable.
 */
export class ChecksumBook {
  private readonly results = new Map<number, ChecksumReply>();
  /** Checkpoints whose checksum is still being taken (the master's runs beside its writes). */
  private readonly pending = new Set<number>();
  private settledSeq = 0;

  constructor(private readonly capacity = CHECKSUM_BOOK_SIZE) {}

  get settled(): number {
    return this.settledSeq;
  }

  /** The data is written (and hashed where a checkpoint asked) up to `seq`. */
  settle(seq: number): void {
    this.settledSeq = Math.max(this.settledSeq, seq);
  }

  /** A checksum at `seq` is being taken: wait for it rather than call it not comparable. */
  begin(seq: number): void {
    this.pending.add(seq);
  }

  record(reply: ChecksumReply): void {
    this.pending.delete(reply.seq);
    this.results.set(reply.seq, reply);
    while (this.results.size > this.capacity) this.results.delete(this.results.keys().next().value as number);
  }

  get(seq: number): ChecksumReply | undefined {
    return this.results.get(seq);
  }

  /**
   * The result at checkpoint `seq`, waiting up to `waitMs` for this worker to
   * settle there. `settledOther` adds another measure of progress (a slave's
   * applied seq, which also covers a snapshot that started past `seq`).
   */
  async await(seq: number, waitMs: number, settledOther: () => number = () => 0): Promise<ChecksumReply> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const found = this.results.get(seq);
      if (found) return found;
      const settled = Math.max(this.settledSeq, settledOther());
      if (settled >= seq && !this.pending.has(seq)) {
        return { seq, comparable: false, reason: `this worker did not apply checkpoint ${seq} itself (it joined later from a snapshot, or the result is gone)` };
      }
      if (Date.now() >= deadline) {
        const reason = this.pending.has(seq) ? `this worker was still hashing at checkpoint ${seq} after ${waitMs} ms` : `this worker has applied seq ${settled}, not ${seq}, after ${waitMs} ms`;
        return { seq, comparable: false, reason };
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/** How {@link checkpointAfter} may hash. */
export interface CheckpointOptions {
  /** A new slave's data is exact only from this seq on (see SlaveRole.snapshot); a checkpoint below it is not comparable. */
  fuzzyUpTo?: number;
  /** Ends the hashing early (a promotion must not wait for it): the checkpoint is then not comparable. */
  signal?: AbortSignal;
  /** Do not hash, and say why (a slave still catching up should not slow down). */
  skipBecause?: string;
}

/**
 * Called once the data of `entries` (consecutive, in seq order) is written and
 * before anything newer is: hashes at a checkpoint that ends them (the caller
 * guarantees a checkpoint is the last of its run), records it, and settles.
 * A failed, interrupted or skipped hash is recorded as not comparable; it never
 * stops replication.
 */
export async function checkpointAfter(
  src: ChecksumSource,
  book: ChecksumBook,
  entries: ReadonlyArray<Pick<SyncEntry, 'seq' | 'checkpoint'>>,
  logger: Logger,
  opts: CheckpointOptions = {},
): Promise<void> {
  const last = entries.at(-1);
  if (!last) return;
  const { fuzzyUpTo = 0 } = opts;
  if (last.checkpoint && opts.skipBecause !== undefined) {
    book.record({ seq: last.seq, comparable: false, reason: `not hashed: ${opts.skipBecause}` });
  } else if (last.checkpoint && last.seq < fuzzyUpTo) {
    // A new slave's copy was read while the master went on writing: until the entries up to
    // `fuzzyUpTo` are applied, its data may already hold some of their effects, so it is not
    // the state at this seq.
    book.record({ seq: last.seq, comparable: false, reason: `checkpoint ${last.seq} fell inside this worker's snapshot window (exact from seq ${fuzzyUpTo})` });
  } else if (last.checkpoint) {
    book.begin(last.seq);
    const started = performance.now();
    try {
      const { tables, documents } = await checksumTables(src, opts.signal);
      const ms = Math.round(performance.now() - started);
      book.record({ seq: last.seq, comparable: true, tables, documents, ms });
      logger.info({ seq: last.seq, tables: Object.keys(tables).length, documents, ms }, 'checksum taken at checkpoint');
    } catch (err) {
      book.record({ seq: last.seq, comparable: false, reason: `hashing failed: ${(err as Error).message}` });
      logger.warn({ seq: last.seq, err: (err as Error).message }, 'checksum at checkpoint failed');
    }
  }
  book.settle(last.seq);
}
