/**
 * A batch's documents read and replaced in one PostgreSQL statement each, below
 * FerretDB (`DBAAS_WORKER_PG_URL`; issue 17: updates). Through FerretDB every
 * lookup and every replace is a round trip and a transaction of its own, and
 * their cost per document (FerretDB's and PostgreSQL's CPU, one commit each)
 * is what held updates at 0.05-0.21x the driver path; here a batch of 64 updates
 * is one indexed read and one UPDATE on each replica.
 *
 * FerretDB 1.24's layout (pg-layout.ts): one row per document, its `_jsonb` the
 * document's JSON plus a `$s` schema (each field's type, the fields' order in
 * `$k`, nested objects and arrays with their own), read by pg-snapshot.ts
 * {@link documentFromJsonb}; {@link jsonbFromDocument} writes the same form.
 * Numbers are typed as the MongoDB driver sends them (an integer in int32 range
 * is `int`, any other number `double`), so a document written here reads back
 * through FerretDB exactly as one written through it (pg-docs.test.ts compares
 * the rows). A document holding anything else than JSON values is not written
 * here (undefined): the caller writes it through FerretDB.
 */
import type pg from 'pg';
import { documentFromJsonb } from './pg-snapshot.js';
import { byIds, insertRowsSql, tableIn, withTables } from './pg-layout.js';

interface Typed {
  value: unknown;
  type: Readonly<Record<string, unknown>>;
}

const INT32_MIN = -2_147_483_648;
const INT32_MAX = 2_147_483_647;

// A scalar's type, one object per type shared by every value: a document of 10,000-element arrays has
// hundreds of thousands of scalars, and an object each made the master's young generation fill and
// its collector run for most of such a write's time (the rows are only serialised, never changed).
const SCALAR_TYPES = {
  null: Object.freeze({ t: 'null' }),
  string: Object.freeze({ t: 'string' }),
  bool: Object.freeze({ t: 'bool' }),
  int: Object.freeze({ t: 'int' }),
  double: Object.freeze({ t: 'double' }),
} as const;

function typed(value: unknown): Typed | undefined {
  if (value === null) return { value, type: SCALAR_TYPES.null };
  switch (typeof value) {
    case 'string':
      return { value, type: SCALAR_TYPES.string };
    case 'boolean':
      return { value, type: SCALAR_TYPES.bool };
    case 'number': {
      const type = Number.isFinite(value) ? numberType(value) : undefined;
      return type && { value, type };
    }
    case 'object': {
      if (Array.isArray(value)) return typedArray(value);
      if (Object.getPrototypeOf(value) !== Object.prototype) return undefined;
      const obj = typedObject(value as Record<string, unknown>, false);
      return obj && { value: obj.value, type: { t: 'object', $s: obj.schema } };
    }
    default:
      return undefined;
  }
}

/** A finite number's type as the MongoDB driver sends it; undefined for -0 (JSON cannot carry it). */
function numberType(value: number): Readonly<Record<string, unknown>> | undefined {
  if (Object.is(value, -0)) return undefined;
  return Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX ? SCALAR_TYPES.int : SCALAR_TYPES.double;
}

/** An array's values and element types, scalars without a {@link Typed} wrapper each. */
function typedArray(array: readonly unknown[]): Typed | undefined {
  const values: unknown[] = new Array<unknown>(array.length);
  const types: unknown[] = new Array<unknown>(array.length);
  for (let i = 0; i < array.length; i++) {
    const v = array[i];
    let type: Readonly<Record<string, unknown>> | undefined;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return undefined;
      type = numberType(v);
    } else if (typeof v === 'string') type = SCALAR_TYPES.string;
    if (type !== undefined) {
      values[i] = v;
      types[i] = type;
      continue;
    }
    const t = typed(v);
    if (t === undefined) return undefined;
    values[i] = t.value;
    types[i] = t.type;
  }
  return { value: values, type: { t: 'array', i: types } };
}

function typedObject(doc: Record<string, unknown>, top: boolean): { value: Record<string, unknown>; schema: Record<string, unknown> } | undefined {
  // The `_id` first, as FerretDB (and MongoDB) store a document.
  const keys = top && '_id' in doc ? ['_id', ...Object.keys(doc).filter((k) => k !== '_id')] : Object.keys(doc);
  const value: Record<string, unknown> = {};
  const p: Record<string, unknown> = {};
  for (const k of keys) {
    // What FerretDB refuses in a key (a `.`, a leading `$`) it must refuse here too: through it the write is refused (void-batch.ts).
    if (k.startsWith('$') || k === '' || k.includes('.')) return undefined;
    const v = doc[k];
    if (v === undefined) return undefined;
    const t = typed(v);
    if (t === undefined) return undefined;
    value[k] = t.value;
    p[k] = t.type;
  }
  return { value, schema: keys.length > 0 ? { p, $k: keys } : {} };
}

