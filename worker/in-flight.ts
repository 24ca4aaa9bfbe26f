/**
 * Several requests to the worker's database in flight at once, for work whose
 * items are independent (lookups by `_id`, the writes of distinct documents): on
 * FerretDB each round trip is a PostgreSQL transaction of its own, so one after
 * another they pay a commit each, while in flight together PostgreSQL commits
 * them in one WAL flush (issue 17: updates, docs/DECISIONS.md).
 */

/** Requests one such run keeps in flight (the worker's MongoDB pool has 16 connections). */
export const IN_FLIGHT = 8;

/**
 * Runs `fn` on every item, at most `limit` at a time. After a failure no further
 * item is started; it rejects with the first failure once the running ones have settled.
 */
export async function eachConcurrently<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const lane = async (): Promise<void> => {
    while (next < items.length && failure === undefined) {
      try {
        await fn(items[next++] as T);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure !== undefined) throw failure.err;
}
