/**
 * A worker's own MongoDB database: user tables, the oplog and reads.
 *
 * Only features that both MongoDB and FerretDB 1.24 (SQLite backend) support
 * are used: find with filter/projection/sort/skip/limit, countDocuments,
 * replaceOne, insertOne/insertMany, deleteOne/deleteMany, drop, createIndex.
 *
 * Written for FerretDB's costs as much as MongoDB's: on FerretDB 1.24 with
 * SQLite every lookup by `_id` scans the table (its `_id` index is declared on
 * an expression its own queries do not use), a lookup stops at the first match
 * only with `limit(1)`, `$in` and every other filter are evaluated outside
 * SQLite, and an insert is cheap. So: inserts of new documents go in bulk
 * without a lookup, single-`_id` reads ask for one document, and nothing on
 * the write path looks a requestId up in the oplog unless the in-memory
 * {@link RequestIndex} says it may be there.
 */
import { MongoBulkWriteError, MongoClient, MongoServerError, type Collection, type Db } from 'mongodb';
import type { Doc, Filter, ReadCommand, ReadResult } from '../common/commands.js';
import { DbaasError } from '../common/errors.js';
import { MAX_READ_LIMIT } from '../common/limits.js';
import type { SyncEntry, SyncOp } from '../common/messages.js';
import { waitFor } from '../common/backoff.js';
import { deepEqual } from '../common/update-ops.js';
import { groupByTable, planApply, ReplayOverlay, type TableWrites } from './apply-plan.js';
import { OplogTrimPlanner, type TrimLimits } from './oplog-trim.js';
import { RecentEntries } from './recent-entries.js';
import { RequestIndex } from './request-index.js';
import { replayFrom } from './sync-order.js';
import { DEFAULT_BATCH_LIMITS, idOnly } from './write-batch.js';

/** Collections whose names start with this are the worker's own, never user tables. */
export const INTERNAL_PREFIX = '_dbaas';
const OPLOG = '_dbaas_oplog';

/** An oplog entry as read back: `_id` is the seq. */
export type OplogDoc = SyncEntry & { _id: number };

/**
 * An oplog entry as stored. `ops` is kept as a JSON string: FerretDB stores,
 * reads and copies one string several times faster than the same ops as nested
 * documents (a 1,000-document insert: 6 ms instead of 31 ms; a scan of the
 * oplog five times faster), and nothing ever queries inside the ops. Entries
 * stored before (ops as an array) are still read.
 */
type StoredEntry = Omit<SyncEntry, 'ops'> & { _id: number; ops: string | SyncOp[] };

function toStored(entry: SyncEntry): StoredEntry {
  return { ...entry, _id: entry.seq, ops: JSON.stringify(entry.ops) };
}

function fromStored(doc: StoredEntry): OplogDoc {
  return { ...doc, ops: typeof doc.ops === 'string' ? (JSON.parse(doc.ops) as SyncOp[]) : doc.ops };
}

/** What a snapshot copy found on the source. */
export interface CopyResult {
  /** The newest oplog entry of the source when its oplog was read (undefined: empty oplog). */
  last: OplogDoc | undefined;
  /** User documents written. */
  documents: number;
  /** Oplog entries copied. */
  entries: number;
  /** Entries laid over the copy (see {@link Store.copyFrom}). */
  replayed: number;
  /**
   * The source's newest seq once the copy was over: the copy may hold effects of
   * any entry up to here, so entries up to it are applied with `exact` false.
   */
  fuzzyUpTo: number;
}

interface AnyDoc {
  _id: string;
  [key: string]: unknown;
}

/** Up to this many ids, a duplicate check asks per id (each stops at its match); beyond, one `$in` scan. */
const PER_ID_LOOKUPS = 8;

export class Store {
  /**
   * Which requestIds the oplog may hold. Unknown (every lookup goes to the
   * database) until {@link loadRequestIndex}, {@link dropAll} or {@link copyFrom}.
   */
  readonly requests = new RequestIndex(false);
  /** The newest entries by requestId, so the retries that follow a failover need no oplog scan. */
  private readonly recent = new RecentEntries();
  /** When a trim is worth its scan (see {@link configureTrim}). */
  private trimPlanner: OplogTrimPlanner | undefined;

