/**
 * The orchestrator's record of each worker's lifecycle, as one explicit union
 * per worker (like the worker's own role machine, worker/worker.ts), where an
 * illegal move throws.
 *
 * ```
 *            start()                      started()
 *   (none) ─────────► starting ─────────────────────► serving ◄──┐
 *      │                 │  │ startFailed()             │  ▲      │ observe(): znode back
 *      │ observe():      │  └──────────► exited ◄───────┤  │      │
 *      │ registered      │   exit()        ▲    exit()  │  └── missing(since)
 *      └──► serving      │                 └────────────┼───────── │  observe(): znode gone while running
 *                        ▼ retire()                     ▼ retire() │
 *                     retiring ◄────────────────────────┴──────────┘
 *   any ─── forget() ──► forgotten ─── start() ──► starting   (exited, missing, serving: start() too, a master restarted)
 * ```
 *
 * - `starting`: being started by this orchestrator, not yet in the state its
 *   role leads to. An exit seen meanwhile is kept on it (`exit`): the start
 *   fails, and it is not lost as a running worker would be.
 * - `serving`: it has registered in ZooKeeper (a worker known only from
 *   ZooKeeper, adopted or run by another runtime, enters here).
 * - `missing(since)`: it had a znode and lost it while it still runs; lost
 *   once that lasts longer than the grace (reconcile.ts).
 * - `retiring`: a planned removal (scale-down, shutdown): its exit is no
 *   failure. An exit is kept on it.
 * - `exited`: the runtime saw it die.
 * - `forgotten`: removed for good. ZooKeeper may still list it for a moment.
 *
 * Only the actions and {@link observe} move a worker; reading (facts.ts, the
 * request router, GET /workers/list) never does. A verify's divergence mark is
 * not a phase: it is kept beside the phase until the worker is forgotten.
 */
import type { WorkerZnode } from '../coordination/schemas.js';
import type { ExitInfo, WorkerSpec } from './runtimes/runtime.js';

export type Lifecycle =
  | { phase: 'starting'; spec: WorkerSpec; exit?: ExitInfo }
  | { phase: 'serving' }
  | { phase: 'missing'; since: number }
  | { phase: 'retiring'; exit?: ExitInfo }
  | { phase: 'exited'; exit: ExitInfo }
  | { phase: 'forgotten' };

export type Phase = Lifecycle['phase'];

/** Where each phase may go (`none`: a worker not in the registry). */
export const LIFECYCLE_TRANSITIONS: Record<Phase | 'none', readonly Phase[]> = {
  none: ['starting', 'serving', 'retiring', 'exited', 'forgotten'],
  starting: ['starting', 'serving', 'retiring', 'exited', 'forgotten'],
  serving: ['missing', 'retiring', 'exited', 'forgotten', 'starting'],
  missing: ['serving', 'retiring', 'exited', 'forgotten', 'starting'],
  retiring: ['retiring', 'forgotten'],
  exited: ['exited', 'starting', 'forgotten', 'serving'],
  forgotten: ['starting'],
};

/** How many forgotten workers are remembered (the oldest go first). */
const FORGOTTEN_KEPT = 10_000;

/** A dead slave is restarted in place at most DBAAS_SLAVE_RESTARTS_IN_PLACE times within this window; then a fresh slave replaces it. */
export const RESTART_WINDOW_MS = 600_000;

export class WorkerRegistry {
  private readonly entries = new Map<string, Lifecycle>();
  private readonly divergent = new Map<string, string>();
  /** When each worker was restarted in place (exited → starting), for {@link mayRestartInPlace}. */
  private readonly restarts = new Map<string, number[]>();
  /** When the runtime's exit of each worker was seen (registeredAgain). */
  private readonly exitSeenAt = new Map<string, number>();
  /** Workers registered in state `master` while nobody held `/master`: since when (observe). */
  private readonly unclaimed = new Map<string, number>();

  /** The worker's lifecycle, undefined when it is unknown. */
  get(id: string): Lifecycle | undefined {
    return this.entries.get(id);
  }

