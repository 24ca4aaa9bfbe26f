/**
 * Validation of `where` filters: a safe subset of MongoDB's query language.
 *
 * Only field paths and `$eq $ne $gt $gte $lt $lte $in $nin $exists $not $regex
 * $options` on fields, and `$and`/`$or` at filter level, get through. Everything
 * else that starts with `$` (`$where`, `$function`, `$expr`, `$nor`, …) is
 * refused, because several of those run code on the database server.
 */
import type { Filter } from './commands.js';
import { checkDepth, checkText, validateValue, type ValueRules } from './document-validation.js';
import type { ErrorCode } from './errors.js';
import { splitFieldPath } from './field-path.js';
import { describeType, fail, getOwn, isPlainObject, putOwn, type JsonObject } from './json-shape.js';
import { MAX_ARRAY_LENGTH, MAX_OBJECT_KEYS, MAX_REGEX_LENGTH } from './limits.js';
import { regexRisk } from './regex-safety.js';

const COMPARISON_OPERATORS = new Set(['$eq', '$ne', '$gt', '$gte', '$lt', '$lte']);
const FIELD_OPERATORS = new Set([...COMPARISON_OPERATORS, '$in', '$nin', '$exists', '$not', '$regex', '$options']);
const LOGICAL_OPERATORS = new Set(['$and', '$or']);
const REGEX_OPTIONS = /^[imsx]*$/;

/** Allowed operators in the wrong place are malformed; all other `$` keys are refused outright. */
function dollarKeyCode(key: string): ErrorCode {
  return FIELD_OPERATORS.has(key) || LOGICAL_OPERATORS.has(key) ? 'DBAAS_QUERY_INVALID' : 'DBAAS_QUERY_OPERATOR_NOT_ALLOWED';
}

function misplacedOperator(key: string, path: string, where: string): never {
  const why = dollarKeyCode(key) === 'DBAAS_QUERY_INVALID' ? `operator ${key} cannot be used ${where}` : `operator ${key} is not allowed`;
  return fail(dollarKeyCode(key), path, why);
}

const LITERAL_RULES: ValueRules = { code: 'DBAAS_QUERY_INVALID', dollarKeyCode };

/**
 * Checks a filter and returns a fresh copy built with own properties only.
 *
 * @param where the filter as the client sent it
 * @param path where it sits in the request, for messages
 * @throws DbaasError `DBAAS_QUERY_OPERATOR_NOT_ALLOWED` for any `$` key outside the allowed set,
 *   `DBAAS_QUERY_INVALID` for a malformed filter, `DBAAS_REQ_LIMIT_EXCEEDED` for size limits
 */
export function validateFilter(where: unknown, path = 'where'): Filter {
  return filterAt(where, path, 1);
}

function filterAt(where: unknown, path: string, depth: number): Filter {
  if (!isPlainObject(where)) fail('DBAAS_QUERY_INVALID', path, `a filter must be a JSON object, got ${describeType(where)}`);
  checkDepth(depth, path);
  const keys = Object.keys(where);
  if (keys.length > MAX_OBJECT_KEYS) fail('DBAAS_REQ_LIMIT_EXCEEDED', path, `filter has more than ${MAX_OBJECT_KEYS} keys`);
  const out: Filter = {};
  for (const key of keys) {
    const value = where[key];
    if (key.startsWith('$')) {
      if (!LOGICAL_OPERATORS.has(key)) misplacedOperator(key, path, 'at filter level, only on a field');
      putOwn(out, key, clausesAt(value, `${path}.${key}`, depth + 1));
    } else {
      splitFieldPath(key, `${path}.${key}`, 'DBAAS_QUERY_INVALID');
      putOwn(out, key, conditionAt(value, `${path}.${key}`, depth + 1));
    }
  }
  return out;
}

/** The array of an `$and` / `$or`. */
function clausesAt(value: unknown, path: string, depth: number): Filter[] {
  if (!Array.isArray(value) || value.length === 0) fail('DBAAS_QUERY_INVALID', path, 'must be a non-empty array of filters');
  checkDepth(depth, path);
  if (value.length > MAX_ARRAY_LENGTH) fail('DBAAS_REQ_LIMIT_EXCEEDED', path, `more than ${MAX_ARRAY_LENGTH} clauses`);
  return value.map((clause, i) => filterAt(clause, `${path}[${i}]`, depth + 1));
}

