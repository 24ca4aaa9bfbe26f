/**
 * The fast snapshot path on FerretDB/PostgreSQL (`DBAAS_WORKER_PG_URL`): the
 * master opens one REPEATABLE READ transaction on its own PostgreSQL database
 * between two write batches, so the transaction sees exactly the data at the
 * master's seq then (FerretDB has committed every write of the batches before;
 * the first statement fixes the snapshot). That is the whole pause of the write
 * path. The pages are then read from that transaction while writes go on, with
 * keyset pagination on the `_id` btree index FerretDB creates on every table
 * (`((_jsonb -> '_id'))`; EXPLAIN: Index Scan, docs/DECISIONS.md). How a slave
 * applies pages read at a seq it has long passed: snapshot.ts ("stream").
 *
 * FerretDB 1.24's PostgreSQL layout, read here: one schema per MongoDB database,
 * its `_ferretdb_database_metadata` table mapping each collection
 * (`_jsonb->>'_id'`) to its table (`_jsonb->>'table'`); each document one
 * `_jsonb` value, the document's JSON plus a `$s` schema giving each field's
 * type and the fields' order (`$k`), nested objects and arrays with their own.
 * A document holding a type JSON cannot carry (none comes through the dbaas API)
 * is refused ({@link UnsupportedDocument}); the master then copies through the
 * MongoDB wire instead.
 */
import pg from 'pg';
import { qualifiedTable } from '../common/databases.js';
import { INTERNAL_PREFIX, mongoPrefix } from './tables.js';
import { ident } from './pg-layout.js';

/** A FerretDB type schema: an object's fields and their order, an array's items, a scalar's type. */
interface TypeSchema {
  t?: string;
  $s?: ObjectSchema;
  i?: TypeSchema[];
}
interface ObjectSchema {
  p?: Record<string, TypeSchema>;
  $k?: string[];
}

/** JSON scalars as FerretDB types them; anything else is not carried. */
const JSON_SCALARS = new Set(['string', 'bool', 'null', 'int', 'long', 'double']);

export class UnsupportedDocument extends Error {}

function fromFerret(value: unknown, type: TypeSchema | undefined): unknown {
  const t = type?.t;
  if (t === 'object') return objectFromFerret(value as Record<string, unknown>, type?.$s);
  if (t === 'array') {
    if (!Array.isArray(value)) throw new UnsupportedDocument('an array typed value is not an array');
    return value.map((v, i) => fromFerret(v, type?.i?.[i]));
  }
  if (t === undefined || !JSON_SCALARS.has(t)) throw new UnsupportedDocument(`a value of type ${t ?? 'unknown'} is not JSON`);
  if ((t === 'double' || t === 'int' || t === 'long') && typeof value !== 'number') throw new UnsupportedDocument(`a ${t} that is not a finite number`);
  // The driver gives a long beyond 2^53 as a Long, not a number (and JSON has already rounded it here).
  if (t === 'long' && !Number.isSafeInteger(value)) throw new UnsupportedDocument('a long beyond 2^53');
  return value;
}

function objectFromFerret(value: Record<string, unknown>, schema: ObjectSchema | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of schema?.$k ?? []) {
    // Assigned, `__proto__` would set the object's prototype instead of a field (dbaas refuses the key in documents).
    if (k === '__proto__') throw new UnsupportedDocument('a field named __proto__');
    out[k] = fromFerret(value[k], schema?.p?.[k]);
  }
  return out;
}

/** A document as FerretDB stores it (`_jsonb`) → its fields as the MongoDB wire would give them, in order, whatever its `_id`. */
export function fieldsFromJsonb(jsonb: Record<string, unknown>): Record<string, unknown> {
  return objectFromFerret(jsonb, jsonb.$s as ObjectSchema | undefined);
}

/** A document as FerretDB stores it (`_jsonb`) → the document the MongoDB wire would give, fields in order. */
export function documentFromJsonb(jsonb: Record<string, unknown>): Record<string, unknown> & { _id: string } {
  const doc = fieldsFromJsonb(jsonb);
  if (typeof doc._id !== 'string') throw new UnsupportedDocument('a document whose _id is not a string');
  return doc as Record<string, unknown> & { _id: string };
}

/** Where a user table lives in PostgreSQL. */
interface PgTable {
  /** The qualified table name (common/databases.ts): bare in the worker's own database, `<database>.<table>` in another. */
  name: string;
  schema: string;
  table: string;
}

/**
 * Which database a PostgreSQL schema (FerretDB names a schema after its MongoDB
 * database) holds: '' for the worker's own (`DBAAS_WORKER_DB_NAME`, the `default`
 * database), the name for `<mongoPrefix>--<database>` (worker/tables.ts), else none.
 */
