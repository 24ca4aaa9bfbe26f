/**
 * What the nemesis clients did: one record per logical write (all its retries
 * share one requestId), with its outcome. The checker reads only this and the
 * replicas' data, so it is a pure function that unit tests drive directly.
 */

/** The tables the workload writes; each holds one kind of key. */
export const TABLES = Object.freeze({
  /** Inserts with an `_id` (`d-<client>-<i>`), later deleted by `_id`. */
  docs: 'nm_docs',
  /** Inserts without `_id`, found by their `key` field (`a-<client>-<i>`). */
  auto: 'nm_auto',
  /** Upserts `{_id, owner}` → `$set {note}`; foreign upserts name a wrong owner and must be refused. */
  accounts: 'nm_accounts',
  /** `$inc {n}` upserts. */
  counters: 'nm_counters',
  /** `$push {items}` upserts. */
  arrays: 'nm_arrays',
});

export type OpKind =
  /** insert `{_id: key, c, i}` into nm_docs */
  | 'insert-id'
  /** insert `{key, c, i}` (no `_id`) into nm_auto */
  | 'insert-auto'
  /** delete `{_id: key}` from nm_docs */
  | 'delete'
  /** upsert `{_id: key, owner}` `$set {note: value}` in nm_accounts */
  | 'upsert'
  /** upsert `{_id: key, owner: "mallory"}` on an existing account: must be refused (409), changing nothing */
  | 'upsert-foreign'
  /** upsert `{_id: key}` `$inc {n: value}` in nm_counters */
  | 'inc'
  /** upsert `{_id: key}` `$push {items: value}` in nm_arrays */
  | 'push';

/**
 * - `ok`: acknowledged (200): applied exactly once.
 * - `refused`: a definite 4xx: applied never.
 * - `unknown`: no answer before the deadline, or a 5xx that is not retried: applied at most once.
 */
export type Outcome = 'ok' | 'refused' | 'unknown';

export interface OpRecord {
  kind: OpKind;
  client: number;
  /** The `_id` (or the `key` field for insert-auto) the write is about. */
  key: string;
  /** The note (upsert), the amount (inc) or the item (push). */
  value?: string | number;
  /** The owner named in the filter (upsert, upsert-foreign). */
  owner?: string;
  requestId: string;
  outcome: Outcome;
  /** HTTP status of the last try (0: no answer). */
  status: number;
  code?: string;
  /** Tries sent, the first included. */
  attempts: number;
  /** Why tries were retried: error code → how many times (absent when the first try settled it). */
  retried?: Record<string, number>;
  startMs: number;
  endMs: number;
  /** For inserts: the ids the server answered; for all: matched/inserted counts when acknowledged. */
  ids?: string[];
  inserted?: number;
  matched?: number;
  deleted?: number;
}

export const FOREIGN_OWNER = 'mallory';

export function ownerOf(client: number): string {
  return `c${client}`;
}
