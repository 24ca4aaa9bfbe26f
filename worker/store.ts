/**
 * A worker's own MongoDB database: user tables, the oplog and reads.
 *
 * Only features that both MongoDB and FerretDB 1.24 (SQLite backend) support
 * are used: find with filter/projection/sort/skip/limit, countDocuments,
 * replaceOne with upsert, deleteOne, insertMany, drop, createIndex.
 */
import { MongoClient, MongoServerError, type Collection, type Db } from 'mongodb';
import type { Doc, Filter, ReadCommand, ReadResult } from '../common/commands.js';
import { DbaasError } from '../common/errors.js';
import { MAX_READ_LIMIT } from '../common/limits.js';
import type { SyncEntry, SyncOp } from '../common/messages.js';
import { waitFor } from '../common/backoff.js';

/** Collections whose names start with this are the worker's own, never user tables. */
export const INTERNAL_PREFIX = '_dbaas';
const OPLOG = '_dbaas_oplog';

/** An oplog entry as stored: `_id` is the seq. */
export type OplogDoc = SyncEntry & { _id: number };

interface AnyDoc {
  _id: string;
  [key: string]: unknown;
}

export class Store {
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

  private oplog(): Collection<OplogDoc> {
    return this.db.collection<OplogDoc>(OPLOG);
  }

  private table(name: string): Collection<AnyDoc> {
    return this.db.collection<AnyDoc>(name);
  }

  async lastEntry(): Promise<OplogDoc | undefined> {
    const docs = await this.oplog().find({}).sort({ _id: -1 }).limit(1).toArray();
    return docs[0];
  }

  async entryByRequestId(requestId: string): Promise<OplogDoc | undefined> {
    return (await this.oplog().findOne({ requestId })) ?? undefined;
  }

  /** Entries with seq in (afterSeq, upToSeq], in order. */
  async entriesBetween(afterSeq: number, upToSeq: number): Promise<OplogDoc[]> {
    return this.oplog().find({ _id: { $gt: afterSeq, $lte: upToSeq } }).sort({ _id: 1 }).toArray();
  }

  /** Idempotent: the oplog is keyed by seq, and an entry with a given seq never changes. */
  async recordEntry(entry: SyncEntry): Promise<void> {
    const doc: OplogDoc = { ...entry, _id: entry.seq };
    // insertOne is several times faster than an upserting replace on FerretDB.
    await this.oplog()
      .insertOne(doc)
      .catch((err: unknown) => {
        if (!isDuplicateKey(err)) throw err;
      });
  }

  /** Applies resulting-state ops; replaying them is idempotent. */
  async applyOps(ops: readonly SyncOp[]): Promise<void> {
    for (const op of ops) {
      if (op.t === 'put') {
        // Replace, else insert: much faster than an upserting replace on FerretDB, and this
        // database has a single writer, so nothing can slip in between the two.
        const coll = this.table(op.table);
        const { matchedCount } = await coll.replaceOne({ _id: op.doc._id }, op.doc);
        if (matchedCount === 0) await coll.insertOne(op.doc);
      } else if (op.t === 'del') {
        await this.table(op.table).deleteOne({ _id: op.id });
      } else {
        await this.dropUserTables();
      }
    }
  }

  async userTables(): Promise<string[]> {
    const cols = await this.db.listCollections({}, { nameOnly: true }).toArray();
    return cols.map((c) => c.name).filter((n) => !n.startsWith(INTERNAL_PREFIX) && !n.startsWith('system.'));
  }

  async dropUserTables(): Promise<void> {
    for (const name of await this.userTables()) await this.table(name).drop().catch(() => undefined);
  }

  /** Drops everything, the oplog included: a slave starts from a snapshot. */
  async dropAll(): Promise<void> {
    await this.dropUserTables();
    await this.oplog().drop().catch(() => undefined);
    await this.oplog().createIndex({ requestId: 1 }).catch(() => undefined);
  }

  /** Full documents matching `where`, for computing post-images on the master. */
  async findForUpdate(table: string, where: Filter): Promise<Array<Doc & { _id: string }>> {
    return (await this.table(table).find(where).toArray()) as Array<Doc & { _id: string }>;
  }

  async idsExisting(table: string, ids: string[]): Promise<string[]> {
    const docs = await this.table(table).find({ _id: { $in: ids } }, { projection: { _id: 1 } }).toArray();
    return docs.map((d) => String(d._id));
  }

  async read(cmd: ReadCommand): Promise<ReadResult> {
    const coll = this.table(cmd.table);
    if (cmd.count) {
      const options: { skip?: number; limit?: number } = {};
      if (cmd.skip !== undefined) options.skip = cmd.skip;
      if (cmd.limit !== undefined) options.limit = cmd.limit;
      return { count: await coll.countDocuments(cmd.where, options) };
    }
    let cursor = coll.find(cmd.where);
    if (cmd.columns) cursor = cursor.project(projection(cmd.columns));
    if (cmd.sort) cursor = cursor.sort(cmd.sort);
    if (cmd.skip !== undefined) cursor = cursor.skip(cmd.skip);
    cursor = cursor.limit(cmd.limit ?? MAX_READ_LIMIT);
    return (await cursor.toArray()) as Doc[];
  }

  /** Copies every user table and the oplog up to `upToSeq` from `source` into this (empty) store. */
  async copyFrom(source: Store, upToSeq: number, batchSize = 1000): Promise<number> {
    let copied = 0;
    const copy = async (from: Collection<AnyDoc>, to: Collection<AnyDoc>, filter: Filter): Promise<void> => {
      let batch: AnyDoc[] = [];
      for await (const doc of from.find(filter)) {
        batch.push(doc);
        if (batch.length >= batchSize) {
          await to.insertMany(batch, { ordered: false });
          copied += batch.length;
          batch = [];
        }
      }
      if (batch.length > 0) {
        await to.insertMany(batch, { ordered: false });
        copied += batch.length;
      }
    };
    for (const name of await source.userTables()) await copy(source.table(name), this.table(name), {});
    await copy(source.table(OPLOG), this.table(OPLOG), { _id: { $lte: upToSeq } });
    return copied;
  }

  /** Keeps at most `maxEntries` entries and none older than `maxAgeMs`, but always the newest one. */
  async trimOplog(maxEntries: number, maxAgeMs: number): Promise<void> {
    const last = await this.lastEntry();
    if (!last) return;
    await this.oplog().deleteMany({
      _id: { $lt: last._id },
      $or: [{ _id: { $lte: last._id - maxEntries } }, { ts: { $lt: Date.now() - maxAgeMs } }],
    });
  }

  async close(): Promise<void> {
    await this.client.close().catch(() => undefined);
  }
}

function isDuplicateKey(err: unknown): boolean {
  return err instanceof MongoServerError && err.code === 11000;
}

function projection(columns: readonly string[]): Record<string, 0 | 1> {
  const p: Record<string, 0 | 1> = {};
  for (const c of columns) p[c] = 1;
  if (!columns.includes('_id')) p._id = 0;
  return p;
}
