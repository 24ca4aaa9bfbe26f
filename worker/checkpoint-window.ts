/**
 * The master's checksum at a checkpoint, taken while it goes on taking writes.
 *
 * Invariant: the checksum recorded for checkpoint S equals the checksum of the
 * master's user tables exactly as they were at S (the state a slave hashes when
 * it stops at S), or it is recorded as not comparable; writes after S are never
 * held back for it.
 *
 * How: at S a scan of every user table starts beside the write path, and a
 * window opens. Before a write's data reaches the database, every document it
 * touches for the first time since S is captured as it was at S: the master has
 * just read that document to build the write (BatchSource reads, recorded below
 * the batch overlay, are the database before the batch, which for a document
 * untouched since S is its state at S), or knows it is new (`fresh`). The scan
 * counts a document only if it was not yet touched when the scan met it (then
 * what the scan read is its state at S); at the end, the captured state of every
 * touched document the scan did not count is added. A touched document whose
 * earlier state is unknown, or more than {@link MAX_TOUCHED} touched documents
 * make the result "not comparable".
 *
 * A `clear` (of a database, or of all; a database's create and drop are clears
 * too) during the window: the scan reads the tables listed at S (listed in the
 * write stage, before the next batch is built), so a clear changes nothing the
 * checksum reads when every table it drops that existed at S has been read to
 * the end (or there was none: a new database, or one made after S). A table the
 * scan has not finished is read whole by the write stage before the clear's data
 * is written, each document not yet touched captured as touched (it is still as
 * it was at S), and the scan leaves it: the checksum stays exact, at the cost of
 * reading those tables inside the write stage, at most {@link MAX_READ_AT_CLEAR}
 * documents; past that the result is not comparable, and the reason names the
 * database and the tables.
 *
 * Cost: the scan's time (it runs beside the writes), a digest per document a
 * write reads while the window is open, and the keys of the documents counted
 * (a few MB per 100,000 documents) until the scan ends.
 */
import { splitTable } from '../common/databases.js';
import type { Logger } from '../common/logger.js';
import type { ChecksumReply, SyncEntry } from '../common/messages.js';
import { docDigest, isUserTable, TableHasher, type ChecksumBook, type ChecksumSource } from './checksum.js';
import { EXISTS, keyOfDoc as keyOf, NotingSource, type BatchSource } from './write-batch.js';

/** Most documents written while one checksum runs; beyond, that checksum is given up (not comparable). */
export const MAX_TOUCHED = 200_000;

/** Most documents the write stage reads at a clear during the window (tables it drops that the scan has not read); beyond, that checksum is given up. */
export const MAX_READ_AT_CLEAR = 10_000;

/** The reads of one batch from the database (the state before the batch), as digests. */
export class RecordingSource extends NotingSource<Buffer> {
  constructor(db: BatchSource) {
    super(db, docDigest);
  }
}

/** One open checkpoint: the documents touched since S, as they were at S. */
class Window {
  /** key → digest of the document at S, null when it did not exist at S. */
  readonly touched = new Map<string, Buffer | null>();
  invalid: string | undefined;
  closed = false;
  /** The tables {@link scan} has read to the end. */
  private readonly scanned = new Set<string>();
  /** Tables a clear drops before the scan finished them: read whole by {@link readBeforeClear}, left by the scan. */
  private readonly readAtClear = new Set<string>();
  /** A {@link readBeforeClear} under way: the scan's result waits for it. */
  private reading: Promise<void> | undefined;

  constructor(
    readonly seq: number,
    /** The user tables at S, as the scan reads them. */
    private readonly tables: readonly string[],
  ) {}