  /** Sets the oplog limits once, so that every entry recorded from now on is marked for trimming by age. */
  configureTrim(limits: TrimLimits): void {
    this.trimPlanner ??= new OplogTrimPlanner(limits);
  }

  private constructor(
    private readonly client: MongoClient,
    private readonly db: Db,
  ) {}

  /** Connects, retrying until the database answers or `timeoutMs` passes (DBAAS_WORKER_DB_UNAVAILABLE). */
  static async connect(url: string, dbName: string, timeoutMs: number): Promise<Store> {
    const client = await waitFor(
      async () => {
        const c = new MongoClient(url, { serverSelectionTimeoutMS: 2000, connectTimeoutMS: 2000, maxPoolSize: 16 });
        try {
          await c.connect();
          await c.db(dbName).command({ ping: 1 });
          return c;
        } catch (err) {
          await c.close().catch(() => undefined);
          throw err;
        }
      },
      timeoutMs,
      () => new DbaasError('DBAAS_WORKER_DB_UNAVAILABLE', `database at ${url} did not answer within ${timeoutMs} ms`),
      200,
    );
    const store = new Store(client, client.db(dbName));
    await store.oplog().createIndex({ requestId: 1 }).catch(() => undefined);
    return store;
  }

  /** Highest seq known to be in the oplog (recorded or copied here), to spare a scan when trimming. */
  private newestSeq: number | undefined;

  private oplog(): Collection<StoredEntry> {
    return this.db.collection<StoredEntry>(OPLOG);
  }

  private table(name: string): Collection<AnyDoc> {
    return this.db.collection<AnyDoc>(name);
  }

  /** The newest oplog entry (a full scan on FerretDB, which sorts outside SQLite). */
  async lastEntry(): Promise<OplogDoc | undefined> {
    const docs = await this.oplog().find({}).sort({ _id: -1 }).limit(1).toArray();
    const last = docs[0];
    if (last) this.newestSeq = Math.max(this.newestSeq ?? 0, last._id);
    return last ? fromStored(last) : undefined;
  }

  /** The oplog entry of a requestId, if any; asks the database only when the in-memory index says it may exist. */
  async entryByRequestId(requestId: string): Promise<OplogDoc | undefined> {
    if (!this.requests.mayContain(requestId)) return undefined;
    const recent = this.recent.get(requestId);
    if (recent) return { ...recent, _id: recent.seq };
    const doc = await this.oplog().findOne({ requestId });
    return doc ? fromStored(doc) : undefined;
  }

  /** Fills the requestId index from the oplog; entries recorded meanwhile are added as they are stored. */
  async loadRequestIndex(): Promise<void> {
    for await (const doc of this.oplog().find({}, { projection: { requestId: 1 } })) {
      if (typeof doc.requestId === 'string') this.requests.add(doc.requestId, doc._id);
      this.newestSeq = Math.max(this.newestSeq ?? 0, doc._id);
    }
    this.requests.markComplete();
  }

  /** Entries with seq in (afterSeq, upToSeq], in order. */
  async entriesBetween(afterSeq: number, upToSeq: number): Promise<OplogDoc[]> {
    if (upToSeq <= afterSeq) return [];
    return (await this.oplog().find({ _id: { $gt: afterSeq, $lte: upToSeq } }).sort({ _id: 1 }).toArray()).map(fromStored);
  }

  /**
   * Stores entries in the oplog, in one round trip. Idempotent: the oplog is keyed
   * by seq, an entry with a given seq never changes, and one already there is skipped.
   */
  async recordEntries(entries: readonly SyncEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await this.oplog()
      .insertMany(entries.map(toStored), { ordered: false })
      .catch((err: unknown) => {
        if (duplicateIndexes(err) === undefined) throw err;
      });
    this.recent.add(entries);
    for (const e of entries) {
      this.requests.add(e.requestId, e.seq);
      this.newestSeq = Math.max(this.newestSeq ?? 0, e.seq);
    }
    this.trimPlanner?.recorded(this.newestSeq ?? 0, Date.now());
  }

  async recordEntry(entry: SyncEntry): Promise<void> {
    await this.recordEntries([entry]);
  }

