/**
 * The cluster manager: bootstraps or adopts a cluster, then keeps it whole.
 *
 * It wires the parts and is what the rest of the orchestrator holds:
 * - worker-registry.ts: each worker's lifecycle (one union, moved only by the
 *   actions and by observe());
 * - facts.ts: the facts decide() reads (reading changes nothing);
 * - control-loop.ts: wake, observe, decide (reconcile.ts), act, repeat;
 * - failover.ts (the master: failover, switchover, restart) and
 *   worker-actions.ts (start, replace, scale, retire, forget);
 * - request-router.ts: where requests go (requireMaster, readRoute, readFrom).
 * What stays here: the bootstrap (adopt, or start the recorded master), the
 * leader's lead/follow, stop, and the reads the API answers (pids, workers).
 */
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from '../common/backoff.js';
import { DbaasError } from '../common/errors.js';
import { masterLostGraceMs } from '../common/fencing.js';
import { readClusterRecord } from '../coordination/cluster-record.js';
import type { MasterInfo } from '../coordination/cluster-view.js';
import { readClusterFile, writeClusterFile } from './cluster-file.js';
import { newWorkerId, type ClusterDeps, type ControlState, type SwitchoverResult } from './cluster-state.js';
import { ControlLoop } from './control-loop.js';
import { gatherFacts, isRunning, knownIds, pidOf, type FactSources } from './facts.js';
import { Failover } from './failover.js';
import { ObservedPids } from './observed-pids.js';
import type { ClusterFacts } from './reconcile.js';
import { RequestRouter } from './request-router.js';
import { WorkerActions } from './worker-actions.js';
import { WorkerRegistry } from './worker-registry.js';

export type { ClusterDeps, LeaderGate, SwitchoverResult } from './cluster-state.js';
export { newWorkerId } from './cluster-state.js';

export class ClusterManager {
  private readonly s: ControlState;
  /** Where requests go; the HTTP API asks it (app.ts). */
  readonly router: RequestRouter;
  private readonly workers: WorkerActions;
  private readonly failover: Failover;
  private readonly loop: ControlLoop;
  /** Host pids read from the engine while following (the leader's runtime knows them; a worker in a container says pid 1). */
  private readonly observed: ObservedPids;
  private started = false;

  constructor(private readonly d: ClusterDeps) {
    this.s = { registry: new WorkerRegistry(), lastMasterId: undefined, failingOver: false, stopping: false, leading: false, targetSlaves: d.config.initialSlaves };
    this.router = new RequestRouter(d, this.s);
    this.workers = new WorkerActions(d, this.s, () => this.kick());
    this.failover = new Failover(d, this.s, this.workers, this.router);
    this.loop = new ControlLoop(d, this.s, { failover: this.failover, workers: this.workers, observe: () => this.observe(), facts: () => this.facts() });
    d.runtime.onExit((info) => {
      this.s.registry.exit(info);
      this.kick();
    });
    this.observed = new ObservedPids(d.runtime, d.view, d.logger);
    d.view.on('change', () => {
      // What ZooKeeper shows, as observe() takes it in: a leader's loop restarts workers itself, a follower only sees it.
      if (!this.s.leading) this.s.registry.registeredAgain(d.view.workers);
      this.kick();
      void this.refreshPids();
    });
  }

  /** While following: reads the host pids of newly registered workers from the engine (bounded; the leader's runtime already knows them). */
  async refreshPids(): Promise<void> {
    if (!this.s.leading) await this.observed.refresh();
  }

  /** How many slaves the cluster should have; the autoscaler moves it (scaleTo). */
  get targetSlaves(): number {
    return this.s.targetSlaves;
  }

  /** How long a worker's znode must be missing before it counts as lost: longer than a master takes to fence itself (common/fencing.ts). */
  private get missingGraceMs(): number {
    return masterLostGraceMs(this.d.config.zkSessionTimeoutMs);
  }

