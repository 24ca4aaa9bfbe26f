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
 * document, and deletes go one `_id` at a time. But the pushed-down `_id` lookup
 * misses FerretDB's own index and scans the table (see scansById): there, wide
 * writes go a chunk at a time (replaceInChunks, deleteInChunks).
 */
import type { Collection, Db, MongoClient } from 'mongodb';
import { DATABASE_NAME, DEFAULT_DATABASE, qualifiedTable, splitTable } from '../common/databases.js';
import type { Doc, Filter, IndexSpec, ReadCommand, ReadResult, TableInfo } from '../common/commands.js';
import { uniqueKeyFilter } from '../common/index-spec.js';
import { MAX_READ_LIMIT } from '../common/limits.js';
import type { SyncOp } from '../common/messages.js';
import { deepEqual } from '../common/update-ops.js';
import { groupByTable, planApply, type TableWrites } from './apply-plan.js';
import { duplicateIndexes } from './duplicates.js';
import { compareKeys, type SnapshotKey } from './snapshot-key.js';
import { IndexCatalog } from './table-indexes.js';
import { eachConcurrently, IN_FLIGHT } from './in-flight.js';
import { keepsUniqueKeys } from './unique-keys.js';
import { idOnly } from './write-batch.js';

/** Collections whose names start with this are the worker's own, never user tables. */
export const INTERNAL_PREFIX = '_dbaas';

export interface AnyDoc {
  _id: string;
  [key: string]: unknown;
}

/** Tables whose statistics say fewer documents are counted exactly (cheap), within this bound. */
const EXACT_COUNT_BELOW = 10_000;
const EXACT_COUNT_MS = 2000;

/**
 * Documents per round trip of a filtered write's read on the master (findForUpdate), and `_id`s
 * per round trip of a wide delete's (matchingIds): small enough that a write found too large
 * stops soon after the bound, large enough that a wide one takes few round trips.
 */
const BUILD_READ_BATCH = 256;
const BUILD_ID_BATCH = 5000;

/** `_id`s per `$in` query of {@link Tables.docsIn}: on FerretDB/SQLite each query is one pass over the table. */
const IDS_PER_IN = 1000;

/** Documents per chunk of {@link Tables.replaceInChunks}, deleted by their `_id` range: a pass over the table each. */
const RANGE_CHUNK = 5000;


/** One page of a snapshot: documents in key order after a key, and where it ends. */
export interface TablePage {
  docs: Array<{ table: string; doc: AnyDoc }>;
  /** The last key the page covers; undefined when it reached the end of every table. */
  end: SnapshotKey | undefined;
}

/**
 * Where a database other than `default` lives on this worker's server: the
 * MongoDB database `<DBAAS_WORKER_DB_NAME>--<database>` (the worker's own
 * database name cut to 31 characters, so the whole fits MongoDB's 63). The
 * `default` database is the worker's own database, where every table lived
 * before databases existed: an upgraded cluster keeps its data.
 */
export function mongoPrefix(workerDbName: string): string {
  return `${workerDbName.slice(0, 31)}--`;
}

export class Tables {
  private readonly prefix: string;
  private readonly opened = new Map<string, Db>();

  /**
   * `db`: the worker's own database (the `default` database's tables, and the
   * oplog and ledger); `client`: its server, where the other databases are (absent
   * in unit tests: only `default` then).
   */
  constructor(
    private readonly db: Db,
    private readonly client?: MongoClient,
  ) {
    this.prefix = mongoPrefix(db.databaseName ?? '');
  }

  /** The MongoDB database holding a database's tables: the one place (database, table) becomes a collection. */
  private database(name: string): Db {
    if (name === DEFAULT_DATABASE || !this.client) return this.db;
    let db = this.opened.get(name);
    if (!db) {
      db = this.client.db(`${this.prefix}${name}`);
      this.opened.set(name, db);
    }
    return db;
  }

  /** A table by its qualified name (common/databases.ts). */
  private table(qualified: string): Collection<AnyDoc> {
    const { database, table } = splitTable(qualified);
    return this.database(database).collection<AnyDoc>(table);
  }

  /** The databases other than `default` that hold anything on this server. */
  async otherDatabases(): Promise<string[]> {
    if (!this.client) return [];
    const { databases } = await this.client.db(this.db.databaseName).admin().listDatabases({ nameOnly: true });
    return databases
      .map((d) => d.name)
      .filter((n) => n.startsWith(this.prefix))
      .map((n) => n.slice(this.prefix.length))
      .filter((n) => DATABASE_NAME.test(n) && n !== DEFAULT_DATABASE)
      .sort();
  }

