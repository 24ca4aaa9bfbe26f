/**
 * The cluster manager: bootstraps or adopts a cluster, then keeps it whole.
 *
 * Watches (ZooKeeper view changes, runtime exits, a periodic tick) only wake the
 * loop; the loop gathers fresh facts, asks {@link decide} for the next action,
 * carries it out, records the reason in the audit log, and asks again until the
 * answer is idle. Only one action runs at a time, so failover and scaling never
 * fight; slaves are started in the background so a failover never waits on one.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Backoff, waitFor } from '../common/backoff.js';
import type { OrchestratorConfig } from '../common/config.js';
import { DbaasError } from '../common/errors.js';
import { masterLostGraceMs, unkillableWaitMs } from '../common/fencing.js';
import type { Logger } from '../common/logger.js';
import { WIRE_VERSION, type ControlMessage, type WorkerStatus } from '../common/messages.js';
import type { ClusterNames } from '../common/names.js';
import { readClusterRecord, writeClusterRecord } from '../coordination/cluster-record.js';
import type { ClusterView, MasterInfo } from '../coordination/cluster-view.js';
import type { ZkPaths } from '../coordination/paths.js';
import { removeWorkerZnodes } from '../coordination/registration.js';
import { bumpTerm } from '../coordination/term.js';
import type { ZkStore } from '../coordination/zk-session.js';
import type { AuditLog } from './audit-log.js';
import { gatherFacts, isRunning, knownIds, pidOf, type FactSources } from './facts.js';
import { decide, type Action, type ClusterFacts, type Decision } from './reconcile.js';
import type { RpcClient } from './rpc-client.js';
import type { Runtime, WorkerSpec } from './runtimes/runtime.js';
import { WorkerRegistry } from './worker-registry.js';

/** What the cluster manager needs of the leader election (coordination/leader-election.ts). */
export interface LeaderGate {
  /** Asks ZooKeeper whether this orchestrator still leads; false deposes it. */
  confirm(): Promise<boolean>;
  /** This leadership's epoch, carried by control messages. */
  readonly epoch: number;
  /** The epoch znode's version set by this leadership: a term bump checks it in the same transaction. */
  readonly epochVersion: number;
}

/** What a planned switchover did. */
export interface SwitchoverResult {
  from: string;
  to: string;
  toPid: number;
  durationMs: number;
}

export interface ClusterDeps {
  /** Absent: this orchestrator always leads (tests that run one without an election). */
  leader?: LeaderGate;
  config: OrchestratorConfig;
  names: ClusterNames;
  paths: ZkPaths;
  runtime: Runtime;
  zk: ZkStore;
  view: ClusterView;
  rpc: RpcClient;
  audit: AuditLog;
  logger: Logger;
}

/** What survives a restart of the whole service: which worker's data is the master's. */
interface ClusterFile {
  masterId: string;
  /** Where that master's data was (the ZooKeeper record only): named when it is missing here. */
  dataDir?: string;
  host?: string;
}