/** What a field is compared with: an operator object, or a literal matched for equality. */
function conditionAt(value: unknown, path: string, depth: number): unknown {
  if (isPlainObject(value) && Object.keys(value).some((key) => key.startsWith('$'))) {
    return operatorsAt(value, path, depth);
  }
  return validateValue(value, path, depth, LITERAL_RULES);
}

function operatorsAt(ops: JsonObject, path: string, depth: number): JsonObject {
  checkDepth(depth, path);
  const keys = Object.keys(ops);
  // Refuse forbidden operators before anything else, so they are reported as such.
  for (const key of keys) {
    if (key.startsWith('$') && !FIELD_OPERATORS.has(key)) misplacedOperator(key, path, 'on a field');
  }
  if (keys.some((key) => !key.startsWith('$'))) {
    fail('DBAAS_QUERY_INVALID', path, 'an operator object cannot mix $ operators and field names');
  }
  if (keys.includes('$options') && !keys.includes('$regex')) fail('DBAAS_QUERY_INVALID', path, '$options needs $regex');
  const out: JsonObject = {};
  for (const key of keys) putOwn(out, key, operandAt(key, ops[key], `${path}.${key}`, depth + 1));
  if (keys.includes('$regex')) checkRegexCompiles(out, path);
  return out;
}

function operandAt(op: string, value: unknown, path: string, depth: number): unknown {
  if (COMPARISON_OPERATORS.has(op)) return validateValue(value, path, depth, LITERAL_RULES);
  switch (op) {
    case '$in':
    case '$nin':
      if (!Array.isArray(value)) fail('DBAAS_QUERY_INVALID', path, `${op} takes an array, got ${describeType(value)}`);
      return validateValue(value, path, depth, LITERAL_RULES);
    case '$exists':
      if (typeof value !== 'boolean') fail('DBAAS_QUERY_INVALID', path, `$exists takes true or false, got ${describeType(value)}`);
      return value;
    case '$not':
      return notOperandAt(value, path, depth);
    case '$regex':
      if (typeof value !== 'string') fail('DBAAS_QUERY_INVALID', path, `$regex takes a string, got ${describeType(value)}`);
      if (value.length > MAX_REGEX_LENGTH) fail('DBAAS_REQ_LIMIT_EXCEEDED', path, `$regex longer than ${MAX_REGEX_LENGTH} characters`);
      checkText(value, path, 'DBAAS_QUERY_INVALID');
      return value;
    case '$options':
      return regexOptionsAt(value, path);
    default:
      return fail('DBAAS_QUERY_OPERATOR_NOT_ALLOWED', path, `operator ${op} is not allowed`);
  }
}

function notOperandAt(value: unknown, path: string, depth: number): JsonObject {
  if (!isPlainObject(value) || !Object.keys(value).some((key) => key.startsWith('$'))) {
    fail('DBAAS_QUERY_INVALID', path, '$not takes an operator object such as {"$gt": 5}');
  }
  return operatorsAt(value, path, depth);
}

function regexOptionsAt(value: unknown, path: string): string {
  if (typeof value !== 'string') fail('DBAAS_QUERY_INVALID', path, `$options takes a string, got ${describeType(value)}`);
  if (!REGEX_OPTIONS.test(value)) fail('DBAAS_QUERY_INVALID', path, '$options may only contain the letters i, m, s and x');
  if (new Set(value).size !== value.length) fail('DBAAS_QUERY_INVALID', path, '$options repeats a letter');
  return value;
}

/** MongoDB would reject a pattern that does not compile; tell the client now, with a 400. */
function checkRegexCompiles(ops: JsonObject, path: string): void {
  const pattern = getOwn(ops, '$regex');
  const options = getOwn(ops, '$options');
  // JavaScript has no `x` (extended) flag; the pattern is still checked without it.
  const flags = typeof options === 'string' ? options.replace('x', '') : '';
  try {
    new RegExp(typeof pattern === 'string' ? pattern : '', flags);
  } catch {
    fail('DBAAS_QUERY_INVALID', `${path}.$regex`, 'is not a valid regular expression');
  }
  const risk = typeof pattern === 'string' ? regexRisk(pattern) : undefined;
  if (risk !== undefined) fail('DBAAS_QUERY_REGEX_UNSAFE', `${path}.$regex`, `could take exponential time to match: ${risk}`);
}