  /**
   * Applies resulting-state ops (in seq order) with few round trips: one change
   * per document (see apply-plan.ts), new documents inserted in bulk. Replaying
   * them is idempotent. `exact` (see planApply): this database holds exactly the
   * state before the ops; false where it may already hold some of their effects.
   */
  async applyOps(ops: readonly SyncOp[], exact = true): Promise<void> {
    for (const step of planApply(ops, exact)) {
      if (step.kind === 'clear') await this.dropUserTables(step.database);
      else if (step.kind === 'index') await this.creating(step.op.table, () => this.indexes.apply(step.op));
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
        await this.dropUserTables(step.database);
        continue;
      }
      if (step.kind === 'index') {
        await this.creating(step.op.table, () => this.indexes.apply(step.op));
        continue;
      }
      for (const w of groupByTable(step.changes)) {
        const coll = this.table(w.table);
        const puts = [...w.inserts, ...w.replaces];
        const ids = [...puts.map((d) => d._id), ...w.deletes];
        const current = this.scansById() ? await this.docsIn(w.table, ids) : await this.docsByIds(w.table, ids);
        const missing = puts.filter((d) => !current.has(d._id));
        if (missing.length > 0) await this.writeTable({ table: w.table, inserts: missing, replaces: [], deletes: [] });
        const differing = puts.filter((doc) => {
          const now = current.get(doc._id);
          return now !== undefined && !deepEqual(now, doc);
        });
        if (this.chunkedReplaces(differing.length) && (await this.indexes.unique(w.table)).length === 0) await this.replaceInChunks(coll, differing);
        else for (const doc of differing) await this.put(coll, doc);
        await this.deleteByIds(coll, w.table, w.deletes.filter((id) => current.has(id)));
      }
    }
  }

  /** The documents with these ids that exist, by id. */
  private async docsByIds(table: string, ids: string[]): Promise<Map<string, AnyDoc>> {
    const found = new Map<string, AnyDoc>();
    const coll = this.table(table);
    await eachConcurrently(ids, IN_FLIGHT, async (id) => {
      const doc = await coll.findOne({ _id: id });
      if (doc) found.set(id, doc);
    });
    return found;
  }

  /** Writes one table's changes; its first insert creates it ({@link creating}). */
  private writeTable(w: TableWrites): Promise<void> {
    return this.creating(w.table, () => this.writeTableOnce(w));
  }

  private async writeTableOnce(w: TableWrites): Promise<void> {
    const coll = this.table(w.table);
    // A unique index (issue 17): no state on the way may hold a key twice (table-indexes.ts).
    if ((await this.indexes.unique(w.table)).length > 0) return this.writeUniqueTable(coll, w);
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
    // Distinct documents (one change each after planApply): in one statement where the storage
    // allows (replaceInBulk), a chunk at a time where each lookup by `_id` scans the table
    // (replaceInChunks), else several in flight (in-flight.ts).
    const rest = await this.replaceInBulk(w.table, w.replaces);
    if (this.chunkedReplaces(rest.length)) await this.replaceInChunks(coll, rest);
    else await eachConcurrently(rest, IN_FLIGHT, (doc) => this.put(coll, doc));
    await this.deleteByIds(coll, w.table, w.deletes);
  }

  /**
   * Whether a lookup by `_id` reads the whole table (Store sets it: FerretDB 1.24 on SQLite, where the
   * worker has no PostgreSQL). Its `_id` index is on `_ferretdb_sjson->"_id"` while its statements
   * filter on `_ferretdb_sjson->'$._id'`, which SQLite does not match to the index: every replaceOne,
   * deleteOne and findOne by `_id` is a full scan, and the UPDATE's scan holds SQLite's one write lock.
   * A 2,000-document update written one replaceOne per document took 31 s, 20,000 about an hour, and
   * writers in flight together starved in SQLite's busy handler until "database is locked" (F9).
   */
  scansById: () => boolean = () => false;

  /**
   * Nothing reads this database while it is written but its writer (a master: clients read from
   * slaves, and snapshot pages are read between two batches), so a replaced document may be absent
   * for a moment (replaceInChunks). Never on a slave: a read after a write's seq must find it.
   */
  readByWriterOnly = false;

  /** Whether `count` replaces are written a chunk at a time ({@link replaceInChunks}). */
  private chunkedReplaces(count: number): boolean {
    return count > 1 && this.readByWriterOnly && this.scansById();
  }

  /**
   * Replaces documents a chunk at a time, the chunk's stored versions deleted and its new ones inserted
   * in bulk, so a chunk costs a few passes over the table instead of two per document. A chunk is
   * {@link RANGE_CHUNK} documents in `_id` order: when no other document has an `_id` in its range
   * (a wide update of most of a table), it is deleted by that range (FerretDB compares a range at a
   * constant cost per document, a `$in` at one per id asked); else by `$in`, {@link IDS_PER_IN} ids
   * at a time. Only the chunk's own documents are ever deleted. Between the delete and the insert
   * they are absent: only where {@link readByWriterOnly}. A crash in between is repaired as any
   * half-applied batch is (replayOps inserts what is missing).
   */
  private async replaceInChunks(coll: Collection<AnyDoc>, docs: readonly AnyDoc[]): Promise<void> {
    const byId = new Map(docs.map((d) => [d._id, d]));
    await this.deleteInChunks(coll, [...byId.keys()], (ids) => coll.insertMany(ids.map((id) => byId.get(id) as AnyDoc), { ordered: false }));
  }

  /**
   * Deletes documents by `_id` a chunk at a time ({@link replaceInChunks}: by range where the range
   * holds nothing else, else by `$in`), then runs `after` on the ids of each chunk deleted.
   */
  private async deleteInChunks(coll: Collection<AnyDoc>, ids: readonly string[], after?: (ids: string[]) => Promise<unknown>): Promise<void> {
    const sorted = [...ids].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (let i = 0; i < sorted.length; i += RANGE_CHUNK) {
      const chunk = sorted.slice(i, i + RANGE_CHUNK);
      const range = { $gte: chunk[0] as string, $lte: chunk.at(-1) as string };
      const mine = new Set(chunk);
      const held = await coll.find({ _id: range }, { projection: { _id: 1 } }).toArray();
      // The range holds the chunk's documents and nothing else (which also holds if FerretDB ordered the ids otherwise).
      const byRange = held.length === chunk.length && held.every((d) => mine.has(d._id));
      const parts = byRange ? [chunk] : Array.from({ length: Math.ceil(chunk.length / IDS_PER_IN) }, (_, j) => chunk.slice(j * IDS_PER_IN, (j + 1) * IDS_PER_IN));
      for (const part of parts) {
        await coll.deleteMany({ _id: byRange ? range : { $in: part } });
        await after?.(part);
      }
    }
  }

  /**
   * In one statement where the storage allows (bulkDelete), else one deleteOne per id,
   * several in flight: a `$in` delete would scan the table outside SQLite on FerretDB.
   */
  private async deleteByIds(coll: Collection<AnyDoc>, table: string, ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    if (ids.length > 1 && this.bulkDelete !== undefined && (await this.bulkDelete(table, ids))) return;
    // Where each deleteOne would scan the table (scansById): one `$in` per chunk, one scan each.
    if (ids.length > 1 && this.scansById()) return this.deleteInChunks(coll, ids);
    await eachConcurrently(ids, IN_FLIGHT, async (id) => void (await coll.deleteOne({ _id: id })));
  }

  /**
   * Deletes documents by `_id` in one statement below FerretDB (Store sets it on
   * FerretDB/PostgreSQL: pg-docs.ts deleteDocs); false when it deleted none (no such
   * table, any failure): the caller deletes them one by one.
   */
  bulkDelete: ((table: string, ids: readonly string[]) => Promise<boolean>) | undefined;

  /**
   * writeTable for a table with a unique index: deletes, new documents in bulk, the
   * replaces that keep every unique key (several in flight: they cannot collide),
   * then what was refused and the replaces that move a key, in an order that works.
   * A replace that moves a key is written alone: two in flight that swap keys would
   * each wait for the other's transaction in PostgreSQL's unique check (a deadlock).
   */
  private async writeUniqueTable(coll: Collection<AnyDoc>, w: TableWrites): Promise<void> {
    await this.deleteByIds(coll, w.table, w.deletes);
    let refused: AnyDoc[] = [];
    if (w.inserts.length > 0) {
      await coll.insertMany(w.inserts, { ordered: false }).catch((err: unknown) => {
        const dupes = duplicateIndexes(err);
        if (dupes === undefined) throw err;
        refused = dupes.flatMap((i) => w.inserts[i] ?? []);
      });
    }
    // In one statement, which fails whole if a key would be held twice on the way (a swap): then one by one.
    const replaces = this.bulkReplace !== undefined && w.replaces.length > 0 ? await this.replaceInBulk(w.table, w.replaces) : w.replaces;
    if (replaces !== w.replaces) return this.indexes.writeOrdered(w.table, [...refused, ...replaces], [], (doc) => this.put(coll, doc));
    const unique = await this.indexes.unique(w.table);
    const current = await this.docsByIds(w.table, w.replaces.map((d) => d._id));
    const inPlace: AnyDoc[] = [];
    const moving: AnyDoc[] = [];
    for (const doc of w.replaces) {
      const now = current.get(doc._id);
      (now !== undefined && keepsUniqueKeys(unique, now, doc, w.table) ? inPlace : moving).push(doc);
    }
    await eachConcurrently(inPlace, IN_FLIGHT, (doc) => this.put(coll, doc));
    await this.indexes.writeOrdered(w.table, [...refused, ...moving], [], (doc) => this.put(coll, doc));
  }

  /**
   * Replaces documents in one statement below FerretDB (Store sets it on
   * FerretDB/PostgreSQL: pg-docs.ts replaceDocs). Answers the documents it did not
   * write (not there, or not JSON), or undefined when it wrote none (no such table,
   * a unique key held twice on the way, any failure): the caller writes those one by one.
   */
  bulkReplace: ((table: string, docs: readonly AnyDoc[]) => Promise<AnyDoc[] | undefined>) | undefined;

  /**
   * The number of documents in a table, counted by the storage itself (Store sets
   * it on FerretDB/PostgreSQL: pg-docs.ts countDocs, milliseconds at 100,000 where
   * FerretDB 1.24 reads every document, 9 s); undefined when it cannot answer.
   */
  countAll: ((table: string) => Promise<number | undefined>) | undefined;

  /** What {@link bulkReplace} left to write one by one: everything without it. */
  private async replaceInBulk(table: string, docs: readonly AnyDoc[]): Promise<readonly AnyDoc[]> {
    if (this.bulkReplace === undefined || docs.length === 0) return docs;
    return (await this.bulkReplace(table, docs)) ?? docs;
  }

  /**
   * Replace, else insert: much faster than an upserting replace on FerretDB, and this
   * database has a single writer, so nothing can slip in between the two.
   */
  private async put(coll: Collection<AnyDoc>, doc: AnyDoc): Promise<void> {
    const { matchedCount } = await coll.replaceOne({ _id: doc._id }, doc);
    if (matchedCount === 0) await coll.insertOne(doc);
  }

  /** The user tables of every database, by qualified name. */
  async userTables(): Promise<string[]> {
    const all = await this.tablesOf(DEFAULT_DATABASE);
    for (const database of await this.otherDatabases()) all.push(...(await this.tablesOf(database)));
    return all;
  }

  /** One database's user tables, by qualified name. */
  async tablesOf(database: string): Promise<string[]> {
    const cols = await this.database(database).listCollections({}, { nameOnly: true }).toArray();
    return cols
      .map((c) => c.name)
      .filter((n) => !n.startsWith(INTERNAL_PREFIX) && !n.startsWith('system.'))
      .map((n) => qualifiedTable(database, n));
  }

  /** Every document of a table, in no particular order, streamed (replica checksums: worker/checksum.ts). */
  scanTable(name: string): AsyncIterable<Doc> {
    return this.table(name).find({});
  }

  /**
   * Creates a table through the MongoDB wire if it does not exist (FerretDB writes
   * its metadata and `_id` index), for a path that then writes its rows below
   * FerretDB (pg-layout.ts copyRows).
   */
  async ensureTable(qualified: string): Promise<void> {
    const { database, table } = splitTable(qualified);
    await this.creating(qualified, () =>
      this.database(database)
        .createCollection(table)
        .catch((err: unknown) => {
          // 48 NamespaceExists: already there.
          if ((err as { code?: number }).code !== 48) throw err;
        }),
    );
  }

  /**
   * Drops a PostgreSQL table (`relation` or the table of that index, in the schema of `table`'s database) that
   * FerretDB's metadata does not name (Store.dropOrphanTable); false where it cannot or the metadata names it.
   * Absent: not done.
   */
  dropOrphan: ((table: string, relation: string) => Promise<boolean>) | undefined;

  /**
   * Runs `step`, which may create `table` (its first insert or index, ensureTable), past an "orphan":
   * FerretDB (1.24, on PostgreSQL) creates a collection's table and then, in another statement, inserts
   * its metadata row, so a kill between the two (a worker killed during its first write of a table) leaves a
   * table FerretDB does not list, and every later create of that collection fails (42P07: relation already
   * exists): the crash repair's replay, a slave restarted in place (which then copied again and was replaced),
   * a snapshot copy. The orphan holds no acknowledged data (FerretDB never listed it): it is dropped below
   * FerretDB and `step` runs again (the mirror of dropTable's ghost).
   */
  private async creating<T>(table: string, step: () => Promise<T>): Promise<T> {
    try {
      return await step();
    } catch (err) {
      const relation = /relation "([^"]+)" already exists \(SQLSTATE 42P07\)/.exec((err as Error).message)?.[1];
      if (relation === undefined || !(await this.dropOrphan?.(table, relation))) throw err;
      return step();
    }
  }

  /**
   * Drops the user tables of one database, or of every database. A database other
   * than `default` holds only user tables: it is dropped whole, one command (FerretDB
   * on PostgreSQL drops its schema in one statement) instead of one drop per table,
   * each its own PostgreSQL transaction (about 3 ms a table at load 6; the write stage
   * waits for it, on the master and on each slave). PostgreSQL's own work per dropped
   * table remains. `default` also holds the worker's own collections: table by table.
   * Idempotent (a crash repair replays it): a database or table not there is no error.
   */
  async dropUserTables(database?: string): Promise<void> {
    try {
      const whole = database === undefined ? await this.otherDatabases() : database !== DEFAULT_DATABASE && this.client ? [database] : [];
      const byTable = database === undefined ? await this.tablesOf(DEFAULT_DATABASE) : whole.length === 0 ? await this.tablesOf(database) : [];
      for (const name of byTable) await this.dropTable(name);
      for (const name of whole) await this.database(name).dropDatabase();
      this.indexes.forget();
    } finally {
      this.dropped?.();
    }
  }

  /** Called once tables were dropped (Store: the table locations it remembers, pg-layout.ts, are looked up again). */
  dropped: (() => void) | undefined;

  /**
   * Makes an empty PostgreSQL table again for a table FerretDB still lists whose PostgreSQL table is gone
   * (Store.restoreMissingTable); false where it cannot. Absent: not done.
   */
  restoreMissing: ((table: string) => Promise<boolean>) | undefined;

  /**
   * Drops one table; one not there is no error. A "ghost" is dropped too: FerretDB (1.24, on PostgreSQL) drops
   * a collection's table and then, in another statement, deletes its metadata row, so a kill between the two
   * (a master or slave killed during a clear) leaves the row, and every later drop of it fails (42P01: table
   * does not exist) while FerretDB goes on listing it. A crash repair replaying the clear left it so, and the
   * master's snapshot stream, which reads every table the metadata names, then broke on it for every new
   * slave: none could copy (session 8, the CI's "master and slave killed during a clear"). The table is made
   * again below FerretDB, empty, and dropped through it, which removes the row.
   */
  private async dropTable(name: string): Promise<void> {
    try {
      await this.table(name).drop();
    } catch (err) {
      if (!/\(SQLSTATE 42P01\)/.test((err as Error).message) || !(await this.restoreMissing?.(name))) return;
      await this.table(name).drop();
    }
  }

  /** The document with this `_id`, for computing a post-image on the master. */
  async findById(table: string, id: string): Promise<(Doc & { _id: string }) | undefined> {
    return ((await this.table(table).findOne({ _id: id })) ?? undefined) as (Doc & { _id: string }) | undefined;
  }

  /**
   * Full documents matching `where`, for computing post-images on the master, streamed in
   * small batches: a build that finds its write too large stops reading there (entry-builder.ts).
   */
  findForUpdate(table: string, where: Filter): AsyncIterable<Doc & { _id: string }> {
    return this.table(table).find(where, { batchSize: BUILD_READ_BATCH }) as AsyncIterable<Doc & { _id: string }>;
  }

  /** The `_id`s of the documents matching `where`, streamed: a wide delete needs no more. */
  async *matchingIds(table: string, where: Filter): AsyncIterable<string> {
    for await (const doc of this.table(table).find(where, { projection: { _id: 1 }, batchSize: BUILD_ID_BATCH })) yield String(doc._id);
  }

  /**
   * Which of these ids exist: one lookup per id, several in flight. Each uses the
   * `_id` index, so the cost is per id, not per table (a `$in` is evaluated
   * outside the database on FerretDB: a scan per 1,000 ids).
   */
  async idsExisting(table: string, ids: string[]): Promise<string[]> {
    const coll = this.table(table);
    const found = new Set<string>();
    await eachConcurrently(ids, IN_FLIGHT, async (id) => {
      if (await coll.findOne({ _id: id }, { projection: { _id: 1 } })) found.add(id);
    });
    return ids.filter((id) => found.has(id));
  }

  /**
   * The documents with these ids that exist, by id (only their `_id` with `idsOnly`), in one `$in`
   * query per {@link IDS_PER_IN} ids. For storage without the worker's PostgreSQL (Store): FerretDB
   * on SQLite reads the whole table for every query, a lookup by `_id` too, so one query per id
   * cost a pass over the table each (a 500-document insert into 10,000: 16 s, this: 1.4 s); mongod
   * answers either from its `_id` index.
   */
  async docsIn(table: string, ids: readonly string[], idsOnly = false): Promise<Map<string, Doc & { _id: string }>> {
    const found = new Map<string, Doc & { _id: string }>();
    const coll = this.table(table);
    for (let i = 0; i < ids.length; i += IDS_PER_IN) {
      const cursor = coll.find({ _id: { $in: ids.slice(i, i + IDS_PER_IN) } }, idsOnly ? { projection: { _id: 1 } } : {});
      for await (const doc of cursor) found.set(String(doc._id), doc as Doc & { _id: string });
    }
    return found;
  }

  /** The ids of the documents holding a key of a unique index (at most two: one is a conflict already). */
  async keyHolders(table: string, index: IndexSpec, key: string): Promise<string[]> {
    const docs = await this.table(table).find(uniqueKeyFilter(index, key), { projection: { _id: 1 } }).limit(2).toArray();
    return docs.map((d) => String(d._id));
  }

  /** Whether a table exists (a read that found nothing says so in a hint). */
  exists(table: string): Promise<boolean> {
    return this.indexes.exists(table);
  }

  /** The table's secondary indexes, as its database holds them (table-indexes.ts). */
  readonly indexes = new IndexCatalog((name) => this.table(name));

  /** Tables with their document counts and indexes: one, or every user table. */
  async describe(table?: string): Promise<TableInfo[]> {
    const names = table === undefined ? (await this.userTables()).sort() : (await this.exists(table)) ? [table] : [];
    const out: TableInfo[] = [];
    for (const name of names) out.push({ table: name, ...(await this.documentCount(name)), indexes: await this.indexes.list(name) });
    return out;
  }

  /**
   * A table's document count: the storage's statistics (`dataSize`; on
   * FerretDB/PostgreSQL PostgreSQL's estimate, in milliseconds) when it has any,
   * else an exact count bounded by {@link EXACT_COUNT_MS} (FerretDB 1.24 reads
   * every document to count: 9.1 s at 100,000 here); null when that ran out.
   */
  private async documentCount(table: string): Promise<Pick<TableInfo, 'documents' | 'exact'>> {
    const counted = await this.countAll?.(table);
    if (counted !== undefined) return { documents: counted, exact: true };
    const { database, table: name } = splitTable(table);
    const db = this.database(database);
    const r = await db.command({ dataSize: `${db.databaseName}.${name}` });
    const estimate = r['numObjects'];
    if (typeof estimate === 'number' && estimate >= 0 && r['estimate'] !== undefined && estimate >= EXACT_COUNT_BELOW) return { documents: estimate, exact: false };
    try {
      return { documents: await this.table(table).countDocuments({}, { maxTimeMS: EXACT_COUNT_MS }), exact: true };
    } catch {
      return { documents: typeof estimate === 'number' && estimate >= 0 ? estimate : null, exact: false };
    }
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
      // Every document of the table: PostgreSQL counts them itself (countAll) where FerretDB reads each one.
      const all = Object.keys(cmd.where).length === 0 && cmd.skip === undefined && cmd.limit === undefined;
      const counted = all ? await this.countAll?.(cmd.table) : undefined;
      if (counted !== undefined) return { count: counted };
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
