/**
 * A worker's own database, as three stores with one job each:
 * - {@link Tables} (tables.ts): the user tables, reads, and snapshot pages;
 * - {@link Oplog} (oplog.ts): the short tail of sync entries, for crash repair
 *   and re-publishing;
 * - {@link RequestLedger} (request-ledger.ts): requestId → seq, fingerprint,
 *   result, for the retry horizon.
 *
 * This class connects, and keeps the one rule that spans them: a batch's oplog
 * entries and ledger records are stored ({@link recordEntries}) before any of its
 * data changes, so after a crash only the newest batch can be half-applied, and
 * its entries are there to be replayed (MasterRole.recover) and its records to be
 * written again.
 */
import { MongoClient, type Db } from 'mongodb';
import pg from 'pg';
import type { Doc, Filter, IndexSpec, ReadCommand, ReadResult } from '../common/commands.js';
import { DbaasError } from '../common/errors.js';
import type { SyncEntry, SyncOp } from '../common/messages.js';
import { waitFor } from '../common/backoff.js';
import { Oplog, OPLOG, toStored as storedEntry, type NewestDoc, type OplogBatchDoc, type OplogDoc } from './oplog.js';
import type { TrimLimits } from './oplog-trim.js';
import { LEDGER, recordOf, RequestLedger, toStored as storedRecord, type LedgerRecord } from './request-ledger.js';
import { Tables, type AnyDoc } from './tables.js';
import { countDocs, deleteDocs, docsByIds, insertAndReplace, insertDocsTogether, replaceDocs } from './pg-docs.js';
import { groupByTable, planApply } from './apply-plan.js';
import { eachConcurrently, IN_FLIGHT } from './in-flight.js';
import { indexKeyCandidates, uniqueVerdict, type UniqueVerdict } from './pg-unique-check.js';
import { ident, idsPresent, isMissing, rememberTables, schemaOf, tableIn, type TableLocations } from './pg-layout.js';
import { readByKey, readIdRange, readSimple, simpleRead, STATEMENT_TIMEOUT, type SimpleRead } from './pg-read.js';
import { deleteSeqs, type SeqDelete } from './pg-trim.js';
import type { Logger } from '../common/logger.js';
import { databaseSaid, refusedByStorage, voided } from './void-batch.js';
import { readStopped } from './storage-errors.js';
import { META_COLLECTION, WORKER_COLLECTIONS } from '../common/worker-collections.js';

export { INTERNAL_PREFIX } from './tables.js';
export type { OplogDoc } from './oplog.js';

/** The worker's own facts about its database (request-ledger.ts keeps its coverage there too). */
const META = META_COLLECTION;

/** Connections of the pool simple reads use (pg-read.ts): a slave takes DBAAS_WORKER_READ_PREFETCH reads at once, 32 by default. */
const READ_POOL = 8;

/** Answers in a row in which the database refused to work (as opposed to not reaching its PostgreSQL) before a start gives up. */
const REFUSALS_BEFORE_GIVING_UP = 3;

/**
 * A start gives up only on answers that say the database can never work as it is (its encoding, a
 * missing database or role, refused credentials): any other error a loaded or restarting database
 * gives (a deadline, a pool, a cancelled statement) is waited out, as a database out of reach is.
 */
const REFUSED_FOR_GOOD = /supported value is|does not exist|password authentication failed|permission denied|no pg_hba\.conf entry/i;

function refusedForGood(err: unknown): boolean {
  return refusedByStorage(err) && REFUSED_FOR_GOOD.test(err.message);
}

/** The database answered a start's ping with a refusal, {@link REFUSALS_BEFORE_GIVING_UP} times: no more tries. */
class StoreRefused extends DbaasError {
  constructor(message: string) {
    super('DBAAS_WORKER_DB_UNAVAILABLE', message);
  }
}

/** The retry horizon a store is opened with when none is given (tests, tools): DBAAS_REQUEST_ID_TTL_MS's default. */
const DEFAULT_REQUEST_ID_TTL_MS = 600_000;

export class Store {
  readonly tables: Tables;
  readonly oplog: Oplog;
  readonly ledger: RequestLedger;

