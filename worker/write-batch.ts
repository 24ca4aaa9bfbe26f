/**
 * Which queued writes the master may build and store together, and the view of
 * the data they are built against.
 *
 * A batch is a run of consecutive writes, in queue order, whose post-images can
 * all be computed before any of them is written: each write reads the database
 * as it was before the batch, overlaid with what the earlier writes of the
 * same batch produced ({@link BatchView}). That is exact for inserts (new
 * documents; explicit `_id`s are checked against both) and for writes addressed
 * to one `_id` (the overlay has the document if an earlier write touched it). A
 * write with any other filter cannot see the earlier writes' documents in the
 * database, so it joins only while no earlier write of the batch touched its
 * table. `clear` and `verify` are always alone. Each write still gets its own seq and oplog
 * entry, in queue order; the batch only shares the round trips.
 */
import type { Doc, Filter, IndexSpec, WriteCommand } from '../common/commands.js';
import { uniqueKeyOf } from '../common/index-spec.js';
import type { UniqueVerdict } from './pg-unique-check.js';
import type { SyncOp } from '../common/messages.js';
import { eachConcurrently, IN_FLIGHT } from './in-flight.js';

export interface BatchLimits {
  /** Most writes in one batch. Recovery and snapshots replay at most one batch (see SyncEntry.first). */
  maxWrites: number;
  /** Most documents (inserted or addressed) in one batch; a single larger write still goes, alone. */
  maxDocs: number;
}

export const DEFAULT_BATCH_LIMITS: BatchLimits = Object.freeze({ maxWrites: 64, maxDocs: 2000 });

/** The `_id` a filter addresses when it is exactly `{_id: "<string>"}`, else undefined. */
export function idOnly(where: Filter): string | undefined {
  const keys = Object.keys(where);
  if (keys.length !== 1 || keys[0] !== '_id') return undefined;
  const v = where._id;
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const inner = v as Record<string, unknown>;
    const ik = Object.keys(inner);
    if (ik.length === 1 && ik[0] === '$eq' && typeof inner.$eq === 'string') return inner.$eq;
  }
  return undefined;
}

function docCount(cmd: WriteCommand): number {
  return cmd.kind === 'insert' ? cmd.docs.length : 1;
}

/**
 * How many of the leading `commands` form the next batch (at least 1 when there
 * is any). `undefined` entries (writes answered without building, such as
 * retries) join freely.
 */
export function planBatch(commands: ReadonlyArray<WriteCommand | undefined>, limits: BatchLimits = DEFAULT_BATCH_LIMITS): number {
  if (commands.length === 0) return 0;
  const touched = new Set<string>();
  let docs = 0;
  let n = 0;
  for (const cmd of commands) {
    if (n >= limits.maxWrites) break;
    if (cmd === undefined) {
      n += 1;
      continue;
    }
    // A clear empties everything, and a verify checkpoint must see the data exactly at its seq: both go
    // alone; so do index changes (issue 17), which the writes after them must be checked against.
    if (cmd.kind === 'clear' || cmd.kind === 'verify' || cmd.kind === 'createIndex' || cmd.kind === 'dropIndex') {
      if (n === 0) n = 1;
      break;
    }
    const size = docCount(cmd);
    if (n > 0 && docs + size > limits.maxDocs) break;
    const general = cmd.kind !== 'insert' && idOnly(cmd.where) === undefined;
    if (general && touched.has(cmd.table)) break;
    touched.add(cmd.table);
    docs += size;
    n += 1;
  }
  return n;
}

/** What a batch reads from the database: the state before the batch. */
export interface BatchSource {
  findById(table: string, id: string): Promise<(Doc & { _id: string }) | undefined>;
  /** Several documents by `_id` at once (those that exist, by id); without it, one findById each. */
  findByIds?(table: string, ids: readonly string[]): Promise<Map<string, Doc & { _id: string }>>;
  /** The documents a filter matches, streamed: a build that stops part-way (entry-builder.ts, over the bound) reads no further. */
  findForUpdate(table: string, where: Filter): AsyncIterable<Doc & { _id: string }>;
  /** The `_id`s of the documents a filter matches, streamed, without their contents (a wide delete). */
  matchingIds(table: string, where: Filter): AsyncIterable<string>;
  idsExisting(table: string, ids: string[]): Promise<string[]>;
  /** The table's secondary indexes (issue 17). */
  indexes(table: string): Promise<IndexSpec[]>;
  /** The ids of documents holding a key of a unique index (common/index-spec.ts uniqueKeyOf); at most two. */
  keyHolders(table: string, index: IndexSpec, key: string): Promise<string[]>;
  /** Every document of a table (a unique index built over it is checked first). */
  scanTable(table: string): AsyncIterable<Doc>;
  /** Asks the storage itself whether a unique index fits the table (worker/pg-unique-check.ts); undefined: scan instead. */
  uniqueVerdict?(table: string, index: IndexSpec): Promise<UniqueVerdict | undefined>;
  /** Asks the storage for the documents whose entry in an index might pass its bound (worker/pg-unique-check.ts); undefined: scan instead. */
  indexKeyCandidates?(table: string, index: IndexSpec): Promise<Doc[] | undefined>;
}

