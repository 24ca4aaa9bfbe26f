/**
 * Read-driven autoscaling: the number of slaves follows the count of
 * `POST /api/v1/db/read` requests per window.
 *
 * The window timer starts at the first read. node-cron ticks every second and a
 * window closes once `DBAAS_SCALE_INTERVAL_MS` has passed since it opened, so the
 * interval can be any number of milliseconds (to the second). At each close the
 * count sets the slave target and resets; the cluster manager then converges on
 * it (scale-up slaves catch up before taking reads; scale-down retires the
 * highest-pid slaves gracefully). A window that closes during a promotion is
 * held until the promotion is over, so scaling and failover never fight.
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { OrchestratorConfig } from '../common/config.js';
import type { AuditLog } from './audit-log.js';

/** `clamp(ceil(reads / readsPerSlave), min, max)`, and never below one. */
export function slaveTarget(reads: number, readsPerSlave: number, min: number, max: number): number {
  const wanted = Math.max(1, Math.ceil(reads / readsPerSlave));
  return Math.max(1, Math.min(max, Math.max(min, wanted)));
}

/** What the autoscaler needs from the cluster. */
export interface Scalable {
  /** Sets the slave target (clamped by the cluster) and converges on it; returns the target set. */
  scaleTo(slaves: number, reason: string): number;
  /** True while a failover or master restart is in progress. */
  busy(): boolean;
  readonly targetSlaves: number;
  /** False on a follower orchestrator: only the leader closes windows and scales. Absent: always leads. */
  readonly isLeading?: boolean;
}

export interface AutoscalerStatus {
  started: boolean;
  readsInWindow: number;
  windowOpenedAt: string | null;
  intervalMs: number;
  targetSlaves: number;
}

export class Autoscaler {
  private reads = 0;
  private windowOpenedAt: number | undefined;
  private task: ScheduledTask | undefined;
  private closed = false;

  constructor(
    private readonly config: Pick<OrchestratorConfig, 'scaleIntervalMs' | 'readsPerSlave' | 'minSlaves' | 'maxSlaves'>,
    private readonly cluster: Scalable,
    private readonly audit: AuditLog,
    private readonly now: () => number = Date.now,
  ) {}

  /** Every read this orchestrator counted since it started (other orchestrators' leader sums them). */
  private total = 0;

  get cumulativeReads(): number {
    return this.total;
  }

  /** Counts one `db/read` request; the first one starts the window timer. */
  onRead(): void {
    this.total += 1;
    this.count(1);
  }

  /** Reads counted by the namespace's other orchestrators, summed in by the leader. */
  addExternal(reads: number): void {
    if (reads > 0) this.count(reads);
  }

  private count(n: number): void {
    this.reads += n;
    if (this.windowOpenedAt === undefined && !this.closed) {
      this.windowOpenedAt = this.now();
      this.task = cron.schedule('* * * * * *', () => this.tick(), { name: 'dbaas-autoscaler', noOverlap: true });
    }
  }

  /** Closes the window if its time has come. Exposed for tests; the cron task calls it every second. */
  tick(): void {
    if (this.windowOpenedAt === undefined) return;
    const now = this.now();
    if (now - this.windowOpenedAt < this.config.scaleIntervalMs) return;
    if (this.cluster.busy()) return; // a promotion is in progress: decide after it
    if (this.cluster.isLeading === false) return; // a follower counts, the leader decides
    const reads = this.reads;
    this.reads = 0;
    this.windowOpenedAt = now;
    const target = slaveTarget(reads, this.config.readsPerSlave, this.config.minSlaves, this.config.maxSlaves);
    const before = this.cluster.targetSlaves;
    const reason =
      target === before
        ? `${reads} read(s) in the last window: keeping ${target} slave(s)`
        : `${reads} read(s) in the last window: ${target > before ? 'scaling up' : 'scaling down'} from ${before} to ${target} slave(s)`;
    this.cluster.scaleTo(target, reason);
    this.audit.record('scaling', reason, { details: { reads, target, previous: before, readsPerSlave: this.config.readsPerSlave } });
  }

  status(): AutoscalerStatus {
    return {
      started: this.windowOpenedAt !== undefined,
      readsInWindow: this.reads,
      windowOpenedAt: this.windowOpenedAt === undefined ? null : new Date(this.windowOpenedAt).toISOString(),
      intervalMs: this.config.scaleIntervalMs,
      targetSlaves: this.cluster.targetSlaves,
    };
  }

  /** Stops the timer. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const task = this.task;
    this.task = undefined;
    if (task) await task.destroy();
  }
}
