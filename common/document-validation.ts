/**
 * Validation of stored documents and of the JSON values inside filters and
 * updates. Every validator returns a fresh copy, so callers never keep a
 * reference to the client's object.
 */
import { checkBsonSize, GENERATED_ID_BYTES } from './bson-size.js';
import type { Doc } from './commands.js';
import type { ErrorCode } from './errors.js';
import { describeType, fail, hasLoneSurrogate, hasUnstorableKeyChar, isPlainObject, putOwn, UNSTORABLE_KEY_WHY, type JsonObject } from './json-shape.js';
import {
  MAX_ARRAY_LENGTH,
  MAX_DEPTH,
  MAX_ID_LENGTH,
  MAX_KEY_LENGTH,
  MAX_OBJECT_KEYS,
  MAX_STRING_LENGTH,
} from './limits.js';

/** How {@link validateValue} reports what it rejects; differs between documents, filters and updates. */
export interface ValueRules {
  /** Code for a malformed key or a non-JSON value. */
  readonly code: ErrorCode;
  /** Code for a key starting with `$`; filters single out operators that are not allowed. Defaults to `code`. */
  readonly dollarKeyCode?: (key: string) => ErrorCode;
}

const DOCUMENT_RULES: ValueRules = { code: 'DBAAS_DOC_INVALID' };

/**
 * Checks a document for insert and returns a deep copy.
 *
 * Keys are non-empty, at most {@link MAX_KEY_LENGTH} long, do not start with `$`,
 * contain no `.`, NUL, control character, `"` or `\` and are not `__proto__`. Strings and keys hold no NUL and no lone surrogate. Numbers are finite. A top-level
 * `_id`, when present, is a non-empty string of at most {@link MAX_ID_LENGTH}. As BSON (with the
 * `_id` an insert gives it) it holds at most 16 MiB less 16 KiB (`MAX_DOCUMENT_BYTES`).
 *
 * @param path where the document sits in the request, for messages (e.g. `data[2]`)
 * @throws DbaasError `DBAAS_DOC_INVALID` for a malformed document,
 *   `DBAAS_REQ_LIMIT_EXCEEDED` for nesting, array, key-count or string limits
 */
export function validateDocument(doc: unknown, path: string): Doc {
  if (!isPlainObject(doc)) fail('DBAAS_DOC_INVALID', path, `a document must be a JSON object, got ${describeType(doc)}`);
  const copy = copyObject(doc, path, 1, DOCUMENT_RULES);
  if (Object.hasOwn(copy, '_id')) checkId(copy['_id'], `${path}._id`);
  checkBsonSize(copy, path, Object.hasOwn(copy, '_id') ? 0 : GENERATED_ID_BYTES);
  return copy;
}

/**
 * Checks any JSON value (string, finite number, boolean, null, array, plain
 * object) with document key rules and limits, and returns a deep copy.
 *
 * @param depth the nesting level the value occupies if it is an array or object (the document root is 1)
 * @throws DbaasError `rules.code` (or `rules.dollarKeyCode`) for malformed values,
 *   `DBAAS_REQ_LIMIT_EXCEEDED` for limits
 */
export function validateValue(value: unknown, path: string, depth: number, rules: ValueRules): unknown {
  switch (typeof value) {
    case 'string':
      if (value.length > MAX_STRING_LENGTH) fail('DBAAS_REQ_LIMIT_EXCEEDED', path, `string longer than ${MAX_STRING_LENGTH} characters`);
      checkText(value, path, rules.code);
      return value;
    case 'number':
      if (!Number.isFinite(value)) fail(rules.code, path, 'numbers must be finite');
      return value;
    case 'boolean':
      return value;
    case 'object':
      if (value === null) return null;
      if (Array.isArray(value)) return copyArray(value, path, depth, rules);
      if (isPlainObject(value)) return copyObject(value, path, depth, rules);
      break;
    default:
      break;
  }
  return fail(rules.code, path, `${describeType(value)} is not a JSON value`);
}

/**
 * Checks one object key against the document key rules.
 * @throws DbaasError `rules.code`, or `rules.dollarKeyCode(key)` for a key starting with `$`
 */
