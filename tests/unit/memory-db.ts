/**
 * An in-memory stand-in for a worker's database, for testing the batching and
 * replay rules without one: tables of documents by `_id`, equality filters only.
 */
import type { Doc, Filter, IndexSpec } from '../../common/commands.js';
import { splitTable } from '../../common/databases.js';
import { uniqueKeyOf } from '../../common/index-spec.js';
import type { IndexOp, SyncOp } from '../../common/messages.js';
import { groupByTable, type ApplyStep } from '../../worker/apply-plan.js';
import type { BatchSource } from '../../worker/write-batch.js';

export type Row = Doc & { _id: string };

export class MemoryDb implements BatchSource {
  readonly tables = new Map<string, Map<string, Row>>();
  /** Round trips a real store would make, by kind. */
  readonly calls = { findById: 0, find: 0, exists: 0 };

  private t(name: string): Map<string, Row> {
    let t = this.tables.get(name);
    if (!t) {
      t = new Map();
      this.tables.set(name, t);
    }
    return t;
  }

  async findById(table: string, id: string): Promise<Row | undefined> {
    this.calls.findById += 1;
    const doc = this.tables.get(table)?.get(id);
    return doc ? structuredClone(doc) : undefined;
  }

  async *findForUpdate(table: string, where: Filter): AsyncIterable<Row> {
    this.calls.find += 1;
    for (const d of [...(this.tables.get(table)?.values() ?? [])].filter((x) => matches(x, where))) yield structuredClone(d);
  }

  async *matchingIds(table: string, where: Filter): AsyncIterable<string> {
    this.calls.find += 1;
    for (const d of [...(this.tables.get(table)?.values() ?? [])].filter((x) => matches(x, where))) yield d._id;
  }

  async idsExisting(table: string, ids: string[]): Promise<string[]> {
    this.calls.exists += 1;
    return ids.filter((id) => this.tables.get(table)?.has(id));
  }

  /** Secondary indexes by table (issue 17). */
  readonly indexDefs = new Map<string, IndexSpec[]>();

  async indexes(table: string): Promise<IndexSpec[]> {
    return this.indexDefs.get(table) ?? [];
  }

  async keyHolders(table: string, index: IndexSpec, key: string): Promise<string[]> {
    return [...(this.tables.get(table)?.values() ?? [])].filter((d) => uniqueKeyOf(index, d, table) === key).map((d) => d._id);
  }

  async *scanTable(table: string): AsyncIterable<Doc> {
    for (const d of this.tables.get(table)?.values() ?? []) yield structuredClone(d);
  }

  private applyIndex(op: IndexOp): void {
    const list = (this.indexDefs.get(op.table) ?? []).filter((i) => i.name !== (op.t === 'index' ? op.index.name : op.name));
    if (op.t === 'index') list.push(op.index);
    this.indexDefs.set(op.table, list);
  }

  /** A clear: every table, or one database's. */
  private clear(database: string | undefined): void {
    for (const table of [...this.tables.keys()]) if (database === undefined || splitTable(table).database === database) this.tables.delete(table);
  }

  /** One op at a time, as the oplog's order says. */
  applySequential(ops: readonly SyncOp[]): void {
    for (const op of ops) {
      if (op.t === 'clear') this.clear(op.database);
      else if (op.t === 'index' || op.t === 'dropIndex') this.applyIndex(op);
      else if (op.t === 'put') this.t(op.table).set(op.doc._id, structuredClone(op.doc));
      else this.tables.get(op.table)?.delete(op.id);
    }
  }

  /**
   * Coalesced steps as Store.applyOps writes them, with its semantics: an insert of a
   * document already there fails and is replaced; a replace of a missing one inserts.
   * `only` limits the changes written (a crash part-way).
   */
  applySteps(steps: readonly ApplyStep[], only: (i: number) => boolean = () => true): void {
    let i = 0;
    for (const step of steps) {
      if (step.kind === 'clear') {
        if (only(i++)) this.clear(step.database);
        continue;
      }
      if (step.kind === 'index') {
        if (only(i++)) this.applyIndex(step.op);
        continue;
      }
      for (const w of groupByTable(step.changes)) {
        for (const doc of [...w.inserts, ...w.replaces]) if (only(i++)) this.t(w.table).set(doc._id, structuredClone(doc));
        for (const id of w.deletes) if (only(i++)) this.tables.get(w.table)?.delete(id);
      }
    }
  }

  /** Tables with their documents sorted by id; empty tables left out. */
  dump(): Record<string, Row[]> {
    const out: Record<string, Row[]> = {};
    for (const [name, t] of [...this.tables].sort(([a], [b]) => a.localeCompare(b))) {
      if (t.size > 0) out[name] = [...t.values()].sort((a, b) => a._id.localeCompare(b._id));
    }
    return out;
  }

  clone(): MemoryDb {
    const c = new MemoryDb();
    for (const [name, t] of this.tables) c.tables.set(name, new Map([...t].map(([id, d]) => [id, structuredClone(d)])));
    return c;
  }
}

function matches(doc: Doc, where: Filter): boolean {
  return Object.entries(where).every(([k, v]) => JSON.stringify(doc[k]) === JSON.stringify(v));
}

export { rng } from '../prng.js';
