/**
 * Simple reads answered by PostgreSQL below FerretDB (`DBAAS_WORKER_PG_URL`;
 * issue 17: reads). For a filter of equalities on top-level fields FerretDB 1.24
 * sends PostgreSQL one statement, `SELECT _jsonb FROM <table> WHERE _jsonb -> 'f'
 * @> $1 AND …` (internal/backends/postgresql/query.go: no ORDER BY, no LIMIT when
 * there is a filter), filters the rows again in Go, applies the limit and converts
 * the rest to BSON, which the driver here converts once more. Through FerretDB
 * that costs more CPU than PostgreSQL's own work (a read by an indexed field at
 * concurrency 64: the slave worker 0.26 ms, FerretDB about 0.3 ms); here the
 * worker sends the same statement itself and converts FerretDB's rows as
 * pg-snapshot.ts does for the copy.
 *
 * It must answer exactly what FerretDB would, or not at all (undefined: the caller
 * asks FerretDB). So only reads of this form are taken: each `where` key a
 * top-level field (no dot, no `$`), each value a string, a boolean or a number
 * within ±(2^53 - 1) (bare or as `{$eq: v}`); no sort, skip, projection or count. The
 * rows come in FerretDB's order (the heap's: `ORDER BY ctid`, what its bitmap and
 * sequential scans give). Each row must be a document of JSON values (else
 * FerretDB answers the read) and must match the filter as MongoDB matches it (the
 * field equal to the value, or an array holding it; `@>` also finds a document
 * FerretDB's own filter would drop, and then FerretDB answers the read, since
 * the limit was taken before that filter). `_id` is compared with `=`, on
 * FerretDB's unique btree (an `_id` is never an array). The proof is
 * tests/integration/pg-read.test.ts: both paths over many value types and shapes.
 */
import pg from 'pg';
import type { Doc, Filter, ReadCommand } from '../common/commands.js';
import { MAX_READ_LIMIT } from '../common/limits.js';
import { tableIn, withTables } from './pg-layout.js';
import { documentFromJsonb, fieldsFromJsonb, UnsupportedDocument } from './pg-snapshot.js';

type Scalar = string | number | boolean;

/** A read this module answers: equalities on top-level fields, and how many documents at most. */
export interface SimpleRead {
  table: string;
  equal: ReadonlyArray<{ field: string; value: Scalar }>;
  limit: number;
}

/** The read as a {@link SimpleRead}, or undefined when it is not one (FerretDB answers it). */
export function simpleRead(cmd: ReadCommand): SimpleRead | undefined {
  if (cmd.count || cmd.columns !== undefined || cmd.sort !== undefined || cmd.skip !== undefined) return undefined;
  const equal: Array<{ field: string; value: Scalar }> = [];
  for (const [field, raw] of Object.entries(cmd.where)) {
    if (field === '' || field.startsWith('$') || field.includes('.') || field === '__proto__') return undefined;
    const value = scalarOf(raw);
    if (value === undefined) return undefined;
    equal.push({ field, value });
  }
  if (equal.length === 0) return undefined;
  // An `_id` is unique: one document at most (as Tables.read asks FerretDB for one).
  const byId = equal.some((e) => e.field === '_id');
  return { table: cmd.table, equal, limit: byId ? 1 : (cmd.limit ?? MAX_READ_LIMIT) };
}

/** Beyond ±(2^53 - 1) FerretDB's statement compares numbers by range (query.go filterEqual, MaxSafeDouble): those reads go to FerretDB. */
const SAFE = Number.MAX_SAFE_INTEGER;

function scalarOf(raw: Filter[string]): Scalar | undefined {
  let v: unknown = raw;
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const keys = Object.keys(v);
    if (keys.length !== 1 || keys[0] !== '$eq') return undefined;
    v = (v as { $eq: unknown }).$eq;
  }
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number' && Number.isFinite(v) && Math.abs(v) <= SAFE) return v;
  return undefined;
}

/** MongoDB's equality of a top-level field with a scalar: the value itself, or an element of an array there. */
function matches(doc: Doc, equal: SimpleRead['equal']): boolean {
  return equal.every(({ field, value }) => {
    const v = doc[field];
    return v === value || (Array.isArray(v) && v.some((e) => e === value));
  });
}

/** The statement FerretDB would send for this read, in FerretDB's row order, with the limit. */
export function readSql(from: string, read: SimpleRead): { text: string; values: string[] } {
  const conditions = read.equal.map(({ field }, i) =>
    field === '_id' ? `(_jsonb -> '_id') = $${i + 1}::jsonb` : `(_jsonb -> ${pg.escapeLiteral(field)}) @> $${i + 1}::jsonb`,
  );
  return {
    text: `SELECT _jsonb FROM ${from} WHERE ${conditions.join(' AND ')} ORDER BY ctid LIMIT ${read.limit}`,
    values: read.equal.map(({ value }) => JSON.stringify(value)),
  };
}

/** PostgreSQL's error code for a statement stopped by `statement_timeout`. */
export const STATEMENT_TIMEOUT = '57014';

