/**
 * The orchestrator's control loop as one pure step: given a fresh view of the
 * cluster, decide the single next action and say why in one sentence.
 *
 * The caller ({@link ClusterManager}) gathers the facts, runs `decide`, carries
 * the action out, logs the sentence in the audit log, and asks again until the
 * answer is `idle`. Nothing here touches a process, a queue or a znode.
 */

export interface WorkerFact {
  id: string;
  role: 'master' | 'slave';
  /** State from its znode; `unregistered` while it has no znode. */
  state: string;
  /** OS pid (the runtime's view: container State.Pid for Docker). */
  pid: number;
  appliedSeq: number;
  /** The runtime says its processes run. False is a certain death. */
  running: boolean;
  /** Has a znode now. */
  registered: boolean;
  /** Had a znode at some point (so a missing one means it was lost, not that it is starting). */
  everRegistered: boolean;
  /** When its znode was first seen missing while it ran (ms since epoch). */
  missingSince?: number;
  /** Being started by us right now. */
  starting: boolean;
  /** Marked for a planned removal (scale-down, shutdown): its exit is not a failure. */
  retiring: boolean;
  /** A verify found its data different from the master's: how (a clause, e.g. "differs from the master at seq 9 in table(s) rides"). */
  divergent?: string;
  /**
   * False while its request ledger does not yet cover the retry horizon
   * (worker/request-ledger.ts): promoted, it could apply a retried write twice.
   * Undefined (an older worker that does not say) counts as true.
   */
  promotable?: boolean;
  /**
   * A dead slave that may be restarted in place (its data is still on disk and it has
   * not used up its restarts in place): it resumes from its own data and durable sync
   * queue (worker/slave-role.ts resume) instead of a fresh slave copying everything.
   */
  restartable?: boolean;
  /**
   * A worker registered in state `master` while nobody holds `/master`: since when (ms since epoch).
   * It runs and says it is master, but takes no writes (the router and the slaves find no master).
   */
  unclaimedSince?: number;
}

export interface ClusterFacts {
  now: number;
  workers: WorkerFact[];
  /** Holder of the master znode, if any. */
  masterId?: string;
  /** The last master this orchestrator knew of (kept across its own ZooKeeper view changes). */
  lastMasterId?: string;
  /** The old master's data is still on disk and it can be restarted in place (false while it runs: not asked then). */
  lastMasterDataAvailable: boolean;
  targetSlaves: number;
  /** How long a running worker may be missing from ZooKeeper before it is declared lost. */
  missingGraceMs: number;
}

export type Action =
  | { kind: 'idle' }
  | { kind: 'failover'; oldMasterId?: string; candidateId: string }
  | { kind: 'restart-master'; id: string }
  | { kind: 'remove-lost'; id: string; role: 'master' | 'slave' }
  | { kind: 'restart-slave'; id: string }
  | { kind: 'add-slave' }
  | { kind: 'retire-slave'; id: string }
  | { kind: 'replace-divergent'; id: string };

export interface Decision {
  action: Action;
  reason: string;
}

function describe(w: WorkerFact): string {
  return `${w.id} (pid ${w.pid})`;
}

/**
 * How long a registered master may go without holding `/master` before it counts as lost: twice the
 * grace of a vanished znode, as a master whose session expired takes `/master` back on its next
 * session only once its fence is done (worker/fencing.ts), which waits for a snapshot in flight.
 */
export function unclaimedGraceMs(missingGraceMs: number): number {
  return 2 * missingGraceMs;
}

/** Why a worker counts as lost, or undefined if it does not. */
export function lostBecause(w: WorkerFact, f: Pick<ClusterFacts, 'now' | 'missingGraceMs'>): string | undefined {
  if (w.starting || w.retiring) return undefined;
  if (!w.running) return 'its process exited';
  if (w.everRegistered && !w.registered && w.missingSince !== undefined && f.now - w.missingSince >= f.missingGraceMs) {
    return `its ZooKeeper session ended ${f.now - w.missingSince} ms ago and it has not registered again`;
  }
  if (w.registered && w.unclaimedSince !== undefined && f.now - w.unclaimedSince >= unclaimedGraceMs(f.missingGraceMs)) {
    return `it has run registered as master without holding /master for ${f.now - w.unclaimedSince} ms, so it takes no writes`;
  }
  return undefined;
}