  phase(id: string): Phase | undefined {
    return this.entries.get(id)?.phase;
  }

  /** Ids of every worker not forgotten. */
  ids(): string[] {
    return [...this.entries].filter(([, l]) => l.phase !== 'forgotten').map(([id]) => id);
  }

  private move(id: string, next: Lifecycle): void {
    const from = this.entries.get(id)?.phase ?? 'none';
    if (!LIFECYCLE_TRANSITIONS[from].includes(next.phase)) throw new Error(`illegal worker lifecycle move for ${id}: ${from} → ${next.phase}`);
    // A re-entered worker goes to the end, so the oldest forgotten are pruned first.
    if (from === 'forgotten') this.entries.delete(id);
    this.entries.set(id, next);
  }

  // ------------------------------------------------------------ moves --

  /** This orchestrator starts the worker (a new one, or a master restarted from its data). */
  start(spec: WorkerSpec): void {
    this.move(spec.id, { phase: 'starting', spec });
  }

  /** A dead worker is started again under its id, from its own data (exited → starting). */
  restartInPlace(spec: WorkerSpec, now = Date.now()): void {
    this.move(spec.id, { phase: 'starting', spec });
    this.restarts.set(spec.id, [...(this.restarts.get(spec.id) ?? []).filter((t) => now - t < RESTART_WINDOW_MS), now]);
  }

  /** Whether a dead worker may be restarted in place: it is exited, and has fewer than `max` restarts in the window. */
  mayRestartInPlace(id: string, max: number, now = Date.now()): boolean {
    return this.phase(id) === 'exited' && (this.restarts.get(id) ?? []).filter((t) => now - t < RESTART_WINDOW_MS).length < max;
  }

  /** It reached the state its role leads to. A worker retired meanwhile stays retiring. */
  started(id: string): void {
    if (this.phase(id) === 'starting') this.move(id, { phase: 'serving' });
  }

  /** Its start failed (it was killed). */
  startFailed(id: string, exit: ExitInfo): void {
    const l = this.entries.get(id);
    if (l?.phase === 'starting') this.move(id, { phase: 'exited', exit: l.exit ?? exit });
  }

  /** The runtime saw it die (at `now`). */
  exit(info: ExitInfo, now = Date.now()): void {
    const l = this.entries.get(info.id);
    if (l?.phase === 'forgotten') return;
    this.exitSeenAt.set(info.id, now);
    if (l?.phase === 'starting') this.move(info.id, { ...l, exit: info });
    else if (l?.phase === 'retiring') this.move(info.id, { phase: 'retiring', exit: info });
    else this.move(info.id, { phase: 'exited', exit: info });
  }

  /**
   * Adopted again running as another process than the one whose exit was seen: another leader restarted it in
   * place under its id meanwhile (exited → serving). Without this a leader elected again took the running master
   * for dead and answered every write 503 (E's fault run).
   */
  runningAgain(id: string, pid: number): void {
    const l = this.entries.get(id);
    if (l?.phase === 'exited' && l.exit.pid !== pid) this.move(id, { phase: 'serving' });
  }

  /**
   * Takes in the workers ZooKeeper shows registered: an exited one whose registration began after
   * its exit was seen runs again, restarted in place under its id by another leader (exited →
   * serving, as {@link runningAgain}). A follower kept the exit its runtime saw, and showed the
   * dead process's pid in `GET /api/v1/workers` (and left the worker out of `/workers/list`).
   */
  registeredAgain(registered: ReadonlyMap<string, WorkerZnode>): void {
    for (const [id, z] of registered) {
      const seen = this.exitSeenAt.get(id);
      if (this.phase(id) === 'exited' && seen !== undefined && Date.parse(z.startedAt) > seen) this.move(id, { phase: 'serving' });
    }
  }

  /** A planned removal begins: its exit from now on is no failure. */
  retire(id: string): void {
    const l = this.entries.get(id);
    if (l?.phase === 'retiring' || l?.phase === 'exited' || l?.phase === 'forgotten') return;
    this.move(id, { phase: 'retiring' });
  }