  /**
   * Applies resulting-state ops (in seq order) with few round trips: one change
   * per document (see apply-plan.ts), new documents inserted in bulk. Replaying
   * them is idempotent. `exact` (see planApply): this database holds exactly the
   * state before the ops; false where it may already hold some of their effects.
   */
  async applyOps(ops: readonly SyncOp[], exact = true): Promise<void> {
    for (const step of planApply(ops, exact)) {
      if (step.kind === 'clear') await this.dropUserTables();
      else for (const writes of groupByTable(step.changes)) await this.writeTable(writes);
    }
  }

  /**
   * Applies ops that may already be partly in the data (the newest batch after a
   * crash): it reads the documents first and writes only those that differ.
   */
  async replayOps(ops: readonly SyncOp[]): Promise<void> {
    for (const step of planApply(ops, false)) {
      if (step.kind === 'clear') {
        await this.dropUserTables();
        continue;
      }
      for (const w of groupByTable(step.changes)) {
        const coll = this.table(w.table);
        const puts = [...w.inserts, ...w.replaces];
        const current = await this.docsByIds(w.table, [...puts.map((d) => d._id), ...w.deletes]);
        const missing = puts.filter((d) => !current.has(d._id));
        if (missing.length > 0) await this.writeTable({ table: w.table, inserts: missing, replaces: [], deletes: [] });
        for (const doc of puts) {
          const now = current.get(doc._id);
          if (now && !deepEqual(now, doc)) await this.put(coll, doc);
        }
        for (const id of w.deletes) if (current.has(id)) await coll.deleteOne({ _id: id });
      }
    }
  }

  /** The documents with these ids that exist, by id. */
  private async docsByIds(table: string, ids: string[]): Promise<Map<string, AnyDoc>> {
    const found = new Map<string, AnyDoc>();
    const coll = this.table(table);
    if (ids.length <= PER_ID_LOOKUPS) {
      for (const id of ids) {
        const doc = await coll.findOne({ _id: id });
        if (doc) found.set(id, doc);
      }
      return found;
    }
    for (let i = 0; i < ids.length; i += 1000) {
      for (const doc of await coll.find({ _id: { $in: ids.slice(i, i + 1000) } }).toArray()) found.set(String(doc._id), doc);
    }
    return found;
  }

  private async writeTable(w: TableWrites): Promise<void> {
    const coll = this.table(w.table);
    if (w.inserts.length > 0) {
      await coll.insertMany(w.inserts, { ordered: false }).catch(async (err: unknown) => {
        // Documents already there (a replay over data that was written): replace them.
        const dupes = duplicateIndexes(err);
        if (dupes === undefined) throw err;
        for (const i of dupes) {
          const doc = w.inserts[i];
          if (doc) await this.put(coll, doc);
        }
      });
    }
    for (const doc of w.replaces) await this.put(coll, doc);
    // One deleteOne per id: a `$in` delete would scan the table outside SQLite on FerretDB.
    for (const id of w.deletes) await coll.deleteOne({ _id: id });
  }

  /**
   * Replace, else insert: much faster than an upserting replace on FerretDB, and this
   * database has a single writer, so nothing can slip in between the two.
   */
  private async put(coll: Collection<AnyDoc>, doc: AnyDoc): Promise<void> {
    const { matchedCount } = await coll.replaceOne({ _id: doc._id }, doc);
    if (matchedCount === 0) await coll.insertOne(doc);
  }

  async userTables(): Promise<string[]> {
    const cols = await this.db.listCollections({}, { nameOnly: true }).toArray();
    return cols.map((c) => c.name).filter((n) => !n.startsWith(INTERNAL_PREFIX) && !n.startsWith('system.'));
  }

  /** Every document of a table, in no particular order, streamed (replica checksums: worker/checksum.ts). */
  scanTable(name: string): AsyncIterable<Doc> {
    return this.table(name).find({});
  }

  async dropUserTables(): Promise<void> {
    for (const name of await this.userTables()) await this.table(name).drop().catch(() => undefined);
  }

  /** Drops everything, the oplog included: a slave starts from a snapshot. */
  async dropAll(): Promise<void> {
    await this.dropUserTables();
    await this.oplog().drop().catch(() => undefined);
    await this.oplog().createIndex({ requestId: 1 }).catch(() => undefined);
    this.requests.reset(true);
    this.recent.clear();
    this.newestSeq = 0;
  }