/**
 * The documents FerretDB would answer, read from PostgreSQL (`[]` when the table
 * does not exist); undefined when FerretDB must answer (a value JSON cannot carry,
 * or a row FerretDB's filter would drop). PostgreSQL's errors are thrown
 * ({@link STATEMENT_TIMEOUT}: the statement ran past the pool's `statement_timeout`).
 */
export async function readSimple(pool: pg.Pool, dbName: string, read: SimpleRead): Promise<Doc[] | undefined> {
  return readRows(pool, dbName, read.table, (from) => readSql(from, read), (jsonb) => {
    const doc = documentFromJsonb(jsonb);
    return matches(doc, read.equal) ? doc : undefined;
  });
}

/**
 * Runs the statement `sql` makes for the table's PostgreSQL name and converts each
 * row with `convert`: `[]` when the table does not exist; undefined (FerretDB must
 * answer) when a row holds a value JSON cannot carry or `convert` refuses one.
 */
async function readRows(
  pool: pg.Pool,
  dbName: string,
  table: string,
  sql: (from: string) => { text: string; values: string[] },
  convert: (jsonb: Record<string, unknown>) => Doc | undefined,
): Promise<Doc[] | undefined> {
  const rows = await withTables(pool, async () => {
    const from = await tableIn(pool, dbName, table);
    if (from === undefined) return undefined;
    return (await pool.query<{ _jsonb: Record<string, unknown> }>(sql(from))).rows;
  });
  if (rows === undefined) return [];
  const docs: Doc[] = [];
  for (const row of rows) {
    let doc: Doc | undefined;
    try {
      doc = convert(row._jsonb);
    } catch (err) {
      if (err instanceof UnsupportedDocument) return undefined;
      throw err;
    }
    if (doc === undefined) return undefined;
    docs.push(doc);
  }
  return docs;
}

/**
 * Documents with a numeric `_id` in (`after`, `upTo`], in `_id` order, or with
 * `newest` only the one with the highest `_id`: the oplog's reads by seq
 * (worker/oplog.ts). FerretDB 1.24 on PostgreSQL sends no `_id` range down (it
 * reads every row and filters in Go: a 1-entry range of a 7,500-entry oplog took
 * 4.3-5.5 s, session 5) and sorts in Go; here the range is a range of FerretDB's
 * unique btree on `(_jsonb -> '_id')` (jsonb orders numbers by value, above null
 * and every string, below booleans, arrays and objects; a range with a numeric lower
 * bound holds numbers only), so its cost follows the entries read,
 * not the table. `[]` when the table does not exist; undefined when a row holds a
 * value JSON cannot carry or an `_id` that is not a number (FerretDB answers).
 */
export async function readIdRange(pool: pg.Pool, dbName: string, table: string, range: { after: number; upTo: number } | 'newest'): Promise<Doc[] | undefined> {
  return readRows(pool, dbName, table, (from) => idRangeSql(from, range), (jsonb) => {
    const doc = fieldsFromJsonb(jsonb);
    return typeof doc['_id'] === 'number' ? doc : undefined;
  });
}

/** The statement of {@link readIdRange}: an Index Scan on the `_id` btree (tests/integration/oplog-range.test.ts). */
export function idRangeSql(from: string, range: { after: number; upTo: number } | 'newest'): { text: string; values: string[] } {
  if (range === 'newest') return { text: `SELECT _jsonb FROM ${from} ORDER BY (_jsonb -> '_id') DESC LIMIT 1`, values: [] };
  return {
    text: `SELECT _jsonb FROM ${from} WHERE (_jsonb -> '_id') > $1::jsonb AND (_jsonb -> '_id') <= $2::jsonb ORDER BY (_jsonb -> '_id')`,
    values: [JSON.stringify(range.after), JSON.stringify(range.upTo)],
  };
}

/**
 * The documents whose top-level `field` holds exactly the string `value`, in no
 * particular order: the request ledger's lookup by requestId (worker/request-ledger.ts,
 * whose `requestId` index Store.connect makes). The equality is jsonb's `=` on FerretDB's
 * btree index on `(_jsonb -> field)`, where FerretDB's own statement (`@>`, {@link readSql})
 * cannot use it and reads every row. Unlike MongoDB's match it does not find an array
 * holding `value`: only for fields that never hold arrays. `[]` when the table does not
 * exist; undefined when a row holds a value JSON cannot carry (FerretDB answers).
 */
export async function readByKey(pool: pg.Pool, dbName: string, table: string, field: string, value: string): Promise<Doc[] | undefined> {
  return readRows(pool, dbName, table, (from) => keySql(from, field, value), fieldsFromJsonb);
}

/** The statement of {@link readByKey}: an Index Scan on the field's btree (tests/integration/seq-trim.test.ts). */
export function keySql(from: string, field: string, value: string): { text: string; values: string[] } {
  return { text: `SELECT _jsonb FROM ${from} WHERE (_jsonb -> ${pg.escapeLiteral(field)}) = $1::jsonb`, values: [JSON.stringify(value)] };
}
