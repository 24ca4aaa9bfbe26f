/**
 * Dotted field paths (`address.city`, `tags.0`) as used in filters, updates,
 * projections and sorts.
 */
import type { ErrorCode } from './errors.js';
import { fail, hasLoneSurrogate, hasUnstorableKeyChar, UNSTORABLE_KEY_WHY } from './json-shape.js';
import { MAX_DEPTH, MAX_KEY_LENGTH } from './limits.js';

/**
 * Splits and checks a dotted field path: at most {@link MAX_DEPTH} segments,
 * each non-empty, at most {@link MAX_KEY_LENGTH} long, not starting with `$`,
 * without NUL, control characters, `"` or `\`, and not `__proto__`.
 *
 * @param field the path as the client wrote it
 * @param where where it appeared, for the error message (e.g. `where.a.b`)
 * @param code the code to throw with, which depends on the caller (query, update, request)
 * @returns the segments
 * @throws DbaasError with `code` when the path is not valid
 */
export function splitFieldPath(field: string, where: string, code: ErrorCode): string[] {
  if (field.length === 0) fail(code, where, 'field path must not be empty');
  const segments = field.split('.');
  if (segments.length > MAX_DEPTH) fail(code, where, `field path has more than ${MAX_DEPTH} segments`);
  for (const segment of segments) checkSegment(segment, where, code);
  return segments;
}

function checkSegment(segment: string, where: string, code: ErrorCode): void {
  if (segment.length === 0) fail(code, where, 'field path has an empty segment');
  if (segment.length > MAX_KEY_LENGTH) fail(code, where, `field path segment longer than ${MAX_KEY_LENGTH} characters`);
  // `$` segments are positional or operator syntax in MongoDB, never plain fields.
  if (segment.startsWith('$')) fail(code, where, `field path segment ${segment} must not start with $`);
  if (segment.includes('\0')) fail(code, where, 'field path must not contain NUL');
  if (hasLoneSurrogate(segment)) fail(code, where, 'field path must be well-formed Unicode (no lone surrogate)');
  if (hasUnstorableKeyChar(segment)) fail(code, where, `field path ${UNSTORABLE_KEY_WHY}`);
  if (segment === '__proto__') fail(code, where, 'field path must not contain __proto__');
}

/** True when `a` equals `b` or one is a segment-wise prefix of the other (`a` and `a.b`, not `a` and `ab`). */
export function pathsOverlap(a: string, b: string): boolean {
  if (a === b) return true;
  return a.startsWith(`${b}.`) || b.startsWith(`${a}.`);
}

/**
 * Collects paths and reports the first one that overlaps an earlier one
 * (same path, or one a prefix of the other). Linear in the number of segments.
 */
export class PathSet {
  private readonly exact = new Set<string>();
  private readonly prefixes = new Set<string>();

  /** Adds `segments` and returns the earlier path it overlaps, if any. */
  add(segments: readonly string[]): string | undefined {
    const full = segments.join('.');
    if (this.exact.has(full) || this.prefixes.has(full)) return full;
    let prefix = '';
    for (let i = 0; i < segments.length - 1; i++) {
      prefix = i === 0 ? (segments[0] ?? '') : `${prefix}.${segments[i] ?? ''}`;
      if (this.exact.has(prefix)) return prefix;
    }
    this.exact.add(full);
    prefix = '';
    for (let i = 0; i < segments.length - 1; i++) {
      prefix = i === 0 ? (segments[0] ?? '') : `${prefix}.${segments[i] ?? ''}`;
      this.prefixes.add(prefix);
    }
    return undefined;
  }
}
