/**
 * The master's actions: failover (a lost master is replaced by a slave),
 * planned switchover, and restarting a master in place from its own data.
 *
 * Invariant (promotion, orchestrator side): no worker is told to promote
 * before the old master is fenced and the term has moved. In order:
 *   1. fence: the runtime kills the old master; one it cannot kill is waited
 *      out until it must have fenced itself (common/fencing.ts: W after its
 *      znode vanished), and a master that registers again meanwhile is not
 *      replaced;
 *   2. its znodes go, so the candidate does not wait out its session;
 *   3. the term moves by compare-and-set, guarded by this leader's epoch
 *      (coordination/term.ts): a deposed leader gets no further; every
 *      master, old or new, watches the term and leaves once it passes its own;
 *   4. only then `promote(term)` to the candidate, which drains its sync
 *      queue before it takes writes (worker/worker.ts), and the failover
 *      counts as done once it holds `/<ns>/master`.
 * While this runs, `failingOver` holds writes back in the request router.
 * Tests: tests/integration/failover.test.ts, switchover.test.ts,
 * data-safety.test.ts (a term moved by someone else deposes a promoted master),
 * orchestrators.test.ts (a former leader's promote is refused).
 */
import { waitFor } from '../common/backoff.js';
import { DbaasError } from '../common/errors.js';
import { unkillableWaitMs } from '../common/fencing.js';
import { WIRE_VERSION, type ControlMessage } from '../common/messages.js';
import { bumpTerm } from '../coordination/term.js';
import { writeClusterFile } from './cluster-file.js';
import { CONTROL_TIMEOUT_MS, epochField, type ClusterDeps, type ControlState, type SwitchoverResult } from './cluster-state.js';
import { pidOf } from './facts.js';
import type { RequestRouter } from './request-router.js';
import type { WorkerActions } from './worker-actions.js';
import { RestartBackoff } from './restart-backoff.js';

/**
 * A promotion drains the candidate's sync queue first, which takes as long as
 * its backlog: a candidate that is still draining must not be given up on (and
 * killed) after the short control timeout.
 */
const PROMOTE_TIMEOUT_MS = 60_000;

/** How long a promotion candidate's znode may be missing before the promotion is given up (watchCandidate). */
const CANDIDATE_GONE_MS = 1000;

export class Failover {
  /** Tries of a master restart in place that keeps failing: spaced out, and audited sparingly (restart-backoff.ts). */
  private readonly masterRestarts = new RestartBackoff();

  constructor(
    private readonly d: ClusterDeps,
    private readonly s: ControlState,
    private readonly workers: WorkerActions,
    private readonly router: RequestRouter,
  ) {}

  private pidOf(id: string): number {
    return pidOf({ ...this.d, registry: this.s.registry }, id);
  }

  /** Moves the term one step (compare-and-set, fenced by the epoch: a former leader's bump fails in the same transaction). */
  bumpTerm(): Promise<number> {
    return bumpTerm(this.d.zk, this.d.paths, this.d.leader);
  }