export function newWorkerId(): string {
  return `w${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

const CONTROL_TIMEOUT_MS = 15_000;
/**
 * A promotion drains the candidate's sync queue first, which takes as long as
 * its backlog: a candidate that is still draining must not be given up on (and
 * killed) after the short control timeout.
 */
const PROMOTE_TIMEOUT_MS = 60_000;

export class ClusterManager {
  /** Each worker's lifecycle (starting, serving, missing, retiring, exited, forgotten) and divergence marks. */
  private readonly registry = new WorkerRegistry();
  private switchoverIntent: { target?: string; resolve: (r: SwitchoverResult) => void; reject: (e: unknown) => void } | undefined;
  /** Sync queues of gone workers whose delete failed; retried on each tick. */
  private readonly orphanQueues = new Set<string>();
  private lastMasterId: string | undefined;
  private failingOver = false;
  private stopping = false;
  /** Whether this orchestrator leads: only then does the loop act (lead() and follow()). */
  private leading = false;
  private started = false;
  private looping = false;
  private again = false;
  private tick: NodeJS.Timeout | undefined;
  private lastIdleReason = '';
  private readonly spawnBackoff = new Backoff(500, 30_000);
  private nextSpawnAt = 0;
  /** Lost slaves not yet replaced: the next slave started is audited as their replacement. */
  private lostSlaves = 0;
  /** How many slaves the cluster should have; the autoscaler moves it. */
  targetSlaves: number;

  constructor(private readonly d: ClusterDeps) {
    this.targetSlaves = d.config.initialSlaves;
    d.runtime.onExit((info) => {
      this.registry.exit(info);
      this.kick();
    });
    d.view.on('change', () => this.kick());
  }

  private get clusterFile(): string {
    return path.resolve(this.d.config.dataDir, this.d.config.namespace, 'cluster.json');
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
    await waitFor(() => (view.ready ? true : undefined), 20_000, () => new Error('no ZooKeeper view of the cluster'));
    const previous = this.readClusterFile();
    this.lastMasterId = view.master?.id ?? previous?.masterId;
    this.observe();

    if (adopted.length > 0) {
      const slaves = adopted.filter((w) => w.id !== this.lastMasterId).length;
      this.targetSlaves = Math.min(config.maxSlaves, Math.max(config.initialSlaves, slaves));
      audit.record('adoption', `adopted ${adopted.length} running worker(s) (pids ${adopted.map((w) => w.pid).join(', ')}); master ${this.lastMasterId ?? 'none'}`);
    } else {
      const record = previous === undefined ? await this.readClusterRecord() : undefined;
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
      const term = await this.bumpTerm();
      logger.info({ masterId, term, reused: masterId === recorded }, 'starting the master');
      this.lastMasterId = masterId;
      await this.startWorkerAndWait({ id: masterId, role: 'master', term }, 'master');
      this.writeClusterFile({ masterId });
    }
    this.tick = setInterval(() => {
      this.kick();
      if (this.orphanQueues.size > 0 && this.d.rpc.connected) void this.retryOrphanQueues();
    }, 500);
    this.kick();
    await waitFor(
      () => (this.masterAvailable() && view.servingSlaves().length >= Math.min(this.targetSlaves, config.initialSlaves) ? true : undefined),
      config.workerStartTimeoutMs * 2,
      () => new Error('the cluster did not become ready (a master and the initial slaves serving)'),
      20,
    );
  }

  // ----------------------------------------------------------------- facts --

  private pidOf(id: string): number {
    return pidOf(this.d, id);
  }

  private get factSources(): FactSources {
    return { registry: this.registry, view: this.d.view, runtime: this.d.runtime, lastMasterId: this.lastMasterId, targetSlaves: this.targetSlaves, missingGraceMs: this.missingGraceMs };
  }

  /** Takes in what ZooKeeper shows now (registered, missing): the one place besides the actions where the registry moves. */
  private observe(now = Date.now()): void {
    this.registry.observe(this.d.view.workers, (id) => isRunning(this.factSources, id), now, knownIds(this.factSources));
  }

  /** A fresh, immutable view for {@link decide}; changes nothing. */
  facts(now = Date.now()): ClusterFacts {
    return gatherFacts(this.factSources, now);
  }

  // ------------------------------------------------------------------ loop --

  /** Wakes the loop; cheap and safe to call from any event. */
  kick(): void {
    if (this.looping) {
      this.again = true;
      return;
    }
    this.looping = true;
    setImmediate(() => void this.loop());
  }

  private async loop(): Promise<void> {
    try {
      for (let i = 0; i < 50 && !this.stopping && this.leading && this.d.view.ready && this.d.zk.connected; i++) {
        const intent = this.switchoverIntent;
        if (intent) {
          this.switchoverIntent = undefined;
          if (this.d.leader && !(await this.d.leader.confirm())) {
            intent.reject(new DbaasError('DBAAS_CLUSTER_NO_LEADER', 'this orchestrator no longer leads; retry'));
            break;
          }
          await this.doSwitchover(intent.target).then(intent.resolve, intent.reject);
          continue;
        }
        this.observe();
        const decision = decide(this.facts());
        if (decision.action.kind === 'idle') {
          if (decision.reason !== this.lastIdleReason) this.d.logger.info({ reason: decision.reason }, 'reconcile: idle');
          this.lastIdleReason = decision.reason;
          break;
        }
        this.lastIdleReason = '';
        // A leader that was paused or cut off may have been replaced meanwhile: ask before acting.
        if (this.d.leader && !(await this.d.leader.confirm())) break;
        const acted = await this.execute(decision);
        if (!acted) break;
      }
    } catch (err) {
      this.d.audit.record('error', `reconcile step failed: ${(err as Error).message}`);
    } finally {
      this.looping = false;
      if (this.again) {
        this.again = false;
        this.kick();
      }
    }
  }

  /** Carries out one decision; false when it could not act now (try again on the next tick). */
  private async execute(decision: Decision): Promise<boolean> {
    const action: Action = decision.action;
    switch (action.kind) {
      case 'failover':
        await this.failover(action.candidateId, action.oldMasterId, decision.reason);
        return true;
      case 'restart-master':
        await this.restartMaster(action.id, decision.reason);
        return true;
      case 'remove-lost':
        this.d.audit.record('detection', decision.reason, { details: { id: action.id, role: action.role } });
        await this.forget(action.id);
        this.lostSlaves += 1;
        return true;
      case 'add-slave':
        if (Date.now() < this.nextSpawnAt) return false;
        this.spawnSlave(decision.reason);
        return true;
      case 'retire-slave':
        this.retire(action.id, decision.reason);
        return true;
      case 'replace-divergent':
        await this.replaceDivergent(action.id, decision.reason);
        return true;
      case 'idle':
        return false;
    }
  }

  // --------------------------------------------------------------- actions --

  private async failover(candidateId: string, oldMasterId: string | undefined, reason: string): Promise<void> {
    const { audit, runtime, rpc, names, view } = this.d;
    const started = Date.now();
    this.failingOver = true;
    try {
      audit.record('detection', reason, { details: { oldMaster: oldMasterId, candidate: candidateId } });
      const oldPid = oldMasterId ? this.pidOf(oldMasterId) : undefined;
      // Fence: the old master must be dead before anyone else takes writes.
      if (oldMasterId) {
        const killed = await runtime.kill(oldMasterId);
        if (!killed) {
          await this.waitOutSelfFence(oldMasterId);
          // It may have come back meanwhile (a session renewed after an outage): then it is no longer lost.
          if (view.workers.has(oldMasterId)) {
            audit.record('detection', `master ${oldMasterId} registered again while the failover waited; not failing over`);
            return;
          }
        }
        await this.removeZnodes(oldMasterId);
      }
      const term = await this.bumpTerm();
      const candidatePid = this.pidOf(candidateId);
      try {
        await rpc.call(names.controlQueue(candidateId), { v: WIRE_VERSION, type: 'promote', term, ...this.epochField() } satisfies ControlMessage, {
          timeoutMs: PROMOTE_TIMEOUT_MS,
        });
        await waitFor(() => (view.master?.id === candidateId ? true : undefined), 5000, () => new Error('the promoted worker did not take the master znode'));
      } catch (err) {
        audit.record('error', `promoting ${candidateId} failed (${(err as Error).message}); removing it and trying another`);
        await this.forget(candidateId);
        return;
      }
      this.lastMasterId = candidateId;
      this.writeClusterFile({ masterId: candidateId });
      // The promoted slave's place is now empty: the next slave started replaces it.
      this.lostSlaves += 1;
      audit.record('promotion', `promoted ${candidateId} (pid ${candidatePid}) to master in term ${term}, replacing ${oldMasterId ?? 'none'}${oldPid ? ` (pid ${oldPid})` : ''}`, {
        durationMs: Date.now() - started,
        details: { from: oldMasterId, to: candidateId, term, fromPid: oldPid, toPid: candidatePid },
      });
      if (oldMasterId) await this.forget(oldMasterId);
    } finally {
      this.failingOver = false;
    }
  }

  /**
   * Planned switchover (`POST /api/v1/switchover`): recorded as an intent that the
   * control loop carries out between two other actions, and answered once done.
   */
  switchover(target: string | undefined): Promise<SwitchoverResult> {
    if (!this.leading || this.stopping) return Promise.reject(new DbaasError('DBAAS_CLUSTER_NO_LEADER', 'this orchestrator does not lead'));
    if (this.switchoverIntent) return Promise.reject(new DbaasError('DBAAS_SWITCHOVER_BUSY'));
    return new Promise((resolve, reject) => {
      this.switchoverIntent = { ...(target === undefined ? {} : { target }), resolve, reject };
      this.kick();
    });
  }

  /**
   * The master stops taking writes and finishes those it took (demote), so no
   * batch is cut short; then the target is promoted exactly as in a failover
   * (the old master is killed first, the target drains its queue, the term
   * moves), and a new slave takes the target's place. Writes sent meanwhile
   * wait in the queue for the new master.
   */
  private async doSwitchover(target: string | undefined): Promise<SwitchoverResult> {
    const started = Date.now();
    const master = this.masterAvailable();
    if (!master) throw new DbaasError('DBAAS_CLUSTER_NO_MASTER', 'there is no master to switch over from');
    const serving = this.d.view
      .servingSlaves()
      .filter((w) => !this.registry.isRetiring(w.id) && this.registry.divergenceOf(w.id) === undefined)
      .map((w) => ({ id: w.id, pid: this.pidOf(w.id) }))
      .sort((a, b) => a.pid - b.pid);
    const candidate = target === undefined ? serving[0] : serving.find((w) => w.id === target || String(w.pid) === target);
    if (!candidate) {
      throw new DbaasError('DBAAS_SWITCHOVER_NO_TARGET', target === undefined ? 'no caught-up slave to switch over to' : `${target} is not a caught-up slave (give a worker id or pid from GET /api/v1/workers)`);
    }
    const reason = `planned switchover from master ${master.id} (pid ${this.pidOf(master.id)}) to ${candidate.id} (pid ${candidate.pid})`;
    this.d.audit.record('switchover', reason);
    try {
      await this.d.rpc.call(this.d.names.controlQueue(master.id), { v: WIRE_VERSION, type: 'demote', ...this.epochField() } satisfies ControlMessage, { timeoutMs: CONTROL_TIMEOUT_MS });
    } catch (err) {
      // A master that cannot be demoted is killed by the failover below all the same.
      this.d.logger.warn({ err: (err as Error).message }, 'demote failed; switching over by killing the master');
    }
    await this.failover(candidate.id, master.id, reason);
    if (this.lastMasterId !== candidate.id) throw new DbaasError('DBAAS_SWITCHOVER_NO_TARGET', `promoting ${candidate.id} failed; the cluster recovers as after a master loss`);
    return { from: master.id, to: candidate.id, toPid: candidate.pid, durationMs: Date.now() - started };
  }

  /**
   * The runtime cannot kill a master it does not run, so it cannot be sure it is
   * dead: wait until the master must have fenced itself (it stops taking writes
   * once ZooKeeper has not answered it for selfFenceMs, common/fencing.ts),
   * counted from when its znode vanished.
   */
  private async waitOutSelfFence(id: string): Promise<void> {
    const since = this.registry.missingSince(id) ?? Date.now();
    const until = since + unkillableWaitMs(this.d.config.zkSessionTimeoutMs, this.d.config.zkOutageToleranceMs);
    const waitMs = Math.max(0, until - Date.now());
    this.d.audit.record('detection', `the runtime does not run master ${id}, so it cannot kill it; waiting ${waitMs} ms for it to have fenced itself before promoting another`);
    if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
  }

  private async restartMaster(id: string, reason: string): Promise<void> {
    const started = Date.now();
    this.failingOver = true;
    try {
      this.d.audit.record('detection', reason);
      await this.d.runtime.kill(id);
      await this.removeZnodes(id);
      const term = await this.bumpTerm();
      await this.startWorkerAndWait({ id, role: 'master', term }, 'master');
      this.d.audit.record('restart', `restarted master ${id} (pid ${this.pidOf(id)}) from its own data in term ${term}`, { durationMs: Date.now() - started });
    } catch (err) {
      this.d.audit.record('error', `restarting master ${id} failed: ${(err as Error).message}`);
    } finally {
      this.failingOver = false;
    }
  }

  /** Removes every trace of a worker that is gone for good (it is killed first, to be sure). */
  private async forget(id: string): Promise<void> {
    const { runtime } = this.d;
    await runtime.kill(id);
    await this.removeZnodes(id);
    await this.deleteSyncQueue(id);
    await runtime.remove(id).catch((err: unknown) => this.d.logger.warn({ id, err: (err as Error).message }, 'cleanup failed'));
    this.registry.forget(id);
  }

  /**
   * Deletes a gone worker's durable sync queue, which would otherwise collect every
   * write forever. A delete that fails (broker away) is kept and retried on every
   * tick of the loop until it succeeds.
   */
  private async deleteSyncQueue(id: string): Promise<void> {
    const queue = this.d.names.syncQueue(id);
    try {
      await this.d.rpc.deleteQueue(queue);
      this.orphanQueues.delete(queue);
    } catch (err) {
      if (!this.orphanQueues.has(queue)) this.d.logger.warn({ queue, err: (err as Error).message }, 'could not delete a sync queue; retrying later');
      this.orphanQueues.add(queue);
    }
  }

  private async retryOrphanQueues(): Promise<void> {
    for (const queue of [...this.orphanQueues]) {
      try {
        await this.d.rpc.deleteQueue(queue);
        this.orphanQueues.delete(queue);
      } catch {
        return; // the broker is still away: the next tick tries again
      }
    }
  }

  /** Deletes the znodes a dead worker's session may still hold, so nobody waits for its session to expire. */
  private async removeZnodes(id: string): Promise<void> {
    await removeWorkerZnodes(this.d.zk, this.d.paths, id);
  }

  private spawnSlave(reason: string): void {
    const id = newWorkerId();
    const spec: WorkerSpec = { id, role: 'slave', term: 0 };
    this.registry.start(spec);
    const started = Date.now();
    const replacing = this.lostSlaves > 0;
    if (replacing) this.lostSlaves -= 1;
    this.d.logger.info({ id, reason }, 'starting a slave');
    void this.startWorkerAndWait(spec, 'slave', false)
      .then(() => {
        this.spawnBackoff.reset();
        const what = replacing ? 'replacement slave' : 'new slave';
        this.d.audit.record(replacing ? 'replacement' : 'scaling', `${what} ${id} (pid ${this.pidOf(id)}) caught up and serves reads`, {
          durationMs: Date.now() - started,
          details: { id, startedBecause: reason },
        });
      })
      .catch(async (err: unknown) => {
        const delay = this.spawnBackoff.next();
        this.nextSpawnAt = Date.now() + delay;
        this.d.audit.record('error', `starting slave ${id} failed (${(err as Error).message}); next try in ${delay} ms`);
        await this.forget(id).catch(() => undefined);
      })
      .finally(() => this.kick());
  }

  /** A verify found this slave's data different from the master's: it goes, and the next slave started replaces it. */
  private async replaceDivergent(id: string, reason: string): Promise<void> {
    this.d.audit.record('detection', reason, { details: { id, role: 'slave', divergent: this.registry.divergenceOf(id) } });
    this.registry.clearDivergence(id);
    await this.forget(id);
    this.lostSlaves += 1;
  }

  /** Marks a slave for replacement because a verify found it divergent (see verify.ts); the loop acts on it. */
  markDivergent(id: string, why: string): void {
    if (id === (this.d.view.master?.id ?? this.lastMasterId)) return;
    this.registry.markDivergent(id, why);
    this.kick();
  }

  /** Scale-down: the slave stops taking reads, finishes those in flight, and exits. */
  private retire(id: string, reason: string): void {
    this.registry.retire(id);
    const started = Date.now();
    void (async () => {
      try {
        await this.d.rpc.call(this.d.names.controlQueue(id), { v: WIRE_VERSION, type: 'retire', ...this.epochField() } satisfies ControlMessage, { timeoutMs: CONTROL_TIMEOUT_MS });
      } catch (err) {
        this.d.logger.warn({ id, err: (err as Error).message }, 'retire request failed; stopping the worker');
      }
      await this.d.runtime.stop(id, 10_000);
      await this.forget(id);
      this.d.audit.record('removal', `retired slave ${id}: ${reason}`, { durationMs: Date.now() - started });
    })()
      // A background task must never end the process with an unhandled rejection.
      .catch((err: unknown) => this.d.audit.record('error', `retiring slave ${id} failed: ${(err as Error).message}`))
      .finally(() => this.kick());
  }

  private async startWorkerAndWait(spec: WorkerSpec, state: WorkerStatus['state'], track = true): Promise<void> {
    const started = Date.now();
    // Untracked: the caller put it in `starting` and forgets it when the start fails.
    if (track) this.registry.start(spec);
    try {
      await this.d.runtime.startWorker(spec);
      await waitFor(
        () => {
          if (this.registry.exitOf(spec.id)) return true;
          return this.d.view.workers.get(spec.id)?.state === state ? true : undefined;
        },
        this.d.config.workerStartTimeoutMs,
        () => new Error(`worker ${spec.id} did not reach state ${state} within ${this.d.config.workerStartTimeoutMs} ms`),
        20,
      );
      const exit = this.registry.exitOf(spec.id);
      if (exit) throw new Error(`worker ${spec.id} exited while starting (code ${exit.code}, signal ${exit.signal})`);
    } catch (err) {
      const pid = this.pidOf(spec.id);
      await this.d.runtime.kill(spec.id);
      if (track) this.registry.startFailed(spec.id, { id: spec.id, pid, code: null, signal: 'SIGKILL', expected: true });
      throw err;
    }
    this.registry.started(spec.id);
    this.d.logger.info({ id: spec.id, role: spec.role, pid: this.pidOf(spec.id), ms: Date.now() - started }, 'worker ready');
  }

  /** Increments the persistent term counter in ZooKeeper (optimistic concurrency). */
  private async bumpTerm(): Promise<number> {
    // Fenced by the epoch: a former leader's term bump fails in the same transaction (coordination/term.ts).
    return bumpTerm(this.d.zk, this.d.paths, this.d.leader);
  }

  // ------------------------------------------------------ request path API --

  /** A master that is registered, running, and not being replaced right now. */
  masterAvailable(): MasterInfo | undefined {
    const master = this.d.view.master;
    if (!master || this.failingOver || this.registry.exitOf(master.id)) return undefined;
    return master;
  }

  /** Resolves with the master, waiting up to `DBAAS_MASTER_WAIT_MS` for one; else 503. */
  async requireMaster(): Promise<MasterInfo> {
    if (this.stopping) throw new DbaasError('DBAAS_SHUTTING_DOWN');
    const now = this.masterAvailable();
    if (now) return now;
    return waitFor(
      () => this.masterAvailable(),
      this.d.config.masterWaitMs,
      () => new DbaasError('DBAAS_CLUSTER_NO_MASTER', `no master took over within ${this.d.config.masterWaitMs} ms; retry with the same requestId`),
      10,
    );
  }

  /**
   * Where a read goes: to the slaves (round robin over readQ), or, while no slave
   * serves (say the only one was just promoted), to the master itself, so reads
   * keep being answered through a failover. 503 when neither is there.
   */
  readRoute(): { to: 'slaves' } | { to: 'master'; id: string } {
    if (this.stopping) throw new DbaasError('DBAAS_SHUTTING_DOWN');
    if (this.d.view.servingSlaves().length > 0) {
      this.slavesServedAt = Date.now();
      return { to: 'slaves' };
    }
    const master = this.masterAvailable();
    if (master) return { to: 'master', id: master.id };
    // Slaves served a moment ago and the view lost them (say their sessions were renewed after a
    // ZooKeeper outage): the read waits in readQ for them rather than failing at once.
    if (Date.now() - this.slavesServedAt < this.missingGraceMs) return { to: 'slaves' };
    throw new DbaasError('DBAAS_CLUSTER_NO_SLAVE');
  }

  private slavesServedAt = 0;

  /** Sets the slave target (clamped to the configured bounds) and lets the loop converge. The caller audits why. */
  scaleTo(slaves: number, reason: string): number {
    const target = Math.min(this.d.config.maxSlaves, Math.max(this.d.config.minSlaves, Math.round(slaves)));
    if (target !== this.targetSlaves) this.d.logger.info({ from: this.targetSlaves, to: target, reason }, 'slave target');
    this.targetSlaves = target;
    this.kick();
    return target;
  }

  /** True while a failover or a master restart is in progress. */
  busy(): boolean {
    return this.failingOver;
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
      .filter((w) => !this.registry.isForgotten(w.id))
      .map((w) => ({
        id: w.id,
        role: w.role,
        pid: this.pidOf(w.id),
        state: this.registry.isRetiring(w.id) && w.state === 'slave' ? 'retiring' : w.state,
        appliedSeq: w.appliedSeq,
        lag: w.role === 'master' ? 0 : Math.max(0, masterSeq - w.appliedSeq),
        startedAt: w.startedAt,
        poisonMessages: w.poisonMessages ?? 0,
      }))
      .sort((a, b) => a.pid - b.pid);
  }

  /** Ready: a master and at least one caught-up slave, and the broker reachable. */
  ready(): boolean {
    return !this.stopping && this.d.rpc.connected && this.masterAvailable() !== undefined && this.d.view.servingSlaves().length > 0;
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
    const masterId = this.masterAvailable()?.id;
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

  /** Sends a read to one named worker (master or slave), for checking replicas; `reqId` goes into the worker's log line. */
  async readFrom(id: string, command: unknown, reqId?: string): Promise<unknown> {
    if (!this.d.view.workers.has(id)) throw new DbaasError('DBAAS_ROUTE_NOT_FOUND', `no live worker ${id}`);
    const opts = { timeoutMs: this.d.config.requestTimeoutMs, ...(reqId === undefined ? {} : { reqId }) };
    return this.d.rpc.call(this.d.names.controlQueue(id), { v: WIRE_VERSION, type: 'read', command }, opts);
  }

  /**
   * Stops every worker. Slaves' data and sync queues are removed (a new run starts
   * fresh slaves from a snapshot); the master's data is kept for the next start.
   */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    if (this.tick) clearInterval(this.tick);
    const masterId = this.d.view.master?.id ?? this.lastMasterId;
    // Only workers this runtime runs: a worker known only from ZooKeeper is not ours to stop or delete.
    const slaves = this.d.runtime.list().map((w) => w.id).filter((id) => id !== masterId);
    for (const id of slaves) this.registry.retire(id);
    await Promise.all(slaves.map((id) => this.d.runtime.stop(id, timeoutMs)));
    if (masterId) await this.d.runtime.stop(masterId, timeoutMs);
    await this.d.runtime.close(timeoutMs);
    for (const id of slaves) {
      await this.deleteSyncQueue(id);
      await this.d.runtime.remove(id).catch((err: unknown) => this.d.logger.warn({ id, err: (err as Error).message }, 'cleanup failed'));
    }
  }

  private epochField(): { epoch?: number } {
    return this.d.leader ? { epoch: this.d.leader.epoch } : {};
  }

  /**
   * Takes charge as the elected leader: the first time, adopts the running
   * workers or bootstraps the cluster (see start); after a deposition, simply
   * acts again.
   */
  async lead(): Promise<void> {
    this.leading = true;
    if (!this.started) {
      this.started = true;
      try {
        await this.start();
      } catch (err) {
        this.started = false;
        this.leading = false;
        throw err;
      }
      return;
    }
    this.kick();
  }

  /** Stops acting (another orchestrator leads); the request path keeps working. */
  follow(): void {
    this.leading = false;
  }

  /** True while this orchestrator leads and acts. */
  get isLeading(): boolean {
    return this.leading && !this.stopping;
  }

  /** Stops the control loop without touching the workers (they keep running; a new orchestrator adopts them). */
  detach(): void {
    this.stopping = true;
    if (this.tick) clearInterval(this.tick);
  }

  private readClusterFile(): ClusterFile | undefined {
    if (!existsSync(this.clusterFile)) return undefined;
    try {
      const parsed = JSON.parse(readFileSync(this.clusterFile, 'utf8')) as Partial<ClusterFile>;
      return typeof parsed.masterId === 'string' && parsed.masterId !== '' ? { masterId: parsed.masterId } : undefined;
    } catch {
      return undefined;
    }
  }

  /** The master recorded in ZooKeeper (`/<ns>/cluster`), which outlives a data directory that was deleted. */
  private async readClusterRecord(): Promise<ClusterFile | undefined> {
    return readClusterRecord(this.d.zk, this.d.paths);
  }

  /** Records which worker's data is the master's: in the data directory and in ZooKeeper. */
  private writeClusterFile(file: ClusterFile): void {
    mkdirSync(path.dirname(this.clusterFile), { recursive: true });
    writeFileSync(this.clusterFile, JSON.stringify(file));
    void writeClusterRecord(this.d.zk, this.d.paths, { ...file, dataDir: path.resolve(this.d.config.dataDir), host: os.hostname() }).catch((err: unknown) => this.d.logger.warn({ err: (err as Error).message }, 'could not record the master in ZooKeeper'));
  }
}
