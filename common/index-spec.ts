/**
 * Secondary indexes (issue 17): what an index spec may be, and what a unique
 * index compares.
 *
 * Keys are field paths in order, each 1 or -1. A unique index's fields must be
 * top-level (no dot) and hold a string, a number, a boolean or null in every
 * document: then "two documents share the key" means the same thing on every
 * storage a worker may use (MongoDB indexes each array element and compares
 * embedded documents key order first; PostgreSQL's jsonb does neither), and the
 * master's check (worker/unique-keys.ts) decides it alone. A missing field
 * counts as null, as in MongoDB: one document may lack it.
 */
import { bsonSize } from './bson-size.js';
import type { Doc, IndexSpec } from './commands.js';
import { canonicalJson, defaultIndexName } from './commands.js';
import { splitFieldPath } from './field-path.js';
import { DbaasError } from './errors.js';
import { describeType, fail, isPlainObject, shownValue } from './json-shape.js';

/** Most fields in one index (MongoDB allows 32; FerretDB and the GIN twins need few). */
export const MAX_INDEX_KEYS = 8;
/** Most secondary indexes per table (each costs every write on every replica). */
export const MAX_INDEXES_PER_TABLE = 16;
/**
 * The most one index entry may hold: its values as a BSON array (MongoDB's "index key too large" bound, 1,024 bytes,
 * before 4.2). PostgreSQL refuses a btree row over 2,704 bytes; FerretDB's jsonb takes at most about twice this BSON
 * for the values JSON has (arrays of doubles are the worst: 23 bytes for BSON's 11), so every index we create fits,
 * eight keys compound or unique (docs/DECISIONS.md).
 */
export const MAX_INDEX_KEY_BYTES = 1024;
/** An index name: what MongoDB's default names are made of, bounded. */
export const INDEX_NAME = /^[A-Za-z0-9_.-]{1,100}$/;
/** The primary index, which every table has and no one may create or drop. */
export const ID_INDEX_NAME = '_id_';

/**
 * `keys` as a body gives it: one field path (ascending), or an object of field
 * paths to 1 or -1 in order. `where` names the field in error messages.
 * @throws DbaasError DBAAS_REQ_INVALID, DBAAS_REQ_LIMIT_EXCEEDED
 */
export function parseIndexKeys(value: unknown, where = 'keys'): IndexSpec['keys'] {
  let keys: IndexSpec['keys'];
  if (typeof value === 'string') keys = [[value, 1]];
  else if (isPlainObject(value)) {
    keys = Object.keys(value).map((path): [string, 1 | -1] => {
      const dir = value[path];
      if (dir !== 1 && dir !== -1) fail('DBAAS_REQ_INVALID', `${where}.${path}`, 'must be 1 (ascending) or -1 (descending)');
      return [path, dir];
    });
  } else fail('DBAAS_REQ_INVALID', where, `must be a field name or an object of field paths to 1 or -1, got ${describeType(value)}`);
  if (keys.length === 0) fail('DBAAS_REQ_INVALID', where, 'must name at least one field');
  if (keys.length > MAX_INDEX_KEYS) fail('DBAAS_REQ_LIMIT_EXCEEDED', where, `more than ${MAX_INDEX_KEYS} fields`);
  const seen = new Set<string>();
  for (const [path] of keys) {
    splitFieldPath(path, `${where}.${path}`, 'DBAAS_REQ_INVALID');
    if (seen.has(path)) fail('DBAAS_REQ_INVALID', `${where}.${path}`, 'appears twice');
    seen.add(path);
  }
  if (keys.length === 1 && keys[0]?.[0] === '_id') fail('DBAAS_REQ_INVALID', where, '_id is always indexed, and unique');
  return keys;
}

/**
 * An index spec from its parts (HTTP body or wire), with the default name when
 * none is given.
 * @throws DbaasError DBAAS_REQ_INVALID, DBAAS_REQ_LIMIT_EXCEEDED
 */
export function indexSpec(keysValue: unknown, unique: unknown, name: unknown, where = ''): IndexSpec {
  const keys = parseIndexKeys(keysValue, `${where}keys`);
  if (unique !== undefined && typeof unique !== 'boolean') fail('DBAAS_REQ_INVALID', `${where}unique`, `must be true or false, got ${describeType(unique)}`);
  if (unique === true) {
    for (const [path] of keys) if (path.includes('.')) fail('DBAAS_REQ_INVALID', `${where}keys.${path}`, 'a unique index takes top-level fields only');
  }
  const indexName = name === undefined ? defaultIndexName(keys) : checkIndexName(name, `${where}name`);
  if (!INDEX_NAME.test(indexName)) fail('DBAAS_REQ_INVALID', `${where}name`, `the default name ${JSON.stringify(indexName.slice(0, 120))} does not match ${INDEX_NAME.source}; give a name`);
  return { name: indexName, keys, unique: unique === true };
}

