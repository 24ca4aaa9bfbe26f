/**
 * Validation of the `data` of update and upsert writes.
 *
 * `data` is either only update operators (`$set $unset $inc $push $addToSet
 * $pull`) or a plain object with no `$` keys, which means `$set`. Paths are
 * dotted field paths; `_id` can never be changed; one path (or a path and its
 * prefix) may appear only once across all operators, as in MongoDB.
 */
import { UPDATE_OPERATORS, type UpdateOperator, type UpdateSpec } from './commands.js';
import { validateValue, type ValueRules } from './document-validation.js';
import { PathSet, splitFieldPath } from './field-path.js';
import { describeType, fail, isPlainObject, putOwn, type JsonObject } from './json-shape.js';
import { MAX_OBJECT_KEYS } from './limits.js';

const RULES: ValueRules = { code: 'DBAAS_UPDATE_INVALID' };
const OPERATORS: ReadonlySet<string> = new Set(UPDATE_OPERATORS);

function isUpdateOperator(key: string): key is UpdateOperator {
  return OPERATORS.has(key);
}

/**
 * Checks update `data` and returns a fresh {@link UpdateSpec}; a plain object becomes `{$set: …}`.
 *
 * @param path where `data` sits in the request, for messages
 * @throws DbaasError `DBAAS_UPDATE_INVALID` for a malformed update (unknown operator, mixed
 *   operators and fields, bad path, `_id`, overlapping paths, wrong operand types),
 *   `DBAAS_REQ_LIMIT_EXCEEDED` for size limits
 */
export function validateUpdate(data: unknown, path = 'data'): UpdateSpec {
  if (!isPlainObject(data)) fail('DBAAS_UPDATE_INVALID', path, `an update must be a JSON object, got ${describeType(data)}`);
  const keys = Object.keys(data);
  if (keys.length === 0) fail('DBAAS_UPDATE_INVALID', path, 'an update must change something; use {"$set": {}} to change nothing');
  const dollar = keys.filter((key) => key.startsWith('$'));
  const seen = new PathSet();
  if (dollar.length === 0) return { $set: operandsAt('$set', data, path, seen) };
  if (dollar.length !== keys.length) fail('DBAAS_UPDATE_INVALID', path, 'cannot mix update operators and plain fields');
  const spec: UpdateSpec = {};
  for (const key of keys) {
    if (!isUpdateOperator(key)) fail('DBAAS_UPDATE_INVALID', path, `update operator ${key} is not supported`);
    spec[key] = operandsAt(key, data[key], `${path}.${key}`, seen);
  }
  return spec;
}

/** The `{path: value}` object of one operator. */
function operandsAt(op: UpdateOperator, fields: unknown, path: string, seen: PathSet): JsonObject {
  if (!isPlainObject(fields)) fail('DBAAS_UPDATE_INVALID', path, `${op} takes an object of field paths, got ${describeType(fields)}`);
  const keys = Object.keys(fields);
  if (keys.length > MAX_OBJECT_KEYS) fail('DBAAS_REQ_LIMIT_EXCEEDED', path, `more than ${MAX_OBJECT_KEYS} fields`);
  const out: JsonObject = {};
  for (const field of keys) {
    const fieldPath = `${path}.${field}`;
    const segments = splitFieldPath(field, fieldPath, 'DBAAS_UPDATE_INVALID');
    if (segments[0] === '_id') fail('DBAAS_UPDATE_INVALID', fieldPath, '_id cannot be updated');
    const earlier = seen.add(segments);
    if (earlier !== undefined) fail('DBAAS_UPDATE_INVALID', fieldPath, `conflicts with ${earlier} elsewhere in the same update`);
    // A value at path a.b.c sits at nesting level 4 once applied (the document is level 1).
    putOwn(out, field, operandAt(op, fields[field], fieldPath, segments.length + 1));
  }
  return out;
}

function operandAt(op: UpdateOperator, value: unknown, path: string, depth: number): unknown {
  switch (op) {
    case '$set':
      return validateValue(value, path, depth, RULES);
    case '$unset':
      // MongoDB ignores the operand; normalise it so nothing the client sent travels on.
      return '';
    case '$inc':
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        fail('DBAAS_UPDATE_INVALID', path, `$inc takes a finite number, got ${describeType(value)}`);
      }
      return value;
    case '$push':
    case '$addToSet':
      return elementsAt(value, path, depth, '$each');
    case '$pull':
      return elementsAt(value, path, depth, '$in');
  }
}

/** A single array element, or `{<listKey>: [elements]}` (`$each` for push/addToSet, `$in` for pull). */
function elementsAt(value: unknown, path: string, depth: number, listKey: '$each' | '$in'): unknown {
  if (!isPlainObject(value) || !Object.keys(value).some((key) => key.startsWith('$'))) {
    // The element is stored inside the array, one level deeper than the array.
    return validateValue(value, path, depth + 1, RULES);
  }
  const keys = Object.keys(value);
  if (keys.length !== 1 || keys[0] !== listKey) {
    fail('DBAAS_UPDATE_INVALID', path, `takes a value or {"${listKey}": [values]}; ${keys.join(', ')} is not supported`);
  }
  const list = value[listKey];
  if (!Array.isArray(list)) fail('DBAAS_UPDATE_INVALID', `${path}.${listKey}`, `must be an array, got ${describeType(list)}`);
  // The list itself is never stored, only its elements, so it is checked at the array's own level.
  return { [listKey]: validateValue(list, `${path}.${listKey}`, depth, RULES) };
}
