/**
 * Bearer-token guards for the HTTP API.
 *
 * - Admin endpoints (crash drills, clear, scaling, per-replica reads) need
 *   `DBAAS_ADMIN_TOKEN` when one is set.
 * - Data and cluster-information endpoints need one of `DBAAS_API_KEYS` (or the
 *   admin token) when keys are set.
 * - Pages (the dashboard, `/docs`, `/docs/json`) follow the API keys too, unless
 *   `DBAAS_PUBLIC_DOCS=1`; a browser is asked for Basic credentials (the key as
 *   password), which it then also sends on the page's API calls.
 * - Health endpoints are always open, for load balancers.
 *
 * 401 when no token is given, 403 when it is wrong. Tokens are compared in
 * constant time against every candidate, and never logged.
 *
 * Scopes (issue 20, common/api-keys.ts): an API key may be bound to databases
 * and to read-only. The guard remembers which key a request came with; the data
 * routes, once they know the request's database, ask {@link checkScope}, which
 * answers 403 DBAAS_AUTH_SCOPE_DENIED outside the key's scope. The admin token,
 * a key without scope, and any request while no keys are set have every scope.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { FULL_SCOPE, parseApiKey, scopeAllows, sha256, type Access, type ApiKey, type KeyScope } from '../common/api-keys.js';
import { DbaasError } from '../common/errors.js';

export interface AuthSettings {
  adminToken: string | undefined;
  apiKeys: readonly string[];
  /** `DBAAS_PUBLIC_DOCS=1`: pages stay open while keys are set. */
  publicDocs?: boolean;
}

/** Throws DBAAS_AUTH_MISSING (401) or DBAAS_AUTH_INVALID (403); `reply` lets a page's 401 carry a challenge. */
export type Guard = (request: FastifyRequest, reply?: FastifyReply) => Promise<void>;

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** True when `given` equals one of `candidates`; looks at every candidate whatever the outcome. */
export function tokenMatchesAny(given: string, candidates: readonly string[]): boolean {
  const g = digest(given);
  let found = false;
  for (const c of candidates) found = timingSafeEqual(g, digest(c)) || found;
  return found;
}

/**
 * The token of `Authorization: Bearer <token>`, or the password of
 * `Authorization: Basic base64(<any user>:<token>)`: a browser can only send the
 * latter for a page (the dashboard, /docs), and sends it again on the page's own
 * API calls.
 */
export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (bearer) return bearer[1];
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!basic?.[1]) return undefined;
  const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const password = colon < 0 ? '' : decoded.slice(colon + 1);
  return password === '' ? undefined : password;
}

/** Asks a browser for credentials: a page's 401 carries this, so the browser prompts (any user name, the key as password). */
export const BASIC_CHALLENGE = 'Basic realm="dbaas", charset="UTF-8"';

export type { Access, KeyScope } from '../common/api-keys.js';

/** The scope each authenticated request came with (absent: every scope). */
const scopes = new WeakMap<FastifyRequest, KeyScope>();

/** The key among `keys` whose hash is the token's, looking at every key whatever the outcome. */
function keyOf(token: string, keys: readonly ApiKey[]): ApiKey | undefined {
  const g = sha256(token);
  let found: ApiKey | undefined;
  for (const k of keys) if (timingSafeEqual(g, k.hash) && !found) found = k;
  return found;
}

function guard(candidates: () => readonly ApiKey[], challenge = false): Guard {
  return async (request, reply) => {
    const allowed = candidates();
    if (allowed.length === 0) return;
    const token = bearerToken(request);
    if (token === undefined) {
      if (challenge) reply?.header('www-authenticate', BASIC_CHALLENGE);
      throw new DbaasError('DBAAS_AUTH_MISSING');
    }
    const key = keyOf(token, allowed);
    if (!key) throw new DbaasError('DBAAS_AUTH_INVALID');
    if (key.scope !== FULL_SCOPE) scopes.set(request, key.scope);
  };
}

/** The scope a request was authenticated with. */
export function scopeOf(request: FastifyRequest): KeyScope {
  return scopes.get(request) ?? FULL_SCOPE;
}

/**
 * Refuses a request whose key does not reach `database` with `access`
 * (403 DBAAS_AUTH_SCOPE_DENIED); call it once the request's database is known.
 */
export function checkScope(request: FastifyRequest, database: string, access: Access): void {
  const scope = scopeOf(request);
  if (scopeAllows(scope, database, access)) return;
  const what = access === 'readwrite' && scope.access === 'read' ? 'is read-only' : `does not reach database ${JSON.stringify(database)}`;
  throw new DbaasError('DBAAS_AUTH_SCOPE_DENIED', `this API key ${what}`);
}

/**
 * The entries of DBAAS_API_KEYS as keys with scopes (common/api-keys.ts). Throws,
 * at start, listing every entry that does not parse by its position, never by its
 * text (it may hold a secret).
 */
export function apiKeysOf(entries: readonly string[]): ApiKey[] {
  const problems: string[] = [];
  const keys = entries.flatMap((entry, i) => {
    const key = parseApiKey(entry);
    if (typeof key === 'string') problems.push(`DBAAS_API_KEYS: key ${i + 1}: ${key}`);
    return typeof key === 'string' ? [] : [key];
  });
  if (problems.length > 0) throw new Error(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  return keys;
}

export interface Guards {
  /** Admin endpoints: the admin token, when one is set. */
  requireAdmin: Guard;
  /** Data and cluster-information endpoints: an API key (or the admin token), when keys are set. */
  requireApiKey: Guard;
  /**
   * Pages (dashboard, /docs, /docs/json): as {@link Guards.requireApiKey}, with a Basic
   * challenge on 401 so a browser asks; open with `DBAAS_PUBLIC_DOCS=1`.
   */
  requirePageKey: Guard;
}

/**
 * The guards, to run as `onRequest` hooks: a request is authenticated before its
 * body is read or parsed, so an anonymous client never costs a JSON parse.
 */
export function makeGuards(settings: AuthSettings): Guards {
  const admin: ApiKey[] = settings.adminToken === undefined ? [] : [{ hash: sha256(settings.adminToken), scope: FULL_SCOPE }];
  const keys = apiKeysOf(settings.apiKeys);
  // With API keys set, the admin token is accepted on data endpoints too.
  const data = settings.apiKeys.length === 0 ? [] : [...keys, ...admin];
  const pages = settings.publicDocs ? [] : data;
  return { requireAdmin: guard(() => admin), requireApiKey: guard(() => data), requirePageKey: guard(() => pages, true) };
}
