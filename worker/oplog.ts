/**
 * The oplog tail: this worker's newest sync entries, `_id` = seq, for crash
 * repair (the newest batch is replayed, sync-order.ts replayFrom) and for
 * re-publishing entries whose publish the broker had not confirmed.
 *
 * It is no longer how retries are recognised (request-ledger.ts) nor what a new
 * slave copies (snapshot.ts), so it can stay short (`DBAAS_OPLOG_MAX_ENTRIES`,
 * `DBAAS_OPLOG_MAX_AGE_MS`). Trimming goes by seq range with the cut worked out in
 * memory (oplog-trim.ts): no periodic scans; on FerretDB/PostgreSQL one DELETE on
 * the `_id` btree (pg-trim.ts), where FerretDB reads every entry for any delete.
 */
import type { Collection, Db } from 'mongodb';
import type { SyncEntry, SyncOp } from '../common/messages.js';
import { ignoreDuplicates } from './duplicates.js';
import { OplogTrimPlanner, type TrimLimits } from './oplog-trim.js';
import type { SeqDelete } from './pg-trim.js';
import { OPLOG_COLLECTION } from '../common/worker-collections.js';

export const OPLOG = OPLOG_COLLECTION;

/** An oplog entry as read back: `_id` is the seq. */
export type OplogDoc = SyncEntry & { _id: number };

/**
 * An entry with what puts back the documents it changes first in its batch as they
 * were before the batch (worker/void-batch.ts undoOps): the master's own oplog keeps
 * it for crash repair; it is never published. Absent: the batch cannot be taken back.
 */
export type OplogBatchDoc = OplogDoc & { undo?: SyncOp[]; acked?: number };

/**
 * An entry with the highest seq whose publish the broker had confirmed when the master stored
 * it (`acked`, the master's own, never published): every entry above it may have been lost with
 * a crash before the broker took it, so a restarted master publishes them again (MasterRole.recover).
 */
export type NewestDoc = OplogDoc & { acked?: number };

/**
 * An oplog entry as stored. `ops` is kept as a JSON string: FerretDB stores,
 * reads and copies one string several times faster than the same ops as nested
 * documents (a 1,000-document insert: 6 ms instead of 31 ms; a scan of the
 * oplog five times faster), and nothing ever queries inside the ops. Entries
 * stored before (ops as an array) are still read.
 */
type StoredEntry = Omit<SyncEntry, 'ops'> & { _id: number; ops: string | SyncOp[]; undo?: string; acked?: number };

/** An entry as the oplog holds it (keyed by seq), with its undo ops and the master's confirmed seq (NewestDoc) when given. */
export function toStored(entry: SyncEntry, undo?: readonly SyncOp[], acked?: number): StoredEntry {
  return { ...entry, _id: entry.seq, ops: JSON.stringify(entry.ops), ...(undo === undefined ? {} : { undo: JSON.stringify(undo) }), ...(acked === undefined ? {} : { acked }) };
}

/** An entry as read back: what was published (the undo ops are the master's own, see {@link OplogBatchDoc}). */
function fromStored(doc: StoredEntry): OplogDoc {
  const { undo: _undo, acked: _acked, ...entry } = doc;
  return { ...entry, ops: typeof doc.ops === 'string' ? (JSON.parse(doc.ops) as SyncOp[]) : doc.ops };
}

/**
 * Entries as stored, read below FerretDB (Store: PostgreSQL, pg-read.ts readIdRange): those with seq in
 * (`after`, `upTo`] in seq order, or the newest one; undefined when FerretDB must answer.
 */
export type StoredBelow = (range: { after: number; upTo: number } | 'newest') => Promise<readonly Record<string, unknown>[] | undefined>;

/** A stored entry's `acked` (NewestDoc), when it has one. */
function acked(doc: StoredEntry): { acked?: number } {
  return typeof doc.acked === 'number' ? { acked: doc.acked } : {};
}

export class Oplog {
  /** Highest seq known to be in the oplog (recorded here or read), to spare a scan when trimming. */
  private newestSeq: number | undefined;
  private trimPlanner: OplogTrimPlanner | undefined;
  /**
   * Set by the store on FerretDB/PostgreSQL: FerretDB 1.24 reads every entry for an `_id` range or a sort
   * (a 1-entry range of 7,500 entries: 4.3-5.5 s), PostgreSQL's `_id` btree only those asked for.
   */
  below: StoredBelow | undefined;
  /** Set by the store on FerretDB/PostgreSQL: deletes by seq on the `_id` btree (pg-trim.ts), where FerretDB reads every entry; false when FerretDB must. */
  deleteBelow: ((d: SeqDelete) => Promise<boolean>) | undefined;

  constructor(private readonly db: Db) {}

  private coll(): Collection<StoredEntry> {
    return this.db.collection<StoredEntry>(OPLOG);
  }