  private constructor(
    private readonly client: MongoClient,
    readonly db: Db,
    requestIdTtlMs: number,
  ) {
    this.tables = new Tables(db, client);
    this.oplog = new Oplog(db);
    this.ledger = new RequestLedger(db, requestIdTtlMs);
    this.tables.bulkReplace = (table, docs) => this.replaceInPg(table, docs);
    this.tables.countAll = (table) => this.countInPg(table);
    // FerretDB/SQLite (no PostgreSQL of its own): a lookup by `_id` scans the table (tables.ts scansById).
    this.tables.scansById = () => this.pgUrl === undefined;
    this.tables.dropped = () => this.forgetTables();
    this.tables.restoreMissing = (table) => this.restoreMissingTable(table);
    this.tables.dropOrphan = (table, relation) => this.dropOrphanTable(table, relation);
    this.oplog.below = (range) => this.oplogInPg(range);
    this.oplog.deleteBelow = (d) => this.deleteSeqsInPg(OPLOG, d);
    this.ledger.below = { lookup: (requestId) => this.requestInPg(requestId), delete: (d) => this.deleteSeqsInPg(LEDGER, d) };
  }

  /** Connects, retrying until the database answers or `timeoutMs` passes (DBAAS_WORKER_DB_UNAVAILABLE). */
  static async connect(url: string, dbName: string, timeoutMs: number, requestIdTtlMs = DEFAULT_REQUEST_ID_TTL_MS, answered?: () => void): Promise<Store> {
    // What the database last said: a start that fails names why (a worker whose PostgreSQL database was SQL_ASCII
    // said only "did not reach state master: no progress for 30020 ms"; FerretDB's answer was in its db.log).
    let last: Error | undefined;
    let refusals = 0;
    const client = await waitFor(
      async () => {
        const c = new MongoClient(url, { serverSelectionTimeoutMS: 2000, connectTimeoutMS: 2000, maxPoolSize: 16 });
        try {
          await c.connect();
          await c.db(dbName).command({ ping: 1 });
          return c;
        } catch (err) {
          await c.close().catch(() => undefined);
          last = err as Error;
          // The database answers, and refuses to work (not "cannot reach PostgreSQL now"): waiting will not help.
          refusals = refusedForGood(err) ? refusals + 1 : 0;
          if (refusals >= REFUSALS_BEFORE_GIVING_UP) throw new StoreRefused(`the database at ${url} refuses to work: ${databaseSaid(last)}`);
          throw err;
        }
      },
      timeoutMs,
      () => new DbaasError('DBAAS_WORKER_DB_UNAVAILABLE', `database at ${url} did not answer within ${timeoutMs} ms${last ? `; it last said: ${databaseSaid(last)}` : ''}`),
      200,
      (err) => err instanceof StoreRefused,
    );
    answered?.();
    const store = new Store(client, client.db(dbName), requestIdTtlMs);
    store.tables.bulkDelete = (table, ids) => store.deleteInPg(table, ids);
    await store.ledger.ensureIndexes();
    return store;
  }

  /** Which requestIds the ledger may hold (an in-memory filter; see request-index.ts). */
  get requests(): RequestLedger['index'] {
    return this.ledger.index;
  }

  /** Sets the oplog limits once, so that every entry recorded from now on is marked for trimming by age. */
  configureTrim(limits: TrimLimits): void {
    this.oplog.configureTrim(limits);
  }

  /** The newest oplog entry (a full scan on FerretDB: start-up only). */
  lastEntry(): Promise<NewestDoc | undefined> {
    return this.oplog.last();
  }

  /**
   * Drops everything ({@link dropAll}) unless this database is new: nothing in it but
   * the worker's own collections, empty (the ledger {@link connect} made, or all of them,
   * made ahead in a spare database: common/worker-collections.ts). A new slave's start
   * then skips half a dozen DDL round trips (issue 16); its ledger is known to be
   * complete (empty) either way.
   */
  async dropAllUnlessNew(): Promise<void> {
    const names = (await this.db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name);
    const empty = async (): Promise<boolean> => (await Promise.all(names.map((n) => this.db.collection(n).findOne({}, { projection: { _id: 1 } })))).every((d) => d === null);
    if (names.some((n) => !WORKER_COLLECTIONS.has(n)) || !(await empty())) {
      await this.dropAll();
      return;
    }
    this.ledger.index.reset(true);
  }