/**
 * The database as the next write of a batch must see it: the state before the
 * batch, overlaid with the documents the batch's earlier writes put or deleted.
 */
export class BatchView implements BatchSource {
  /** table → id → post-image, or null once deleted. */
  private readonly overlay = new Map<string, Map<string, (Doc & { _id: string }) | null>>();
  /** A clear was recorded: it is alone in its batch, so nothing may read after it. */
  private cleared = false;
  /** table\u0000id → the document before the batch (null: not there), read by {@link prefetch}. */
  private readonly before = new Map<string, (Doc & { _id: string }) | null>();

  constructor(private readonly db: BatchSource) {}

  private check(): void {
    if (this.cleared) throw new Error('batch rule broken: a write after a clear in the same batch');
  }

  private table(name: string): Map<string, (Doc & { _id: string }) | null> | undefined {
    return this.overlay.get(name);
  }

  async findById(table: string, id: string): Promise<(Doc & { _id: string }) | undefined> {
    this.check();
    const t = this.table(table);
    if (t?.has(id)) return t.get(id) ?? undefined;
    const key = keyOfDoc(table, id);
    if (this.before.has(key)) return this.before.get(key) ?? undefined;
    return this.db.findById(table, id);
  }

  /**
   * Reads, several at a time, the documents the batch's writes address by one `_id`
   * (updates, upserts, deletes), as they are before the batch: the build then finds
   * them here instead of asking the database one write after another. The overlay
   * still comes first, so a later write of the batch sees the earlier ones' post-images.
   */
  async prefetch(commands: readonly WriteCommand[]): Promise<void> {
    const wanted = new Map<string, [table: string, id: string]>();
    for (const cmd of commands) {
      if (cmd.kind !== 'update' && cmd.kind !== 'upsert' && cmd.kind !== 'delete') continue;
      const id = idOnly(cmd.where);
      if (id !== undefined) wanted.set(keyOfDoc(cmd.table, id), [cmd.table, id]);
    }
    // One document too: on PostgreSQL findByIds is one indexed query, cheaper than FerretDB's lookup.
    if (wanted.size === 0) return;
    const byTable = new Map<string, string[]>();
    for (const [table, id] of wanted.values()) byTable.set(table, [...(byTable.get(table) ?? []), id]);
    for (const [table, ids] of byTable) {
      // A read that fails is left to each write's own build, which answers for it as before.
      const found = this.db.findByIds ? await this.db.findByIds(table, ids).catch(() => undefined) : undefined;
      if (found) for (const id of ids) this.before.set(keyOfDoc(table, id), found.get(id) ?? null);
    }
    const unread = [...wanted].filter(([key]) => !this.before.has(key));
    await eachConcurrently(unread, IN_FLIGHT, async ([key, [table, id]]) => {
      const doc = await this.db.findById(table, id).catch(() => NOT_READ);
      if (typeof doc !== 'symbol') this.before.set(key, doc ?? null);
    });
  }

  findForUpdate(table: string, where: Filter): AsyncIterable<Doc & { _id: string }> {
    this.filtered(table);
    return this.db.findForUpdate(table, where);
  }

  matchingIds(table: string, where: Filter): AsyncIterable<string> {
    this.filtered(table);
    return this.db.matchingIds(table, where);
  }

  /** planBatch guarantees this; a breach would silently build from stale data. */
  private filtered(table: string): void {
    this.check();
    if (this.overlay.has(table)) throw new Error(`batch rule broken: a filtered write on ${table} after another write to it`);
  }

  async idsExisting(table: string, ids: string[]): Promise<string[]> {
    this.check();
    const t = this.table(table);
    const known = ids.filter((id) => t?.has(id));
    const unknown = ids.filter((id) => !t?.has(id));
    const found = unknown.length > 0 ? await this.db.idsExisting(table, unknown) : [];
    return [...known.filter((id) => t?.get(id)), ...found];
  }

  /** Index commands are alone in their batch: nothing of the batch is in the overlay. */
  indexes(table: string): Promise<IndexSpec[]> {
    return this.db.indexes(table);
  }

  /** Index commands are alone in their batch: the database is the batch's state. */
  uniqueVerdict(table: string, index: IndexSpec): Promise<UniqueVerdict | undefined> {
    return this.db.uniqueVerdict ? this.db.uniqueVerdict(table, index) : Promise.resolve(undefined);
  }

  indexKeyCandidates(table: string, index: IndexSpec): Promise<Doc[] | undefined> {
    return this.db.indexKeyCandidates ? this.db.indexKeyCandidates(table, index) : Promise.resolve(undefined);
  }

  scanTable(table: string): AsyncIterable<Doc> {
    this.check();
    if (this.overlay.has(table)) throw new Error(`batch rule broken: a scan of ${table} after another write to it`);
    return this.db.scanTable(table);
  }