  /**
   * Adopts workers a previous orchestrator left running, or bootstraps a cluster
   * (restarting the previous master from its data when there is one), and
   * resolves once a master and the initial slaves serve.
   */
  async start(): Promise<void> {
    const { config, logger, audit, view } = this.d;
    const adopted = await this.d.runtime.adopt();
    await waitFor(() => (view.ready || this.s.startInterrupted ? true : undefined), 20_000, () => new Error('no ZooKeeper view of the cluster'));
    this.endIfInterrupted();
    const previous = readClusterFile(config);
    this.s.lastMasterId = view.master?.id ?? previous?.masterId;
    this.observe();

    if (adopted.length > 0) {
      const slaves = adopted.filter((w) => w.id !== this.s.lastMasterId).length;
      this.s.targetSlaves = Math.min(config.maxSlaves, Math.max(config.initialSlaves, slaves));
      audit.record('adoption', `adopted ${adopted.length} running worker(s) (pids ${adopted.map((w) => w.pid).join(', ')}); master ${this.s.lastMasterId ?? 'none'}`);
    } else {
      const record = previous === undefined ? await readClusterRecord(this.d.zk, this.d.paths) : undefined;
      const recorded = previous?.masterId ?? record?.masterId;
      let masterId = recorded ?? newWorkerId();
      // A record left by a deployment of this namespace from another data directory of this machine that
      // is gone altogether (a deleted checkout sharing the machine's ZooKeeper): not this cluster's data.
      const goneElsewhere =
        previous === undefined &&
        record?.dataDir !== undefined &&
        record.dataDir !== path.resolve(config.dataDir) &&
        record.host === os.hostname() &&
        !existsSync(record.dataDir);
      if (recorded !== undefined && goneElsewhere && !(this.d.runtime.hasData?.(recorded) ?? true)) {
        audit.record('restart', `namespace ${config.namespace} recorded master ${recorded} in ${record?.dataDir ?? '?'}, a data directory that no longer exists on this machine; starting a new cluster here`);
        masterId = newWorkerId();
      } else if (recorded !== undefined && !(this.d.runtime.hasData?.(recorded) ?? true)) {
        // The namespace had a cluster whose master data is gone: starting empty would silently drop
        // every acknowledged write. Only an operator who means it may do that.
        if (!config.forceNewCluster) {
          throw new DbaasError(
            'DBAAS_CLUSTER_DATA_MISSING',
            `namespace ${config.namespace} records master ${recorded}` +
              (record?.dataDir && record.dataDir !== path.resolve(config.dataDir) ? ` with its data in ${record.dataDir}${record.host ? ` on ${record.host}` : ''} (another checkout or data directory?)` : '') +
              `, but its data is not in ${path.resolve(config.dataDir, config.namespace)} (or its volume); ` +
              'restore it, point DBAAS_DATA_DIR at it, use another DBAAS_NAMESPACE, or start an empty cluster on purpose with DBAAS_FORCE_NEW_CLUSTER=1',
          );
        }
        audit.record('restart', `DBAAS_FORCE_NEW_CLUSTER=1: master ${recorded}'s data is missing; starting an empty cluster`);
        masterId = newWorkerId();
      }
      const term = await this.failover.bumpTerm();
      this.endIfInterrupted();
      logger.info({ masterId, term, reused: masterId === recorded }, 'starting the master');
      this.s.lastMasterId = masterId;
      this.startingMaster = masterId;
      try {
        await this.workers.startWorkerAndWait({ id: masterId, role: 'master', term }, 'master');
      } finally {
        this.startingMaster = undefined;
      }
      writeClusterFile(this.d, { masterId });
    }
    this.endIfInterrupted();
    this.loop.startTicking();
    this.kick();
    const initial = Math.min(this.s.targetSlaves, config.initialSlaves);
    await waitFor(
      () => (this.s.startInterrupted || (this.router.masterAvailable() && view.servingSlaves().length >= initial) ? true : undefined),
      config.workerStartTimeoutMs * 2,
      () => new Error('the cluster did not become ready (a master and the initial slaves serving)'),
      20,
    );
    this.endIfInterrupted();
    // A slave serves before its request ledger is copied, and is a failover candidate once it is (issue 16):
    // the start also waits for that, bounded, so that a master lost right after the start has a slave to take over.
    await waitFor(
      () => (this.s.startInterrupted || view.servingSlaves().filter((w) => w.promotable !== false).length >= initial ? true : undefined),
      config.workerStartTimeoutMs,
      () => new Error('no promotable slave yet'),
      20,
    ).catch(() => logger.warn({ waitedMs: config.workerStartTimeoutMs }, 'the initial slaves serve, but their request ledgers are not copied yet: a master lost now is restarted in place'));
    this.endIfInterrupted();
  }

  /**
   * A signal during the start (main.ts): the start ends at its next step (a worker it waits for is
   * killed), no slave is started meanwhile, and the caller stops what it started as after a start.
   */
  interruptStart(): void {
    this.s.startInterrupted = true;
    this.loop.stopTicking();
    // A master still starting (its database not listening yet, say) is stopped now, its start cancelled.
    if (this.startingMaster !== undefined) void this.d.runtime.stop(this.startingMaster, 10_000).catch(() => undefined);
  }