  /** Entries with seq in (afterSeq, upToSeq], in order. */
  entriesBetween(afterSeq: number, upToSeq: number): Promise<OplogDoc[]> {
    return this.oplog.between(afterSeq, upToSeq);
  }

  /** The ledger's record of a requestId, if any. */
  lookupRequest(requestId: string): Promise<LedgerRecord | undefined> {
    return this.ledger.lookup(requestId);
  }

  /**
   * Stores a batch's entries in the oplog and their records in the ledger, before
   * any of the batch's data is written. Idempotent (both are keyed by seq). `undo`
   * (the master's, by index): what puts the batch's documents back (void-batch.ts).
   * A void entry gets no ledger record.
   */
  async recordEntries(entries: readonly SyncEntry[], undo?: ReadonlyArray<readonly SyncOp[] | undefined>, acked?: number): Promise<void> {
    if (entries.length === 0) return;
    const records = ledgerRecords(entries);
    // On FerretDB/PostgreSQL both in one transaction (issue 17: updates); else the oplog first, so the
    // ledger never holds a record whose entry is not stored.
    if (await this.recordInPg(entries, records, undo, acked)) {
      this.oplog.recorded(entries);
      this.ledger.recorded(records);
      return;
    }
    await this.oplog.record(entries, undo, acked);
    await this.ledger.record(records);
  }

  /** The newest batch as stored (entries `afterSeq`+1 to `upToSeq`), with the master's undo ops: crash repair. */
  batchBetween(afterSeq: number, upToSeq: number): Promise<OplogBatchDoc[]> {
    return this.oplog.batch(afterSeq, upToSeq);
  }

  /**
   * Takes back a batch none of which was published (void-batch.ts): rewrites each
   * entry as void in place, deletes the batch's ledger records, then puts its
   * documents back as they were before it. Idempotent, and each step is found again
   * by crash repair (a void entry in the newest batch), so a crash anywhere in it is
   * finished by MasterRole.recover. Throws when an entry has no undo ops.
   */
  async voidBatch(entries: readonly OplogBatchDoc[]): Promise<SyncEntry[]> {
    const undo = entries.map((e) => e.undo);
    if (undo.some((u) => u === undefined)) throw new Error(`seq ${entries[0]?.seq ?? '?'}-${entries.at(-1)?.seq ?? '?'} cannot be taken back (no undo ops)`);
    const first = entries[0];
    const last = entries.at(-1);
    if (!first || !last) return [];
    const out = entries.map((e) => voided(stripped(e)));
    // The newest first: one void entry in the newest batch is what tells crash repair to finish the job.
    await this.oplog.rewrite(
      out
        .map((e, i) => ({ ...e, _id: e.seq, undo: undo[i] as SyncOp[], ...(entries[i]?.acked === undefined ? {} : { acked: entries[i]?.acked }) }))
        .reverse(),
    );
    await this.ledger.forget(first.seq, last.seq, entries.map((e) => e.requestId));
    await this.replayOps(undo.flatMap((u) => u ?? []));
    return out;
  }

  /**
   * Crash repair of the newest batch (`first` to the newest entry), which a crash may
   * have half-applied: replayed; or, when it holds a void entry (the crash fell inside
   * {@link voidBatch}) or this database refuses its data again, voided. Either way it
   * was not published if it is voided: entries leave only after their data is written.
   */
  async repairBatch(entries: readonly OplogBatchDoc[]): Promise<'replayed' | 'voided'> {
    if (!entries.some((e) => e.void)) {
      try {
        // The ledger records of the newest batch may be missing (a crash between the two inserts).
        await this.ledger.record(ledgerRecords(entries));
        await this.replayOps(entries.flatMap((e) => e.ops));
        return 'replayed';
      } catch (err) {
        if (!refusedByStorage(err)) throw err;
        this.log?.warn({ first: entries[0]?.seq, last: entries.at(-1)?.seq, err: err.message }, 'this database refuses the newest batch again: voiding it');
      }
    }
    await this.voidBatch(entries);
    return 'voided';
  }