/** @throws DbaasError DBAAS_REQ_INVALID */
export function checkIndexName(value: unknown, where = 'name'): string {
  if (typeof value !== 'string' || !INDEX_NAME.test(value)) fail('DBAAS_REQ_INVALID', where, `must match ${INDEX_NAME.source} (got ${shownValue(value)})`);
  if (value === ID_INDEX_NAME) fail('DBAAS_REQ_INVALID', where, `${ID_INDEX_NAME} is the _id index, which every table keeps`);
  return value;
}

/** Whether a value on the wire is an index spec (a poison check: the master made it). */
export function isIndexSpec(value: unknown): value is IndexSpec {
  if (!isPlainObject(value) || !Array.isArray(value.keys)) return false;
  try {
    const keys = Object.fromEntries((value.keys as unknown[]).map((k) => (Array.isArray(k) && k.length === 2 ? [String(k[0]), k[1]] : ['', 0])));
    const spec = indexSpec(keys, value.unique, value.name);
    return spec.keys.length === value.keys.length;
  } catch {
    return false;
  }
}

/** Whether two specs define the same index (name, keys in order, uniqueness). */
export function sameIndex(a: IndexSpec, b: IndexSpec): boolean {
  return a.name === b.name && a.unique === b.unique && canonicalJson(a.keys) === canonicalJson(b.keys);
}

/** A value a unique index may hold. */
function isScalar(v: unknown): boolean {
  return v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
}

/**
 * A document's key under a unique index, as one string (missing fields count as
 * null); two documents conflict when their keys are equal.
 * @throws DbaasError DBAAS_DOC_INVALID when a field holds an array or an object
 */
export function uniqueKeyOf(index: IndexSpec, doc: Doc, table: string): string {
  const values = index.keys.map(([path]) => {
    const v = Object.hasOwn(doc, path) ? doc[path] : null;
    if (!isScalar(v)) {
      fail('DBAAS_DOC_INVALID', `${table}.${path}`, `holds ${describeType(v)}, but the unique index ${index.name} takes only strings, numbers, booleans or null; nothing was changed`);
    }
    return v;
  });
  return JSON.stringify(values);
}

/** The filter that finds the documents holding a key (null also finds documents that lack the field). */
export function uniqueKeyFilter(index: IndexSpec, key: string): Doc {
  const values = JSON.parse(key) as unknown[];
  const filter: Doc = {};
  index.keys.forEach(([path], i) => {
    filter[path] = values[i] ?? null;
  });
  return filter;
}

/** The value at a field path (dots walk into objects), as a path index reads it; undefined when absent. */
function valueAtPath(doc: Doc, path: string): unknown {
  let value: unknown = doc;
  for (const part of path.split('.')) {
    if (!isPlainObject(value) || !Object.hasOwn(value, part)) return undefined;
    value = value[part];
  }
  return value;
}

/** BSON bytes of a document's entry in an index: its values in key order as an array (a missing one as null). */
export function indexKeyBytes(index: IndexSpec, doc: Doc): number {
  return bsonSize(index.keys.map(([path]) => valueAtPath(doc, path) ?? null));
}

/**
 * Refuses a document whose entry in one of `indexes` would pass {@link MAX_INDEX_KEY_BYTES}: before the write takes a
 * seq, instead of the database refusing its index row after (a 422 and a void entry on PostgreSQL).
 * @throws DbaasError DBAAS_INDEX_KEY_TOO_LARGE
 */
export function checkIndexKeys(indexes: readonly IndexSpec[], doc: Doc, table: string, outcome = 'nothing was changed'): void {
  for (const index of indexes) {
    const bytes = indexKeyBytes(index, doc);
    if (bytes > MAX_INDEX_KEY_BYTES) {
      const fields = index.keys.map(([path]) => path).join(', ');
      throw new DbaasError(
        'DBAAS_INDEX_KEY_TOO_LARGE',
        `${table}: the document with _id ${shownValue(doc['_id'])} would hold ${bytes} bytes in index ${index.name} (${fields}), over the ${MAX_INDEX_KEY_BYTES} one index entry may hold; ${outcome}`,
      );
    }
  }
}
