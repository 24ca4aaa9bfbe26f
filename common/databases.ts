/**
 * Databases: each service keeps its tables in its own database (issue 20).
 *
 * A request names one with `database` (absent: {@link DEFAULT_DATABASE}). Past
 * the orchestrator a table is named by one string, its **qualified name**: the
 * bare table name in the default database (so entries, data and request
 * fingerprints written before databases existed are unchanged), and
 * `<database>.<table>` in any other. Neither a database nor a table name holds a
 * dot, so the split is unambiguous. Everything keyed by table (batching, apply
 * plans, snapshot keys, checksums) works on qualified names unchanged; only the
 * worker's worker/tables.ts turns one into a MongoDB database and collection.
 */
import { fail, shownValue } from './json-shape.js';

export const DEFAULT_DATABASE = 'default';

/**
 * A database name: lower case (MongoDB refuses two databases whose names differ
 * only in case), short enough that `<DBAAS_WORKER_DB_NAME>--<name>` fits
 * MongoDB's 63 bytes for the usual worker database names.
 */
export const DATABASE_NAME = /^[a-z][a-z0-9_]{0,29}$/;

/** A table name (without database). */
export const TABLE_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;

/** A qualified table name as it travels between processes. */
export const QUALIFIED_TABLE = /^(?:[a-z][a-z0-9_]{0,29}\.)?[A-Za-z][A-Za-z0-9_]{0,63}$/;

/** The one string a table of a database is named by past the orchestrator. */
export function qualifiedTable(database: string | undefined, table: string): string {
  return database === undefined || database === DEFAULT_DATABASE ? table : `${database}.${table}`;
}

/** A qualified table name's database and table. */
export function splitTable(qualified: string): { database: string; table: string } {
  const dot = qualified.indexOf('.');
  return dot < 0 ? { database: DEFAULT_DATABASE, table: qualified } : { database: qualified.slice(0, dot), table: qualified.slice(dot + 1) };
}

/** Checks a `database` field. @throws DbaasError DBAAS_REQ_BAD_DATABASE */
export function checkDatabase(value: unknown, name = 'database'): string {
  if (typeof value !== 'string' || !DATABASE_NAME.test(value)) {
    fail('DBAAS_REQ_BAD_DATABASE', name, `must match ${DATABASE_NAME.source} (got ${shownValue(value)})`);
  }
  return value;
}