  /** Sets the limits once, so that every entry recorded from now on is marked for trimming by age. */
  configureTrim(limits: TrimLimits): void {
    this.trimPlanner ??= new OplogTrimPlanner(limits);
  }

  /** The newest entry (on FerretDB without {@link below} a full scan, sorted outside the database: start-up only). */
  async last(): Promise<NewestDoc | undefined> {
    const docs = await this.stored('newest', () => this.coll().find({}).sort({ _id: -1 }).limit(1).toArray());
    const last = docs[0];
    if (last) this.newestSeq = Math.max(this.newestSeq ?? 0, last._id);
    return last ? { ...fromStored(last), ...acked(last) } : undefined;
  }

  /** Entries with seq in (afterSeq, upToSeq], in order. */
  async between(afterSeq: number, upToSeq: number): Promise<OplogDoc[]> {
    return (await this.storedBetween(afterSeq, upToSeq)).map(fromStored);
  }

  /** Entries with seq in (afterSeq, upToSeq], in order, with their undo ops (crash repair of the newest batch). */
  async batch(afterSeq: number, upToSeq: number): Promise<OplogBatchDoc[]> {
    const docs = await this.storedBetween(afterSeq, upToSeq);
    return docs.map((d) => ({ ...fromStored(d), ...(typeof d.undo === 'string' ? { undo: JSON.parse(d.undo) as SyncOp[] } : {}), ...acked(d) }));
  }

  private async storedBetween(after: number, upTo: number): Promise<StoredEntry[]> {
    if (upTo <= after) return [];
    return this.stored({ after, upTo }, () => this.coll().find({ _id: { $gt: after, $lte: upTo } }).sort({ _id: 1 }).toArray());
  }

  /** Stored entries read {@link below} FerretDB when it can, else through FerretDB (`viaFerret`). */
  private async stored(range: Parameters<StoredBelow>[0], viaFerret: () => Promise<StoredEntry[]>): Promise<StoredEntry[]> {
    return ((await this.below?.(range)) as StoredEntry[] | undefined) ?? viaFerret();
  }

  /** Rewrites stored entries in place (a batch voided before any of it was published: void-batch.ts), keeping their undo ops. */
  async rewrite(entries: readonly OplogBatchDoc[]): Promise<void> {
    for (const { _id: _seq, undo, acked, ...entry } of entries) await this.coll().replaceOne({ _id: entry.seq }, toStored(entry, undo, acked), { upsert: true });
    this.recorded(entries);
  }

  /** Every entry, streamed, in no particular order (building a ledger from an oplog written before the ledger existed). */
  all(): AsyncIterable<OplogDoc> {
    const cursor = this.coll().find({});
    return (async function* () {
      for await (const doc of cursor) yield fromStored(doc);
    })();
  }

  /** Stores entries (with their undo ops, by index) in one round trip. Idempotent: keyed by seq, an entry never changes. */
  async record(entries: readonly SyncEntry[], undo?: ReadonlyArray<readonly SyncOp[] | undefined>, acked?: number): Promise<void> {
    if (entries.length === 0) return;
    await this.coll().insertMany(entries.map((e, i) => toStored(e, undo?.[i], acked)), { ordered: false }).catch(ignoreDuplicates);
    this.recorded(entries);
  }

  /** Takes note of entries stored (by {@link record}, or below FerretDB: Store.recordEntries). */
  recorded(entries: readonly SyncEntry[]): void {
    for (const e of entries) this.newestSeq = Math.max(this.newestSeq ?? 0, e.seq);
    this.trimPlanner?.recorded(this.newestSeq ?? 0, Date.now());
  }

  /**
   * Keeps at most about `maxEntries` entries and none much older than `maxAgeMs`,
   * but always the newest one, deleting by seq range; runs only when the cut has
   * moved far enough (oplog-trim.ts): never while idle.
   */
  async trim(limits: TrimLimits): Promise<void> {
    this.configureTrim(limits);
    if (!this.trimPlanner) return;
    const newest = this.newestSeq ?? (await this.last())?._id;
    if (!newest) return;
    const plan = this.trimPlanner.plan(newest, Date.now());
    if (!plan) return;
    const below = { upTo: plan.upTo, keepFrom: newest, ...(plan.byAgeBefore === undefined ? {} : { olderThan: plan.byAgeBefore }) };
    if (!(await this.deleteBelow?.(below))) {
      await this.coll().deleteMany(
        plan.byAgeBefore === undefined
          ? { _id: { $lte: plan.upTo } }
          : { _id: { $lt: newest }, $or: [{ _id: { $lte: plan.upTo } }, { ts: { $lt: plan.byAgeBefore } }] },
      );
    }
    this.trimPlanner.done(plan.upTo, Date.now());
  }

  async drop(): Promise<void> {
    await this.coll().drop().catch(() => undefined);
    this.newestSeq = 0;
  }
}
