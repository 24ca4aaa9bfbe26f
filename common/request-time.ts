/**
 * When a write was first asked for, as far as the master can tell: the basis of
 * the retry horizon (`DBAAS_REQUEST_ID_TTL_MS`, worker/request-ledger.ts).
 *
 * When the orchestrator could tell (`WriteEnvelope.askedAt`: the client said how
 * long ago, on its own clock, it first asked), that is the time. Otherwise two
 * sources, the older wins:
 * - a **timed requestId** `rq1-<ms since the epoch>-<random>`, made by the typed
 *   client and the orchestrator ({@link timedRequestId}): every retry of that
 *   write carries the time of its first attempt;
 * - the envelope's `at`, the orchestrator's receive time of this attempt: a
 *   message redelivered after a master crash keeps it.
 *
 * A requestId in any other form tells no time: such a retry is recognised for as
 * long as the ledger holds it, and after that it is taken as a new write (the
 * README says so). The wire stays compatible: `at` is optional, and a requestId is
 * still any string the validation accepts.
 */

const TIMED = /^rq1-(\d{1,15})-/;

/**
 * The HTTP header in which a client says how long ago, in ms on its own clock, it
 * first asked for this write (the typed client sends it on every attempt). The
 * orchestrator turns it into `askedAt` on its own clock, so a client clock that is
 * off does not make a first attempt look like a retry past the horizon.
 */
export const REQUEST_AGE_HEADER = 'x-dbaas-request-age-ms';
/** The largest age accepted in {@link REQUEST_AGE_HEADER} (7 days, the longest retry horizon). */
export const MAX_REQUEST_AGE_MS = 7 * 86_400_000;

/** A requestId that carries `now`; retries must reuse it as it is. */
export function timedRequestId(now: number = Date.now()): string {
  return `rq1-${Math.floor(now)}-${globalThis.crypto.randomUUID()}`;
}

/** The time a timed requestId carries, or undefined for any other form. */
export function requestIdTime(requestId: string): number | undefined {
  const m = TIMED.exec(requestId);
  if (!m) return undefined;
  const t = Number(m[1]);
  return Number.isSafeInteger(t) ? t : undefined;
}

/**
 * When the write was first asked for: `askedAt` when the envelope has it (no client
 * clock in it), else the oldest of the requestId's time and the envelope's `at`;
 * undefined when none tells.
 */
export function requestTime(requestId: string, at: number | undefined, askedAt?: number): number | undefined {
  if (askedAt !== undefined) return askedAt;
  const fromId = requestIdTime(requestId);
  if (fromId === undefined) return at;
  return at === undefined ? fromId : Math.min(fromId, at);
}