  /** Removed for good (it was killed, its znodes, queue and data deleted). */
  forget(id: string): void {
    if (this.phase(id) !== 'forgotten') this.move(id, { phase: 'forgotten' });
    this.divergent.delete(id);
    this.restarts.delete(id);
    this.exitSeenAt.delete(id);
    this.unclaimed.delete(id);
    const forgotten = [...this.entries].filter(([, l]) => l.phase === 'forgotten');
    for (const [old] of forgotten.slice(0, Math.max(0, forgotten.length - FORGOTTEN_KEPT))) this.entries.delete(old);
  }

  /**
   * Takes in what ZooKeeper shows now: a worker registered is serving (or
   * serving again), one that had registered and lost its znode while it runs
   * is missing from `now`. Divergence marks of workers nobody knows any more
   * are dropped.
   */
  observe(registered: ReadonlyMap<string, WorkerZnode>, running: (id: string) => boolean, now: number, known: ReadonlySet<string>, masterHolder?: string): void {
    for (const id of registered.keys()) {
      const phase = this.phase(id);
      if (phase === undefined || phase === 'missing') this.move(id, { phase: 'serving' });
    }
    // A master registered while nobody holds /master (unclaimedSince): counted from the first time seen so.
    for (const id of [...this.unclaimed.keys()]) if (masterHolder !== undefined || registered.get(id)?.state !== 'master') this.unclaimed.delete(id);
    if (masterHolder === undefined) {
      for (const [id, z] of registered) if (z.state === 'master' && !this.unclaimed.has(id)) this.unclaimed.set(id, now);
    }
    for (const [id, l] of this.entries) {
      if (l.phase === 'serving' && !registered.has(id) && running(id)) this.move(id, { phase: 'missing', since: now });
    }
    for (const id of [...this.divergent.keys()]) if (!known.has(id)) this.divergent.delete(id);
  }

  // ---------------------------------------------------------- queries --

  isStarting(id: string): boolean {
    return this.phase(id) === 'starting';
  }

  isRetiring(id: string): boolean {
    return this.phase(id) === 'retiring';
  }

  isForgotten(id: string): boolean {
    return this.phase(id) === 'forgotten';
  }

  /** Has had a znode (serving or missing). */
  hasRegistered(id: string): boolean {
    const p = this.phase(id);
    return p === 'serving' || p === 'missing';
  }

  /** Since when its znode is missing while it runs, if it is. */
  missingSince(id: string): number | undefined {
    const l = this.entries.get(id);
    return l?.phase === 'missing' ? l.since : undefined;
  }

  /** Since when it is registered in state `master` while nobody holds `/master`, if it is. */
  unclaimedSince(id: string): number | undefined {
    return this.unclaimed.get(id);
  }

  /** The death the runtime reported, if it did (and the worker is not forgotten). */
  exitOf(id: string): ExitInfo | undefined {
    const l = this.entries.get(id);
    if (l?.phase === 'exited') return l.exit;
    if (l?.phase === 'starting' || l?.phase === 'retiring') return l.exit;
    return undefined;
  }

  /** The spec of a worker being started. */
  specOf(id: string): WorkerSpec | undefined {
    const l = this.entries.get(id);
    return l?.phase === 'starting' ? l.spec : undefined;
  }

  /** Ids being started now. */
  startingIds(): string[] {
    return [...this.entries].filter(([, l]) => l.phase === 'starting').map(([id]) => id);
  }

  /** Ids whose death the runtime reported and that no action has dealt with yet (restarted, forgotten). */
  exitedIds(): string[] {
    return [...this.entries].filter(([, l]) => l.phase === 'exited').map(([id]) => id);
  }

  // -------------------------------------------------------- divergence --

  /** A verify found this worker's data different from the master's (how, as a clause). */
  markDivergent(id: string, why: string): void {
    this.divergent.set(id, why);
  }

  divergenceOf(id: string): string | undefined {
    return this.divergent.get(id);
  }

  clearDivergence(id: string): void {
    this.divergent.delete(id);
  }
}
