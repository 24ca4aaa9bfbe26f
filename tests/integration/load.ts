/**
 * Continuous load for outage tests: writers insert keyed documents with a
 * requestId each and retry until acknowledged; readers read. Every attempt's
 * status and duration is kept, so a test can assert that none hung.
 */
import type { TestCluster } from './harness.js';

export interface Outcome {
  status: number;
  ms: number;
  code?: string;
}

export interface LoadResult {
  acked: Set<string>;
  outcomes: Outcome[];
}

/** `database`: where the table is (default: the `default` database). */
export function startLoad(c: TestCluster, table: string, writers = 2, readers = 1, database?: string): { stop(): Promise<LoadResult> } {
  const where = database === undefined ? {} : { database };
  const acked = new Set<string>();
  const outcomes: Outcome[] = [];
  let stopped = false;
  const attempt = async (url: string, body: unknown): Promise<number> => {
    const started = Date.now();
    const r = await c.post(url, body);
    outcomes.push({ status: r.status, ms: Date.now() - started, code: r.body?.error?.code });
    return r.status;
  };
  const writer = async (w: number): Promise<void> => {
    for (let i = 0; !stopped; i++) {
      const key = `${w}-${i}`;
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const status = await attempt('/api/v1/db/write', { ...where, table, operation: 'insert', data: { key }, requestId: `${database ?? ''}${table}-${key}` });
        if (status === 200) {
          acked.add(key);
          break;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  const reader = async (): Promise<void> => {
    while (!stopped) {
      const status = await attempt('/api/v1/db/read', { ...where, table, where: {}, count: true });
      if (status !== 200) await new Promise((r) => setTimeout(r, 50));
    }
  };
  // A request that throws (the cluster closed under a test that failed before stop()) ends that client; the
  // error is kept for stop() to throw, never left as an unhandled rejection that outlives its test.
  let failure: unknown;
  const running = [...Array.from({ length: writers }, (_, w) => writer(w)), ...Array.from({ length: readers }, () => reader())].map((p) =>
    p.catch((err: unknown) => {
      failure ??= err;
    }),
  );
  return {
    stop: async () => {
      stopped = true;
      await Promise.all(running);
      if (failure !== undefined) throw failure;
      return { acked, outcomes };
    },
  };
}