function databaseOf(schema: string, dbName: string): string | undefined {
  if (schema === dbName) return '';
  const prefix = mongoPrefix(dbName);
  return schema.startsWith(prefix) ? schema.slice(prefix.length) : undefined;
}

export type StreamDocs = Array<{ table: string; doc: Record<string, unknown> & { _id: string } }>;

/** Documents as FerretDB stores them: `_jsonb` text, with the `_id` (SnapshotPage.rows). */
export type StreamRows = Array<{ table: string; id: string; jsonb: string }>;

/** Rows → the documents the MongoDB wire would give (for a slave that writes through FerretDB). */
export function docsOfRows(rows: StreamRows): StreamDocs {
  return rows.map((r) => ({ table: r.table, doc: documentFromJsonb(JSON.parse(r.jsonb) as Record<string, unknown>) }));
}

/** One consistent read of a worker's user tables, from {@link begin} to {@link close}. */
export class PgSnapshot {
  private constructor(
    private readonly client: pg.Client,
    readonly tables: readonly PgTable[],
  ) {}

  /**
   * A connection for {@link begin}, made before the master's serial stage reaches the request:
   * the writes then wait only for the transaction's start, not for PostgreSQL to start a backend
   * (issue 16: a new slave's snapshot round trip through a busy master).
   */
  static async connect(url: string): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: url, application_name: 'dbaas-snapshot' });
    // A connection lost while it waits must not end the worker: begin's first query fails instead.
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    return client;
  }

  /**
   * Opens the transaction on `client` (from {@link connect}; ended here if this fails) and fixes
   * its snapshot (its first statement reads the table list). Call it where the data is exactly at
   * the seq the copy is taken at.
   */
  static async begin(client: pg.Client, dbName: string): Promise<PgSnapshot> {
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const schemas = await client.query<{ nspname: string }>(
        `SELECT n.nspname FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = '_ferretdb_database_metadata' AND c.relkind = 'r'`,
      );
      const tables: PgTable[] = [];
      for (const { nspname } of schemas.rows) {
        const database = databaseOf(nspname, dbName);
        if (database === undefined) continue;
        const meta = await client.query<{ coll: string; tbl: string }>(
          `SELECT _jsonb->>'_id' AS coll, _jsonb->>'table' AS tbl FROM ${ident(nspname)}._ferretdb_database_metadata`,
        );
        for (const { coll, tbl } of meta.rows) {
          if (coll.startsWith(INTERNAL_PREFIX) || coll.startsWith('system.')) continue;
          tables.push({ name: qualifiedTable(database === '' ? undefined : database, coll), schema: nspname, table: tbl });
        }
      }
      tables.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      return new PgSnapshot(client, tables);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
  }

  /**
   * The rows of every user table, in parts of at most `limit` documents (about
   * `maxBytes` of JSON), each part read by `_id` after the previous one's last
   * (keyset, on FerretDB's `_id` index).
   */
  async *parts(limit: number, maxBytes: number): AsyncGenerator<StreamRows> {
    let part: StreamRows = [];
    let bytes = 0;
    for (const t of this.tables) {
      const from = `${ident(t.schema)}.${ident(t.table)}`;
      let after: string | undefined;
      for (;;) {
        const want = limit - part.length;
        const res =
          after === undefined
            ? await this.client.query<{ j: string; k: string }>(`SELECT _jsonb::text AS j, (_jsonb->'_id')::text AS k FROM ${from} ORDER BY _jsonb->'_id' LIMIT $1`, [want])
            : await this.client.query<{ j: string; k: string }>(
                `SELECT _jsonb::text AS j, (_jsonb->'_id')::text AS k FROM ${from} WHERE _jsonb->'_id' > $1::jsonb ORDER BY _jsonb->'_id' LIMIT $2`,
                [after, want],
              );
        for (const row of res.rows) {
          const id: unknown = JSON.parse(row.k);
          if (typeof id !== 'string') throw new UnsupportedDocument('a document whose _id is not a string');
          part.push({ table: t.name, id, jsonb: row.j });
          bytes += row.j.length;
          after = row.k;
          if (part.length >= limit || bytes >= maxBytes) {
            yield part;
            part = [];
            bytes = 0;
          }
        }
        if (res.rows.length < want) break;
      }
    }
    if (part.length > 0) yield part;
  }

  private closed: Promise<void> | undefined;

  /** Ends the transaction and the connection (idempotent); a read in progress fails. */
  close(): Promise<void> {
    this.closed ??= this.client.end().catch(() => undefined);
    return this.closed;
  }
}
