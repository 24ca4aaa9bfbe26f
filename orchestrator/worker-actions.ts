/**
 * The control loop's actions on slaves and on the set of workers: start one
 * and wait until it serves, replace a lost or divergent one, scale up
 * (spawn) and down (retire), and forget a worker that is gone for good. Each
 * moves the worker's lifecycle in the registry (worker-registry.ts) and
 * records what it did in the audit log. The master's actions (failover,
 * switchover, restart) are failover.ts's.
 */
import { Backoff } from '../common/backoff.js';
import { DbaasError } from '../common/errors.js';
import { WIRE_VERSION, type ControlMessage, type WorkerStatus } from '../common/messages.js';
import { askFirstPage } from '../common/snapshot-request.js';
import { removeWorkerZnodes } from '../coordination/registration.js';
import { CONTROL_TIMEOUT_MS, epochField, newWorkerId, type ClusterDeps, type ControlState } from './cluster-state.js';
import { pidOf } from './facts.js';
import type { WorkerSpec } from './runtimes/runtime.js';
import { startProgress, waitForStart } from './start-wait.js';

export class WorkerActions {
  /** Sync queues of gone workers whose delete failed; retried on each tick. */
  private readonly orphanQueues = new Set<string>();
  private readonly spawnBackoff = new Backoff(500, 30_000);
  private nextSpawnAt = 0;
  /** Lost slaves not yet replaced: the next slave started is audited as their replacement. */
  private lostSlaves = 0;
  /** The last worker start, when it failed (cleared by the next start that succeeds): GET /api/v1/workers/list says it. */
  lastStartFailure: { id: string; role: string; at: string; message: string } | undefined;

  constructor(
    private readonly d: ClusterDeps,
    private readonly s: ControlState,
    /** Wakes the control loop (a background action finished). */
    private readonly kick: () => void,
  ) {}

  private pidOf(id: string): number {
    return pidOf({ ...this.d, registry: this.s.registry }, id);
  }

  /** A slave's place is empty (lost, divergent, or promoted): the next slave started replaces it. */
  noteLostSlave(): void {
    this.lostSlaves += 1;
  }

  /** Whether a slave may be started now (after a failed start, not before its backoff ran out). */
  maySpawn(now = Date.now()): boolean {
    return now >= this.nextSpawnAt;
  }

  /** A lost slave: removed, and the next slave started is its replacement. */
  async removeLost(id: string, role: 'master' | 'slave', reason: string): Promise<void> {
    this.d.audit.record('detection', reason, { details: { id, role } });
    await this.forget(id);
    this.lostSlaves += 1;
  }

  /**
   * A dead slave restarted in place (issue 16): the same id, so the same data and
   * durable sync queue; it resumes from them (worker/slave-role.ts resume) in time
   * proportional to the writes it missed. Started in the background like a new
   * slave; if the start fails, it is forgotten and a fresh slave takes its place.
   */
  async restartSlave(id: string, reason: string): Promise<void> {
    this.d.audit.record('detection', reason, { details: { id, role: 'slave' } });
    const pid = this.pidOf(id);
    // Its session may still hold znodes; the restarted worker registers anew.
    await this.removeZnodes(id);
    const spec: WorkerSpec = { id, role: 'slave', term: 0 };
    this.s.registry.restartInPlace(spec);
    this.restartInPlace(spec, {
      done: `slave ${id} (pid ${pid}) restarted in place`,
      failed: `restarting slave ${id} in place failed`,
    });
  }

