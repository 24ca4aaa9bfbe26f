/**
 * The request ledger: which requestIds this worker's data has applied, with the
 * answer each got, for the retry horizon (`DBAAS_REQUEST_ID_TTL_MS`).
 *
 * One small record per write, `{_id: seq, requestId, fingerprint, result, ts}`,
 * no ops: the oplog is now only a short tail (crash repair, re-publishing), and
 * retries are answered from here. Records are written in the same step as the
 * oplog entries (Store.recordEntries: after the entries, before any data of the
 * batch changes), by the master as it takes writes and by every slave as it
 * applies the stream, so a slave's ledger is built from the stream for free; a
 * new slave copies the master's records once (worker/snapshot.ts).
 *
 * Invariant (what makes a promoted slave safe): every write applied to this
 * worker's data whose entry time is at or after {@link RequestLedger.horizon}
 * (max(now - ttl, coveredSince)) has its record here. `coveredSince` is 0 for a worker that has seen every write
 * of the cluster (the first master, a slave that copied such a ledger), the copy's
 * start minus the horizon for a slave that copied a ledger trimmed by age, and is
 * persisted so a restart keeps it. A worker whose ledger covers the whole horizon
 * (`coveredSince <= now - ttl`) may be promoted (orchestrator/reconcile.ts).
 *
 * A write is judged by {@link judgeRetry}: first asked for (common/request-time.ts)
 * before the horizon, max(now - ttl, coveredSince) → 409 expired, whether or not a
 * record is still here (so every master answers it the same); else found → the
 * first answer; else new. A write whose time is unknown is never refused as expired.
 *
 * On FerretDB a lookup by requestId scans the collection, so the in-memory
 * {@link RequestIndex} filter spares every lookup of a requestId never seen, and
 * the newest records stay in memory ({@link RecentRecords}) for the retries that
 * follow a failover. On FerretDB/PostgreSQL the store reads and deletes below
 * FerretDB instead ({@link RequestLedger.below}): a lookup on the `requestId`
 * btree, a trim or forget on the `_id` btree.
 */
import type { Collection, Db } from 'mongodb';
import type { WriteResult } from '../common/commands.js';
import type { SyncEntry } from '../common/messages.js';
import { OplogTrimPlanner } from './oplog-trim.js';
import { RecentEntries } from './recent-entries.js';
import { RequestIndex } from './request-index.js';
import { ignoreDuplicates } from './duplicates.js';
import type { SeqDelete } from './pg-trim.js';
import { LEDGER_COLLECTION, LEDGER_INDEX, META_COLLECTION } from '../common/worker-collections.js';

export const LEDGER = LEDGER_COLLECTION;
const META = META_COLLECTION;

/** One write as the ledger keeps it. */
export interface LedgerRecord {
  seq: number;
  requestId: string;
  fingerprint?: string;
  result: WriteResult;
  /** When the master applied it (ms since the epoch). */
  ts: number;
}

type StoredRecord = Omit<LedgerRecord, 'seq'> & { _id: number };

interface LedgerMeta {
  _id: 'ledger';
  coveredSince: number;
}

export function recordOf(e: Pick<SyncEntry, 'seq' | 'requestId' | 'fingerprint' | 'result' | 'ts'>): LedgerRecord {
  return { seq: e.seq, requestId: e.requestId, ...(e.fingerprint === undefined ? {} : { fingerprint: e.fingerprint }), result: e.result, ts: e.ts };
}

/** A record as the ledger holds it (keyed by seq). */
export function toStored(r: LedgerRecord): StoredRecord {
  const { seq, ...rest } = r;
  return { _id: seq, ...rest };
}

function fromStored(d: StoredRecord): LedgerRecord {
  const { _id, ...rest } = d;
  return { seq: _id, ...rest };
}

/** How a write's requestId is judged against the ledger (pure). */
export type RetryVerdict = { kind: 'retry'; record: LedgerRecord } | { kind: 'new' } | { kind: 'expired'; horizon: number };

/**
 * @param found the ledger's record of this requestId, if any
 * @param askedAt when the write was first asked for (common/request-time.ts), if known
 * @param horizon the oldest time the ledger answers for: max(now - ttl, coveredSince)
 */
export function judgeRetry(found: LedgerRecord | undefined, askedAt: number | undefined, horizon: number): RetryVerdict {
  // Past the horizon the answer does not depend on what this worker's ledger still happens to hold
  // (trimming differs between replicas): the same retry gets the same answer from any master.
  if (askedAt !== undefined && askedAt < horizon) return { kind: 'expired', horizon };
  if (found) return { kind: 'retry', record: found };
  return { kind: 'new' };
}

export class RequestLedger {
  /** Which requestIds the ledger may hold; unknown (every lookup asks the database) until {@link load}. */
  readonly index = new RequestIndex(false);
  private readonly recent = new RecentEntries<LedgerRecord>();
  private readonly trimPlanner: OplogTrimPlanner;
  private covered = 0;
  private newestSeq = 0;
  /**
   * Set by the store on FerretDB/PostgreSQL (issue 16: no scans): the records of a requestId read on its btree
   * (pg-read.ts readByKey), deletes by seq on the `_id` btree (pg-trim.ts); undefined / false when FerretDB must.
   */
  below: { lookup: (requestId: string) => Promise<readonly Record<string, unknown>[] | undefined>; delete: (d: SeqDelete) => Promise<boolean> } | undefined;

  constructor(
    private readonly db: Db,
    readonly ttlMs: number,
  ) {
    // Trimmed by age only (a count bound would break the horizon); see trim().
    this.trimPlanner = new OplogTrimPlanner({ maxEntries: Number.MAX_SAFE_INTEGER / 2, maxAgeMs: ttlMs });
  }