  /** Replaces master `oldMasterId` (if any) with slave `candidateId`, in the order the header gives. */
  async failover(candidateId: string, oldMasterId: string | undefined, reason: string, rejoinOldMaster = false): Promise<void> {
    const { audit, runtime, rpc, names, view } = this.d;
    const started = Date.now();
    this.s.failingOver = true;
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
        await this.workers.removeZnodes(oldMasterId);
      }
      const term = await this.bumpTerm();
      const candidatePid = this.pidOf(candidateId);
      const gone = this.watchCandidate(candidateId);
      try {
        const promoted = rpc.call(names.controlQueue(candidateId), { v: WIRE_VERSION, type: 'promote', term, ...epochField(this.d) } satisfies ControlMessage, {
          timeoutMs: PROMOTE_TIMEOUT_MS,
        });
        promoted.catch(() => undefined);
        await Promise.race([promoted, gone.lost]);
        await waitFor(() => (view.master?.id === candidateId ? true : undefined), 5000, () => new Error('the promoted worker did not take the master znode'));
      } catch (err) {
        audit.record('error', `promoting ${candidateId} failed (${(err as Error).message}); removing it and trying another`);
        // Its data goes beside what comes next (another candidate, or the master's restart in place), not before it.
        await this.workers.forget(candidateId, 'behind');
        return;
      } finally {
        gone.stop();
      }
      this.s.lastMasterId = candidateId;
      writeClusterFile(this.d, { masterId: candidateId });
      // The promoted slave's place is now empty: the old master takes it (a switchover), or the next slave started.
      const rejoin = oldMasterId !== undefined && rejoinOldMaster;
      if (!rejoin) this.workers.noteLostSlave();
      audit.record('promotion', `promoted ${candidateId} (pid ${candidatePid}) to master in term ${term}, replacing ${oldMasterId ?? 'none'}${oldPid ? ` (pid ${oldPid})` : ''}`, {
        durationMs: Date.now() - started,
        details: { from: oldMasterId, to: candidateId, term, fromPid: oldPid, toPid: candidatePid },
      });
      if (oldMasterId && rejoin) this.rejoin(oldMasterId);
      // Writes are held back until this returns: the old master's data goes beside them.
      else if (oldMasterId) await this.workers.forget(oldMasterId, 'behind');
    } finally {
      this.s.failingOver = false;
    }
  }

  /**
   * Rejects `lost` once the candidate cannot answer its promote: its process exited (the runtime no
   * longer lists it), or its znode has been gone for {@link CANDIDATE_GONE_MS} (its session ended: a
   * frozen or cut-off process). Without it, a candidate that died or froze just after being chosen
   * left the cluster with no master for the whole promote timeout (60 s). A candidate that is only
   * slow (draining a long backlog) keeps its process and its znode, and is waited for.
   */
  private watchCandidate(id: string): { lost: Promise<never>; stop: () => void } {
    let timer: NodeJS.Timeout | undefined;
    let missingSince: number | undefined;
    const listed = (): boolean => this.d.runtime.list().some((h) => h.id === id);
    // Only a worker this runtime runs can be seen to exit; any other is judged by its znode alone.
    const known = listed();
    const lost = new Promise<never>((_, reject) => {
      timer = setInterval(() => {
        if (known && !listed()) {
          reject(new Error('its process exited'));
          return;
        }
        if (this.d.view.workers.has(id)) missingSince = undefined;
        else if (missingSince === undefined) missingSince = Date.now();
        else if (Date.now() - missingSince >= CANDIDATE_GONE_MS) reject(new Error('its ZooKeeper session ended'));
      }, 250);
    });
    lost.catch(() => undefined);
    return { lost, stop: () => clearInterval(timer) };
  }

  /**
   * Issue 15.6: a demoted master rejoins as a slave. It bound its own sync queue and
   * marked its data complete when demoted (worker/master-role.ts prepareRejoin), so it
   * restarts under its own id and resumes from its data and that queue
   * (worker/slave-role.ts resume), in time proportional to the writes since. If that
   * fails, it is forgotten and a new slave takes its place.
   */
  private rejoin(id: string): void {
    const spec = { id, role: 'slave', term: 0 } as const;
    this.s.registry.start(spec);
    this.workers.restartInPlace(spec, { done: `old master ${id} rejoined as a slave from its own data`, failed: `old master ${id} could not rejoin as a slave` });
  }

  /**
   * The master stops taking writes and finishes those it took (demote), so no
   * batch is cut short; then the target is promoted exactly as in a failover
   * (the old master is killed first, the target drains its queue, the term
   * moves), and the old master rejoins as a slave from its own data (rejoin()). Writes sent meanwhile
   * wait in the queue for the new master.
   */
  async switchover(target: string | undefined): Promise<SwitchoverResult> {
    const { registry } = this.s;
    const started = Date.now();
    const master = this.router.masterAvailable();
    if (!master) throw new DbaasError('DBAAS_CLUSTER_NO_MASTER', 'there is no master to switch over from');
    const serving = this.d.view
      .servingSlaves()
      // Like a failover candidate (reconcile.ts): its request ledger must cover the retry horizon.
      .filter((w) => !registry.isRetiring(w.id) && registry.divergenceOf(w.id) === undefined && w.promotable !== false)
      .map((w) => ({ id: w.id, pid: this.pidOf(w.id) }))
      .sort((a, b) => a.pid - b.pid);
    const candidate = target === undefined ? serving[0] : serving.find((w) => w.id === target || String(w.pid) === target);
    if (!candidate) {
      throw new DbaasError('DBAAS_SWITCHOVER_NO_TARGET', target === undefined ? 'no caught-up slave to switch over to' : `${target} is not a caught-up slave (give a worker id or pid from GET /api/v1/workers)`);
    }
    const reason = `planned switchover from master ${master.id} (pid ${this.pidOf(master.id)}) to ${candidate.id} (pid ${candidate.pid})`;
    this.d.audit.record('switchover', reason);
    let demoted = false;
    try {
      await this.d.rpc.call(this.d.names.controlQueue(master.id), { v: WIRE_VERSION, type: 'demote', ...epochField(this.d) } satisfies ControlMessage, { timeoutMs: CONTROL_TIMEOUT_MS });
      demoted = true;
    } catch (err) {
      // A master that cannot be demoted is killed by the failover below all the same.
      this.d.logger.warn({ err: (err as Error).message }, 'demote failed; switching over by killing the master');
    }
    // A demoted master rejoins as a slave; one that could not be demoted is killed and replaced.
    await this.failover(candidate.id, master.id, reason, demoted);
    if (this.s.lastMasterId !== candidate.id) throw new DbaasError('DBAAS_SWITCHOVER_NO_TARGET', `promoting ${candidate.id} failed; the cluster recovers as after a master loss`);
    return { from: master.id, to: candidate.id, toPid: candidate.pid, durationMs: Date.now() - started };
  }

  /**
   * The runtime cannot kill a master it does not run, so it cannot be sure it is
   * dead: wait until the master must have fenced itself (it stops taking writes
   * once ZooKeeper has not answered it for selfFenceMs, common/fencing.ts),
   * counted from when its znode vanished.
   */
  private async waitOutSelfFence(id: string): Promise<void> {
    const since = this.s.registry.missingSince(id) ?? Date.now();
    const until = since + unkillableWaitMs(this.d.config.zkSessionTimeoutMs, this.d.config.zkOutageToleranceMs);
    const waitMs = Math.max(0, until - Date.now());
    this.d.audit.record('detection', `the runtime does not run master ${id}, so it cannot kill it; waiting ${waitMs} ms for it to have fenced itself before promoting another`);
    if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
  }

  /**
   * No slave can take over: the master is restarted from its own data, in a new term.
   * False (nothing done) while a series of failed restarts of this master backs off.
   */
  async restartMaster(id: string, reason: string): Promise<boolean> {
    const started = Date.now();
    if (!this.masterRestarts.mayStart(id, started)) return false;
    this.s.failingOver = true;
    try {
      if (this.masterRestarts.first) this.d.audit.record('detection', reason);
      else this.d.logger.info({ id }, reason);
      await this.d.runtime.kill(id);
      await this.workers.removeZnodes(id);
      // A master demoted for a switchover whose promotion then failed bound its own sync queue to rejoin as a
      // slave (worker/master-role.ts prepareRejoin); as master again it never reads it: gone now, not in an hour.
      await this.workers.deleteSyncQueue(id);
      const term = await this.bumpTerm();
      await this.workers.startWorkerAndWait({ id, role: 'master', term }, 'master');
      const failed = this.masterRestarts.succeeded();
      const after = failed > 0 ? ` after ${failed} failed ${failed === 1 ? 'try' : 'tries'}` : '';
      this.d.audit.record('restart', `restarted master ${id} (pid ${this.pidOf(id)}) from its own data in term ${term}${after}`, { durationMs: Date.now() - started });
    } catch (err) {
      const t = this.masterRestarts.failed(Date.now());
      const why = `restarting master ${id} failed: ${(err as Error).message}`;
      if (t.audit) {
        const series = t.failures === 1 ? '' : ` (${t.failures} failed tries since ${new Date(t.since).toISOString()}; only tries 1, 2, 4, 8, … are audited)`;
        this.d.audit.record('error', `${why}${series}; next try in ${Math.round(t.delayMs / 100) / 10} s at the earliest`, { details: { failures: t.failures, nextTryMs: t.delayMs } });
      } else {
        this.d.logger.warn({ failures: t.failures, nextTryMs: t.delayMs }, why);
      }
    } finally {
      this.s.failingOver = false;
    }
    return true;
  }
}
