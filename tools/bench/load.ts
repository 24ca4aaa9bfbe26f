/**
 * Closed-loop load at a fixed concurrency, for both paths a benchmark compares:
 * HTTP through the orchestrator (autocannon), and the mongodb driver straight to
 * a database. Both record every latency with sub-millisecond precision into the
 * same {@link Latencies}, so their percentiles are computed the same way.
 */
import autocannon from 'autocannon';

export interface LoadResult {
  requests: number;
  /** Requests per second over the measured duration. */
  rps: number;
  p50: number;
  p99: number;
  p999: number;
  /** Failed requests: transport errors, timeouts and non-2xx answers. */
  errors: number;
  /** A few distinct failure descriptions, for the report. */
  errorSamples: string[];
}

/** Latencies in milliseconds, kept in full (a run has at most a few hundred thousand). */
export class Latencies {
  private values = new Float64Array(1 << 14);
  private n = 0;

  add(ms: number): void {
    if (this.n === this.values.length) {
      const bigger = new Float64Array(this.values.length * 2);
      bigger.set(this.values);
      this.values = bigger;
    }
    this.values[this.n++] = ms;
  }

  get count(): number {
    return this.n;
  }

  summary(): Pick<LoadResult, 'p50' | 'p99' | 'p999'> {
    if (this.n === 0) return { p50: NaN, p99: NaN, p999: NaN };
    const sorted = this.values.slice(0, this.n).sort();
    const at = (q: number): number => sorted[Math.min(this.n - 1, Math.max(0, Math.ceil(q * this.n) - 1))] as number;
    return { p50: at(0.5), p99: at(0.99), p999: at(0.999) };
  }
}

export interface HttpLoadOptions {
  url: string;
  path: string;
  connections: number;
  durationSec: number;
  /** A fresh JSON body for each request. */
  body: () => unknown;
}

/** Runs autocannon against one route with a new body per request. */
export async function httpLoad(opts: HttpLoadOptions): Promise<LoadResult> {
  const lat = new Latencies();
  const samples = new Set<string>();
  let non2xx = 0;
  const started = performance.now();
  let finish: (r: autocannon.Result) => void = () => undefined;
  let fail: (e: Error) => void = () => undefined;
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  // With a callback autocannon returns its event emitter (without one, only a promise).
  const instance = autocannon({
    url: opts.url,
    connections: opts.connections,
    pipelining: 1,
    duration: opts.durationSec,
    timeout: 10,
    requests: [
      {
        method: 'POST',
        path: opts.path,
        headers: { 'content-type': 'application/json' },
        setupRequest: (req) => ({ ...req, body: JSON.stringify(opts.body()) }),
      },
    ],
  }, (err: Error | null, res: autocannon.Result) => (err ? fail(err) : finish(res)));
  // autocannon's own histogram keeps whole milliseconds; its 'response' event has the exact time.
  instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
    if (statusCode >= 200 && statusCode < 300) lat.add(responseTime);
    else {
      non2xx += 1;
      if (samples.size < 5) samples.add(`HTTP ${statusCode}`);
    }
  });
  instance.on('reqError', (err: Error) => {
    if (samples.size < 5) samples.add(err.message);
  });
  const result = await done;
  const seconds = (performance.now() - started) / 1000;
  return {
    requests: lat.count,
    rps: lat.count / seconds,
    ...lat.summary(),
    errors: result.errors + result.timeouts + non2xx,
    errorSamples: [...samples],
  };
}

/** `concurrency` loops calling `op` back to back for `durationSec`. */
export async function closedLoop(concurrency: number, durationSec: number, op: (i: number) => Promise<unknown>): Promise<LoadResult> {
  const lat = new Latencies();
  const samples = new Set<string>();
  let errors = 0;
  let next = 0;
  const started = performance.now();
  const end = started + durationSec * 1000;
  const loop = async (): Promise<void> => {
    while (performance.now() < end) {
      const t = performance.now();
      try {
        await op(next++);
        lat.add(performance.now() - t);
      } catch (err) {
        errors += 1;
        if (samples.size < 5) samples.add((err as Error).message.slice(0, 200));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  const seconds = (performance.now() - started) / 1000;
  return { requests: lat.count, rps: lat.count / seconds, ...lat.summary(), errors, errorSamples: [...samples] };
}