  /** The document with this `_id`, for computing a post-image on the master. */
  async findById(table: string, id: string): Promise<(Doc & { _id: string }) | undefined> {
    return ((await this.table(table).findOne({ _id: id })) ?? undefined) as (Doc & { _id: string }) | undefined;
  }

  /** Full documents matching `where`, for computing post-images on the master. */
  async findForUpdate(table: string, where: Filter): Promise<Array<Doc & { _id: string }>> {
    return (await this.table(table).find(where).toArray()) as Array<Doc & { _id: string }>;
  }

  async idsExisting(table: string, ids: string[]): Promise<string[]> {
    if (ids.length <= PER_ID_LOOKUPS) {
      const found: string[] = [];
      for (const id of ids) {
        if (await this.table(table).findOne({ _id: id }, { projection: { _id: 1 } })) found.push(id);
      }
      return found;
    }
    const docs = await this.table(table).find({ _id: { $in: ids } }, { projection: { _id: 1 } }).toArray();
    return docs.map((d) => String(d._id));
  }

  /**
   * Answers a read. `maxTimeMs` bounds the query on the database server
   * (`maxTimeMS`): past it the server stops and the read fails (MaxTimeMSExpired),
   * so a read the client has stopped waiting for does not keep the replica busy.
   * A lookup of one `_id` goes without it (see below).
   */
  async read(cmd: ReadCommand, maxTimeMs?: number): Promise<ReadResult> {
    const coll = this.table(cmd.table);
    if (cmd.count) {
      const options: { skip?: number; limit?: number; maxTimeMS?: number } = {};
      if (cmd.skip !== undefined) options.skip = cmd.skip;
      if (cmd.limit !== undefined) options.limit = cmd.limit;
      if (maxTimeMs !== undefined) options.maxTimeMS = maxTimeMs;
      return { count: await coll.countDocuments(cmd.where, options) };
    }
    // `_id` is unique: a read by one `_id` asks for one document, so the scan can stop at it.
    const id = cmd.skip ? undefined : idOnly(cmd.where);
    const byId = id !== undefined;
    let cursor = coll.find(byId ? { _id: id } : cmd.where);
    if (cmd.columns) cursor = cursor.project(projection(cmd.columns));
    if (cmd.sort && !byId) cursor = cursor.sort(cmd.sort);
    if (cmd.skip !== undefined) cursor = cursor.skip(cmd.skip);
    cursor = cursor.limit(byId ? 1 : (cmd.limit ?? MAX_READ_LIMIT));
    // Not on a lookup of one `_id` (at most one document back, the most common read): FerretDB runs a
    // query with maxTimeMS on a slower path, which cost such reads 1.2 ms each (npm run bench, read c=1:
    // added latency 2.57 ms with it, 1.35 ms without).
    if (maxTimeMs !== undefined && !byId) cursor = cursor.maxTimeMS(maxTimeMs);
    return (await cursor.toArray()) as Doc[];
  }

