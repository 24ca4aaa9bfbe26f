/**
 * The facts the control loop decides on (reconcile.ts), read from the worker
 * registry, the ZooKeeper view and the runtime: a fresh, immutable picture.
 * Reading them changes nothing (GET /api/v1/workers/list reads them too); the
 * registry moves only through its actions and `observe()`.
 */
import type { ClusterView } from '../coordination/cluster-view.js';
import type { ObservedPids } from './observed-pids.js';
import { unclaimedGraceMs, type ClusterFacts, type WorkerFact } from './reconcile.js';
import type { Runtime } from './runtimes/runtime.js';
import type { WorkerRegistry } from './worker-registry.js';

export interface FactSources {
  registry: WorkerRegistry;
  view: Pick<ClusterView, 'workers' | 'master'>;
  runtime: Pick<Runtime, 'list' | 'hasData'>;
  /** The last master this orchestrator knew of. */
  lastMasterId: string | undefined;
  targetSlaves: number;
  missingGraceMs: number;
  /** DBAAS_SLAVE_RESTARTS_IN_PLACE (absent: 0, never). */
  restartsInPlace?: number;
  /** Host pids a follower read from the engine (observed-pids.ts), for workers another orchestrator runs. */
  observed?: Pick<ObservedPids, 'get'>;
}

/**
 * The worker's pid as the host sees it: the runtime's while it runs, the one its exit
 * was reported with once it died, else the one a follower read from the engine, else what
 * its znode says (inside a container that is the container's own pid, 1), else 0.
 */
export function pidOf(s: Pick<FactSources, 'runtime' | 'view' | 'registry' | 'observed'>, id: string): number {
  return s.runtime.list().find((w) => w.id === id)?.pid ?? s.registry.exitOf(id)?.pid ?? s.observed?.get(id) ?? s.view.workers.get(id)?.pid ?? 0;
}

/** Whether the worker runs: being started, run by our runtime, or (known only from ZooKeeper) registered and not seen dying. */
export function isRunning(s: Pick<FactSources, 'registry' | 'runtime' | 'view'>, id: string): boolean {
  const { registry } = s;
  if (registry.isStarting(id)) return true;
  if (registry.isForgotten(id)) return false;
  if (s.runtime.list().some((w) => w.id === id)) return true;
  return s.view.workers.has(id) && registry.exitOf(id) === undefined;
}

/**
 * Every worker anyone knows of: the runtime's, ZooKeeper's, those being started, and the dead ones
 * not yet dealt with. A dead slave stays a fact until it is restarted in place or forgotten: once its
 * znode had expired (the loop busy restarting the master meanwhile) it was left out, so it was neither
 * restarted from its data nor removed, and its data and sync queue stayed behind (session 8).
 */
export function knownIds(s: Pick<FactSources, 'registry' | 'runtime' | 'view'>): Set<string> {
  return new Set<string>([...s.runtime.list().map((w) => w.id), ...s.view.workers.keys(), ...s.registry.startingIds(), ...s.registry.exitedIds()]);
}

function unclaimedTooLong(s: FactSources, id: string, now: number): boolean {
  const since = s.registry.unclaimedSince(id);
  return s.view.master === undefined && since !== undefined && now - since >= unclaimedGraceMs(s.missingGraceMs);
}

/** A fresh, immutable view for {@link decide}; changes nothing. */
export function gatherFacts(s: FactSources, now = Date.now()): ClusterFacts {
  const { view, registry } = s;
  const workers: WorkerFact[] = [];
  for (const id of knownIds(s)) {
    if (registry.isForgotten(id)) continue;
    const status = view.workers.get(id);
    const missing = registry.missingSince(id);
    const divergent = registry.divergenceOf(id);
    // Only while nobody holds /master now (facts may be read between two observe()s).
    const unclaimed = view.master === undefined ? registry.unclaimedSince(id) : undefined;
    workers.push({
      id,
      role: status?.role ?? registry.specOf(id)?.role ?? (id === s.lastMasterId ? 'master' : 'slave'),
      state: status?.state ?? 'unregistered',
      pid: pidOf(s, id),
      appliedSeq: status?.appliedSeq ?? 0,
      running: isRunning(s, id),
      registered: status !== undefined,
      everRegistered: status !== undefined || registry.hasRegistered(id),
      ...(missing === undefined ? {} : { missingSince: missing }),
      starting: registry.isStarting(id),
      retiring: registry.isRetiring(id),
      ...(divergent === undefined ? {} : { divergent }),
      ...(unclaimed === undefined ? {} : { unclaimedSince: unclaimed }),
      ...(status?.promotable === undefined ? {} : { promotable: status.promotable }),
      // Only a dead one is asked about (hasData may ask the database server).
      ...(registry.mayRestartInPlace(id, s.restartsInPlace ?? 0, now) ? { restartable: s.runtime.hasData?.(id) ?? false } : {}),
    });
  }
  const masterId = view.master?.id;
  const lastMaster = masterId ?? s.lastMasterId;
  return {
    now,
    workers,
    ...(masterId === undefined ? {} : { masterId }),
    ...(s.lastMasterId === undefined ? {} : { lastMasterId: s.lastMasterId }),
    // Only asked while that master is not running (decide() uses it then alone): on PostgreSQL storage
    // hasData runs psql synchronously, which, asked on every step, held the event loop (and every
    // request) up to 39% of the time under load (issue 17: updates, docs/BENCHMARKS.md).
    // Also once a master that runs has gone without /master past the grace (decide() may restart it then): a rare state.
    lastMasterDataAvailable: lastMaster !== undefined && (!isRunning(s, lastMaster) || unclaimedTooLong(s, lastMaster, now)) && (s.runtime.hasData?.(lastMaster) ?? false),
    targetSlaves: s.targetSlaves,
    missingGraceMs: s.missingGraceMs,
  };
}
