/**
 * Request counts over the last minutes in fixed time buckets, for the
 * dashboard's read/write chart. Bounded memory: one slot per bucket, reused
 * round robin; a slot left over from an older lap counts as empty.
 */

export const RATE_KINDS = ['reads', 'writes', 'errors'] as const;
export type RateKind = (typeof RATE_KINDS)[number];

export interface RatePoint {
  /** Start of the bucket, milliseconds since the epoch. */
  t: number;
  /** How much of the bucket has passed: `bucketMs`, or less for the current one. */
  spanMs: number;
  reads: number;
  writes: number;
  errors: number;
}

export interface RateSeries {
  bucketMs: number;
  points: RatePoint[];
}

export class RateHistory {
  private readonly slotBucket: Float64Array;
  private readonly counts: Record<RateKind, Float64Array>;

  constructor(
    readonly bucketMs = 5000,
    readonly buckets = 120,
  ) {
    this.slotBucket = new Float64Array(buckets).fill(-1);
    this.counts = { reads: new Float64Array(buckets), writes: new Float64Array(buckets), errors: new Float64Array(buckets) };
  }

  /** Counts one event of `kind` at `now`. */
  record(kind: RateKind, now = Date.now()): void {
    const bucket = Math.floor(now / this.bucketMs);
    const slot = bucket % this.buckets;
    if (this.slotBucket[slot] !== bucket) {
      this.slotBucket[slot] = bucket;
      for (const k of RATE_KINDS) this.counts[k][slot] = 0;
    }
    this.counts[kind][slot] = (this.counts[kind][slot] ?? 0) + 1;
  }

  /** Every bucket of the window, oldest first, the current (partial) one last; empty buckets as zeros. */
  series(now = Date.now()): RateSeries {
    const current = Math.floor(now / this.bucketMs);
    const points: RatePoint[] = [];
    for (let bucket = current - this.buckets + 1; bucket <= current; bucket++) {
      const slot = bucket % this.buckets;
      const live = this.slotBucket[slot] === bucket;
      const t = bucket * this.bucketMs;
      points.push({
        t,
        spanMs: bucket === current ? Math.max(1, now - t) : this.bucketMs,
        reads: live ? (this.counts.reads[slot] ?? 0) : 0,
        writes: live ? (this.counts.writes[slot] ?? 0) : 0,
        errors: live ? (this.counts.errors[slot] ?? 0) : 0,
      });
    }
    return { bucketMs: this.bucketMs, points };
  }
}