  /** Before `entries`' data is written. `reads`: what building them read from the database. */
  capture(entries: readonly SyncEntry[], reads: RecordingSource | undefined): void {
    if (this.closed || this.invalid) return;
    for (const entry of entries) {
      for (const op of entry.ops) {
        // What it drops was read to the end by the scan or by readBeforeClear.
        if (op.t === 'clear') continue;
        if (op.t === 'index' || op.t === 'dropIndex') continue;
        const id = op.t === 'put' ? op.doc._id : op.id;
        const key = keyOf(op.table, id);
        if (this.touched.has(key)) continue;
        const seen = reads?.seen.get(key);
        if (seen !== undefined && seen !== EXISTS) this.touched.set(key, seen);
        else if (op.t === 'put' && op.fresh) this.touched.set(key, null);
        else {
          this.invalid = `seq ${entry.seq} changed ${op.table}/${id} without reading it first`;
          return;
        }
      }
    }
    if (this.touched.size > MAX_TOUCHED) this.invalid = `more than ${MAX_TOUCHED} documents were written while the checksum was taken`;
  }

  /**
   * Before a clear's data is written (a clear is alone in its batch): every table it drops that existed at
   * S and that the scan has not read to the end is read here, each document not yet touched captured as
   * it is now, which is its state at S. The scan leaves those tables from then on.
   */
  readBeforeClear(entries: readonly SyncEntry[], src: ChecksumSource): Promise<void> {
    if (this.closed || this.invalid) return Promise.resolve();
    const reading = this.readTables(entries, src);
    this.reading = reading;
    return reading;
  }

  private async readTables(entries: readonly SyncEntry[], src: ChecksumSource): Promise<void> {
    let budget = MAX_READ_AT_CLEAR;
    for (const entry of entries) {
      for (const op of entry.ops) {
        if (op.t !== 'clear' || this.invalid) continue;
        const unread = this.tables.filter((t) => (op.database === undefined || splitTable(t).database === op.database) && !this.scanned.has(t) && !this.readAtClear.has(t));
        for (const table of unread) {
          this.readAtClear.add(table);
          for await (const doc of src.scanTable(table)) {
            const key = keyOf(table, String(doc._id));
            if (this.touched.has(key)) continue;
            budget -= 1;
            if (budget < 0) {
              const what = op.database === undefined ? 'every database' : `database ${op.database}`;
              const names = unread.slice(0, 3).join(', ') + (unread.length > 3 ? ` and ${unread.length - 3} more` : '');
              this.invalid = `${what} was cleared (seq ${entry.seq}: a clear, or a database dropped or created) before the checksum had read ${names}, more than the ${MAX_READ_AT_CLEAR} documents the write stage reads then`;
              return;
            }
            this.touched.set(key, docDigest(doc));
          }
        }
      }
    }
    if (this.touched.size > MAX_TOUCHED) this.invalid = `more than ${MAX_TOUCHED} documents were written while the checksum was taken`;
  }

  async scan(src: ChecksumSource): Promise<ChecksumReply> {
    const started = performance.now();
    const hashers = new Map<string, TableHasher>();
    const hasher = (table: string): TableHasher => {
      let h = hashers.get(table);
      if (!h) {
        h = new TableHasher();
        hashers.set(table, h);
      }
      return h;
    };
    const counted = new Set<string>();
    try {
      for (const name of this.tables) {
        if (this.readAtClear.has(name)) continue;
        try {
          for await (const doc of src.scanTable(name)) {
            if (this.invalid || this.readAtClear.has(name)) break;
            const key = keyOf(name, String(doc._id));
            if (this.touched.has(key)) continue;
            hasher(name).add(doc);
            counted.add(key);
          }
        } catch (err) {
          // A table taken over at a clear may be dropped under the scan's cursor.
          if (!this.readAtClear.has(name)) throw err;
        }
        if (this.invalid) break;
        if (!this.readAtClear.has(name)) this.scanned.add(name);
      }
      // A clear's read of the tables it drops may be under way: the result needs all of it. Closed in
      // the same turn as the last one ends, so none can start unseen.
      while (this.reading) {
        const reading = this.reading;
        await reading.catch(() => undefined);
        if (this.reading === reading) this.reading = undefined;
      }
    } finally {
      // From here on nothing is captured: the corrections below see the final set.
      this.closed = true;
    }
    if (this.invalid) return { seq: this.seq, comparable: false, reason: this.invalid };
    for (const [key, digest] of this.touched) {
      if (digest && !counted.has(key)) hasher(key.slice(0, key.indexOf('\u0000'))).addDigest(digest);
    }
    const tables: Record<string, ReturnType<TableHasher['result']>> = {};
    let documents = 0;
    for (const name of [...hashers.keys()].sort()) {
      const h = hashers.get(name) as TableHasher;
      if (h.count === 0) continue;
      tables[name] = h.result();
      documents += h.count;
    }
    return { seq: this.seq, comparable: true, tables, documents, ms: Math.round(performance.now() - started) };
  }
}

