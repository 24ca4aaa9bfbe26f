/**
 * A worker's secondary indexes (issue 17): the definitions as its database holds
 * them (`listIndexes`, cached per table: only the write path changes them, one
 * write at a time), created and dropped idempotently, and the writes of a table
 * that has a unique index, which must never pass through a state where two
 * documents share a key.
 *
 * The definitions live in the database itself, so a snapshot of the data, a
 * restart and a promotion all keep them; they reach other replicas only as
 * replicated ops (`{t: 'index'}`, `{t: 'dropIndex'}`, common/messages.ts) and,
 * for a new slave, on the first snapshot page.
 */
import { MongoServerError, type Collection } from 'mongodb';
import type { IndexDef, IndexSpec } from '../common/commands.js';
import { ID_INDEX_NAME, sameIndex } from '../common/index-spec.js';
import type { IndexOp } from '../common/messages.js';
import { isDuplicateKey } from './duplicates.js';

interface AnyDoc {
  _id: string;
  [key: string]: unknown;
}

/** MongoDB's codes for a collection or an index that is not there. */
const NAMESPACE_NOT_FOUND = 26;
const INDEX_NOT_FOUND = 27;

function missing(err: unknown, code: number): boolean {
  return err instanceof MongoServerError && (err.code === code || (code === NAMESPACE_NOT_FOUND && err.codeName === 'NamespaceNotFound'));
}

/** An index spec as MongoDB's `key` object (insertion order is the key order). */
export function keyObject(spec: IndexSpec): Record<string, 1 | -1> {
  const key: Record<string, 1 | -1> = {};
  for (const [path, dir] of spec.keys) key[path] = dir;
  return key;
}

export class IndexCatalog {
  private readonly cache = new Map<string, IndexSpec[]>();

  constructor(private readonly coll: (table: string) => Collection<AnyDoc>) {}

  /** The table's secondary indexes (not `_id_`), in the database's order; none when the table does not exist. */
  async list(table: string): Promise<IndexSpec[]> {
    const cached = this.cache.get(table);
    if (cached) return cached;
    let raw: Array<{ name?: unknown; key?: unknown; unique?: unknown }>;
    try {
      raw = await this.coll(table).listIndexes().toArray();
    } catch (err) {
      if (!missing(err, NAMESPACE_NOT_FOUND)) throw err;
      raw = [];
    }
    const specs = raw
      .filter((i) => typeof i.name === 'string' && i.name !== ID_INDEX_NAME && typeof i.key === 'object' && i.key !== null)
      .map((i) => ({
        name: i.name as string,
        keys: Object.entries(i.key as Record<string, unknown>).map(([path, dir]): [string, 1 | -1] => [path, Number(dir) < 0 ? -1 : 1]),
        unique: i.unique === true,
      }));
    this.cache.set(table, specs);
    return specs;
  }

  /** Whether the table exists (it has at least the `_id` index then). */
  async exists(table: string): Promise<boolean> {
    try {
      await this.coll(table).listIndexes().toArray();
      return true;
    } catch (err) {
      if (missing(err, NAMESPACE_NOT_FOUND)) return false;
      throw err;
    }
  }

  async unique(table: string): Promise<IndexSpec[]> {
    return (await this.list(table)).filter((i) => i.unique);
  }

  /** Applies a replicated index op. Idempotent: an index that exists alike is kept, a missing one is not dropped again. */
  async apply(op: IndexOp): Promise<void> {
    const coll = this.coll(op.table);
    this.cache.delete(op.table);
    if (op.t === 'index') {
      const existing = (await this.list(op.table)).find((i) => i.name === op.index.name);
      this.cache.delete(op.table);
      if (existing && sameIndex(existing, op.index)) return;
      // A different index of that name can only be one a replay is replacing: drop it first.
      if (existing) await coll.dropIndex(op.index.name);
      await coll.createIndex(keyObject(op.index), { name: op.index.name, unique: op.index.unique });
      return;
    }
    try {
      await coll.dropIndex(op.name);
    } catch (err) {
      if (!missing(err, INDEX_NOT_FOUND) && !missing(err, NAMESPACE_NOT_FOUND)) throw err;
    }
  }

  /** Creates every index of a list (a new slave's first snapshot page), table by table. */
  async ensure(defs: readonly IndexDef[]): Promise<void> {
    for (const { table, ...index } of defs) await this.apply({ t: 'index', table, index });
  }

  /** Every secondary index of these tables (for a snapshot's first page). */
  async all(tables: readonly string[]): Promise<IndexDef[]> {
    const out: IndexDef[] = [];
    for (const table of tables) for (const index of await this.list(table)) out.push({ table, ...index });
    return out;
  }

  /** Forgets what it knows (the tables were dropped). */
  forget(): void {
    this.cache.clear();
  }

  /**
   * Writes puts and deletes to a table with a unique index so that no state in
   * between has two documents with one key: deletes first, then each put; a put
   * refused as a duplicate waits for the others (the document holding its key
   * is among them, moving away), and puts that only refuse each other (keys
   * swapped around a cycle) are deleted and inserted again. The end state is
   * valid (the master checked it), so this ends.
   */
  async writeOrdered(table: string, puts: readonly AnyDoc[], deletes: readonly string[], put: (doc: AnyDoc) => Promise<void>): Promise<void> {
    const coll = this.coll(table);
    for (const id of deletes) await coll.deleteOne({ _id: id });
    let pending = [...puts];
    while (pending.length > 0) {
      const stuck: AnyDoc[] = [];
      for (const doc of pending) {
        try {
          await put(doc);
        } catch (err) {
          if (!isDuplicateKey(err)) throw err;
          stuck.push(doc);
        }
      }
      if (stuck.length === pending.length) {
        for (const doc of stuck) await coll.deleteOne({ _id: doc._id });
        for (const doc of stuck) await coll.insertOne(doc);
        return;
      }
      pending = stuck;
    }
  }
}
