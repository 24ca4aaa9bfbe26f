/**
 * When to trim the oplog, and up to which seq, without a periodic scan.
 *
 * On FerretDB every delete by a filter scans the oplog (it filters outside
 * SQLite), so trimming every minute cost an idle worker with 36,000 entries
 * about a second of its database's CPU each time. The planner remembers, in
 * memory, the seq and time of what this process recorded (one mark per call),
 * and asks for a trim only once the cut has moved by a worthwhile step, or a
 * smaller cut has waited a tenth of the age limit: at most one scan per `step`
 * entries written or per `minIntervalMs`, none at all while nothing is written. Entries older than the process (a restart)
 * are trimmed by age once, at the first trim.
 */

export interface TrimLimits {
  maxEntries: number;
  maxAgeMs: number;
}

interface Mark {
  seq: number;
  /** The newest time recorded up to `seq` in this mark. */
  ts: number;
  /** The first time recorded in this mark: a mark spans at most {@link OplogTrimPlanner.markSpanMs} from it. */
  since: number;
}

/**
 * Marks kept per age limit at most (plus the ones a count cut has not reached yet): the
 * times of one mark's entries span at most a thousandth of the age limit. One mark per
 * call would keep one object per write for the whole age limit (the ledger's: 10 minutes
 * of writes, 1.2 million at 2,000 writes/s); an age cut now comes at most that span late.
 */
export const MARKS_PER_AGE = 1000;

export class OplogTrimPlanner {
  private readonly marks: Mark[] = [];
  private trimmedUpTo = 0;
  private firstDone = false;
  private lastTrimAt = 0;

  constructor(private readonly limits: TrimLimits) {}

  /** How far the cut must move before a trim is worth a scan. */
  get step(): number {
    return Math.max(100, Math.min(10_000, Math.floor(this.limits.maxEntries / 10)));
  }

  /** A smaller cut waits at least this long after the last trim (age limits are kept within a tenth). */
  get minIntervalMs(): number {
    return Math.max(60_000, Math.floor(this.limits.maxAgeMs / 10));
  }

  /** How long a span of times one mark covers (a mark is old only once its newest time is). */
  get markSpanMs(): number {
    return Math.floor(this.limits.maxAgeMs / MARKS_PER_AGE);
  }

  /** Marks held now (at most about {@link MARKS_PER_AGE} per age limit). */
  get size(): number {
    return this.marks.length;
  }

  /** Notes that entries up to `seq` were recorded at `ts`. */
  recorded(seq: number, ts: number): void {
    const last = this.marks.at(-1);
    if (last && last.seq >= seq) return;
    // Within the last mark's span: it grows to this seq and time (so it is old only once this entry is).
    if (last && last.seq > this.trimmedUpTo && ts - last.since < this.markSpanMs) {
      last.seq = seq;
      last.ts = Math.max(last.ts, ts);
      return;
    }
    this.marks.push({ seq, ts, since: ts });
    // Marks below the last cut are of no more use.
    while (this.marks.length > 1 && (this.marks[0] as Mark).seq <= this.trimmedUpTo) this.marks.shift();
  }

  /**
   * What to delete now: `upTo` (every entry with seq <= upTo), and whether to also
   * delete by age (`byAge`, the first time only); undefined when no trim is due.
   * The newest entry is always kept.
   */
  plan(newest: number, now: number): { upTo: number; byAgeBefore?: number } | undefined {
    if (newest <= 0) return undefined;
    let cut = newest - this.limits.maxEntries;
    const ageLimit = now - this.limits.maxAgeMs;
    for (const m of this.marks) {
      if (m.ts >= ageLimit) break;
      cut = Math.max(cut, m.seq);
    }
    cut = Math.min(cut, newest - 1);
    if (!this.firstDone) return { upTo: Math.max(cut, 0), byAgeBefore: ageLimit };
    if (cut <= this.trimmedUpTo) return undefined;
    if (cut - this.trimmedUpTo < this.step && now - this.lastTrimAt < this.minIntervalMs) return undefined;
    return { upTo: cut };
  }

  /** The plan was carried out at `now`. */
  done(upTo: number, now: number): void {
    this.firstDone = true;
    this.lastTrimAt = now;
    this.trimmedUpTo = Math.max(this.trimmedUpTo, upTo);
    while (this.marks.length > 1 && (this.marks[0] as Mark).seq <= this.trimmedUpTo) this.marks.shift();
  }
}