/**
 * The master's side of checkpoints, called from its serial write path:
 * {@link source} at the start of a batch, {@link beforeApply} once the batch is
 * built (before its data is written), {@link afterApply} once its data is written.
 */
export class MasterCheckpoints {
  private window: Window | undefined;

  constructor(
    private readonly store: ChecksumSource & BatchSource,
    private readonly book: ChecksumBook,
    private readonly logger: Logger,
  ) {}

  /** What the next batch reads through: the store, recorded while a checksum runs. */
  source(): BatchSource {
    return this.window ? new RecordingSource(this.store) : this.store;
  }

  /**
   * Captures the state at the checkpoint of every document these entries touch first; before a clear,
   * reads what it drops that the scan has not read (awaited by the write stage only then).
   */
  async beforeApply(entries: readonly SyncEntry[], source: BatchSource): Promise<void> {
    const window = this.window;
    if (!window) return;
    if (entries.some((e) => e.ops.some((op) => op.t === 'clear'))) await window.readBeforeClear(entries, this.store).catch((err: unknown) => (window.invalid ??= `reading the tables a clear drops failed: ${(err as Error).message}`));
    window.capture(entries, source instanceof RecordingSource ? source : undefined);
  }

  /**
   * Opens a window at a checkpoint (alone in its batch, so the data is exactly its seq now), and settles.
   * Awaited by the write stage: a checkpoint lists the tables (one query) before the next batch is built.
   */
  async afterApply(entries: readonly SyncEntry[]): Promise<void> {
    const last = entries.at(-1);
    if (!last) return;
    if (last.checkpoint) await this.open(last.seq);
    this.book.settle(last.seq);
  }

  private async open(seq: number): Promise<void> {
    if (this.window && !this.window.closed) {
      this.book.record({ seq, comparable: false, reason: `the master was still taking the checksum of checkpoint ${this.window.seq}` });
      return;
    }
    this.book.begin(seq);
    let tables: string[];
    try {
      tables = (await this.store.userTables()).filter(isUserTable);
    } catch (err) {
      this.book.record({ seq, comparable: false, reason: `hashing failed: ${(err as Error).message}` });
      this.logger.warn({ seq, err: (err as Error).message }, 'checksum at checkpoint not comparable: the tables could not be listed');
      return;
    }
    const window = new Window(seq, tables);
    this.window = window;
    window
      .scan(this.store)
      .catch((err: unknown): ChecksumReply => ({ seq, comparable: false, reason: `hashing failed: ${(err as Error).message}` }))
      .then((reply) => {
        this.book.record(reply);
        if (this.window === window) this.window = undefined;
        if (reply.comparable) this.logger.info({ seq, tables: Object.keys(reply.tables).length, documents: reply.documents, ms: reply.ms, touched: window.touched.size }, 'checksum taken at checkpoint');
        else this.logger.warn({ seq, reason: reply.reason }, 'checksum at checkpoint not comparable');
      })
      // Runs beside the write path: nothing here may end the process.
      .catch(() => undefined);
  }
}