/** A document as FerretDB 1.24 stores it in PostgreSQL (`_jsonb`), or undefined when it holds a value JSON cannot carry. */
export function jsonbFromDocument(doc: Record<string, unknown>): Record<string, unknown> | undefined {
  const obj = typedObject(doc, true);
  return obj && { $s: obj.schema, ...obj.value };
}

/** The documents with these ids that a table holds, by id, in one query on FerretDB's `_id` index. */
export async function docsByIds(client: pg.Pool | pg.ClientBase, dbName: string, qualified: string, ids: readonly string[]): Promise<Map<string, Record<string, unknown> & { _id: string }>> {
  const found = new Map<string, Record<string, unknown> & { _id: string }>();
  const { where, param } = byIds(ids);
  const rows = await withTables(client, async () => {
    const from = await tableIn(client, dbName, qualified);
    return from === undefined ? [] : (await client.query<{ j: Record<string, unknown> }>(`SELECT _jsonb AS j FROM ${from} WHERE ${where}`, [param])).rows;
  });
  for (const r of rows) {
    const doc = documentFromJsonb(r.j);
    found.set(doc._id, doc);
  }
  return found;
}

/**
 * Replaces the documents a table holds with these post-images, in one UPDATE on
 * FerretDB's `_id` index (atomic: a unique index violation changes nothing and
 * throws). Returns the documents it did not write: those not in the table, and
 * those {@link jsonbFromDocument} cannot carry; undefined when the table does
 * not exist in PostgreSQL.
 */
export async function replaceDocs(
  client: pg.Pool | pg.ClientBase,
  dbName: string,
  qualified: string,
  docs: ReadonlyArray<Record<string, unknown> & { _id: string }>,
): Promise<Array<Record<string, unknown> & { _id: string }> | undefined> {
  const { ids, rows: bodies, left } = replacements(docs);
  const rows = await withTables(client, async () => {
    const from = await tableIn(client, dbName, qualified);
    if (from === undefined) return undefined;
    if (ids.length === 0) return [];
    return (await client.query<{ id: string }>(`${replaceSql(from, '$1', '$2')} RETURNING t._jsonb ->> '_id' AS id`, [ids, bodies])).rows;
  });
  if (rows === undefined) return undefined;
  const written = new Set(rows.map((r) => r.id));
  for (const doc of docs) if (!written.has(doc._id) && !left.includes(doc)) left.push(doc);
  return left;
}

/**
 * Documents as replaceDocs writes them: their `_id`s, their rows as one JSON array text, and those
 * JSON cannot carry (`left`). The rows go as one text, not a text[]: node-postgres escapes every `"`
 * of an array element, and a document of 10,000-element arrays is a 7 MB row of some 2 million
 * quotes (each element's `{"t":"int"}`), which held the master's event loop for a second or more.
 */
function replacements(docs: ReadonlyArray<Record<string, unknown> & { _id: string }>): { ids: string[]; rows: string; left: Array<Record<string, unknown> & { _id: string }> } {
  const left: Array<Record<string, unknown> & { _id: string }> = [];
  const ids: string[] = [];
  const bodies: string[] = [];
  for (const doc of docs) {
    const jsonb = jsonbFromDocument(doc);
    if (jsonb === undefined) left.push(doc);
    else {
      ids.push(JSON.stringify(doc._id));
      bodies.push(JSON.stringify(jsonb));
    }
  }
  return { ids, rows: `[${bodies.join(',')}]`, left };
}

/** An UPDATE of a FerretDB table's rows by `_id` (FerretDB's btree), from a jsonb[] of ids and a JSON array of rows, paired in order. */
function replaceSql(from: string, ids: string, rows: string): string {
  const pairs = `SELECT i.id, r.doc FROM unnest(${ids}::jsonb[]) WITH ORDINALITY AS i(id, n) JOIN jsonb_array_elements(${rows}::jsonb) WITH ORDINALITY AS r(doc, n) USING (n)`;
  return `UPDATE ${from} AS t SET _jsonb = v.doc FROM (${pairs}) AS v WHERE (t._jsonb -> '_id') = v.id`;
}

/**
 * Deletes documents by `_id` in one statement on FerretDB's `_id` btree (a wide delete through
 * FerretDB is one round trip and one transaction per document: 20,000 took 37 s under load).
 * False, having deleted nothing, when the table does not exist in PostgreSQL.
 */
export async function deleteDocs(client: pg.Pool | pg.ClientBase, dbName: string, qualified: string, ids: readonly string[]): Promise<boolean> {
  return withTables(client, async () => {
    const from = await tableIn(client, dbName, qualified);
    if (from === undefined) return false;
    await client.query(`DELETE FROM ${from} AS t WHERE (t._jsonb -> '_id') = ANY($1::jsonb[])`, [ids.map((id) => JSON.stringify(id))]);
    return true;
  });
}