  /** Holders in the database that the batch has not changed, and documents the batch put holding the key. */
  async keyHolders(table: string, index: IndexSpec, key: string): Promise<string[]> {
    this.check();
    const t = this.table(table);
    const fromDb = (await this.db.keyHolders(table, index, key)).filter((id) => !t?.has(id));
    const fromBatch: string[] = [];
    for (const [id, doc] of t ?? []) if (doc && keyOrUndefined(index, doc, table) === key) fromBatch.push(id);
    return [...fromDb, ...fromBatch];
  }

  /** Records what a built write produced, for the writes after it. */
  record(ops: readonly SyncOp[]): void {
    for (const op of ops) {
      if (op.t === 'clear') {
        if (this.overlay.size > 0) throw new Error('batch rule broken: a clear after other writes in the same batch');
        this.cleared = true;
        continue;
      }
      if (op.t === 'index' || op.t === 'dropIndex') continue;
      let t = this.overlay.get(op.table);
      if (!t) {
        t = new Map();
        this.overlay.set(op.table, t);
      }
      if (op.t === 'put') t.set(op.doc._id, op.doc);
      else t.set(op.id, null);
    }
  }
}

/** Known to exist, contents not read (a duplicate-id check). */
export const EXISTS = 'exists';

/**
 * A {@link BatchSource} that notes, per document, the first state it reads (the
 * state before the batch: a {@link BatchView} asks it only for what the batch has
 * not changed), as `noteOf` makes it: null when the document is not there, {@link
 * EXISTS} when only its existence was asked (a later read of the document itself
 * replaces that). Used for replica checksums (checkpoint-window.ts: digests) and
 * for taking back a refused batch (void-batch.ts: copies).
 */
export class NotingSource<V> implements BatchSource {
  /** `table\u0000id` → the note. */
  readonly seen = new Map<string, V | null | typeof EXISTS>();

  constructor(
    private readonly db: BatchSource,
    private readonly noteOf: (doc: Doc & { _id: string }) => V,
  ) {}

  private note(table: string, id: string, doc: (Doc & { _id: string }) | null | typeof EXISTS): void {
    const key = keyOfDoc(table, id);
    const had = this.seen.get(key);
    if (had !== undefined && !(had === EXISTS && doc !== EXISTS)) return;
    this.seen.set(key, doc === null || doc === EXISTS ? doc : this.noteOf(doc));
  }

  async findById(table: string, id: string): Promise<(Doc & { _id: string }) | undefined> {
    const doc = await this.db.findById(table, id);
    this.note(table, id, doc ?? null);
    return doc;
  }

  async findByIds(table: string, ids: readonly string[]): Promise<Map<string, Doc & { _id: string }>> {
    let found: Map<string, Doc & { _id: string }>;
    if (this.db.findByIds) found = await this.db.findByIds(table, ids);
    else {
      found = new Map();
      for (const id of ids) {
        const doc = await this.db.findById(table, id);
        if (doc) found.set(id, doc);
      }
    }
    for (const id of ids) this.note(table, id, found.get(id) ?? null);
    return found;
  }

  async *findForUpdate(table: string, where: Filter): AsyncIterable<Doc & { _id: string }> {
    for await (const doc of this.db.findForUpdate(table, where)) {
      this.note(table, doc._id, doc);
      yield doc;
    }
  }

  async *matchingIds(table: string, where: Filter): AsyncIterable<string> {
    for await (const id of this.db.matchingIds(table, where)) {
      this.note(table, id, EXISTS);
      yield id;
    }
  }

  async idsExisting(table: string, ids: string[]): Promise<string[]> {
    const found = await this.db.idsExisting(table, ids);
    const existing = new Set(found);
    for (const id of ids) this.note(table, id, existing.has(id) ? EXISTS : null);
    return found;
  }

  // Index reads (issue 17) decide whether a write is refused, not what it writes: nothing to note.
  indexes(table: string): Promise<IndexSpec[]> {
    return this.db.indexes(table);
  }

  keyHolders(table: string, index: IndexSpec, key: string): Promise<string[]> {
    return this.db.keyHolders(table, index, key);
  }

  scanTable(table: string): AsyncIterable<Doc> {
    return this.db.scanTable(table);
  }

  uniqueVerdict(table: string, index: IndexSpec): Promise<UniqueVerdict | undefined> {
    return this.db.uniqueVerdict ? this.db.uniqueVerdict(table, index) : Promise.resolve(undefined);
  }

  indexKeyCandidates(table: string, index: IndexSpec): Promise<Doc[] | undefined> {
    return this.db.indexKeyCandidates ? this.db.indexKeyCandidates(table, index) : Promise.resolve(undefined);
  }
}

/** A document's key under a unique index, or undefined when it cannot have one (it was checked when written). */
function keyOrUndefined(index: IndexSpec, doc: Doc, table: string): string | undefined {
  try {
    return uniqueKeyOf(index, doc, table);
  } catch {
    return undefined;
  }
}

const NOT_READ: unique symbol = Symbol('not read');

export function keyOfDoc(table: string, id: string): string {
  return `${table}\u0000${id}`;
}
