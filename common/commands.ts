/**
 * Normalised commands: what a validated HTTP body becomes before it is queued.
 *
 * The orchestrator validates (see `validation.ts`) and sends only these shapes to
 * workers; workers trust the shape but still treat values as data.
 * All values are plain JSON (no Date, no ObjectId): `_id` is always a string.
 */
import { createHash } from 'node:crypto';

/** A stored document: plain JSON object. `_id` is a string once stored. */
export type Doc = { [key: string]: unknown };

/**
 * A validated MongoDB filter, restricted to field paths and
 * `$eq $ne $gt $gte $lt $lte $in $nin $exists $and $or $not $regex $options`.
 */
export type Filter = { [key: string]: unknown };

/** Update operators allowed in `data` of update/upsert. */
export const UPDATE_OPERATORS = ['$set', '$unset', '$inc', '$push', '$addToSet', '$pull'] as const;
export type UpdateOperator = (typeof UPDATE_OPERATORS)[number];

/** A validated update: operator -> { dotted.path: value }. A plain object in the request becomes `$set`. */
export type UpdateSpec = Partial<Record<UpdateOperator, { [path: string]: unknown }>>;

export type WriteCommand =
  | { kind: 'insert'; table: string; docs: Doc[] }
  /** Updates every document that matches. */
  | { kind: 'update'; table: string; where: Filter; update: UpdateSpec }
  /** Updates every match, or inserts one document seeded from the filter's equalities when none matches. */
  | { kind: 'upsert'; table: string; where: Filter; update: UpdateSpec }
  /** Deletes every document that matches. */
  | { kind: 'delete'; table: string; where: Filter }
  /** Empties every table: of one database when `database` is given (a drop), else of every database. */
  | { kind: 'clear'; database?: string }
  /**
   * Changes nothing: a checkpoint at which every replica hashes its tables (replica
   * checksums, see worker/checksum.ts). Alone in its batch, like `clear`.
   */
  | { kind: 'verify'; backup?: BackupTarget }
  /**
   * Creates a secondary index (issue 17): alone in its batch. Creating one that exists
   * with the same keys and `unique` changes nothing; another index of that name is refused.
   */
  | { kind: 'createIndex'; table: string; index: IndexSpec }
  /** Drops a secondary index by name (alone in its batch); a missing one is DBAAS_INDEX_NOT_FOUND. */
  | { kind: 'dropIndex'; table: string; name: string };

/**
 * A secondary index: its name, its keys in order (top-level or dotted field paths
 * to 1 or -1), and whether no two documents may share its key. Missing fields
 * count as null (MongoDB's rule), so a unique index lets one document lack them.
 */
export interface IndexSpec {
  name: string;
  keys: Array<[path: string, direction: 1 | -1]>;
  unique: boolean;
}

/** An index of one table, as the indexes API lists it. */
export interface IndexDef extends IndexSpec {
  table: string;
}

/** One table as `GET /api/v1/db/tables` lists it: its (qualified) name, document count and secondary indexes. */
export interface TableInfo {
  table: string;
  /** Null when it could not be counted in time. */
  documents: number | null;
  /** False: `documents` is the storage's estimate (PostgreSQL's statistics), not a count. */
  exact: boolean;
  indexes: IndexSpec[];
}

/** The name MongoDB would give an index with these keys (`a_1_b_-1`). */
export function defaultIndexName(keys: IndexSpec['keys']): string {
  return keys.map(([path, dir]) => `${path}_${dir}`).join('_');
}

/**
 * A backup (issue 20) rides on a `verify` checkpoint: the slave `worker`, when
 * its data is exactly at the checkpoint's seq, streams every table to the queue
 * `queue` (worker/backup.ts) before it applies anything newer.
 */
export interface BackupTarget {
  id: string;
  worker: string;
  queue: string;
  /** Also send the slave's oplog entries after this seq (for a point-in-time restore from an older backup). */
  oplogAfter?: number;
}

/** A validated `db/write` or `db/clear` body. */
export interface WriteRequest {
  /** Client-chosen idempotency key; the orchestrator assigns one when absent. */
  requestId?: string;
  command: WriteCommand;
}

/** A validated `db/read` body. */
export interface ReadCommand {
  /** The qualified table name (common/databases.ts): `<database>.<table>`, or the bare name in the default database. */
  table: string;
  where: Filter;
  /** Projection: only these fields (and `_id` only when listed). */
  columns?: string[];
  sort?: { [path: string]: 1 | -1 };
  limit?: number;
  skip?: number;
  /** Answer `{count: n}` instead of documents. */
  count: boolean;
  /** Read-your-writes: the slave first waits (bounded) until it has applied this seq. */
  afterSeq?: number;
}

/** What a successful write answers. */
export interface WriteResult {
  ok: true;
  seq: number;
  inserted: number;
  ids: string[];
  matched: number;
  modified: number;
  deleted: number;
}

export type ReadResult = Doc[] | { count: number };

/**
 * The value with the keys of every object in sorted order: the value itself
 * when they already are (no copy, the usual case for bodies a program wrote),
 * else a copy. JSON.stringify of the result is a canonical text: two bodies that
 * differ only in key order give the same text.
 */
function keysSorted(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const sorted = keysSorted(value[i]);
      if (sorted !== value[i]) (copy ??= value.slice())[i] = sorted;
    }
    return copy ?? value;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  let inOrder = true;
  let replaced: Map<string, unknown> | undefined;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    if (i > 0 && (keys[i - 1] as string) > k) inOrder = false;
    const sorted = keysSorted(obj[k]);
    if (sorted !== obj[k]) (replaced ??= new Map()).set(k, sorted);
  }
  if (inOrder && !replaced) return value;
  const copy: Record<string, unknown> = {};
  for (const k of keys.sort()) copy[k] = replaced?.has(k) ? replaced.get(k) : obj[k];
  return copy;
}

/**
 * The canonical JSON text of a value: object keys sorted at every level, array
 * order kept. Two values that differ only in key order give the same text.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(keysSorted(value));
}

/**
 * A short fingerprint of a write (SHA-256 of its canonical JSON, 128 bits, base64url).
 * The master keeps it next to the requestId, so that reusing a requestId for a
 * different write is refused (DBAAS_WRITE_REQUEST_ID_REUSED) rather than answered
 * with another write's result. Key order does not matter; anything else does.
 */
export function commandFingerprint(command: WriteCommand): string {
  return createHash('sha256').update(canonicalJson(command)).digest('base64url').slice(0, 22);
}
