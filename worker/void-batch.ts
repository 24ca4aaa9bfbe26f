/**
 * A write the master's own database refuses becomes a void entry at its seq
 * (docs/DECISIONS.md, "A write the storage refuses becomes a void entry").
 *
 * The invariant kept: no entry leaves the master before the master's own database
 * has taken its data. The master stores a batch's entries (for crash repair), writes
 * the batch's data, and only then publishes the entries. If the database refuses the
 * data, nothing of the batch has been published or answered yet, so the batch can be
 * taken back: each entry is rewritten in place as a void entry (same seq, no ops, no
 * ledger record) and the documents the batch may have half-written are put back as
 * they were before it. A slave applies a void entry as an empty one; the refused
 * write is answered 4xx (a batch of several writes is tried again one write at a time).
 *
 * Putting documents back needs their state before the batch. The build reads every
 * document it changes (a put without `fresh` is a document it read, a `fresh` put one
 * that did not exist; worker/checkpoint-window.ts relies on the same), so
 * {@link PreImages} records what the batch read, and {@link undoOps} turns it into
 * ops that restore it: stored with the entries (Store.recordEntries), so a crash at
 * any point between storing and publishing is repaired the same way (MasterRole.recover).
 */
import { MongoServerError } from 'mongodb';
import type { Doc } from '../common/commands.js';
import { DbaasError } from '../common/errors.js';
import { withoutCallChain } from '../common/client-message.js';
import type { SyncEntry, SyncOp } from '../common/messages.js';
import { EXISTS, keyOfDoc, NotingSource, type BatchSource } from './write-batch.js';

type Stored = Doc & { _id: string };

/** The documents a batch read before it changed them, as copies (write-batch.ts NotingSource). */
export class PreImages extends NotingSource<Stored> {
  constructor(db: BatchSource) {
    super(db, (doc) => structuredClone(doc));
  }

  /** The document before the batch: null when it did not exist, undefined when its contents were never read. */
  get(table: string, id: string): Stored | null | undefined {
    const seen = this.seen.get(keyOfDoc(table, id));
    return seen === EXISTS ? undefined : seen;
  }
}

/**
 * For each entry of a batch (in seq order), the ops that put back what it changes
 * first in the batch as it was before the batch: a document read before is put back,
 * one that did not exist is deleted, a created index is dropped. Undefined for an
 * entry with a change that cannot be taken back (a clear, a dropped index, a document
 * the build never read): such a batch is never voided.
 */
export function undoOps(entries: readonly SyncEntry[], pre: Pick<PreImages, 'get'>): Array<SyncOp[] | undefined> {
  const done = new Set<string>();
  return entries.map((entry) => {
    const undo: SyncOp[] = [];
    for (const op of entry.ops) {
      if (op.t === 'clear' || op.t === 'dropIndex') return undefined;
      if (op.t === 'index') {
        undo.push({ t: 'dropIndex', table: op.table, name: op.index.name });
        continue;
      }
      const id = op.t === 'put' ? op.doc._id : op.id;
      const key = keyOfDoc(op.table, id);
      if (done.has(key)) continue;
      done.add(key);
      const before = pre.get(op.table, id);
      if (before) undo.push({ t: 'put', table: op.table, doc: before });
      else if (before === null || (op.t === 'put' && op.fresh)) undo.push({ t: 'del', table: op.table, id });
      else return undefined;
    }
    return undo;
  });
}

/**
 * Which write of a batch must be built again alone because its entry cannot be taken back (`undo[i]`
 * undefined for `entries[i]`): the index in `outcomes` of the first such entry, or -1. Linear in the
 * batch (the entries are the `entry` outcomes' own, found by identity).
 */
export function firstIrreversible(outcomes: ReadonlyArray<{ kind: string; entry?: SyncEntry }>, entries: readonly SyncEntry[], undo: ReadonlyArray<SyncOp[] | undefined>): number {
  const at = entries.findIndex((_, i) => undo[i] === undefined);
  if (at < 0) return -1;
  const entry = entries[at];
  return outcomes.findIndex((o) => o.kind === 'entry' && o.entry === entry);
}

/** The entry a refused one becomes: same seq, term and batch, no ops, marked void. */
export function voided(entry: SyncEntry): SyncEntry {
  return { ...entry, ops: [], void: true };
}

/**
 * MongoDB server error codes that say the server could not do the write now
 * (shutting down, not primary, unreachable, interrupted), not that it refuses it.
 */
const NOT_A_REFUSAL = new Set([6, 7, 89, 91, 189, 9001, 10107, 11600, 11602, 13435, 13436, 262, 50]);

/**
 * Whether a failed write was refused by the database itself (it answered with an
 * error about the write: a value, a size, a key), as opposed to not reaching it or
 * it being unable to work now. Only a refusal voids a batch; anything else stops the
 * master as before (the restart replays the batch).
 */
export function refusedByStorage(err: unknown): err is MongoServerError {
  if (!(err instanceof MongoServerError)) return false;
  if (typeof err.code === 'number' && NOT_A_REFUSAL.has(err.code)) return false;
  // FerretDB answers a PostgreSQL it cannot reach with an internal error naming the connection.
  // And one it cannot connect to at all, or whose connection broke mid-answer (a PostgreSQL crash: "unexpected EOF").
  // SQLite's lock held by another connection past its busy timeout ("database is locked (5) (SQLITE_BUSY)") says "not now", not "no".
  return !/database (table )?is locked|SQLITE_BUSY|SQLITE_LOCKED|connection refused|connect: |failed to connect|not currently accepting connections|unexpected EOF|too many clients|the database system is (starting up|shutting down|in recovery mode)|terminating connection|broken pipe|connection reset|i\/o timeout|conn closed/i.test(err.message);
}

/** The answer to a write the storage refused (the storage's words, cut short: they may quote the value). */
export function storageRefusal(err: Error): DbaasError {
  return new DbaasError('DBAAS_WRITE_REFUSED_BY_STORAGE', `the database refused the write; nothing of it was applied: ${databaseSaid(err)}`);
}

/** What the database said, for a client: cut short (it may quote the value), without FerretDB's call chain. */
export function databaseSaid(err: Error): string {
  // FerretDB prefixes its error with where in its own code it passed ("[msg_insert.go:168 handler.(*Handler).MsgInsert]"):
  // the client is told what the database said, not the server's call chain.
  const plain = withoutCallChain(err.message).trim();
  return plain.length > 300 ? `${plain.slice(0, 300)}…` : plain;
}
