/**
 * When and how long the client waits before trying a request again.
 * Pure functions, so the policy is tested without a network.
 */
import { ERROR_CATALOGUE, isErrorCode } from '../common/errors.js';

export interface RetryPolicy {
  /** Tries in all, the first included. 1 means never retry. */
  attempts: number;
  /** First delay; each further one doubles, up to `maxDelayMs`. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: Readonly<RetryPolicy> = Object.freeze({ attempts: 8, baseDelayMs: 100, maxDelayMs: 2000 });

/** Client-side codes, for failures that never got an answer from the orchestrator. */
export const CLIENT_UNREACHABLE = 'DBAAS_CLIENT_UNREACHABLE';
export const CLIENT_TIMEOUT = 'DBAAS_CLIENT_TIMEOUT';
/** The client could not build the request (a body JSON cannot encode, a URL that is not http(s)): nothing was sent; not retryable. */
export const CLIENT_INVALID_REQUEST = 'DBAAS_CLIENT_INVALID_REQUEST';

/**
 * Whether an error may go away on its own: no answer at all (the orchestrator
 * is restarting, the network dropped), a timeout, or a catalogue code marked
 * retryable (503 no master / broker down, 504 worker too slow). A 502/503/504
 * from a proxy without our error body counts too. 4xx and 500 never do.
 */
export function isRetryable(code: string, status: number): boolean {
  if (code === CLIENT_UNREACHABLE || code === CLIENT_TIMEOUT) return true;
  if (isErrorCode(code)) return ERROR_CATALOGUE[code].retryable;
  return status === 502 || status === 503 || status === 504;
}

/**
 * The pause before try number `attempt + 1` (`attempt` counts from 1):
 * exponential with jitter in its upper half, capped, and never shorter than
 * the server's Retry-After.
 */
export function retryDelayMs(attempt: number, policy: RetryPolicy, retryAfterMs = 0, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  const jittered = ceiling / 2 + random() * (ceiling / 2);
  return Math.round(Math.max(jittered, Math.min(retryAfterMs, policy.maxDelayMs)));
}

/** `Retry-After` in milliseconds (seconds or an HTTP date), or 0. */
export function parseRetryAfter(header: string | null, now = Date.now()): number {
  if (!header) return 0;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? 0 : Math.max(0, at - now);
}
