/**
 * Fencing timing: the two deadlines that keep two masters from taking writes
 * at once when the old one can no longer be killed for certain.
 *
 * Invariant (Patroni's rule, "demote before the other side can promote"): a
 * master that loses touch with ZooKeeper stops taking writes before the
 * orchestrator could promote a successor on the strength of ZooKeeper alone.
 *
 * - The server expires a session T (the session timeout) after it last heard
 *   from the client, at t_s + T. Its ephemeral znodes vanish then, and the
 *   orchestrator promotes another worker only after the master's znode has
 *   been missing for {@link masterLostGraceMs}: not before t_s + T + G.
 * - The worker records the last time the server answered it (t0 >= t_s; the
 *   difference is one round trip) and, as master, fences itself once that is
 *   {@link selfFenceMs} old, checked every {@link FENCE_CHECK_MS}: by
 *   t0 + F + FENCE_CHECK_MS at the latest.
 * - F = T + G/2, so the master is fenced at least G/2 - FENCE_CHECK_MS - rtt
 *   (1.25 s at the defaults, less one round trip) before anyone can be promoted.
 *
 * A failover triggered by the runtime (it saw the master's process exit, or
 * killed it and confirmed the exit) needs no wait: a dead process takes no
 * writes. Every master, initial or promoted, also watches the term and leaves
 * when it moves past its own (worker.ts).
 */

/** How often a master checks how long ago ZooKeeper last answered it. */
export const FENCE_CHECK_MS = 250;

/** How long the orchestrator waits after a worker's znode vanished before it treats the worker as lost (G). */
export function masterLostGraceMs(sessionTimeoutMs: number): number {
  return Math.max(3000, 2 * sessionTimeoutMs);
}

/** How long a master may go without an answer from ZooKeeper before it must stop taking writes (F). */
export function selfFenceMs(sessionTimeoutMs: number): number {
  return sessionTimeoutMs + Math.floor(masterLostGraceMs(sessionTimeoutMs) / 2);
}

/**
 * The margin by which a master that lost ZooKeeper is fenced before a successor
 * can be promoted, not counting the round trip: G + T - (F + FENCE_CHECK_MS).
 * Positive for every session timeout (tests/unit/fencing.test.ts).
 */
export function fenceMarginMs(sessionTimeoutMs: number): number {
  return sessionTimeoutMs + masterLostGraceMs(sessionTimeoutMs) - (selfFenceMs(sessionTimeoutMs) + FENCE_CHECK_MS);
}
