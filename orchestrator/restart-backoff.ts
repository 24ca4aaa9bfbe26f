/**
 * The pace of restarting a master in place (Failover.restartMaster) when the
 * restart keeps failing: a capped exponential backoff between tries, and an audit
 * trail that says how long it has been failing without one event per try.
 *
 * Before it, a master whose restart always failed (one bad oplog entry replayed at
 * every start, session 4's fault testing) was tried every ~1.3 s, each try adding a
 * detection and an error event: the audit log (the newest 1,000) lost the start
 * of the incident within minutes. Now only the first detection of a series is
 * audited, and its failures at tries 1, 2, 4, 8, … (each saying how many and since
 * when); the tries in between go to the orchestrator's log only.
 */
import { Backoff } from '../common/backoff.js';

/** What a failed try leads to. */
export interface FailedTry {
  /** Failed tries of this series so far. */
  failures: number;
  /** When the series' first try failed (ms since the epoch). */
  since: number;
  /** How long until the next try may start. */
  delayMs: number;
  /** Whether this failure is worth an audit event (tries 1, 2, 4, 8, …). */
  audit: boolean;
}

/** A try this long after the previous one's earliest next start belongs to a new incident. */
const SERIES_GAP_MS = 10 * 60_000;

export class RestartBackoff {
  private id: string | undefined;
  private failures = 0;
  private since = 0;
  private notBefore = 0;
  private readonly backoff: Backoff;

  /** `initialMs`, `maxMs`: the delay after the first failure and its cap (with jitter, common/backoff.ts). */
  constructor(initialMs = 1000, maxMs = 30_000) {
    this.backoff = new Backoff(initialMs, maxMs);
  }

  /**
   * Whether a restart of `id` may start at `now`: always for another worker than the
   * series', or long after its last failure (a new series: another incident).
   */
  mayStart(id: string, now: number): boolean {
    if (id !== this.id || now - this.notBefore > SERIES_GAP_MS) {
      this.id = id;
      this.failures = 0;
      this.notBefore = 0;
      this.backoff.reset();
    }
    return now >= this.notBefore;
  }

  /** Whether the next try is the first of its series (its detection is audited). */
  get first(): boolean {
    return this.failures === 0;
  }

  failed(now: number): FailedTry {
    if (this.failures === 0) this.since = now;
    this.failures += 1;
    const delayMs = this.backoff.next();
    this.notBefore = now + delayMs;
    return { failures: this.failures, since: this.since, delayMs, audit: (this.failures & (this.failures - 1)) === 0 };
  }

  /** The restart worked: answers how many tries had failed before, and ends the series. */
  succeeded(): number {
    const failed = this.failures;
    this.id = undefined;
    this.failures = 0;
    this.notBefore = 0;
    this.backoff.reset();
    return failed;
  }
}
