/**
 * Small helpers shared by the validators and by `update-ops.ts`: recognising
 * plain JSON objects, writing keys without prototype pitfalls, and throwing a
 * {@link DbaasError} whose message names the offending field.
 */
import { DbaasError, type ErrorCode } from './errors.js';

/** A plain JSON object as parsed from a request body. */
export type JsonObject = { [key: string]: unknown };

/** True for `{}`-style objects (prototype `Object.prototype` or `null`); false for arrays, class instances, null. */
export function isPlainObject(value: unknown): value is JsonObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Sets an own enumerable property. Unlike `target[key] = value` it never runs
 * the `__proto__` setter, so a hostile key can at worst become a plain field.
 */
export function putOwn(target: JsonObject, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

/** Reads an own property only, so `constructor` or `toString` never come from the prototype. */
export function getOwn(target: JsonObject, key: string): unknown {
  return Object.hasOwn(target, key) ? target[key] : undefined;
}

/** A short type name for error messages: `null`, `array`, `object`, `string`, … */
export function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

const MAX_MESSAGE_LENGTH = 500;

/** Throws a DbaasError whose message is `<path>: <why>`, cut short so a huge key cannot bloat the reply. */
export function fail(code: ErrorCode, path: string, why: string): never {
  const message = `${path}: ${why}`;
  throw new DbaasError(code, message.length > MAX_MESSAGE_LENGTH ? `${message.slice(0, MAX_MESSAGE_LENGTH)}…` : message);
}

/** A UTF-16 surrogate without its partner: text that has no UTF-8 form (the database driver would store U+FFFD instead). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** True when `s` is not well-formed Unicode (it holds a lone surrogate). */
export function hasLoneSurrogate(s: string): boolean {
  return LONE_SURROGATE.test(s);
}

/**
 * True when a key (or field-path segment) holds a character no key may hold: FerretDB writes keys into the JSON it
 * stores unescaped, so a control character (U+0001-U+001F) or `"` made PostgreSQL refuse the
 * document on every replica, and a `\` was stored but left every later read of the table failing.
 */
export function hasUnstorableKeyChar(key: string): boolean {
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c) return true;
  }
  return false;
}

/** Why a key holding {@link hasUnstorableKeyChar} is refused, for error messages ("keys …", "field path …"). */
export const UNSTORABLE_KEY_WHY = 'must not contain control characters (U+0001-U+001F), \'"\' or \'\\\'';

/**
 * A client's value as an error message shows it: a string quoted, cut at 64 characters; anything
 * else by its type. Never serialised whole: it may be huge, or nested past the stack (a
 * `{"name": [[[…]]]}` of 100,000 levels made JSON.stringify throw, and the answer a 500).
 */
export function shownValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
  return value === undefined ? 'nothing' : describeType(value);
}