  /** recordEntries in one PostgreSQL transaction (pg-docs.ts insertDocsTogether); false (nothing written) where it cannot. */
  private async recordInPg(entries: readonly SyncEntry[], records: readonly LedgerRecord[], undo?: ReadonlyArray<readonly SyncOp[] | undefined>, acked?: number): Promise<boolean> {
    const pool = this.pgPool();
    if (pool === undefined) return false;
    try {
      return await insertDocsTogether(pool, this.db.databaseName, recordSets(entries, records, undo, acked));
    } catch (err) {
      this.log?.warn({ err }, 'recording entries in PostgreSQL failed; recording them through FerretDB');
      return false;
    }
  }

  /**
   * recordEntries and applyOps at once, for a master's batch (or a slave's run of
   * entries) whose ops only put documents (inserts, updates, or both): on FerretDB/PostgreSQL one
   * statement (pg-docs.ts insertAndReplace), one commit where the two took two
   * (issue 17: an update at concurrency 1; session 7: inserts, whose data FerretDB
   * inserted in a transaction of its own). Stronger than the rule above: the
   * entries and the data are stored together or not at all. False, having changed
   * nothing, for any other batch or when it cannot (a table not made yet, a
   * document FerretDB would refuse, any refusal of PostgreSQL's): the caller
   * records, then applies, and a refused write is voided that way (void-batch.ts).
   */
  async recordAndWrite(entries: readonly SyncEntry[], undo: ReadonlyArray<readonly SyncOp[] | undefined>, ops: readonly SyncOp[], acked?: number): Promise<boolean> {
    // Any other batch (deletes, clears, indexes, every batch without PostgreSQL) goes the ordered way at once,
    // without planning its ops here and again in applyOps.
    if (entries.length === 0 || !ops.every((op) => op.t === 'put')) return false;
    const pool = this.pgPool();
    if (pool === undefined) return false;
    const steps = planApply(ops, true);
    const step = steps[0];
    if (steps.length !== 1 || step?.kind !== 'changes') return false;
    const writes = groupByTable(step.changes);
    if (writes.some((w) => w.deletes.length > 0)) return false;
    const records = ledgerRecords(entries);
    try {
      const replaces = writes.filter((w) => w.replaces.length > 0).map((w) => ({ table: w.table, docs: w.replaces }));
      const fresh = writes.filter((w) => w.inserts.length > 0).map((w) => ({ table: w.table, docs: w.inserts }));
      if (!(await insertAndReplace(pool, this.db.databaseName, recordSets(entries, records, undo, acked), replaces, fresh))) return false;
    } catch (err) {
      // The data's own refusals (22: a value, 23: a unique key held twice on the way, 54: over a limit) are the
      // ordered path's to write or void; anything else is worth a line.
      if (!/^(22|23|54)/.test((err as { code?: string }).code ?? '')) this.log?.warn({ err }, 'storing a batch in PostgreSQL failed; recording and applying it one after the other');
      return false;
    }
    this.oplog.recorded(entries);
    this.ledger.recorded(records);
    return true;
  }

  async recordEntry(entry: SyncEntry): Promise<void> {
    await this.recordEntries([entry]);
  }

  /**
   * Opens the ledger of a worker that continues from its own data (a restarted
   * master): its persisted coverage, or, for a database written before the
   * ledger existed, a ledger built from the oplog (covering from the oplog's
   * oldest entry's time when the oplog was trimmed, else from the beginning).
   */
  async openLedger(): Promise<void> {
    if (await this.ledger.open()) return;
    let oldest: OplogDoc | undefined;
    let batch: LedgerRecord[] = [];
    for await (const e of this.oplog.all()) {
      if (!oldest || e.seq < oldest.seq) oldest = e;
      if (!e.void) batch.push(recordOf(e));
      if (batch.length >= 1000) {
        await this.ledger.record(batch);
        batch = [];
      }
    }
    await this.ledger.record(batch);
    const hasData = oldest !== undefined || (await this.tables.userTables()).length > 0;
    await this.ledger.setCoveredSince(!hasData || oldest?.seq === 1 ? 0 : (oldest?.ts ?? Date.now()));
  }

