/**
 * Bearer-token guards for the HTTP API.
 *
 * - Admin endpoints (crash drills, clear, scaling, per-replica reads) need
 *   `DBAAS_ADMIN_TOKEN` when one is set.
 * - Data and cluster-information endpoints need one of `DBAAS_API_KEYS` (or the
 *   admin token) when keys are set.
 * - Health endpoints are always open, for load balancers.
 *
 * 401 when no token is given, 403 when it is wrong. Tokens are compared in
 * constant time against every candidate, and never logged.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { DbaasError } from '../common/errors.js';

export interface AuthSettings {
  adminToken: string | undefined;
  apiKeys: readonly string[];
}

export type Guard = (request: FastifyRequest) => Promise<void>;

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

export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

function guard(candidates: () => readonly string[]): Guard {
  return async (request) => {
    const allowed = candidates();
    if (allowed.length === 0) return;
    const token = bearerToken(request);
    if (token === undefined) throw new DbaasError('DBAAS_AUTH_MISSING');
    if (!tokenMatchesAny(token, allowed)) throw new DbaasError('DBAAS_AUTH_INVALID');
  };
}

export function makeGuards(settings: AuthSettings): { requireAdmin: Guard; requireApiKey: Guard } {
  const admin = settings.adminToken === undefined ? [] : [settings.adminToken];
  // With API keys set, the admin token is accepted on data endpoints too.
  const data = settings.apiKeys.length === 0 ? [] : [...settings.apiKeys, ...admin];
  return { requireAdmin: guard(() => admin), requireApiKey: guard(() => data) };
}
