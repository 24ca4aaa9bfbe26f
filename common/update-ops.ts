/**
 * Pure application of validated updates to documents, with MongoDB semantics.
 *
 * The master computes post-images itself (replication ships resulting state,
 * not operations), so these functions decide what an update means.
 *
 * Array elements are addressed by canonical numeric segments (`tags.0`, not
 * `tags.00`), as in MongoDB: `$set` replaces the element, pads with `null` when
 * the index is past the end, and creates intermediate objects below it;
 * `$unset` of an element sets it to `null` rather than shifting the array.
 * A non-numeric segment on an array is a `DBAAS_WRITE_TYPE_CONFLICT`. On a
 * missing field a numeric segment is an ordinary key (`{tags: {"0": …}}`).
 *
 * Differences from MongoDB, on purpose: `$pull` removes elements deep-equal to
 * the value (or to one of `$in`), it does not treat an object as a query; and
 * equality of objects ignores key order everywhere.
 */
import type { Doc, Filter, UpdateSpec } from './commands.js';
import { checkId } from './document-validation.js';
import { pathsOverlap } from './field-path.js';
import { describeType, fail, getOwn, isPlainObject, putOwn, type JsonObject } from './json-shape.js';
import { MAX_ARRAY_LENGTH, MAX_OBJECT_KEYS } from './limits.js';

type Container = JsonObject | unknown[];

const INDEX = /^(?:0|[1-9][0-9]*)$/;

/**
 * Applies `update` to a deep copy of `doc`; `doc` itself is never changed.
 *
 * @throws DbaasError `DBAAS_WRITE_TYPE_CONFLICT` when the update does not fit the document
 *   (`$inc` on a non-number, `$push`/`$addToSet`/`$pull` on a non-array, a path through a
 *   scalar or through an array by a non-numeric segment), `DBAAS_REQ_LIMIT_EXCEEDED` when an
 *   array would grow past {@link MAX_ARRAY_LENGTH} or an object past {@link MAX_OBJECT_KEYS} keys
 */
export function applyUpdate(doc: Doc, update: UpdateSpec): Doc {
  const out = copyObject(doc);
  for (const [path, value] of entries(update.$set)) setAt(out, path, copyJson(value));
  for (const [path] of entries(update.$unset)) unsetAt(out, path);
  for (const [path, value] of entries(update.$inc)) incAt(out, path, value);
  for (const [path, value] of entries(update.$push)) pushAt(out, path, listOf(value, '$each'), false);
  for (const [path, value] of entries(update.$addToSet)) pushAt(out, path, listOf(value, '$each'), true);
  for (const [path, value] of entries(update.$pull)) pullAt(out, path, listOf(value, '$in'));
  return out;
}

/**
 * The document an upsert inserts before applying its update: every equality
 * (`field: literal` or `field: {$eq: literal}`) at the top of the filter or
 * inside top-level `$and` clauses, dotted paths becoming nested objects.
 * Other operators and `$or` contribute nothing.
 *
 * @throws DbaasError `DBAAS_QUERY_INVALID` when two equalities set the same path differently
 *   or one sets a prefix of another; `DBAAS_DOC_INVALID` when the seeded `_id` is not a valid id string
 */
export function seedFromFilter(where: Filter): Doc {
  const seed: Doc = {};
  const seeded: Array<[string, unknown]> = [];
  for (const [path, value] of equalities(where)) {
    const earlier = seeded.find(([other]) => pathsOverlap(other, path));
    if (earlier !== undefined) {
      if (earlier[0] === path && deepEqual(earlier[1], value)) continue;
      fail('DBAAS_QUERY_INVALID', 'where', `cannot seed an upsert: ${path} and ${earlier[0]} are both matched for equality`);
    }
    seeded.push([path, value]);
    setAt(seed, path, copyJson(value));
  }
  if (Object.hasOwn(seed, '_id')) checkId(seed['_id'], 'where._id');
  return seed;
}

/** Structural equality of JSON values; object key order does not matter, array order does. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (!isPlainObject(a) || !isPlainObject(b)) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => Object.hasOwn(b, key) && deepEqual(a[key], b[key]));
}

function* equalities(where: Filter): Generator<[string, unknown]> {
  for (const key of Object.keys(where)) {
    const value = where[key];
    if (key === '$and' && Array.isArray(value)) {
      for (const clause of value) if (isPlainObject(clause)) yield* equalities(clause);
    } else if (!key.startsWith('$')) {
      if (!isOperatorObject(value)) yield [key, value];
      else if (Object.hasOwn(value, '$eq')) yield [key, value['$eq']];
    }
  }
}

function isOperatorObject(value: unknown): value is JsonObject {
  return isPlainObject(value) && Object.keys(value).some((key) => key.startsWith('$'));
}

function entries(fields: { [path: string]: unknown } | undefined): Array<[string, unknown]> {
  return fields === undefined ? [] : Object.entries(fields);
}

/** `{$each: [..]}` / `{$in: [..]}` become their list; any other value is a list of one. */
function listOf(value: unknown, listKey: '$each' | '$in'): unknown[] {
  if (isPlainObject(value) && Object.keys(value).length === 1) {
    const list = getOwn(value, listKey);
    if (Array.isArray(list)) return list;
  }
  return [value];
}