  /** Applies resulting-state ops (in seq order) with few round trips; see Tables.applyOps. */
  applyOps(ops: readonly SyncOp[], exact = true): Promise<void> {
    return this.tables.applyOps(ops, exact);
  }

  /** Applies ops that may already be partly in the data (the newest batch after a crash). */
  replayOps(ops: readonly SyncOp[]): Promise<void> {
    return this.tables.replayOps(ops);
  }

  userTables(): Promise<string[]> {
    return this.tables.userTables();
  }

  /** Every document of a table, in no particular order, streamed (replica checksums: worker/checksum.ts). */
  scanTable(name: string): AsyncIterable<Doc> {
    return this.tables.scanTable(name);
  }

  findById(table: string, id: string): Promise<(Doc & { _id: string }) | undefined> {
    return this.tables.findById(table, id);
  }

  findForUpdate(table: string, where: Filter): AsyncIterable<Doc & { _id: string }> {
    return this.tables.findForUpdate(table, where);
  }

  matchingIds(table: string, where: Filter): AsyncIterable<string> {
    return this.tables.matchingIds(table, where);
  }

  /** Tables.bulkDelete on FerretDB/PostgreSQL (pg-docs.ts deleteDocs); false (delete them one by one) elsewhere or on failure. */
  private async deleteInPg(table: string, ids: readonly string[]): Promise<boolean> {
    const pool = this.pgPool();
    if (pool === undefined) return false;
    try {
      return await deleteDocs(pool, this.db.databaseName, table, ids);
    } catch (err) {
      this.log?.warn({ err, table }, 'deleting documents in PostgreSQL failed; deleting them through FerretDB');
      return false;
    }
  }

  /**
   * Which of `ids` a table holds: on FerretDB/PostgreSQL one indexed query for
   * them all (pg-layout.ts); if PostgreSQL fails, one lookup by `_id` each (FerretDB
   * answers a `$in` there by reading the whole table). Without PostgreSQL (SQLite,
   * which reads the whole table for a lookup by `_id` too), one `$in` per 1,000 ids.
   */
  async idsExisting(table: string, ids: string[]): Promise<string[]> {
    if (this.pgUrl === undefined) {
      const inTable = await this.tables.docsIn(table, ids, true);
      return ids.filter((id) => inTable.has(id));
    }
    const pool = ids.length > 1 ? this.pgPool() : undefined;
    if (pool !== undefined) {
      try {
        return await idsPresent(pool, this.db.databaseName, table, ids);
      } catch (err) {
        this.log?.warn({ err, table }, 'looking ids up in PostgreSQL failed; asking FerretDB one id at a time');
      }
    }
    return this.tables.idsExisting(table, ids);
  }

  /**
   * The documents with these ids, by id, for a write batch's build (issue 17: updates):
   * on FerretDB/PostgreSQL one indexed query (pg-docs.ts), if that fails one lookup each, several in
   * flight; without PostgreSQL one `$in` per 1,000 ids (Tables.docsIn: SQLite reads the table for each query).
   */
  async findByIds(table: string, ids: readonly string[]): Promise<Map<string, Doc & { _id: string }>> {
    if (this.pgUrl === undefined) return this.tables.docsIn(table, ids);
    const pool = this.pgPool();
    if (pool !== undefined) {
      try {
        return await docsByIds(pool, this.db.databaseName, table, ids);
      } catch (err) {
        this.log?.warn({ err, table }, 'reading documents in PostgreSQL failed; asking FerretDB one id at a time');
      }
    }
    const found = new Map<string, Doc & { _id: string }>();
    await eachConcurrently(ids, IN_FLIGHT, async (id) => {
      const doc = await this.tables.findById(table, id);
      if (doc) found.set(id, doc);
    });
    return found;
  }