  /**
   * Starts a dead worker again under its id as a slave and waits until it serves
   * (background; the caller has put it in `starting`). Audited as a `restart` with
   * how it came back; on failure it is forgotten and the next slave started replaces it.
   */
  restartInPlace(spec: WorkerSpec, say: { done: string; failed: string }): void {
    const started = Date.now();
    void this.startWorkerAndWait(spec, 'slave', false)
      .then(() => {
        this.d.audit.record('replacement', `${say.done}: now pid ${this.pidOf(spec.id)}, serving again from its own data`, { durationMs: Date.now() - started, details: { id: spec.id } });
      })
      .catch(async (err: unknown) => {
        this.d.audit.record('error', `${say.failed} (${(err as Error).message}); a new slave takes its place`);
        await this.forget(spec.id).catch(() => undefined);
        this.lostSlaves += 1;
      })
      .finally(() => this.kick());
  }

  /**
   * Binds new slave `id`'s sync queue and asks the master for its first snapshot page
   * (common/snapshot-request.ts), while its process starts. Never rejects: when this fails
   * before the queue exists, the slave asks itself (worker/slave-role.ts); after that, its
   * page timer asks again.
   */
  private async askFirstPage(id: string): Promise<void> {
    const { config, names, rpc, logger } = this.d;
    try {
      await rpc.withChannel((ch) =>
        askFirstPage(ch, names, { namespace: config.namespace, workerId: id, limit: config.snapshotPageDocs, raw: config.dbBackend === 'postgresql', settings: config }),
      );
    } catch (err) {
      logger.warn({ id, err: (err as Error).message }, 'could not ask for a new slave\'s first snapshot page; it asks itself');
    }
  }

  /**
   * Removes every trace of a worker that is gone for good (it is killed first, to be sure).
   * `data: 'behind'`: its data is removed without holding the caller up, for a failover (which holds writes
   * back meanwhile) and the master's restart after a failed promotion: dropping a PostgreSQL database took 1-7 s
   * under load. It is not left behind on a crash: the runtime notes the drop before its first wait
   * (pending-drops.ts), and the next start drops what is noted.
   */
  async forget(id: string, data: 'wait' | 'behind' = 'wait'): Promise<void> {
    const { runtime } = this.d;
    await runtime.kill(id);
    await this.removeZnodes(id);
    await this.deleteSyncQueue(id);
    const removed = runtime.remove(id).catch((err: unknown) => this.d.logger.warn({ id, err: (err as Error).message }, 'cleanup failed'));
    if (data === 'wait') await removed;
    this.s.registry.forget(id);
  }

  /**
   * Deletes a gone worker's durable sync queue, which would otherwise collect every
   * write forever. A delete that fails (broker away) is kept and retried on every
   * tick of the loop until it succeeds.
   */
  async deleteSyncQueue(id: string): Promise<void> {
    const queue = this.d.names.syncQueue(id);
    try {
      await this.d.rpc.deleteQueue(queue);
      this.orphanQueues.delete(queue);
    } catch (err) {
      if (!this.orphanQueues.has(queue)) this.d.logger.warn({ queue, err: (err as Error).message }, 'could not delete a sync queue; retrying later');
      this.orphanQueues.add(queue);
    }
  }