function setAt(doc: Doc, path: string, value: unknown): void {
  const { parent, last } = walk(doc, path);
  setChild(parent, last, value, path);
}

function unsetAt(doc: Doc, path: string): void {
  const found = lookup(doc, path);
  if (found === undefined) return;
  const { parent, last } = found;
  if (!Array.isArray(parent)) {
    if (Object.hasOwn(parent, last)) delete parent[last];
  } else if (INDEX.test(last) && Number(last) < parent.length) {
    // MongoDB keeps positions stable: an unset element becomes null.
    parent[Number(last)] = null;
  }
}

function incAt(doc: Doc, path: string, by: unknown): void {
  if (typeof by !== 'number') conflict(path, '$inc needs a number');
  const { parent, last } = walk(doc, path);
  const current = getChild(parent, last);
  if (current === undefined) return setChild(parent, last, by, path);
  if (typeof current !== 'number') conflict(path, `cannot $inc a ${describeType(current)}`);
  const sum = current + by;
  if (!Number.isFinite(sum)) conflict(path, '$inc would overflow');
  setChild(parent, last, sum, path);
}

function pushAt(doc: Doc, path: string, items: readonly unknown[], unique: boolean): void {
  const op = unique ? '$addToSet' : '$push';
  const { parent, last } = walk(doc, path);
  const current = getChild(parent, last);
  if (current !== undefined && !Array.isArray(current)) conflict(path, `cannot ${op} to a ${describeType(current)}`);
  const array: unknown[] = current ?? [];
  for (const item of items) {
    if (unique && array.some((existing) => deepEqual(existing, item))) continue;
    array.push(copyJson(item));
  }
  checkLength(array.length, path);
  if (current === undefined) setChild(parent, last, array, path);
}

function pullAt(doc: Doc, path: string, values: readonly unknown[]): void {
  const found = lookup(doc, path);
  if (found === undefined) return;
  const current = getChild(found.parent, found.last);
  if (current === undefined) return;
  if (!Array.isArray(current)) conflict(path, `cannot $pull from a ${describeType(current)}`);
  const kept = current.filter((element) => !values.some((value) => deepEqual(element, value)));
  setChild(found.parent, found.last, kept, path);
}

/** The parent container of `path`, creating missing objects on the way. */
function walk(doc: Doc, path: string): { parent: Container; last: string } {
  const segments = path.split('.');
  const last = segments.pop() ?? '';
  let node: Container = doc;
  for (const segment of segments) {
    let child = getChild(node, segment);
    if (child === undefined) {
      child = {};
      setChild(node, segment, child, path);
    }
    if (!isPlainObject(child) && !Array.isArray(child)) conflict(path, `${segment} is a ${describeType(child)}, not an object`);
    node = child;
  }
  if (Array.isArray(node) && !INDEX.test(last)) conflict(path, `${last} is not an index into an array`);
  return { parent: node, last };
}

/** Like {@link walk} but never creates anything; undefined when the path cannot exist (MongoDB's no-op for `$unset`/`$pull`). */
function lookup(doc: Doc, path: string): { parent: Container; last: string } | undefined {
  const segments = path.split('.');
  const last = segments.pop() ?? '';
  let node: Container = doc;
  for (const segment of segments) {
    const child = getChild(node, segment);
    if (!isPlainObject(child) && !Array.isArray(child)) return undefined;
    node = child;
  }
  return { parent: node, last };
}

function getChild(node: Container, segment: string): unknown {
  if (!Array.isArray(node)) return getOwn(node, segment);
  return INDEX.test(segment) ? node[Number(segment)] : undefined;
}

function setChild(node: Container, segment: string, value: unknown, path: string): void {
  if (!Array.isArray(node)) {
    // A post-image keeps the limits an inserted document has, so that it can be inserted again (a restore, an import).
    if (!Object.hasOwn(node, segment) && Object.keys(node).length >= MAX_OBJECT_KEYS) {
      fail('DBAAS_REQ_LIMIT_EXCEEDED', path, `object would grow past ${MAX_OBJECT_KEYS} keys`);
    }
    return putOwn(node, segment, value);
  }
  if (!INDEX.test(segment)) conflict(path, `${segment} is not an index into an array`);
  const index = Number(segment);
  checkLength(index + 1, path);
  // MongoDB pads with null when setting past the end of an array.
  while (node.length < index) node.push(null);
  node[index] = value;
}

function checkLength(length: number, path: string): void {
  if (length > MAX_ARRAY_LENGTH) fail('DBAAS_REQ_LIMIT_EXCEEDED', path, `array would grow past ${MAX_ARRAY_LENGTH} elements`);
}

function conflict(path: string, why: string): never {
  return fail('DBAAS_WRITE_TYPE_CONFLICT', path, why);
}

function copyObject(value: JsonObject): JsonObject {
  const copy: JsonObject = {};
  for (const key of Object.keys(value)) putOwn(copy, key, copyJson(value[key]));
  return copy;
}

function copyJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(copyJson);
  if (isPlainObject(value)) return copyObject(value);
  return value;
}