/** The number of documents in a table (0 when FerretDB has not created it): PostgreSQL counts its rows. */
export async function countDocs(client: pg.Pool | pg.ClientBase, dbName: string, qualified: string): Promise<number> {
  return withTables(client, async () => {
    const from = await tableIn(client, dbName, qualified);
    if (from === undefined) return 0;
    const rows = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${from}`);
    return Number(rows.rows[0]?.n ?? 0);
  });
}

/**
 * Inserts documents into several tables in one statement (a write batch's oplog
 * entries and ledger records: one commit for both, where FerretDB took two inserts
 * one after the other), skipping `_id`s a table holds already (pg-layout.ts
 * insertRowsSql, as copyRows). False, having written nothing, when a table does not exist yet or
 * a document holds a value JSON cannot carry: the caller writes through FerretDB.
 */
export async function insertDocsTogether(pool: pg.Pool, dbName: string, sets: ReadonlyArray<{ table: string; docs: ReadonlyArray<Record<string, unknown>> }>): Promise<boolean> {
  return insertAndReplace(pool, dbName, sets, []);
}

/** A table's documents, for {@link insertAndReplace}. */
type DocSet<D> = ReadonlyArray<{ table: string; docs: ReadonlyArray<D> }>;

/** PostgreSQL's error for a division by zero: how {@link insertAndReplace} fails its own statement. */
const DIVISION_BY_ZERO = '22012';

/**
 * insertDocsTogether's inserts, replaceDocs' replaces and new documents (`fresh`)
 * in one statement: one commit where they took two or three (issue 17: a write
 * batch of updates stores its oplog entries and ledger records and replaces its
 * documents at once; a batch of inserts stores them and inserts its documents).
 * All or nothing: false, having written nothing, when a table does not exist, a
 * document holds a value JSON cannot carry, or a document to replace is not there
 * (the statement then fails on purpose: the count of replaced rows divides).
 * PostgreSQL's own refusals (a unique key held twice, 23505, a new document's `_id`
 * among them: `fresh` skips nothing) are thrown; nothing was written then either.
 */
export async function insertAndReplace(
  pool: pg.Pool,
  dbName: string,
  inserts: DocSet<Record<string, unknown>>,
  replaces: DocSet<Record<string, unknown> & { _id: string }>,
  fresh: DocSet<Record<string, unknown>> = [],
): Promise<boolean> {
  const params: Array<string | string[]> = [];
  const rowsOf = (set: DocSet<Record<string, unknown>>[number]): string | undefined => {
    const rows: string[] = [];
    for (const doc of set.docs) {
      const jsonb = jsonbFromDocument(doc);
      if (jsonb === undefined) return undefined;
      rows.push(JSON.stringify(jsonb));
    }
    return `[${rows.join(',')}]`;
  };
  for (const set of [...inserts, ...fresh]) {
    const rows = rowsOf(set);
    if (rows === undefined) return false;
    params.push(rows);
  }
  for (const set of replaces) {
    const { ids, rows, left } = replacements(set.docs);
    if (left.length > 0) return false;
    params.push(ids, rows);
  }
  return withTables(pool, async () => {
    const into = await Promise.all(inserts.map((set) => tableIn(pool, dbName, set.table)));
    const news = await Promise.all(fresh.map((set) => tableIn(pool, dbName, set.table)));
    const from = await Promise.all(replaces.map((set) => tableIn(pool, dbName, set.table)));
    if ([...into, ...news, ...from].some((t) => t === undefined)) return false;
    const first = into.length + news.length;
    // One statement (data-modifying CTEs): all of it is written, or none.
    const ctes = [
      ...into.map((t, i) => `w${i} AS (${insertRowsSql(t as string, `$${i + 1}`)} RETURNING 1)`),
      ...news.map((t, i) => `n${i} AS (${insertRowsSql(t as string, `$${into.length + i + 1}`, false)} RETURNING 1)`),
      ...from.map((t, i) => `u${i} AS (${replaceSql(t as string, `$${first + 2 * i + 1}`, `$${first + 2 * i + 2}`)} RETURNING 1)`),
    ];
    // Every document to replace must be there, else the whole statement fails (nothing written).
    const whole = replaces.map((set, i) => `(SELECT count(*) FROM u${i}) = ${set.docs.length}`);
    try {
      await pool.query(`WITH ${ctes.join(', ')} SELECT 1 / (CASE WHEN ${['true', ...whole].join(' AND ')} THEN 1 ELSE 0 END) AS whole`, params);
    } catch (err) {
      if ((err as { code?: string }).code === DIVISION_BY_ZERO) return false;
      throw err;
    }
    return true;
  });
}