  /** Tables.bulkReplace on FerretDB/PostgreSQL (pg-docs.ts replaceDocs); undefined (write them one by one) elsewhere or on failure. */
  private async replaceInPg(table: string, docs: readonly AnyDoc[]): Promise<AnyDoc[] | undefined> {
    const pool = this.pgPool();
    if (pool === undefined) return undefined;
    try {
      return await replaceDocs(pool, this.db.databaseName, table, docs);
    } catch (err) {
      // 23505: a unique key held twice on the way (a swap of keys); the statement changed nothing.
      if ((err as { code?: string }).code !== '23505') this.log?.warn({ err, table }, 'replacing documents in PostgreSQL failed; replacing them through FerretDB');
      return undefined;
    }
  }

  /** Tables.countAll on FerretDB/PostgreSQL (pg-docs.ts countDocs); undefined (FerretDB counts) elsewhere or on failure. */
  private async countInPg(table: string): Promise<number | undefined> {
    const pool = this.pgPool();
    if (pool === undefined) return undefined;
    try {
      return await countDocs(pool, this.db.databaseName, table);
    } catch (err) {
      this.log?.warn({ err, table }, 'counting in PostgreSQL failed; FerretDB counts');
      return undefined;
    }
  }

  /** Oplog entries by seq on PostgreSQL's `_id` btree (pg-read.ts readIdRange); undefined (FerretDB reads them) elsewhere or on failure. */
  private async oplogInPg(range: { after: number; upTo: number } | 'newest'): Promise<Doc[] | undefined> {
    const pool = this.pgPool();
    if (pool === undefined) return undefined;
    try {
      return await readIdRange(pool, this.db.databaseName, OPLOG, range);
    } catch (err) {
      this.log?.warn({ err }, 'reading the oplog in PostgreSQL failed; reading it through FerretDB');
      return undefined;
    }
  }

  /** The oplog's or the ledger's rows by seq, deleted on the `_id` btree (pg-trim.ts); false (FerretDB deletes them) elsewhere or on failure. */
  private async deleteSeqsInPg(table: string, d: SeqDelete): Promise<boolean> {
    const pool = this.pgPool();
    if (pool === undefined) return false;
    try {
      await deleteSeqs(pool, this.db.databaseName, table, d);
      return true;
    } catch (err) {
      this.log?.warn({ err, table }, 'deleting by seq in PostgreSQL failed; deleting through FerretDB');
      return false;
    }
  }

  /** The ledger's records of a requestId on its btree (pg-read.ts readByKey); undefined (FerretDB reads them) elsewhere or on failure. */
  private async requestInPg(requestId: string): Promise<Doc[] | undefined> {
    const pool = this.pgPool();
    if (pool === undefined) return undefined;
    try {
      return await readByKey(pool, this.db.databaseName, LEDGER, 'requestId', requestId);
    } catch (err) {
      this.log?.warn({ err }, 'looking a requestId up in PostgreSQL failed; FerretDB answers');
      return undefined;
    }
  }

  private pool: pg.Pool | undefined;

  /**
   * A table FerretDB's metadata names whose PostgreSQL table is gone (a ghost, Tables.dropTable): an empty
   * one is made under that name, so FerretDB's drop finds it and deletes the metadata row too. False
   * without PostgreSQL, or when the metadata does not name it.
   */
  private async restoreMissingTable(table: string): Promise<boolean> {
    const pool = this.pgPool();
    if (pool === undefined) return false;
    const at = await tableIn(pool, this.db.databaseName, table);
    if (at === undefined) return false;
    await pool.query(`CREATE TABLE IF NOT EXISTS ${at} (_jsonb jsonb)`);
    this.log?.warn({ table, at }, 'a table FerretDB lists had no PostgreSQL table (a drop cut short): made again, empty, to be dropped');
    return true;
  }

