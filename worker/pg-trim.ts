/**
 * Deleting the oplog's and the request ledger's rows by seq below FerretDB
 * (`DBAAS_WORKER_PG_URL`; issue 16: no periodic full scans). FerretDB 1.24 sends
 * no `_id` range down to PostgreSQL (it reads every row and filters in Go), so
 * every trim through it read the whole table. Here a delete is one statement on
 * a range of FerretDB's unique btree on `(_jsonb -> '_id')`: the rows it reads are
 * the rows it deletes.
 *
 * A trim by age (the first of a process: rows older than the process have no
 * seq/time marks in memory, oplog-trim.ts) finds its seq cut with a binary search
 * of index probes, one row each, since seq and time rise together; the statement
 * still checks each row's time above the count cut, so a row newer than the limit is
 * never deleted whatever the clocks did (one older than it, after a newer one, may
 * stay until a later trim). Seqs are positive numbers: every range starts above 0
 * (jsonb orders numbers above null and strings).
 */
import type pg from 'pg';
import { tableIn, withTables } from './pg-layout.js';

/** What to delete: every row with `after` < seq <= `upTo`; with `olderThan`, also the rows above `upTo` whose `ts` is before it; never seq >= `keepFrom`. */
export interface SeqDelete {
  after?: number;
  upTo: number;
  olderThan?: number;
  keepFrom?: number;
}

/** The statement: rows with `after` < seq <= `through`, those above `upTo` only when `ts` < `olderThan`. An index range scan (tests/integration/seq-trim.test.ts). */
export function deleteSeqsSql(from: string, d: { after: number; upTo: number; through: number; olderThan?: number }): { text: string; values: string[] } {
  const id = `(_jsonb -> '_id')`;
  const values = [JSON.stringify(d.after), JSON.stringify(d.through)];
  let text = `DELETE FROM ${from} WHERE ${id} > $1::jsonb AND ${id} <= $2::jsonb`;
  if (d.through > d.upTo && d.olderThan !== undefined) {
    text += ` AND (${id} <= $3::jsonb OR (_jsonb -> 'ts') < $4::jsonb)`;
    values.push(JSON.stringify(d.upTo), JSON.stringify(d.olderThan));
  }
  return { text, values };
}

/** The statement of a probe: the first row with seq >= `from`, or the newest (`from` undefined), one row of the `_id` btree. */
export function probeSql(from: string, seq: number | undefined): { text: string; values: string[] } {
  const columns = `SELECT (_jsonb -> '_id') AS seq, (_jsonb -> 'ts') AS ts FROM ${from}`;
  return seq === undefined
    ? { text: `${columns} WHERE (_jsonb -> '_id') > '0'::jsonb ORDER BY (_jsonb -> '_id') DESC LIMIT 1`, values: [] }
    : { text: `${columns} WHERE (_jsonb -> '_id') >= $1::jsonb ORDER BY (_jsonb -> '_id') LIMIT 1`, values: [JSON.stringify(seq)] };
}

/** The first row with seq >= `seq` (or the newest, `seq` undefined): its seq and time. */
async function probe(pool: pg.Pool, from: string, seq: number | undefined): Promise<{ seq: number; ts: unknown } | undefined> {
  const row = (await pool.query<{ seq: unknown; ts: unknown }>(probeSql(from, seq))).rows[0];
  return row && typeof row.seq === 'number' ? { seq: row.seq, ts: row.ts } : undefined;
}

/**
 * The highest seq below `before` (exclusive) up to which the rows are older than `olderThan`,
 * assuming time rises with seq; 0 when the oldest row is not. About log2(seq span) probes.
 */
export async function ageCut(pool: pg.Pool, from: string, olderThan: number, before: number): Promise<number> {
  const older = (row: { ts: unknown } | undefined): boolean => typeof row?.ts === 'number' && row.ts < olderThan;
  const first = await probe(pool, from, 1);
  if (!first || first.seq >= before || !older(first)) return 0;
  let lo = first.seq;
  let hi = before;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    const row = await probe(pool, from, mid);
    if (row && row.seq < hi && older(row)) lo = row.seq;
    else hi = mid;
  }
  return lo;
}

/** Deletes by seq ({@link SeqDelete}) in one statement on the `_id` btree; the number of rows deleted (0 when the table does not exist). */
export async function deleteSeqs(pool: pg.Pool, dbName: string, qualified: string, d: SeqDelete): Promise<number> {
  return withTables(pool, async () => {
    const from = await tableIn(pool, dbName, qualified);
    if (from === undefined) return 0;
    // The age cut's search needs an upper end: the newest row's seq, when no `keepFrom` gives one.
    const before = d.keepFrom ?? (d.olderThan === undefined ? Number.POSITIVE_INFINITY : ((await probe(pool, from, undefined))?.seq ?? 0) + 1);
    const upTo = Math.min(d.upTo, before - 1);
    const cut = d.olderThan === undefined ? 0 : await ageCut(pool, from, d.olderThan, before);
    const through = Math.max(upTo, cut);
    const after = d.after ?? 0;
    if (through <= after) return 0;
    const result = await pool.query(deleteSeqsSql(from, { after, upTo, through, ...(d.olderThan === undefined ? {} : { olderThan: d.olderThan }) }));
    return result.rowCount ?? 0;
  });
}
