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

/** Whether PostgreSQL refused a statement because a schema or table is not there ({@link MISSING}). */
export function isMissing(err: unknown): boolean {
  return MISSING.has((err as { code?: string } | undefined)?.code ?? '');
}

/**
 * Where each table of one database lives, remembered (issue 17): on
 * FerretDB/PostgreSQL every write batch asked FerretDB's metadata table once for
 * the oplog, once for the ledger and once per replaced table, and every read once
 * more. FerretDB names a table when it creates it and keeps that name until the
 * table is dropped; a worker is the only writer of its database, so a remembered
 * name goes stale only when the worker drops tables, and whoever drops calls
 * {@link forget} once the drop is done. A lookup that overlapped a forget is not
 * remembered (the generation), so a name read before a drop never outlives it. A
 * table that is not there is not remembered (FerretDB creates it at its first
 * insert). Tables dropped behind the worker's back (by hand) are caught by
 * {@link withTables}: PostgreSQL refuses the statement, everything is forgotten and
 * the statement runs once more.
 */
export class TableLocations {
  private readonly known = new Map<string, string>();
  private generation = 0;

  async of(client: pg.ClientBase | pg.Pool, dbName: string, qualified: string): Promise<string | undefined> {
    const key = `${dbName}\u0000${qualified}`;
    const known = this.known.get(key);
    if (known !== undefined) return known;
    const generation = this.generation;
    const found = await lookUp(client, dbName, qualified);
    if (found !== undefined && generation === this.generation) this.known.set(key, found);
    return found;
  }

  /** After tables were dropped: every name is looked up again. */
  forget(): void {
    this.generation += 1;
    this.known.clear();
  }
}

/** The pools whose table locations are remembered ({@link rememberTables}); a pool is one PostgreSQL database. */
const remembered = new WeakMap<object, TableLocations>();

/**
 * From now on {@link tableIn} on this pool answers from memory what it has found
 * once. The caller must {@link TableLocations.forget} after every drop of a table.
 */
export function rememberTables(pool: pg.Pool): TableLocations {
  let locations = remembered.get(pool);
  if (locations === undefined) {
    locations = new TableLocations();
    remembered.set(pool, locations);
  }
  return locations;
}

/**
 * Runs `statement`, which finds its tables with {@link tableIn}; when PostgreSQL
 * says a table is not there, a remembered location was stale: everything this pool
 * remembers is forgotten and `statement` runs once more (a statement refused so
 * changed nothing).
 */
export async function withTables<T>(client: pg.ClientBase | pg.Pool, statement: () => Promise<T>): Promise<T> {
  try {
    return await statement();
  } catch (err) {
    const locations = remembered.get(client);
    if (locations === undefined || !isMissing(err)) throw err;
    locations.forget();
    return statement();
  }
}

/**
 * Where a table (its qualified name, common/databases.ts) lives: `"schema"."table"`,
 * or undefined when FerretDB has not created it (from memory on a pool that
 * {@link rememberTables}). Any other error is thrown.
 */
export function tableIn(client: pg.ClientBase | pg.Pool, dbName: string, qualified: string): Promise<string | undefined> {
  const locations = remembered.get(client);
  return locations === undefined ? lookUp(client, dbName, qualified) : locations.of(client, dbName, qualified);
}

/** The PostgreSQL schema of a table's database (its qualified name): FerretDB keeps one schema per MongoDB database. */
export function schemaOf(dbName: string, qualified: string): string {
  const { database } = splitTable(qualified);
  return database === DEFAULT_DATABASE ? dbName : `${mongoPrefix(dbName)}${database}`;
}

/** {@link tableIn}, asked of FerretDB's metadata table. */
async function lookUp(client: pg.ClientBase | pg.Pool, dbName: string, qualified: string): Promise<string | undefined> {
  const { table } = splitTable(qualified);
  const schema = schemaOf(dbName, qualified);
  try {
    const meta = await client.query<{ tbl: string }>(
      `SELECT _jsonb->>'table' AS tbl FROM ${ident(schema)}._ferretdb_database_metadata WHERE _jsonb->'_id' = to_jsonb($1::text)`,
      [table],
    );
    const tbl = meta.rows[0]?.tbl;
    return tbl === undefined ? undefined : `${ident(schema)}.${ident(tbl)}`;
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

/**
 * Which of `ids` a table holds, in one query on FerretDB's `_id` btree index
 * (`= ANY`), where FerretDB would answer a `$in` by reading the whole table.
 */
export async function idsPresent(client: pg.ClientBase | pg.Pool, dbName: string, qualified: string, ids: readonly string[]): Promise<string[]> {
  const { where, param } = byIds(ids);
  const rows = await withTables(client, async () => {
    const from = await tableIn(client, dbName, qualified);
    return from === undefined ? [] : (await client.query<{ id: string }>(`SELECT _jsonb->>'_id' AS id FROM ${from} WHERE ${where}`, [param])).rows;
  });
  const found = new Set(rows.map((r) => r.id));
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
 * a FerretDB table, skipping `_id`s the table holds already (its unique `_id` index);
 * with `skipTaken` false a taken `_id` fails the statement instead (23505).
 */
export function insertRowsSql(into: string, param: string, skipTaken = true): string {
  const insert = `INSERT INTO ${into} (_jsonb) SELECT e FROM jsonb_array_elements(${param}::jsonb) AS e`;
  return skipTaken ? `${insert} ON CONFLICT ((_jsonb -> '_id')) DO NOTHING` : insert;
}

/** The rows of these `_id`s, on FerretDB's `_id` btree index (`= ANY`): the WHERE clause, with its parameter. */
export function byIds(ids: readonly string[]): { where: string; param: string[] } {
  return { where: `(_jsonb -> '_id') = ANY($1::jsonb[])`, param: ids.map((id) => JSON.stringify(id)) };
}