  /**
   * A PostgreSQL table FerretDB's metadata does not name (an orphan, Tables.creating: a create cut short between
   * the table and its metadata row), found by `relation` (the table or one of its indexes), is dropped with its
   * indexes, so FerretDB can create the collection again. False without PostgreSQL, when the relation is not
   * in that database's schema, or when the metadata names its table.
   */
  private async dropOrphanTable(table: string, relation: string): Promise<boolean> {
    const pool = this.pgPool();
    if (pool === undefined) return false;
    const schema = schemaOf(this.db.databaseName, table);
    const orphan = await pool
      .query(
        // The relation PostgreSQL names is the table, or one of its indexes (where a create was refused on the index).
        `SELECT t.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_index i ON i.indexrelid = c.oid
           JOIN pg_class t ON t.oid = COALESCE(i.indrelid, c.oid)
           WHERE n.nspname = $1 AND c.relname = $2 AND t.relkind = 'r'
           AND NOT EXISTS (SELECT 1 FROM ${ident(schema)}._ferretdb_database_metadata m WHERE m._jsonb->>'table' = t.relname)`,
        [schema, relation],
      )
      .catch((err: unknown) => {
        if (isMissing(err)) return { rows: [] };
        throw err;
      });
    const tbl = (orphan.rows as Array<{ relname: string }>)[0]?.relname;
    if (tbl === undefined) return false;
    const at = `${ident(schema)}.${ident(tbl)}`;
    await pool.query(`DROP TABLE IF EXISTS ${at}`);
    this.log?.warn({ table, at }, 'a PostgreSQL table FerretDB does not list was in the way of its create (a create cut short): dropped, created again');
    return true;
  }

  /** A small pool on the worker's own PostgreSQL database, opened at first use (none without `pgUrl`). */
  private pgPool(): pg.Pool | undefined {
    if (this.pgUrl === undefined) return undefined;
    this.pool ??= this.openPool({ max: 2, application_name: 'dbaas-ids' });
    return this.pool;
  }

  private readPool: pg.Pool | undefined;
  /** The table locations each pool remembers (pg-layout.ts), forgotten after every drop. */
  private readonly locations: TableLocations[] = [];

  /** A pool that remembers where tables live; an idle client's error (the server restarted) does not end the worker. */
  private openPool(options: pg.PoolConfig): pg.Pool {
    const pool = new pg.Pool({ connectionString: this.pgUrl, idleTimeoutMillis: 30_000, ...options });
    pool.on('error', (err) => this.log?.warn({ err }, 'an idle PostgreSQL connection failed'));
    this.locations.push(rememberTables(pool));
    return pool;
  }

  private forgetTables(): void {
    for (const l of this.locations) l.forget();
  }

  /**
   * A simple read answered by PostgreSQL (pg-read.ts), on a pool of its own so that reads
   * never wait behind the apply of sync entries; undefined where FerretDB must answer.
   * `maxTimeMs` bounds each statement (`statement_timeout`), as `maxTimeMS` does FerretDB's.
   */
  private async readInPg(read: SimpleRead, maxTimeMs: number | undefined): Promise<Doc[] | undefined> {
    this.readPool ??= this.openPool({ max: READ_POOL, application_name: 'dbaas-reads', ...(maxTimeMs === undefined ? {} : { statement_timeout: maxTimeMs }) });
    try {
      return await readSimple(this.readPool, this.db.databaseName, read);
    } catch (err) {
      if ((err as { code?: string }).code === STATEMENT_TIMEOUT) throw readStopped();
      this.log?.warn({ err, table: read.table }, 'reading in PostgreSQL failed; FerretDB answers');
      return undefined;
    }
  }

  /** A table's secondary indexes (issue 17; worker/table-indexes.ts). */
  indexes(table: string): Promise<IndexSpec[]> {
    return this.tables.indexes.list(table);
  }

  keyHolders(table: string, index: IndexSpec, key: string): Promise<string[]> {
    return this.tables.keyHolders(table, index, key);
  }

  /**
   * Where FerretDB keeps this database in PostgreSQL (`DBAAS_WORKER_PG_URL`), when it
   * does: a unique index is then checked by PostgreSQL, not by reading every document.
   */
  pgUrl: string | undefined;

