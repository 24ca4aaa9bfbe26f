/**
 * The control loop. Watches (ZooKeeper view changes, runtime exits, a
 * periodic tick) only wake it; each step takes in what ZooKeeper shows
 * (`observe`), gathers fresh facts, asks {@link decide} for the next action,
 * confirms this orchestrator still leads, carries the action out, and asks
 * again until the answer is idle. Only one action runs at a time, so failover
 * and scaling never fight; slaves are started in the background so a failover
 * never waits on one. A planned switchover is recorded as an intent and
 * carried out between two steps.
 */
import { DbaasError } from '../common/errors.js';
import type { ClusterDeps, ControlState, SwitchoverResult } from './cluster-state.js';
import type { Failover } from './failover.js';
import { decide, type Action, type ClusterFacts, type Decision } from './reconcile.js';
import type { WorkerActions } from './worker-actions.js';

/** Steps of one wake-up at most (the next tick goes on). */
const MAX_STEPS = 50;

export class ControlLoop {
  private looping = false;
  private again = false;
  private lastIdleReason = '';
  private switchoverIntent: { target?: string; resolve: (r: SwitchoverResult) => void; reject: (e: unknown) => void } | undefined;
  private tick: NodeJS.Timeout | undefined;

  constructor(
    private readonly d: Pick<ClusterDeps, 'leader' | 'view' | 'zk' | 'audit' | 'logger'>,
    private readonly s: ControlState,
    private readonly parts: {
      failover: Failover;
      workers: WorkerActions;
      /** Takes in what ZooKeeper shows now (the registry's observe). */
      observe(): void;
      /** A fresh, immutable picture for decide(). */
      facts(): ClusterFacts;
    },
  ) {}

  /** Wakes the loop every 500 ms (and retries failed sync-queue deletes). Idempotent. */
  startTicking(): void {
    this.tick ??= setInterval(() => {
      this.kick();
      void this.parts.workers.retryOrphanQueues();
    }, 500);
  }

  stopTicking(): void {
    if (this.tick) clearInterval(this.tick);
    this.tick = undefined;
  }

  /** Wakes the loop; cheap and safe to call from any event. */
  kick(): void {
    if (this.looping) {
      this.again = true;
      return;
    }
    this.looping = true;
    setImmediate(() => void this.loop());
  }

  /**
   * Planned switchover (`POST /api/v1/switchover`): recorded as an intent that the
   * loop carries out between two other actions, and answered once done.
   */
  switchover(target: string | undefined): Promise<SwitchoverResult> {
    if (!this.s.leading || this.s.stopping) return Promise.reject(new DbaasError('DBAAS_CLUSTER_NO_LEADER', 'this orchestrator does not lead'));
    if (this.switchoverIntent) return Promise.reject(new DbaasError('DBAAS_SWITCHOVER_BUSY'));
    return new Promise((resolve, reject) => {
      this.switchoverIntent = { ...(target === undefined ? {} : { target }), resolve, reject };
      this.kick();
    });
  }

  private async loop(): Promise<void> {
    try {
      for (let i = 0; i < MAX_STEPS && !this.s.stopping && this.s.leading && this.d.view.ready && this.d.zk.connected; i++) {
        const intent = this.switchoverIntent;
        if (intent) {
          this.switchoverIntent = undefined;
          if (this.d.leader && !(await this.d.leader.confirm())) {
            intent.reject(new DbaasError('DBAAS_CLUSTER_NO_LEADER', 'this orchestrator no longer leads; retry'));
            break;
          }
          await this.parts.failover.switchover(intent.target).then(intent.resolve, intent.reject);
          continue;
        }
        this.parts.observe();
        const decision = decide(this.parts.facts());
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
    const { failover, workers } = this.parts;
    const action: Action = decision.action;
    switch (action.kind) {
      case 'failover':
        await failover.failover(action.candidateId, action.oldMasterId, decision.reason);
        return true;
      case 'restart-master':
        // False while failed restarts back off (restart-backoff.ts): the next tick decides again.
        return failover.restartMaster(action.id, decision.reason);
      case 'remove-lost':
        await workers.removeLost(action.id, action.role, decision.reason);
        return true;
      case 'restart-slave':
        await workers.restartSlave(action.id, decision.reason);
        return true;
      case 'add-slave':
        if (!workers.maySpawn()) return false;
        workers.spawnSlave(decision.reason);
        return true;
      case 'retire-slave':
        workers.retire(action.id, decision.reason);
        return true;
      case 'replace-divergent':
        await workers.replaceDivergent(action.id, decision.reason);
        return true;
      case 'idle':
        return false;
    }
  }
}