export function checkKey(key: string, path: string, rules: ValueRules = DOCUMENT_RULES): void {
  if (key.length === 0) fail(rules.code, path, 'keys must not be empty');
  if (key.length > MAX_KEY_LENGTH) fail(rules.code, path, `key longer than ${MAX_KEY_LENGTH} characters`);
  if (key.startsWith('$')) fail(rules.dollarKeyCode?.(key) ?? rules.code, path, `key ${key} must not start with $`);
  if (key.includes('.')) fail(rules.code, path, `key ${key} must not contain "."`);
  if (key.includes('\0')) fail(rules.code, path, 'keys must not contain NUL');
  if (hasLoneSurrogate(key)) fail(rules.code, path, 'keys must be well-formed Unicode (no lone surrogate)');
  if (hasUnstorableKeyChar(key)) fail(rules.code, path, `keys ${UNSTORABLE_KEY_WHY}`);
  if (key === '__proto__') fail(rules.code, path, 'key __proto__ is not allowed');
}

/**
 * Refuses a string holding NUL (U+0000) or a lone surrogate (text with no UTF-8 form).
 * PostgreSQL's jsonb, where FerretDB keeps every document by default, cannot store NUL; a
 * lone surrogate is stored as U+FFFD, so two keys differing only there become one key twice.
 * Either way a write holding one was stored in the oplog and sent to every slave, then refused
 * by every replica's database, and no worker could start again past it. So both are refused up
 * front, on every backend alike.
 * @throws DbaasError `code`
 */
export function checkText(value: string, path: string, code: ErrorCode): void {
  if (value.includes('\0')) fail(code, path, 'strings must not contain the NUL character (U+0000)');
  if (hasLoneSurrogate(value)) fail(code, path, 'strings must be well-formed Unicode (a lone surrogate such as \\ud800 has no UTF-8 form)');
}

/** Throws `DBAAS_REQ_LIMIT_EXCEEDED` when an array or object would sit deeper than {@link MAX_DEPTH}. */
export function checkDepth(depth: number, path: string): void {
  if (depth > MAX_DEPTH) fail('DBAAS_REQ_LIMIT_EXCEEDED', path, `nested deeper than ${MAX_DEPTH} levels`);
}

function copyArray(value: readonly unknown[], path: string, depth: number, rules: ValueRules): unknown[] {
  checkDepth(depth, path);
  if (value.length > MAX_ARRAY_LENGTH) fail('DBAAS_REQ_LIMIT_EXCEEDED', path, `array longer than ${MAX_ARRAY_LENGTH} elements`);
  const copy: unknown[] = [];
  for (let i = 0; i < value.length; i++) copy.push(validateValue(value[i], `${path}[${i}]`, depth + 1, rules));
  return copy;
}

function copyObject(value: JsonObject, path: string, depth: number, rules: ValueRules): JsonObject {
  checkDepth(depth, path);
  const keys = Object.keys(value);
  if (keys.length > MAX_OBJECT_KEYS) fail('DBAAS_REQ_LIMIT_EXCEEDED', path, `object has more than ${MAX_OBJECT_KEYS} keys`);
  const copy: JsonObject = {};
  for (const key of keys) {
    checkKey(key, `${path}.${key}`, rules);
    putOwn(copy, key, validateValue(value[key], `${path}.${key}`, depth + 1, rules));
  }
  return copy;
}

/**
 * Checks an `_id` value: ids travel through JSON unchanged, so they are strings.
 * @throws DbaasError `DBAAS_DOC_INVALID`
 */
export function checkId(id: unknown, path: string): void {
  if (typeof id !== 'string') fail('DBAAS_DOC_INVALID', path, `_id must be a string, got ${describeType(id)}`);
  if (id.length === 0) fail('DBAAS_DOC_INVALID', path, '_id must not be empty');
  if (id.length > MAX_ID_LENGTH) fail('DBAAS_DOC_INVALID', path, `_id longer than ${MAX_ID_LENGTH} characters`);
}
