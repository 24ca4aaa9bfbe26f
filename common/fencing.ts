/**
 * Fencing timing: the deadlines that keep two masters from taking writes at
 * once, including when the old one cannot be killed for certain.
 *
 * Invariant (Patroni's rule, "demote before the other side can promote"): a
 * master that loses touch with ZooKeeper stops taking writes before the
 * orchestrator could promote a successor on the strength of ZooKeeper alone.
 *
 * - The orchestrator fences a lost master by killing it through its runtime.
 *   When the runtime confirms the kill (it runs that worker: the process and
 *   docker runtimes run every worker of their namespace, and only one
 *   orchestrator manages a namespace), the promotion goes ahead at once: a dead
 *   process takes no writes. A master whose znode vanished counts as lost after
 *   {@link masterLostGraceMs} (G).
 * - When the runtime cannot kill it, the orchestrator also waits
 *   {@link unkillableWaitMs} (W) after the master's znode vanished. The server
 *   removed the znode when it expired the session, T (the session timeout)
 *   after it last heard from the master (t_s): the successor is promoted no
 *   sooner than t_s + T + W.
 * - The worker records the last time ZooKeeper answered it (t0, one round trip
 *   after t_s) and, as master, fences itself once that is {@link selfFenceMs}
 *   (F) old, checked every {@link FENCE_CHECK_MS} and before each batch: by
 *   t0 + F + FENCE_CHECK_MS at the latest.
 * - W = F - T + FENCE_CHECK_MS + FENCE_MARGIN_MS, so the old master is fenced
 *   FENCE_MARGIN_MS (less one round trip) before anyone can be promoted.
 *
 * F is long (30 s by default, `DBAAS_ZK_OUTAGE_TOLERANCE_MS`) so that a master
 * rides out a ZooKeeper outage: while ZooKeeper is down for everyone, nobody can
 * move the term or promote anyone, so there is nothing to fence against, and a
 * master cut off alone is killed by the runtime before anyone is promoted. Every master, initial
 * or promoted, also watches the term and leaves when it moves past its own.
 *
 * This file holds the timing only. The worker's half of fencing (term watch,
 * contact deadline, session loss) is worker/fencing.ts, the orchestrator's
 * (kill, znodes, term bump, then promote) orchestrator/failover.ts.
 */

/** How often a master checks how long ago ZooKeeper last answered it. */
export const FENCE_CHECK_MS = 250;

/** What the unkillable wait keeps in hand beyond the worst case. */
export const FENCE_MARGIN_MS = 1000;

/** How long the orchestrator waits after a worker's znode vanished before it treats the worker as lost (G). */
export function masterLostGraceMs(sessionTimeoutMs: number): number {
  return Math.max(3000, 2 * sessionTimeoutMs);
}

/**
 * How long a master may go without an answer from ZooKeeper before it must stop
 * taking writes (F): the configured outage tolerance (`DBAAS_ZK_OUTAGE_TOLERANCE_MS`,
 * 30 s by default), and never less than two session timeouts.
 */
export function selfFenceMs(sessionTimeoutMs: number, outageToleranceMs: number): number {
  return Math.max(outageToleranceMs, 2 * sessionTimeoutMs);
}

/** How long after its znode vanished the orchestrator waits before replacing a master its runtime cannot kill (W). */
export function unkillableWaitMs(sessionTimeoutMs: number, outageToleranceMs: number): number {
  return selfFenceMs(sessionTimeoutMs, outageToleranceMs) - sessionTimeoutMs + FENCE_CHECK_MS + FENCE_MARGIN_MS;
}

/**
 * By how much an unkillable master that lost ZooKeeper is fenced before a
 * successor can be promoted, not counting the round trip: (T + W) - (F + FENCE_CHECK_MS).
 */
export function fenceMarginMs(sessionTimeoutMs: number, outageToleranceMs: number): number {
  return sessionTimeoutMs + unkillableWaitMs(sessionTimeoutMs, outageToleranceMs) - (selfFenceMs(sessionTimeoutMs, outageToleranceMs) + FENCE_CHECK_MS);
}
