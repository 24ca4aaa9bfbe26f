/** Capped exponential backoff with jitter: the one place retry delays are computed. */
export class Backoff {
  private attempt = 0;
  constructor(
    private readonly initialMs = 100,
    private readonly maxMs = 5000,
  ) {}

  /** The delay before the next attempt. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.round(base / 2 + Math.random() * (base / 2));
  }

  reset(): void {
    this.attempt = 0;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `probe` until it returns a value other than undefined, or throws `onTimeout()` after `timeoutMs`.
 * Errors thrown by the probe count as "not yet", unless `final` says one ends the wait.
 */
export async function waitFor<T>(
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  onTimeout: () => Error,
  intervalMs = 50,
  /** An error of the probe that ends the wait at once (rethrown), rather than "not ready yet". */
  final?: (err: unknown) => boolean,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      if (final?.(err)) throw err;
      // not ready yet
    }
    if (Date.now() >= deadline) throw onTimeout();
    await sleep(intervalMs);
  }
}
