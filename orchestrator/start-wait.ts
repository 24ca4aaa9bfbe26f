/**
 * How long the orchestrator waits for a starting worker: not a fixed deadline
 * that throws progress away, but `timeoutMs` **without progress**.
 *
 * A new slave copies the master's data and catches up before it serves; with a
 * large table or a steady writer that can take longer than any fixed start
 * timeout, and a slave killed at the deadline starts again from zero (issue 16:
 * four tries failed at 30 s under ~200 writes/s, each from scratch). The worker
 * publishes a progress number in its znode while it syncs (documents copied plus
 * entries applied, WorkerStatus.syncProgress); as long as it grows, the start
 * goes on. The first time a start outlives `timeoutMs` while progressing, that is
 * said once (the caller audits it).
 */

export type StartVerdict = 'wait' | 'extended' | 'stalled';

/** The rule, without clocks or znodes: feed it observations, it says whether to go on. */
export class StartWatch {
  private lastProgress: string | undefined;
  private progressAt: number;
  private extended = false;

  constructor(
    private readonly startedAt: number,
    private readonly timeoutMs: number,
  ) {
    this.progressAt = startedAt;
  }

  /**
   * @param progress what the worker published (undefined before it registered);
   *   any change counts as progress
   * @returns `stalled` once nothing changed for timeoutMs; `extended` once, the first
   *   time the start outlives timeoutMs while progressing; else `wait`
   */
  observe(now: number, progress: string | undefined): StartVerdict {
    if (progress !== undefined && progress !== this.lastProgress) {
      this.lastProgress = progress;
      this.progressAt = now;
    }
    if (now - this.progressAt > this.timeoutMs) return 'stalled';
    if (!this.extended && now - this.startedAt > this.timeoutMs) {
      this.extended = true;
      return 'extended';
    }
    return 'wait';
  }

  /** Milliseconds since the last progress. */
  idleMs(now: number): number {
    return now - this.progressAt;
  }
}

export interface StartWaitOptions {
  /** True once the worker reached the state waited for (or exited: the caller tells which). */
  done(): boolean;
  /** The worker's published progress (state, applied seq, sync progress), undefined before it registered. */
  progress(): string | undefined;
  timeoutMs: number;
  /** Called once when the start outlives timeoutMs while still progressing (the last progress `idleMs` ago). */
  onExtended(elapsedMs: number, idleMs: number): void;
  /** The error to reject with when the start stalls. */
  stalled(idleMs: number): Error;
  pollMs?: number;
}

/** What counts as progress in a worker's znode: its state, applied seq and sync progress. */
export function startProgress(w: { state: string; appliedSeq: number; syncProgress?: number } | undefined): string | undefined {
  return w === undefined ? undefined : `${w.state} ${w.appliedSeq} ${w.syncProgress ?? ''}`;
}

/** Resolves once `done()`; rejects after `timeoutMs` without progress. */
export async function waitForStart(o: StartWaitOptions): Promise<void> {
  const started = Date.now();
  const watch = new StartWatch(started, o.timeoutMs);
  for (;;) {
    if (o.done()) return;
    const now = Date.now();
    const verdict = watch.observe(now, o.progress());
    if (verdict === 'stalled') throw o.stalled(watch.idleMs(now));
    if (verdict === 'extended') o.onExtended(now - started, watch.idleMs(now));
    await new Promise((r) => setTimeout(r, o.pollMs ?? 20));
  }
}