export function decide(f: ClusterFacts): Decision {
  const byId = new Map(f.workers.map((w) => [w.id, w]));
  const currentMasterId = f.masterId ?? f.lastMasterId;
  const master = currentMasterId === undefined ? undefined : byId.get(currentMasterId);
  const masterLost = master === undefined ? 'it is not running' : lostBecause(master, f);
  const masterStarting = master?.starting === true;

  if (currentMasterId !== undefined && masterLost !== undefined && !masterStarting) {
    const caughtUp = f.workers
      .filter((w) => w.role === 'slave' && w.state === 'slave' && w.registered && lostBecause(w, f) === undefined && !w.retiring && w.divergent === undefined)
      .sort((a, b) => a.pid - b.pid);
    const candidate = caughtUp.find((w) => w.promotable !== false);
    if (candidate) {
      return {
        action: { kind: 'failover', oldMasterId: currentMasterId, candidateId: candidate.id },
        reason: `master ${master ? describe(master) : currentMasterId} is lost (${masterLost}); promoting ${describe(candidate)}, the lowest-pid caught-up slave whose request ledger covers the retry horizon`,
      };
    }
    const incomplete = caughtUp.length > 0 ? ` (${caughtUp.map(describe).join(', ')} caught up, but no request ledger covering the retry horizon yet)` : '';
    // A master that runs but takes no writes (unclaimed) is killed by the restart, as by a failover.
    if (f.lastMasterDataAvailable && (!master?.running || master.unclaimedSince !== undefined)) {
      return {
        action: { kind: 'restart-master', id: currentMasterId },
        reason: `master ${currentMasterId} is lost (${masterLost}) and no caught-up slave can take over${incomplete}; restarting it from its own data`,
      };
    }
    if (incomplete === '') return { action: { kind: 'idle' }, reason: `master ${currentMasterId} is lost and no slave is caught up yet; waiting` };
    return { action: { kind: 'idle' }, reason: `master ${currentMasterId} is lost and no slave can take over yet${incomplete}; waiting` };
  }

  for (const w of f.workers) {
    if (w.role !== 'slave' || w.id === currentMasterId) continue;
    const why = lostBecause(w, f);
    if (why !== undefined) {
      if (!w.running && w.restartable === true && w.divergent === undefined) {
        return { action: { kind: 'restart-slave', id: w.id }, reason: `slave ${describe(w)} is lost (${why}); restarting it in place to resume from its own data` };
      }
      return { action: { kind: 'remove-lost', id: w.id, role: 'slave' }, reason: `slave ${describe(w)} is lost (${why}); removing it` };
    }
  }

  if (currentMasterId === undefined || masterStarting || master?.state !== 'master') {
    return { action: { kind: 'idle' }, reason: 'no master yet; slaves wait for one' };
  }

  // Only with a live master: the replacement copies its data.
  for (const w of f.workers) {
    if (w.role !== 'slave' || w.id === currentMasterId || w.retiring || w.divergent === undefined) continue;
    return {
      action: { kind: 'replace-divergent', id: w.id },
      reason: `slave ${describe(w)} ${w.divergent}; removing it so that a fresh copy of the master replaces it`,
    };
  }

  const slaves = f.workers.filter((w) => w.role === 'slave' && !w.retiring && w.id !== currentMasterId);
  if (slaves.length < f.targetSlaves) {
    return {
      action: { kind: 'add-slave' },
      reason: `${slaves.length} slave(s) for a target of ${f.targetSlaves}; starting one`,
    };
  }
  if (slaves.length > f.targetSlaves) {
    const serving = slaves.filter((w) => w.state === 'slave' && !w.starting).sort((a, b) => b.pid - a.pid);
    const victim = serving[0];
    if (victim && serving.length > 1) {
      return {
        action: { kind: 'retire-slave', id: victim.id },
        reason: `${slaves.length} slaves for a target of ${f.targetSlaves}; retiring ${describe(victim)}, the highest pid`,
      };
    }
  }
  return { action: { kind: 'idle' }, reason: `steady: master ${currentMasterId}, ${slaves.length} slave(s)` };
}
