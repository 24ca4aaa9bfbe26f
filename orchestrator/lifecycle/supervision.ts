/**
 * What the lifecycle manager does about one service, as a pure step (the shape
 * of reconcile.ts): from the service's record and one observation (is its
 * process alive, did its probe answer) it returns the next record, an action
 * and, when something changed, the sentence that is logged and audited.
 *
 * Rules: a live process whose probe answers is `running`. A probe that fails
 * {@link SupervisionPolicy.wedgedAfter} times in a row makes a live process
 * `wedged` (a SIGSTOPped server accepts connections and never answers). A
 * managed service that is down or wedged is restarted (a wedged one killed
 * first): the first restart at once, each further one within the window after
 * a delay that doubles; past {@link SupervisionPolicy.maxRestarts} restarts
 * within the window it is left `failed`. An unmanaged service (one this
 * `npm start` did not start) is only reported. A wedged server or node is not
 * killed while a peer of its ensemble or cluster is not running: under a load
 * that slows every probe, killing two "wedged" members would cost the quorum
 * (seen: a load average of 36 on 2 cores had 2 of 3 RabbitMQ nodes fail 3
 * probes at once). A (re)started service is
 * `starting` until its probe answers; one that does not within the start
 * grace counts as a failed start.
 */
import type { PlatformServiceState } from '../../coordination/schemas.js';

export interface SupervisionPolicy {
  readonly wedgedAfter: number;
  readonly maxRestarts: number;
  readonly restartWindowMs: number;
  readonly backoffMs: number;
  readonly startGraceMs: number;
}

/** The cap of the doubling restart delay. */
export const BACKOFF_CAP_MS = 30_000;

/** One service's record, kept by the manager between steps. */
export interface Supervised {
  readonly state: PlatformServiceState;
  /** Consecutive failed probes of the live process. */
  readonly probeFailures: number;
  /** When each restart within the window began (ms). */
  readonly restartTimes: readonly number[];
  /** Every restart since the manager started. */
  readonly restarts: number;
  readonly lastFailure?: { readonly at: number; readonly reason: string };
  /** When the current process was (re)started by the manager (for the start grace). */
  readonly startedAt?: number;
}

export interface Observation {
  /** The process exists (and is what it should be: not a reused pid). */
  readonly alive: boolean;
  readonly pid?: number;
  /** The probe's failure, or undefined when it answered. */
  readonly probeFailure?: string;
}

export type Action = 'none' | 'restart' | 'kill-and-restart';

export interface Decision {
  readonly next: Supervised;
  readonly action: Action;
  /** Set when the state changed or an action is taken: logged, and audited. */
  readonly sentence?: string;
}

export const initialRecord = (state: PlatformServiceState = 'starting', now?: number): Supervised => ({
  state,
  probeFailures: 0,
  restartTimes: [],
  restarts: 0,
  ...(now === undefined ? {} : { startedAt: now }),
});

/** The delay owed before the restart that would be the `n`-th within the window (n ≥ 1). */
export function restartDelayMs(n: number, policy: SupervisionPolicy): number {
  return n <= 1 ? 0 : Math.min(BACKOFF_CAP_MS, policy.backoffMs * 2 ** (n - 2));
}

/** One step for the service `name`; `managed` says whether the manager may restart it, `unmanagedBecause` why not. */
export function decide(
  name: string,
  s: Supervised,
  o: Observation,
  now: number,
  policy: SupervisionPolicy,
  managed: boolean,
  unmanagedBecause = 'this manager did not start it',
  /** Why a wedged (live) process must not be killed now, e.g. a peer of its ensemble is down: killing it could cost the quorum. */
  killBlockedBy?: string,
): Decision {
  if (s.state === 'restarting' || s.state === 'stopped') return { next: s, action: 'none' };
  const pid = o.pid === undefined ? '' : ` (pid ${o.pid})`;

  if (o.alive && o.probeFailure === undefined) {
    if (s.state === 'running') return { next: s.probeFailures === 0 ? s : { ...s, probeFailures: 0 }, action: 'none' };
    const since = s.lastFailure ? `, ${((now - s.lastFailure.at) / 1000).toFixed(1)} s after it failed (${s.lastFailure.reason})` : '';
    const what = s.state === 'starting' && s.restarts === 0 ? 'is running' : s.state === 'starting' ? `is back after restart ${s.restarts}` : 'answers its probe again';
    return { next: { ...s, state: 'running', probeFailures: 0 }, action: 'none', sentence: `${name}${pid} ${what}${since}` };
  }
  if (s.state === 'failed') return { next: s, action: 'none' };

  let reason: string;
  let wedged = false;
  if (o.alive) {
    if (s.state === 'starting' && s.startedAt !== undefined && now - s.startedAt < policy.startGraceMs) return { next: s, action: 'none' };
    const failures = s.probeFailures + 1;
    if (s.state === 'starting' && s.startedAt !== undefined) {
      reason = `did not answer its probe within ${Math.round(policy.startGraceMs / 1000)} s of its start (${o.probeFailure})`;
    } else if (failures < policy.wedgedAfter) {
      return { next: { ...s, probeFailures: failures }, action: 'none' };
    } else {
      reason = `is alive but failed ${failures} probes in a row (${o.probeFailure})`;
    }
    wedged = true;
    s = { ...s, probeFailures: failures };
  } else {
    reason = s.state === 'down' && s.lastFailure ? s.lastFailure.reason : 'has no process (it exited or was killed)';
  }

  const downState: PlatformServiceState = wedged ? 'wedged' : 'down';
  const fresh = s.state !== downState;
  const lastFailure = fresh || !s.lastFailure ? { at: now, reason } : s.lastFailure;
  if (!managed) {
    if (!fresh) return { next: s, action: 'none' };
    return { next: { ...s, state: downState, lastFailure }, action: 'none', sentence: `${name}${pid} ${reason}; not restarted: ${unmanagedBecause}` };
  }

  if (wedged && killBlockedBy !== undefined) {
    if (!fresh) return { next: s, action: 'none' };
    return { next: { ...s, state: downState, lastFailure }, action: 'none', sentence: `${name}${pid} ${reason}; not killed: ${killBlockedBy}` };
  }
  const recent = s.restartTimes.filter((t) => now - t < policy.restartWindowMs);
  if (recent.length >= policy.maxRestarts) {
    return {
      next: { ...s, state: 'failed', restartTimes: recent, lastFailure },
      action: 'none',
      sentence: `${name}${pid} ${reason}; given up: ${recent.length} restarts within ${Math.round(policy.restartWindowMs / 1000)} s (DBAAS_LIFECYCLE_MAX_RESTARTS=${policy.maxRestarts})`,
    };
  }
  const n = recent.length + 1;
  const due = (recent.at(-1) ?? -Infinity) + restartDelayMs(n, policy);
  if (now < due) {
    if (!fresh) return { next: s, action: 'none' };
    return {
      next: { ...s, state: downState, restartTimes: recent, lastFailure },
      action: 'none',
      sentence: `${name}${pid} ${reason}; restart ${n} within the window in ${Math.ceil((due - now) / 1000)} s (backoff)`,
    };
  }
  return {
    next: { ...s, state: 'restarting', probeFailures: 0, restartTimes: [...recent, now], restarts: s.restarts + 1, lastFailure },
    action: wedged ? 'kill-and-restart' : 'restart',
    sentence: `${name}${pid} ${reason}; ${wedged ? 'killing and restarting it' : 'restarting it'} (restart ${n} within ${Math.round(policy.restartWindowMs / 1000)} s, ${s.restarts + 1} in all)`,
  };
}