  /** The master start() is starting, while it does. */
  private startingMaster: string | undefined;

  private endIfInterrupted(): void {
    if (this.s.startInterrupted) throw new DbaasError('DBAAS_SHUTTING_DOWN', 'the cluster start was interrupted');
  }

  // ----------------------------------------------------------------- facts --

  private pidOf(id: string): number {
    return pidOf(this.factSources, id);
  }

  private get factSources(): FactSources {
    const s = this.s;
    return { registry: s.registry, view: this.d.view, runtime: this.d.runtime, lastMasterId: s.lastMasterId, targetSlaves: s.targetSlaves, missingGraceMs: this.missingGraceMs, restartsInPlace: this.d.config.slaveRestartsInPlace, observed: this.observed };
  }

  /** Takes in what ZooKeeper shows now (registered, missing): the one place besides the actions where the registry moves. */
  private observe(now = Date.now()): void {
    this.s.registry.observe(this.d.view.workers, (id) => isRunning(this.factSources, id), now, knownIds(this.factSources), this.d.view.master?.id);
  }

  /** A fresh, immutable view for {@link decide}; changes nothing. */
  facts(now = Date.now()): ClusterFacts {
    return gatherFacts(this.factSources, now);
  }

  /** Wakes the control loop; cheap and safe to call from any event. */
  kick(): void {
    this.loop.kick();
  }

  /** Planned switchover (`POST /api/v1/switchover`), carried out by the control loop between two actions. */
  switchover(target: string | undefined): Promise<SwitchoverResult> {
    return this.loop.switchover(target);
  }

  /** Marks a slave for replacement because a verify found it divergent (see verify.ts); the loop acts on it. */
  markDivergent(id: string, why: string): void {
    if (id === (this.d.view.master?.id ?? this.s.lastMasterId)) return;
    this.s.registry.markDivergent(id, why);
    this.kick();
  }

  // ------------------------------------------------ the request path (router) --

  /** A master that is registered, running, and not being replaced right now. */
  masterAvailable(): MasterInfo | undefined {
    return this.router.masterAvailable();
  }

  /** Resolves with the master, waiting up to `DBAAS_MASTER_WAIT_MS` for one; else 503 (verify.ts waits so). */
  requireMaster(): Promise<MasterInfo> {
    return this.router.requireMaster();
  }

  /** Ready: a master and at least one caught-up slave, and the broker reachable. */
  ready(): boolean {
    return this.router.ready();
  }

  /** Sets the slave target (clamped to the configured bounds) and lets the loop converge. The caller audits why. */
  scaleTo(slaves: number, reason: string): number {
    const target = Math.min(this.d.config.maxSlaves, Math.max(this.d.config.minSlaves, Math.round(slaves)));
    if (target !== this.s.targetSlaves) this.d.logger.info({ from: this.s.targetSlaves, to: target, reason }, 'slave target');
    this.s.targetSlaves = target;
    this.kick();
    return target;
  }

  /** True while a failover or a master restart is in progress. */
  busy(): boolean {
    return this.s.failingOver;
  }

  /** The last worker start, when it failed, with its cause (cleared once a start succeeds). */
  startFailure(): { id: string; role: string; at: string; message: string } | undefined {
    return this.workers.lastStartFailure;
  }

  /** Sorted OS pids of all live workers. */
  pids(): number[] {
    return this.facts()
      .workers.filter((w) => w.running && (w.registered || w.starting) && w.pid > 0)
      .map((w) => w.pid)
      .sort((a, b) => a - b);
  }

  /** Every registered worker with its role, state, pid, applied seq and lag behind the master. */
  workersDetail(): Array<{ id: string; role: string; pid: number; state: string; appliedSeq: number; lag: number; startedAt: string; poisonMessages: number }> {
    const { view } = this.d;
    const masterSeq = view.masterStatus()?.appliedSeq ?? 0;
    return [...view.workers.values()]
      .filter((w) => !this.s.registry.isForgotten(w.id))
      .map((w) => ({
        id: w.id,
        role: w.role,
        pid: this.pidOf(w.id),
        state: this.s.registry.isRetiring(w.id) && w.state === 'slave' ? 'retiring' : w.state,
        appliedSeq: w.appliedSeq,
        lag: w.role === 'master' ? 0 : Math.max(0, masterSeq - w.appliedSeq),
        startedAt: w.startedAt,
        poisonMessages: w.poisonMessages ?? 0,
      }))
      .sort((a, b) => a.pid - b.pid);
  }

