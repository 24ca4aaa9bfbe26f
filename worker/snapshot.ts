/**
 * How a new slave gets the master's data: a snapshot copied page by page
 * **through its own sync queue**, each page read by the master at a batch
 * boundary it chooses. No fuzzy window, no overlay, no dependence on scan order.
 *
 * Protocol:
 * 1. The slave binds its durable sync queue (so every entry published from now
 *    on reaches it), then asks the master for the first page on the master's
 *    control queue (`snapshot-page`, common/messages.ts). For a new slave of the
 *    process runtime the orchestrator does both while the slave's process starts
 *    (common/snapshot-request.ts), and the slave expects that request's answer.
 * 2. The master handles the request inside its serial write stage, between two
 *    batches (MasterRole.servePage): its data is then exactly at its newest seq
 *    `s`; it reads the next documents in key order (snapshot-key.ts) and
 *    publishes them, on the channel it publishes entries on, to the slave's queue
 *    as a {@link SnapshotPage} with `atSeq = s`. So in the queue the page comes
 *    after entry `s` and before entry `s + 1`.
 * 3. The slave takes its queue in order. Keys up to the last page's end are
 *    **covered**; an entry's ops on covered keys are applied, ops on uncovered
 *    keys are dropped (a later page brings those documents, read later). Each
 *    page extends the covered range, and the slave asks for the next one.
 *
 * Invariant: whenever the slave has taken its queue up to a point where the
 * master had applied seq `s`, its data restricted to the covered keys equals the
 * master's data at `s` restricted to the same keys (and it holds no other key).
 * - A page at `s` is applied only where the slave stands exactly at `s` (its
 *   applied seq is `s`; for the first page, no entry above `s` was seen), and its
 *   documents are the master's at `s` for exactly the keys it adds: so the
 *   invariant holds after it. A page that finds the slave elsewhere (a page
 *   overtaken by a re-published entry, a duplicate, an answer to an older
 *   request) is dropped and the same range asked for again: resumable.
 * - An entry `s + 1` changes each document to its post-image (or deletes it);
 *   applied to the covered keys only, it keeps the invariant on them, and the
 *   keys it leaves out stay uncovered. A `clear` empties every table: on the
 *   slave that is exactly the covered keys, so it is applied as it is.
 * - Once a page reaches the end of every table, every key is covered: the data
 *   equals the master's at the slave's applied seq, and from then on every entry
 *   is applied in full, in order (sync-order.ts): the old invariant "queue bound
 *   before S0, every entry above S0 applied in order", with S0 the first page's
 *   seq and the entries between pages applied to the part already copied.
 *
 * Cost: the master reads each page between two batches, so writes wait while a
 * page is read. On FerretDB (SQLite) a page is a scan of the table's rest (no
 * `_id` range or sort pushdown), so pages grow (doubling up to {@link MAX_PAGE_DOCS})
 * to keep the number of scans small; docs/DECISIONS.md has the figures.
 *
 * **Stream** (a master on FerretDB/PostgreSQL, `DBAAS_WORKER_PG_URL`): the
 * first request is answered between two batches, as above, but with a marker
 * (part 0, no documents) at `s = S0`, while the master opens one REPEATABLE READ
 * transaction on its database there (pg-snapshot.ts). Parts 1..n, read from that
 * transaction while writes go on, follow in the queue, all "at S0" but met after
 * entries above S0. So from the marker on the slave applies **every** entry in full
 * (inexact: a document may be missing) and remembers the keys they touched
 * ({@link StreamCopy}); a part's document is written only if no entry since the
 * marker touched its key, since any such entry's post-image is newer than the copy
 * at S0 (the rule of MongoDB's initial sync: clone, then the oplog over it). Keys
 * untouched since S0 equal the master's at S0, which equals the master's now. A
 * `clear` met during a stream voids the rest of the copy (its documents may be
 * older than the clear): the slave asks for a new stream, whose marker it meets
 * where it stands exactly at the marker's seq; the data it holds then is a subset of
 * the master's at that seq with the right values (everything it holds came from the
 * old copy untouched since, or from entries), so the new stream only fills in. A
 * lost part (parts are numbered) does the same. Invariant at the end: data equals the
 * master's at the slave's applied seq.
 *
 * The request ledger is not part of this: the slave copies the master's ledger
 * records up to the first page's seq afterwards, while it already serves reads
 * (request-ledger.ts; a slave is a failover candidate only once that is done).
 */
import type { SnapshotPage, SyncOp } from '../common/messages.js';
import { compareKeys, type SnapshotKey } from './snapshot-key.js';

/** Which keys the slave's data covers: none yet, up to a key, or all. */
export type Coverage = { kind: 'none' } | { kind: 'upTo'; key: SnapshotKey } | { kind: 'all' };

export function covers(c: Coverage, table: string, id: string): boolean {
  if (c.kind === 'all') return true;
  if (c.kind === 'none') return false;
  return compareKeys({ table, id }, c.key) <= 0;
}