  private coll(): Collection<StoredRecord> {
    return this.db.collection<StoredRecord>(LEDGER);
  }

  private meta(): Collection<LedgerMeta> {
    return this.db.collection<LedgerMeta>(META);
  }

  /** Every write applied here since this time has its record (see the invariant above). */
  get coveredSince(): number {
    return this.covered;
  }

  /** The oldest time this ledger can answer for now. */
  horizon(now: number = Date.now()): number {
    return Math.max(now - this.ttlMs, this.covered);
  }

  /** Whether the ledger answers for the whole retry horizon (a failover candidate must). */
  coversHorizon(now: number = Date.now()): boolean {
    return this.covered <= now - this.ttlMs;
  }

  /** Reads the persisted coverage; false when this database has no ledger yet (new, or written before the ledger existed). */
  async open(): Promise<boolean> {
    const m = await this.meta().findOne({ _id: 'ledger' });
    if (!m) return false;
    this.covered = m.coveredSince;
    return true;
  }

  /** Sets and persists the coverage (a fresh worker: 0; a copied ledger: the copy's). */
  async setCoveredSince(t: number): Promise<void> {
    await this.meta().replaceOne({ _id: 'ledger' }, { coveredSince: t }, { upsert: true });
    this.covered = t;
  }

  /** Stores records (idempotent: keyed by seq, a record never changes). */
  async record(records: readonly LedgerRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.coll().insertMany(records.map(toStored), { ordered: false }).catch(ignoreDuplicates);
    this.recorded(records);
  }

  /** Takes note of records stored (by {@link record}, or below FerretDB: Store.recordEntries). */
  recorded(records: readonly LedgerRecord[]): void {
    this.recent.add(records);
    for (const r of records) {
      this.index.add(r.requestId, r.seq);
      this.newestSeq = Math.max(this.newestSeq, r.seq);
      this.trimPlanner.recorded(r.seq, r.ts);
    }
  }

  /**
   * Deletes the records of a voided batch, seqs `first` to `last` (worker/void-batch.ts):
   * their writes were never applied, so a retry of one is judged again. Idempotent.
   */
  async forget(first: number, last: number, requestIds: readonly string[]): Promise<void> {
    if (!(await this.below?.delete({ after: first - 1, upTo: last }))) await this.coll().deleteMany({ _id: { $gte: first, $lte: last } });
    for (const id of requestIds) this.recent.delete(id);
  }

  /** The record of a requestId; the database is asked only when the index says it may be there. */
  async lookup(requestId: string): Promise<LedgerRecord | undefined> {
    if (!this.index.mayContain(requestId)) return undefined;
    const recent = this.recent.get(requestId);
    if (recent) return recent;
    const docs = ((await this.below?.lookup(requestId)) as StoredRecord[] | undefined) ?? (await this.coll().find({ requestId }).sort({ _id: -1 }).limit(1).toArray());
    // The newest, as FerretDB's sort gives it.
    const newest = docs.reduce<StoredRecord | undefined>((best, d) => (best === undefined || d._id > best._id ? d : best), undefined);
    return newest ? fromStored(newest) : undefined;
  }

  /** Fills the index from the database (one scan); records added meanwhile count too. */
  async load(): Promise<void> {
    for await (const doc of this.coll().find({}, { projection: { requestId: 1, ts: 1 } })) {
      this.index.add(doc.requestId, doc._id);
      this.newestSeq = Math.max(this.newestSeq, doc._id);
    }
    this.index.markComplete();
  }

  /** Records with seq <= upTo, streamed (a slave's snapshot copies them). */
  recordsUpTo(upTo: number): AsyncIterable<StoredRecord> {
    return this.coll().find({ _id: { $lte: upTo } });
  }

  /** Stores records copied from another worker's ledger. */
  async copyIn(docs: readonly StoredRecord[]): Promise<void> {
    await this.record(docs.map(fromStored));
  }

  /**
   * Deletes records older than the horizon, by seq range (the cut comes from the
   * seq/time marks kept in memory, oplog-trim.ts): no scan while idle, at most one
   * per step of records written. Records the index still names only cost a lookup.
   */
  async trim(now: number = Date.now()): Promise<number | undefined> {
    const plan = this.trimPlanner.plan(this.newestSeq, now);
    if (!plan) return undefined;
    // The first trim of a process also goes by time: records older than the process have no marks.
    if (!(await this.below?.delete({ upTo: plan.upTo, ...(plan.byAgeBefore === undefined ? {} : { olderThan: plan.byAgeBefore }) }))) {
      const filter = plan.byAgeBefore === undefined ? { _id: { $lte: plan.upTo } } : { $or: [{ _id: { $lte: plan.upTo } }, { ts: { $lt: plan.byAgeBefore } }] };
      await this.coll().deleteMany(filter);
    }
    this.trimPlanner.done(plan.upTo, now);
    this.index.dropUpTo(plan.upTo);
    return plan.upTo;
  }

  /** Forgets everything: a slave about to copy a snapshot. */
  async drop(): Promise<void> {
    await this.coll().drop().catch(() => undefined);
    await this.meta().deleteOne({ _id: 'ledger' }).catch(() => undefined);
    this.index.reset(true);
    this.recent.clear();
    this.covered = 0;
    this.newestSeq = 0;
  }

  async ensureIndexes(): Promise<void> {
    await this.coll().createIndex(LEDGER_INDEX).catch(() => undefined);
  }
}
