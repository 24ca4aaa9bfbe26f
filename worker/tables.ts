/**
 * A worker's user tables: resulting-state ops written in few round trips, the
 * master's reads for building post-images, client reads, and the ordered pages
 * a snapshot is copied in (snapshot.ts).
 *
 * Only features that both MongoDB and FerretDB 1.24 (SQLite backend) support
 * are used: find with filter/projection/sort/skip/limit, countDocuments,
 * replaceOne, insertOne/insertMany, deleteOne/deleteMany, drop, createIndex.
 *
 * Written for FerretDB's costs as much as MongoDB's: on FerretDB 1.24 with
 * SQLite a lookup by one `_id` is pushed down to SQLite, but a range of `_id`s,
 * `$in`, every other filter and every sort are evaluated outside it (its explain
 * says `filterPushdown: false, sortPushdown: false`), a lookup stops at the first
 * match only with `limit(1)`, and an insert is cheap. So: inserts of new
 * documents go in bulk without a lookup, single-`_id` reads ask for one
 * document, and deletes go one `_id` at a time.
 */
import type { Collection, Db } from 'mongodb';
import type { Doc, Filter, ReadCommand, ReadResult } from '../common/commands.js';
import { MAX_READ_LIMIT } from '../common/limits.js';
import type { SyncOp } from '../common/messages.js';
import { deepEqual } from '../common/update-ops.js';
import { groupByTable, planApply, type TableWrites } from './apply-plan.js';
import { duplicateIndexes } from './duplicates.js';
import { compareKeys, type SnapshotKey } from './snapshot-key.js';
import { idOnly } from './write-batch.js';

/** Collections whose names start with this are the worker's own, never user tables. */
export const INTERNAL_PREFIX = '_dbaas';

export interface AnyDoc {
  _id: string;
  [key: string]: unknown;
}

/** Up to this many ids, a duplicate check asks per id (each stops at its match); beyond, one `$in` scan. */
const PER_ID_LOOKUPS = 8;

/** One page of a snapshot: documents in key order after a key, and where it ends. */
export interface TablePage {
  docs: Array<{ table: string; doc: AnyDoc }>;
  /** The last key the page covers; undefined when it reached the end of every table. */
  end: SnapshotKey | undefined;
}

export class Tables {
  constructor(private readonly db: Db) {}

  private table(name: string): Collection<AnyDoc> {
    return this.db.collection<AnyDoc>(name);
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
   * The documents after `after` in key order (tables by name, then `_id`, both
   * compared as UTF-8 bytes, as the database compares strings), at most `limit` of
   * them and about `maxBytes` of JSON (at least one). The caller makes sure that
   * nothing is written meanwhile (the master reads pages between write batches).
   */
  async page(after: SnapshotKey | undefined, limit: number, maxBytes: number): Promise<TablePage> {
    const tables = (await this.userTables()).sort((a, b) => compareKeys({ table: a, id: '' }, { table: b, id: '' }));
    const docs: TablePage['docs'] = [];
    let bytes = 0;
    for (const name of tables) {
      if (after && compareKeys({ table: name, id: '' }, { table: after.table, id: '' }) < 0) continue;
      const filter = after && after.table === name ? { _id: { $gt: after.id } } : {};
      // One more than fits: a page that ends exactly at the end of the data then says so (no empty page, no scan, after it).
      const want = limit - docs.length;
      const found = await this.table(name).find(filter).sort({ _id: 1 }).limit(want + 1).toArray();
      for (const [i, doc] of found.entries()) {
        if (i === want) {
          // The page ends at its last document, which may be the previous table's (want was 0 here).
          const last = docs.at(-1) as { table: string; doc: AnyDoc };
          return { docs, end: { table: last.table, id: last.doc._id } };
        }
        docs.push({ table: name, doc });
        bytes += Buffer.byteLength(JSON.stringify(doc));
        if (bytes >= maxBytes) return { docs, end: { table: name, id: doc._id } };
      }
    }
    return { docs, end: undefined };
  }
}

function projection(columns: readonly string[]): Record<string, 0 | 1> {
  const p: Record<string, 0 | 1> = {};
  for (const c of columns) p[c] = 1;
  if (!columns.includes('_id')) p._id = 0;
  return p;
}