  /**
   * Fault drill: SIGKILLs the master, or the slave with the highest pid, and
   * returns its pid. Recovery then runs as for any death (at once: the runtime
   * sees the exit). 409 when there is none to kill.
   */
  async crash(role: 'master' | 'slave'): Promise<number> {
    const facts = this.facts();
    // A worker still being started counts once it serves; a replacement still catching up does not.
    const alive = facts.workers.filter((w) => w.running && w.registered && !w.retiring && (!w.starting || w.state === 'slave'));
    const masterId = this.router.masterAvailable()?.id;
    const victim =
      role === 'master'
        ? alive.find((w) => w.id === masterId)
        : alive.filter((w) => w.role === 'slave' && w.id !== masterId).sort((a, b) => b.pid - a.pid)[0];
    if (!victim) throw new DbaasError('DBAAS_CRASH_NOTHING_TO_KILL', `there is no live ${role} to kill`);
    this.d.audit.record('crash-drill', `crash drill: killing ${role} ${victim.id} (pid ${victim.pid})`, { details: { id: victim.id, pid: victim.pid, role } });
    await this.d.runtime.kill(victim.id);
    this.kick();
    return victim.pid;
  }

  /**
   * Stops every worker. Slaves' data and sync queues are removed (a new run starts
   * fresh slaves from a snapshot); the master's data is kept for the next start.
   */
  async stop(timeoutMs: number): Promise<void> {
    this.s.stopping = true;
    this.loop.stopTicking();
    const masterId = this.d.view.master?.id ?? this.s.lastMasterId;
    // Only workers this runtime runs: a worker known only from ZooKeeper is not ours to stop or delete.
    const slaves = this.d.runtime.list().map((w) => w.id).filter((id) => id !== masterId);
    for (const id of slaves) this.s.registry.retire(id);
    await Promise.all(slaves.map((id) => this.d.runtime.stop(id, timeoutMs)));
    if (masterId) await this.d.runtime.stop(masterId, timeoutMs);
    await this.d.runtime.close(timeoutMs);
    for (const id of slaves) {
      await this.workers.deleteSyncQueue(id);
      await this.d.runtime.remove(id).catch((err: unknown) => this.d.logger.warn({ id, err: (err as Error).message }, 'cleanup failed'));
    }
  }

  /**
   * Takes charge as the elected leader: the first time, adopts the running
   * workers or bootstraps the cluster (see start); after a deposition, adopts
   * the workers another leader started meanwhile, and acts again.
   */
  async lead(): Promise<void> {
    this.s.leading = true;
    if (!this.started) {
      this.started = true;
      try {
        await this.start();
      } catch (err) {
        this.started = false;
        this.s.leading = false;
        throw err;
      }
      return;
    }
    // Without them this leader could not stop or kill those workers: a crash drill answered a pid it did not kill
    // (or the dead one it remembered), and a switchover from a master it did not run waited for that master to fence
    // itself, gave up and held writes meanwhile (found by fault testing two npm starts).
    // The master may have changed while another leader led (a promotion, a switchover): the one this orchestrator
    // knew from its own leadership may be gone, data and all. Its master is the one recorded now, as at a first start
    // (E's fault run: elected again with the new master dead, it waited for a promotable slave with no master for minutes).
    // ZooKeeper's record before this host's file: the other leader may have run on another host, whose file this is not.
    const recorded = await readClusterRecord(this.d.zk, this.d.paths).catch((err: unknown) => {
      this.d.logger.warn({ err: (err as Error).message }, "leading again: could not read ZooKeeper's record of the master; using this host's");
      return undefined;
    });
    this.s.lastMasterId = this.d.view.master?.id ?? recorded?.masterId ?? readClusterFile(this.d.config)?.masterId ?? this.s.lastMasterId;
    try {
      const adopted = await this.d.runtime.adopt();
      for (const w of adopted) this.s.registry.runningAgain(w.id, w.pid);
      this.d.logger.info({ workers: adopted.length, master: this.s.lastMasterId }, 'leading again: adopted the running workers');
    } catch (err) {
      this.d.logger.warn({ err: (err as Error).message }, 'leading again: adopting the running workers failed; acting on those known');
    }
    this.kick();
  }

  /** Stops acting (another orchestrator leads); the request path keeps working. */
  follow(): void {
    this.s.leading = false;
  }

  /** True while this orchestrator leads and acts. */
  get isLeading(): boolean {
    return this.s.leading && !this.s.stopping;
  }

  /** Stops the control loop without touching the workers (they keep running; a new orchestrator adopts them). */
  detach(): void {
    this.s.stopping = true;
    this.loop.stopTicking();
  }
}