  /**
   * Copies `source` (a master's database) into this empty store, for a new slave.
   *
   * 1. The source's oplog, in one scan: every entry is copied (filling the
   *    requestId index), the newest one seen is `last` (S0), and the newest
   *    entries are kept aside. Entries are stored in seq order by a single
   *    writer, so an entry the scan missed was stored after it, and is published
   *    to the (already bound) sync queue after that: nothing up to S0 is missed.
   * 2. Every user table, with the **replay** laid over the copy: the entries from
   *    S0's batch start (see replayFrom) to S0, which the source may have been
   *    half-way through writing while it was read. A document they touch is
   *    written as they leave it (or left out when they delete it or clear); one
   *    they put that the copy did not meet is added at the end. Documents newer
   *    than S0 come again, in order, from the sync queue.
   */
  async copyFrom(source: Store, replayAtLeast: number, batchSize = 1000): Promise<CopyResult> {
    const keep = replayAtLeast + DEFAULT_BATCH_LIMITS.maxWrites;
    const newest: StoredEntry[] = [];
    let entries = 0;
    let batch: StoredEntry[] = [];
    const flushEntries = async (): Promise<void> => {
      if (batch.length === 0) return;
      await this.oplog()
        .insertMany(batch, { ordered: false })
        .catch((err: unknown) => {
          if (duplicateIndexes(err) === undefined) throw err;
        });
      entries += batch.length;
      batch = [];
    };
    for await (const doc of source.oplog().find({})) {
      if (typeof doc.requestId === 'string') this.requests.add(doc.requestId, doc._id);
      this.newestSeq = Math.max(this.newestSeq ?? 0, doc._id);
      batch.push(doc);
      if (batch.length >= batchSize) await flushEntries();
      // The newest `keep` entries by seq, in order: a replay never needs more (one batch and the margin).
      if (newest.length < keep || doc._id > (newest[0] as StoredEntry)._id) {
        let i = newest.length;
        while (i > 0 && (newest[i - 1] as StoredEntry)._id > doc._id) i--;
        newest.splice(i, 0, doc);
        if (newest.length > keep) newest.shift();
      }
    }
    await flushEntries();
    const lastStored = newest.at(-1);
    const last = lastStored ? fromStored(lastStored) : undefined;
    const from = last ? replayFrom(last, replayAtLeast) : 0;
    const replay = newest.filter((e) => e._id >= from).map(fromStored);
    const overlay = new ReplayOverlay(replay.flatMap((e) => e.ops));

    let documents = 0;
    const insert = async (to: Collection<AnyDoc>, docs: AnyDoc[]): Promise<void> => {
      await to.insertMany(docs, { ordered: false }).catch((err: unknown) => {
        if (duplicateIndexes(err) === undefined) throw err;
      });
      documents += docs.length;
    };
    for (const name of await source.userTables()) {
      const to = this.table(name);
      let docs: AnyDoc[] = [];
      for await (const found of source.table(name).find({})) {
        const doc = overlay.pick(name, found);
        if (!doc) continue;
        docs.push(doc);
        if (docs.length >= batchSize) {
          await insert(to, docs);
          docs = [];
        }
      }
      if (docs.length > 0) await insert(to, docs);
    }
    for (const [name, docs] of overlay.unmet()) await insert(this.table(name), docs);
    // Read after the tables: every entry whose data the copy can have met was stored before this.
    const fuzzyUpTo = Math.max(last?._id ?? 0, (await source.lastEntry())?._id ?? 0);
    return { last, documents, entries, replayed: replay.length, fuzzyUpTo };
  }

  /**
   * Keeps at most about `maxEntries` entries and none much older than `maxAgeMs`,
   * but always the newest one. Each trim scans the oplog on FerretDB, so it runs
   * only when the cut has moved far enough (see oplog-trim.ts): never while idle.
   */
  async trimOplog(maxEntries: number, maxAgeMs: number): Promise<void> {
    this.configureTrim({ maxEntries, maxAgeMs });
    if (!this.trimPlanner) return;
    const newest = this.newestSeq ?? (await this.lastEntry())?._id;
    if (!newest) return;
    const plan = this.trimPlanner.plan(newest, Date.now());
    if (!plan) return;
    await this.oplog().deleteMany(
      plan.byAgeBefore === undefined
        ? { _id: { $lte: plan.upTo } }
        : { _id: { $lt: newest }, $or: [{ _id: { $lte: plan.upTo } }, { ts: { $lt: plan.byAgeBefore } }] },
    );
    this.trimPlanner.done(plan.upTo, Date.now());
    // Entries trimmed for their age stay in the index: a false "may contain" only costs a lookup.
    this.requests.dropUpTo(newest - maxEntries);
  }

  async close(): Promise<void> {
    await this.client.close().catch(() => undefined);
  }
}

/**
 * The indexes of the documents an insert refused as duplicates, when that is the
 * only thing wrong with it; undefined for any other error.
 */
function duplicateIndexes(err: unknown): number[] | undefined {
  if (err instanceof MongoBulkWriteError) {
    const errors = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
    if (errors.length === 0 || errors.some((e) => e.code !== 11000)) return undefined;
    return errors.map((e) => e.index);
  }
  if (err instanceof MongoServerError && err.code === 11000) return [0];
  return undefined;
}

function projection(columns: readonly string[]): Record<string, 0 | 1> {
  const p: Record<string, 0 | 1> = {};
  for (const c of columns) p[c] = 1;
  if (!columns.includes('_id')) p._id = 0;
  return p;
}