  /** Where the store says that a PostgreSQL path failed and the MongoDB wire answered instead. */
  log: Logger | undefined;

  async uniqueVerdict(table: string, index: IndexSpec): Promise<UniqueVerdict | undefined> {
    return this.pgUrl === undefined ? undefined : uniqueVerdict(this.pgUrl, this.db.databaseName, table, index);
  }

  async indexKeyCandidates(table: string, index: IndexSpec): Promise<Doc[] | undefined> {
    return this.pgUrl === undefined ? undefined : indexKeyCandidates(this.pgUrl, this.db.databaseName, table, index);
  }

  /**
   * Answers a read: on FerretDB/PostgreSQL a simple one (equalities on top-level
   * fields) from PostgreSQL, with the statement FerretDB would send (pg-read.ts);
   * any other, and one that pg-read.ts cannot answer exactly, through FerretDB.
   */
  async read(cmd: ReadCommand, maxTimeMs?: number): Promise<ReadResult> {
    const simple = this.pgUrl === undefined ? undefined : simpleRead(cmd);
    const docs = simple === undefined ? undefined : await this.readInPg(simple, maxTimeMs);
    return docs ?? this.tables.read(cmd, maxTimeMs);
  }

  /**
   * Marks this database a complete replica up to its oplog's newest entry (a
   * finished snapshot, or a demoted master's data), or not: only from a complete
   * one may a worker resume (SlaveRole.resume). Cleared first thing by dropAll().
   */
  async markComplete(complete: boolean): Promise<void> {
    const meta = this.db.collection<{ _id: string; complete: boolean }>(META);
    await meta.replaceOne({ _id: 'sync' }, { complete }, { upsert: true });
  }

  async isComplete(): Promise<boolean> {
    const meta = this.db.collection<{ _id: string; complete: boolean }>(META);
    return (await meta.findOne({ _id: 'sync' }))?.complete === true;
  }

  /** Drops everything, oplog and ledger included: a slave starts from a snapshot. */
  async dropAll(): Promise<void> {
    await this.markComplete(false);
    await this.tables.dropUserTables();
    try {
      await this.oplog.drop();
      await this.ledger.drop();
    } finally {
      this.forgetTables();
    }
    await this.ledger.ensureIndexes();
  }

  /**
   * Trims the oplog tail (count and age limits) and the ledger (the retry
   * horizon), both by seq range, only when the cut has moved far enough: never
   * while idle (oplog-trim.ts).
   */
  async trim(limits: TrimLimits): Promise<void> {
    await this.oplog.trim(limits);
    await this.ledger.trim();
  }

  /** Kept for callers of the old name. */
  trimOplog(maxEntries: number, maxAgeMs: number): Promise<void> {
    return this.trim({ maxEntries, maxAgeMs });
  }

  async close(): Promise<void> {
    await this.pool?.end().catch(() => undefined);
    await this.readPool?.end().catch(() => undefined);
    await this.client.close().catch(() => undefined);
  }
}

/** A batch's oplog entries (with the master's undo ops and confirmed seq) and ledger records, as the documents stored in PostgreSQL. */
function recordSets(
  entries: readonly SyncEntry[],
  records: readonly LedgerRecord[],
  undo?: ReadonlyArray<readonly SyncOp[] | undefined>,
  acked?: number,
): Array<{ table: string; docs: Array<Record<string, unknown>> }> {
  return [
    { table: OPLOG, docs: entries.map((e, i) => storedEntry(e, undo?.[i], acked)) },
    { table: LEDGER, docs: records.map(storedRecord) },
  ];
}

/** The ledger records of stored entries: none for a void entry (its write was never applied). */
export function ledgerRecords(entries: readonly SyncEntry[]): LedgerRecord[] {
  return entries.flatMap((e) => (e.void ? [] : [recordOf(e)]));
}

/** An oplog entry as it is published: without its `_id` and the master's undo ops and confirmed seq. */
export function stripped(doc: SyncEntry & { _id?: number; undo?: unknown; acked?: number }): SyncEntry {
  const { _id: _seq, undo: _undo, acked: _acked, ...entry } = doc;
  return entry;
}
