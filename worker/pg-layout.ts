/**
 * FerretDB 1.24's layout in PostgreSQL, for the paths that ask PostgreSQL
 * directly where the MongoDB wire would scan (`DBAAS_WORKER_PG_URL`):
 * pg-snapshot.ts, pg-unique-check.ts, {@link idsPresent} and {@link copyRows}. One schema per
 * MongoDB database (the worker's own database for `default`, `<mongoPrefix><name>`
 * for another: worker/tables.ts), `_ferretdb_database_metadata` mapping each
 * collection (`_jsonb->>'_id'`) to its table (`_jsonb->>'table'`), each document
 * one `_jsonb` value with a unique btree index on `(_jsonb -> '_id')`.
 */
import type pg from 'pg';
import { DEFAULT_DATABASE, splitTable } from '../common/databases.js';
import { mongoPrefix } from './tables.js';

/** A PostgreSQL identifier, quoted. */
export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** PostgreSQL's "no such schema" and "no such table": the database or its metadata does not exist yet. */
export const MISSING = new Set(['3F000', '42P01']);

/**
 * Where a table (its qualified name, common/databases.ts) lives: `"schema"."table"`,
 * or undefined when FerretDB has not created it. Any other error is thrown.
 */
export async function tableIn(client: pg.ClientBase | pg.Pool, dbName: string, qualified: string): Promise<string | undefined> {
  const { database, table } = splitTable(qualified);
  const schema = database === DEFAULT_DATABASE ? dbName : `${mongoPrefix(dbName)}${database}`;
  try {
    const meta = await client.query<{ tbl: string }>(
      `SELECT _jsonb->>'table' AS tbl FROM ${ident(schema)}._ferretdb_database_metadata WHERE _jsonb->'_id' = to_jsonb($1::text)`,
      [table],
    );
    const tbl = meta.rows[0]?.tbl;
    return tbl === undefined ? undefined : `${ident(schema)}.${ident(tbl)}`;
  } catch (err) {
    if (MISSING.has((err as { code?: string }).code ?? '')) return undefined;
    throw err;
  }
}

/**
 * Which of `ids` a table holds, in one query on FerretDB's `_id` btree index
 * (`= ANY`), where FerretDB would answer a `$in` by reading the whole table.
 */
export async function idsPresent(client: pg.ClientBase | pg.Pool, dbName: string, qualified: string, ids: readonly string[]): Promise<string[]> {
  const from = await tableIn(client, dbName, qualified);
  if (from === undefined) return [];
  const { where, param } = byIds(ids);
  const rows = await client.query<{ id: string }>(`SELECT _jsonb->>'_id' AS id FROM ${from} WHERE ${where}`, [param]);
  const found = new Set(rows.rows.map((r) => r.id));
  return ids.filter((id) => found.has(id));
}

/**
 * Writes documents as FerretDB stores them (`_jsonb` text, read from another
 * worker's FerretDB of the same version: pg-snapshot.ts) straight into a table
 * FerretDB created (`into`, from {@link tableIn} after Tables.ensureTable: its
 * metadata and indexes are FerretDB's own), in one statement, skipping `_id`s the
 * table holds already. PostgreSQL keeps every index, unique ones included: a key
 * held twice fails the whole statement. Returns the rows written.
 */
export async function copyRows(client: pg.ClientBase | pg.Pool, into: string, jsonbs: readonly string[]): Promise<number> {
  const res = await client.query(insertRowsSql(into, '$1'), [`[${jsonbs.join(',')}]`]);
  return res.rowCount ?? 0;
}

/**
 * An INSERT of the `_jsonb` values of a JSON array (the query parameter `param`) into
 * a FerretDB table, skipping `_id`s the table holds already (its unique `_id` index).
 */
export function insertRowsSql(into: string, param: string): string {
  return `INSERT INTO ${into} (_jsonb) SELECT e FROM jsonb_array_elements(${param}::jsonb) AS e ON CONFLICT ((_jsonb -> '_id')) DO NOTHING`;
}

/** The rows of these `_id`s, on FerretDB's `_id` btree index (`= ANY`): the WHERE clause, with its parameter. */
export function byIds(ids: readonly string[]): { where: string; param: string[] } {
  return { where: `(_jsonb -> '_id') = ANY($1::jsonb[])`, param: ids.map((id) => JSON.stringify(id)) };
}