  /** Retries the sync queue deletes that failed (on each tick, while the broker is connected). */
  async retryOrphanQueues(): Promise<void> {
    if (this.orphanQueues.size === 0 || !this.d.rpc.connected) return;
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
  async removeZnodes(id: string): Promise<void> {
    await removeWorkerZnodes(this.d.zk, this.d.paths, id);
  }

  /** Starts a slave in the background (a failover never waits on one); audited once it serves. */
  spawnSlave(reason: string): void {
    const id = newWorkerId();
    // A new id: no data or sync queue to resume from, so its first snapshot page can be asked for now (askFirstPage).
    // Asked of the master of this term, which the slave is told: should another master take over before the answer,
    // the slave asks that one again at once (worker/slave-role.ts watchMaster), not after its start timed out.
    const asked = this.d.runtime.passesSnapshotAsked ? { snapshotAsked: true, term: this.d.view.master?.term ?? 0 } : {};
    const spec: WorkerSpec = { id, role: 'slave', term: 0, ...asked };
    this.s.registry.start(spec);
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
  async replaceDivergent(id: string, reason: string): Promise<void> {
    this.d.audit.record('detection', reason, { details: { id, role: 'slave', divergent: this.s.registry.divergenceOf(id) } });
    this.s.registry.clearDivergence(id);
    await this.forget(id);
    this.lostSlaves += 1;
  }

  /** Scale-down: the slave stops taking reads, finishes those in flight, and exits. */
  retire(id: string, reason: string): void {
    this.s.registry.retire(id);
    const started = Date.now();
    void (async () => {
      try {
        await this.d.rpc.call(this.d.names.controlQueue(id), { v: WIRE_VERSION, type: 'retire', ...epochField(this.d) } satisfies ControlMessage, { timeoutMs: CONTROL_TIMEOUT_MS });
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

  /**
   * Starts a worker and resolves once its znode shows `state`; kills it and
   * rejects when it exits or times out meanwhile. Untracked (`track` false): the
   * caller has put it in `starting` and forgets it when the start fails.
   */
  async startWorkerAndWait(spec: WorkerSpec, state: WorkerStatus['state'], track = true): Promise<void> {
    const { registry } = this.s;
    const started = Date.now();
    if (track) registry.start(spec);
    // Beside the process's start, not before it: the master's snapshot round trip, which waits on the busy
    // master and broker under writes, is then off the new slave's path (issue 16). Awaited before a failed
    // start's clean-up, which deletes the queue this binds.
    const asked = spec.snapshotAsked ? this.askFirstPage(spec.id) : Promise.resolve();
    try {
      await this.d.runtime.startWorker(spec);
      // DBAAS_WORKER_START_TIMEOUT_MS without progress, not in all: a slave copying a large snapshot goes on (start-wait.ts).
      await waitForStart({
        done: () => registry.exitOf(spec.id) !== undefined || this.s.startInterrupted === true || this.d.view.workers.get(spec.id)?.state === state,
        progress: () => startProgress(this.d.view.workers.get(spec.id)),
        timeoutMs: this.d.config.workerStartTimeoutMs,
        onExtended: (ms, idleMs) =>
          this.d.audit.record('detection', `worker ${spec.id} (pid ${this.pidOf(spec.id)}) is still starting after ${ms} ms (DBAAS_WORKER_START_TIMEOUT_MS ${this.d.config.workerStartTimeoutMs}); it last progressed ${idleMs} ms ago, so it goes on while it progresses`),
        stalled: (idle) => new Error(`worker ${spec.id} did not reach state ${state}: no progress for ${idle} ms`),
      });
      if (this.s.startInterrupted === true) throw new DbaasError('DBAAS_SHUTTING_DOWN', `the cluster start was interrupted while worker ${spec.id} started`);
      const exit = registry.exitOf(spec.id);
      if (exit) throw new Error(`worker ${spec.id} exited while starting (code ${exit.code}, signal ${exit.signal})`);
    } catch (err) {
      this.d.runtime.startEnded?.(spec.id);
      await asked;
      const pid = this.pidOf(spec.id);
      await this.d.runtime.kill(spec.id);
      if (track) registry.startFailed(spec.id, { id: spec.id, pid, code: null, signal: 'SIGKILL', expected: true });
      // Why, from the worker's own logs (read once both halves are dead, before it is forgotten): a database that
      // refuses to work is named, not only "no progress for 30020 ms".
      const cause = await this.d.runtime.failureCause?.(spec.id);
      const failed = cause ? new Error(`${(err as Error).message}; ${cause}`) : (err as Error);
      this.lastStartFailure = { id: spec.id, role: spec.role, at: new Date().toISOString(), message: failed.message };
      throw failed;
    }
    this.lastStartFailure = undefined;
    this.d.runtime.startEnded?.(spec.id);
    registry.started(spec.id);
    this.d.logger.info({ id: spec.id, role: spec.role, workerPid: this.pidOf(spec.id), ms: Date.now() - started }, 'worker ready');
  }
}
