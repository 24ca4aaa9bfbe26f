/**
 * How a run of resulting-state ops is written to a database in few round trips,
 * as a pure function.
 *
 * Ops are post-images and deletions, so only the last op on each document
 * matters for the state after the run: a run is coalesced to one change per
 * document. `clear` empties every table, so it splits the run: changes before it
 * are pointless and dropped, and every document put after it is known to be new.
 * A `clear` of one database (a drop) also splits the run, but simply: the changes
 * before it are written first, then the database is emptied.
 * A document first put with the `fresh` hint (it did not exist before) and
 * deleted later in the run is never written at all, but only where the data is
 * known to be exactly the state before the run (`exact`): the master's own
 * apply, or a slave past its snapshot window. Anywhere else (a slave applying
 * the entries its fuzzy snapshot copy may already hold, a replay after a crash)
 * the hint may be wrong, so the delete is kept: eliding it would resurrect a
 * document the copy already held (the snapshot rule, docs/DECISIONS.md).
 *
 * The database is left in the state after the run only once every change has
 * been written; callers record their progress (appliedSeq, the oplog) only after
 * that, and a crash in between is repaired by replaying the run.
 */
import type { Doc } from '../common/commands.js';
import { splitTable } from '../common/databases.js';
import type { IndexOp, SyncOp } from '../common/messages.js';

export interface DocChange {
  table: string;
  id: string;
  /** The post-image, or undefined for a deletion. */
  doc: (Doc & { _id: string }) | undefined;
  /** The document did not exist before the run (so a put is a plain insert). */
  fresh: boolean;
}

/** `database`: empty only that database (see SyncOp); absent, every table of every database. */
export type ApplyStep = { kind: 'clear'; database?: string } | { kind: 'changes'; changes: DocChange[] } | IndexStep;

/** An index op splits the run (issue 17): the changes before it are written first, those after it after. */
export type IndexStep = { kind: 'index'; op: IndexOp };

/** Per table: documents to insert, documents to replace, ids to delete. */
export interface TableWrites {
  table: string;
  inserts: Array<Doc & { _id: string }>;
  replaces: Array<Doc & { _id: string }>;
  deletes: string[];
}

/**
 * What to write for a run of ops (in seq order): one change per document between clears.
 *
 * `exact`: the data holds exactly the state before the run, so a `fresh` put
 * really was new and a fresh put deleted within the run can be skipped. When
 * false, such a deletion is written (a delete of a missing document is harmless;
 * skipping one of a document that exists loses an acknowledged delete).
 */
export function planApply(ops: readonly SyncOp[], exact = true): ApplyStep[] {
  return coalesce(ops).flatMap((step): ApplyStep[] => {
    if (step.kind !== 'changes') return [step];
    const kept = exact ? step.changes.filter((c) => !(c.fresh && c.doc === undefined)) : step.changes;
    return kept.length > 0 ? [{ kind: 'changes', changes: kept }] : [];
  });
}

/**
 * The state a run of ops (in seq order) leaves: the last change of each document
 * between clears, deletions of documents created within the run included.
 */
export function coalesce(ops: readonly SyncOp[]): ApplyStep[] {
  const steps: ApplyStep[] = [];
  let changes = new Map<string, DocChange>();
  let afterClear = false;
  for (const op of ops) {
    if (op.t === 'clear' && op.database !== undefined) {
      if (changes.size > 0) steps.push({ kind: 'changes', changes: [...changes.values()] });
      changes = new Map();
      steps.push({ kind: 'clear', database: op.database });
      continue;
    }
    if (op.t === 'clear') {
      // Whatever came before is emptied anyway: one clear replaces all of it.
      changes = new Map();
      steps.length = 0;
      steps.push({ kind: 'clear' });
      afterClear = true;
      continue;
    }
    if (op.t === 'index' || op.t === 'dropIndex') {
      if (changes.size > 0) steps.push({ kind: 'changes', changes: [...changes.values()] });
      changes = new Map();
      steps.push({ kind: 'index', op });
      continue;
    }
    const id = op.t === 'put' ? op.doc._id : op.id;
    const key = `${op.table}\u0000${id}`;
    const prev = changes.get(key);
    const doc = op.t === 'put' ? op.doc : undefined;
    if (prev) prev.doc = doc;
    else changes.set(key, { table: op.table, id, doc, fresh: afterClear || (op.t === 'put' && op.fresh === true) });
  }
  if (changes.size > 0) steps.push({ kind: 'changes', changes: [...changes.values()] });
  return steps;
}

/** Groups a step's changes by table into inserts, replaces and deletes. */
export function groupByTable(changes: readonly DocChange[]): TableWrites[] {
  const byTable = new Map<string, TableWrites>();
  for (const c of changes) {
    let t = byTable.get(c.table);
    if (!t) {
      t = { table: c.table, inserts: [], replaces: [], deletes: [] };
      byTable.set(c.table, t);
    }
    if (c.doc === undefined) t.deletes.push(c.id);
    else if (c.fresh) t.inserts.push(c.doc);
    else t.replaces.push(c.doc);
  }
  return [...byTable.values()];
}

/**
 * Lays a replay of ops over a copy of the data as the copy is read (see
 * Store.copyFrom): `pick` gives what to write for each document read (the
 * replay's post-image, nothing when the replay deletes it or clears its table, or
 * the document as read), and `unmet` the replay's post-images of documents the
 * copy never read, once it is over.
 */
export class ReplayOverlay {
  private readonly changes = new Map<string, DocChange>();
  /** Whether the replay empties a table: every one, or those of one database. */
  private readonly cleared: (table: string) => boolean;

  constructor(ops: readonly SyncOp[]) {
    const steps = coalesce(ops);
    const clears = steps.filter((s) => s.kind === 'clear');
    this.cleared = (table) => clears.some((s) => s.database === undefined || splitTable(table).database === s.database);
    for (const s of steps) if (s.kind === 'changes') for (const c of s.changes) this.changes.set(`${c.table}\u0000${c.id}`, c);
  }

  pick<D extends { _id: string }>(table: string, doc: D): D | (Doc & { _id: string }) | undefined {
    const key = `${table}\u0000${doc._id}`;
    const change = this.changes.get(key);
    if (change) {
      this.changes.delete(key);
      return change.doc;
    }
    return this.cleared(table) ? undefined : doc;
  }

  /** Post-images of documents `pick` never saw, by table. */
  unmet(): Map<string, Array<Doc & { _id: string }>> {
    const out = new Map<string, Array<Doc & { _id: string }>>();
    for (const c of this.changes.values()) {
      if (!c.doc) continue;
      const list = out.get(c.table) ?? [];
      list.push(c.doc);
      out.set(c.table, list);
    }
    return out;
  }
}