/** An entry's ops restricted to the covered keys (a `clear` and index ops, issue 17, always stay). */
export function coveredOps(c: Coverage, ops: readonly SyncOp[]): SyncOp[] {
  if (c.kind === 'all') return [...ops];
  return ops.filter((op) => op.t === 'clear' || op.t === 'index' || op.t === 'dropIndex' || covers(c, op.table, op.t === 'put' ? op.doc._id : op.id));
}

/** What the slave stands at when a page arrives. */
export interface CopyState {
  coverage: Coverage;
  /** The request the slave waits for. */
  pendingId: string | undefined;
  /** The slave's applied seq, once the first page set it. */
  appliedSeq: number | undefined;
  /** The highest seq of any entry met before the first page. */
  seenBeforeFirst: number;
}

export type PageVerdict =
  | { kind: 'apply' }
  /** Not the page asked for (a duplicate, an older request's): nothing to do. */
  | { kind: 'ignore'; why: string }
  /** The page asked for, but the slave does not stand at its seq: ask for the same range again. */
  | { kind: 'ask-again'; why: string };

function sameKey(a: SnapshotKey | undefined, b: SnapshotKey | undefined): boolean {
  return a === undefined || b === undefined ? a === b : compareKeys(a, b) === 0;
}

/** Whether a page may be applied now (pure; see the invariant above). */
export function judgePage(s: CopyState, page: Pick<SnapshotPage, 'id' | 'atSeq' | 'after'>): PageVerdict {
  if (s.coverage.kind === 'all') return { kind: 'ignore', why: 'the copy is complete' };
  if (page.id !== s.pendingId) return { kind: 'ignore', why: `page ${page.id} answers no pending request` };
  const from = s.coverage.kind === 'upTo' ? s.coverage.key : undefined;
  if (!sameKey(from, page.after)) return { kind: 'ignore', why: 'the page starts elsewhere than the copy stands' };
  if (s.appliedSeq === undefined) {
    if (s.seenBeforeFirst > page.atSeq) return { kind: 'ask-again', why: `entry ${s.seenBeforeFirst} came before the first page, read at ${page.atSeq}` };
    return { kind: 'apply' };
  }
  if (s.appliedSeq !== page.atSeq) return { kind: 'ask-again', why: `the page was read at seq ${page.atSeq}, this slave stands at ${s.appliedSeq}` };
  return { kind: 'apply' };
}

/** Where a stream (see above) stands on the slave: its request, seq, next part, and the keys entries touched since its marker. */
export interface StreamCopy {
  id: string;
  atSeq: number;
  next: number;
  touched: Set<string>;
}

function streamKey(table: string, id: string): string {
  return `${table}\u0000${id}`;
}

/** Notes the keys an entry applied during a stream touches; true when it holds a `clear` (the stream must start again). */
export function noteTouched(stream: StreamCopy, ops: readonly SyncOp[]): boolean {
  let cleared = false;
  for (const op of ops) {
    if (op.t === 'put') stream.touched.add(streamKey(op.table, op.doc._id));
    else if (op.t === 'del') stream.touched.add(streamKey(op.table, op.id));
    else if (op.t === 'clear') cleared = true;
  }
  return cleared;
}

/** A part's documents that may be written: those no entry since the marker touched. */
export function untouchedDocs<D extends { table: string; doc: { _id: string } }>(stream: StreamCopy, docs: readonly D[]): D[] {
  return docs.filter((d) => !stream.touched.has(streamKey(d.table, d.doc._id)));
}

/** The same for rows (SnapshotPage.rows): those whose key no entry since the marker touched. */
export function untouchedRows<R extends { table: string; id: string }>(stream: StreamCopy, rows: readonly R[]): R[] {
  return rows.filter((r) => !stream.touched.has(streamKey(r.table, r.id)));
}

export type PartVerdict = { kind: 'apply' } | { kind: 'ignore'; why: string } | { kind: 'restart'; why: string };

/** Whether part k > 0 of a stream may be applied now (part 0, the marker, is judged by {@link judgePage}). */
export function judgePart(stream: StreamCopy | undefined, page: Pick<SnapshotPage, 'id' | 'atSeq' | 'stream'>): PartVerdict {
  if (!stream || page.id !== stream.id || page.atSeq !== stream.atSeq) return { kind: 'ignore', why: `part of stream ${page.id}, not the one being copied` };
  const part = page.stream?.part ?? -1;
  if (page.stream?.failed !== undefined) return { kind: 'restart', why: `the master could not read the copy: ${page.stream.failed}` };
  if (part < stream.next) return { kind: 'ignore', why: `part ${part} again` };
  if (part > stream.next) return { kind: 'restart', why: `part ${stream.next} was lost (got ${part})` };
  return { kind: 'apply' };
}

/** The coverage after applying a page. */
export function coverageAfter(page: Pick<SnapshotPage, 'end'>): Coverage {
  return page.end === undefined ? { kind: 'all' } : { kind: 'upTo', key: page.end };
}
