/**
 * API keys and their scopes (issue 20): which databases a key reaches and
 * whether it may write.
 *
 * One entry of `DBAAS_API_KEYS` (a comma list, or `@file` with one per line):
 *
 * ```
 * <secret>                               every database, read and write (as before scopes existed)
 * <secret>:<databases>:<access>          <databases>: `*` or names joined by `+`; <access>: read | readwrite
 * sha256:<64 hex>[:<databases>:<access>] the same, holding only the SHA-256 of the secret (hashed at rest)
 * ```
 *
 * e.g. `sha256:5e88…:users:readwrite` or `k-analytics-7f3a:users+rides:read`.
 * Whatever the form, the orchestrator keeps only the hash in memory and compares
 * hashes in constant time; a secret given in clear in the file is hashed at start.
 */
import { createHash } from 'node:crypto';
import { DATABASE_NAME } from './databases.js';

export type Access = 'read' | 'readwrite';

export interface KeyScope {
  /** The databases the key reaches; `*`: all of them. */
  databases: '*' | readonly string[];
  access: Access;
}

export interface ApiKey {
  /** SHA-256 of the secret. */
  hash: Buffer;
  scope: KeyScope;
}

/** Every database, read and write: a key without scope, and the admin token. */
export const FULL_SCOPE: KeyScope = Object.freeze({ databases: '*', access: 'readwrite' });

const SCOPED = /^(.+):(\*|[^:+]+(?:\+[^:+]+)*):(read|readwrite)$/;
const HASHED = /^sha256:([0-9a-f]{64})$/;

export function sha256(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

/** Parses one entry of DBAAS_API_KEYS; a string saying what is wrong with it when it does not parse. */
export function parseApiKey(entry: string): ApiKey | string {
  const scoped = SCOPED.exec(entry);
  const secret = scoped ? (scoped[1] as string) : entry;
  let scope: KeyScope = FULL_SCOPE;
  if (scoped) {
    const list = scoped[2] as string;
    const databases = list === '*' ? '*' : list.split('+');
    const bad = databases === '*' ? [] : databases.filter((d) => !DATABASE_NAME.test(d));
    if (bad.length > 0) return `database name(s) ${bad.join(', ')} must match ${DATABASE_NAME.source}`;
    scope = { databases, access: scoped[3] as Access };
  }
  const hashed = HASHED.exec(secret);
  if (!hashed && secret.startsWith('sha256:')) return 'a sha256: key must be followed by 64 lower-case hex digits';
  if (!hashed && !/^\S{8,}$/.test(secret)) return 'the secret is shorter than 8 characters or holds white space';
  return { hash: hashed ? Buffer.from(hashed[1] as string, 'hex') : sha256(secret), scope };
}

/** Whether a scope allows an access to a database. */
export function scopeAllows(scope: KeyScope, database: string, access: Access): boolean {
  if (access === 'readwrite' && scope.access !== 'readwrite') return false;
  return scope.databases === '*' || scope.databases.includes(database);
}
