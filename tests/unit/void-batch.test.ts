/**
 * Taking back a batch the database refused (worker/void-batch.ts): whatever part of
 * the batch's data was written before the refusal (or a crash), the undo ops put
 * every document back as it was before the batch.
 */
import { describe, expect, it } from 'vitest';
import { MongoServerError } from 'mongodb';
import type { WriteCommand } from '../../common/commands.js';
import { DbaasError } from '../../common/errors.js';
import { decodeSync, encode, type SyncEntry } from '../../common/messages.js';
import { planApply } from '../../worker/apply-plan.js';
import { buildWrite } from '../../worker/entry-builder.js';
import { ledgerRecords } from '../../worker/store.js';
import { databaseSaid, firstIrreversible, PreImages, refusedByStorage, storageRefusal, undoOps, voided } from '../../worker/void-batch.js';
import { BatchView, planBatch } from '../../worker/write-batch.js';
import { MemoryDb, rng } from './memory-db.js';

const TABLES = ['a', 'b'];

function randomWrite(r: () => number, ids: string[], fresh: () => string): WriteCommand {
  const table = TABLES[Math.floor(r() * TABLES.length)] as string;
  const id = ids[Math.floor(r() * ids.length)] as string;
  const x = r();
  if (x < 0.2) return { kind: 'insert', table, docs: [{ _id: fresh(), n: 0 }] };
  if (x < 0.3) return { kind: 'insert', table, docs: [{ _id: id, n: 0 }] };
  if (x < 0.55) return { kind: 'update', table, where: { _id: id }, update: { $inc: { n: 1 }, $push: { log: Math.floor(r() * 100) } } };
  if (x < 0.65) return { kind: 'upsert', table, where: { _id: id }, update: { $inc: { n: 10 } } };
  if (x < 0.75) return { kind: 'delete', table, where: { _id: id } };
  if (x < 0.9) return { kind: 'update', table, where: { n: Math.floor(r() * 3) }, update: { $set: { g: Math.floor(r() * 5) } } };
  return { kind: 'delete', table, where: { g: Math.floor(r() * 5) } };
}

function entry(seq: number, ops: SyncEntry['ops']): SyncEntry {
  return { v: 1, seq, term: 1, requestId: `r${seq}`, ts: 0, ops, result: { ok: true, seq } } as SyncEntry;
}

describe('undoOps', () => {
  it('puts back the state before the batch after any part of it was written (300 seeds)', async () => {
    for (let seed = 1; seed <= 300; seed++) {
      const r = rng(seed);
      const ids = Array.from({ length: 6 }, (_, i) => `d${i}`);
      let next = 0;
      const fresh = (): string => `f${seed}-${next++}`;
      const db = new MemoryDb();
      // Some history first, so the batch meets existing documents.
      for (let i = 0; i < 10; i++) {
        try {
          db.applySequential((await buildWrite(db, randomWrite(r, ids, fresh))).ops);
        } catch (err) {
          if (!(err instanceof DbaasError)) throw err;
        }
      }
      const before = db.dump();
      const writes = Array.from({ length: 12 }, () => randomWrite(r, ids, fresh));
      const n = planBatch(writes, { maxWrites: 12, maxDocs: 1000 });
      const pre = new PreImages(db);
      const view = new BatchView(pre);
      if (r() < 0.5) await view.prefetch(writes.slice(0, n));
      const entries: SyncEntry[] = [];
      for (const w of writes.slice(0, n)) {
        try {
          const built = await buildWrite(view, w);
          view.record(built.ops);
          entries.push(entry(entries.length + 1, built.ops));
        } catch (err) {
          if (!(err instanceof DbaasError)) throw err;
        }
      }
      const undo = undoOps(entries, pre);
      expect({ seed, undoable: undo.every((u) => u !== undefined) }).toEqual({ seed, undoable: true });
      // The refusal (or a crash) after a random part of the coalesced writes.
      const cut = r();
      db.applySteps(planApply(entries.flatMap((e) => e.ops)), () => r() < cut);
      db.applySequential(undo.flatMap((u) => u ?? []));
      expect({ seed, data: db.dump() }).toEqual({ seed, data: before });
    }
  });

  it('gives none for a change that cannot be taken back', () => {
    const none = { get: () => undefined };
    expect(undoOps([entry(1, [{ t: 'clear' }])], none)).toEqual([undefined]);
    expect(undoOps([entry(1, [{ t: 'dropIndex', table: 'a', name: 'x_1' }])], none)).toEqual([undefined]);
    // A document the build never read (and not a fresh insert): its state before is unknown.
    expect(undoOps([entry(1, [{ t: 'put', table: 'a', doc: { _id: 'x' } }])], none)).toEqual([undefined]);
    expect(undoOps([entry(1, [{ t: 'put', table: 'a', doc: { _id: 'x' }, fresh: true }])], none)).toEqual([[{ t: 'del', table: 'a', id: 'x' }]]);
    expect(undoOps([entry(1, [{ t: 'index', table: 'a', index: { name: 'k_1', keys: [['k', 1]], unique: false } }])], none)).toEqual([[{ t: 'dropIndex', table: 'a', name: 'k_1' }]]);
  });
});

describe('firstIrreversible', () => {
  const entry = (seq: number): SyncEntry => ({ v: 1, seq, term: 1, requestId: `r${seq}`, ts: 0, ops: [], result: { seq } }) as unknown as SyncEntry;
  it("names the first write whose entry cannot be taken back, in the batch's order, skipping other outcomes", () => {
    const [e1, e2, e3] = [entry(1), entry(2), entry(3)] as [SyncEntry, SyncEntry, SyncEntry];
    const outcomes = [{ kind: 'error' }, { kind: 'entry', entry: e1 }, { kind: 'retry' }, { kind: 'same' }, { kind: 'entry', entry: e2 }, { kind: 'entry', entry: e3 }];
    expect(firstIrreversible(outcomes, [e1, e2, e3], [[], undefined, undefined])).toBe(4);
    expect(firstIrreversible(outcomes, [e1, e2, e3], [undefined, [], undefined])).toBe(1);
    expect(firstIrreversible(outcomes, [e1, e2, e3], [[], [], []])).toBe(-1);
    expect(firstIrreversible([{ kind: 'error' }], [], [])).toBe(-1);
  });
});

describe('a void entry', () => {
  it('travels with no ops, and gets no ledger record', () => {
    const v = voided(entry(3, [{ t: 'del', table: 'a', id: 'x' }]));
    expect(v).toMatchObject({ seq: 3, ops: [], void: true });
    expect(decodeSync(encode(v))?.void).toBe(true);
    expect(decodeSync(encode({ ...v, void: 'yes' }))).toBeUndefined();
    expect(ledgerRecords([entry(2, []), v]).map((rec) => rec.seq)).toEqual([2]);
  });
});

describe('refusedByStorage', () => {
  const server = (message: string, code?: number): MongoServerError => new MongoServerError({ message, ...(code === undefined ? {} : { code }) });
  it('is a server error about the write, not one about reaching or running the server', () => {
    expect(refusedByStorage(server('ERROR: index row size 8024 exceeds btree version 4 maximum 2704 (SQLSTATE 54000)', 1))).toBe(true);
    expect(refusedByStorage(server('duplicate keys are not allowed', 2))).toBe(true);
    expect(refusedByStorage(server('failed to connect to `host=127.0.0.1`: dial tcp: connect: connection refused', 1))).toBe(false);
    expect(refusedByStorage(server('shutting down', 91))).toBe(false);
    expect(refusedByStorage(new Error('socket closed'))).toBe(false);
  });

  it("SQLite's busy lock is not a refusal: the write is stopped, not voided (F9: E9's swarm run, a 20,000-document update voided)", () => {
    const busy = '[msg_update.go:133 handler.(*Handler).updateDocument] [update.go:114 common.UpdateDocument] [collection.go:191 sqlite.(*collection).UpdateAll] [collection.go:177 sqlite.(*collection).UpdateAll.func1] database is locked (5) (SQLITE_BUSY)';
    expect(refusedByStorage(server(busy, 1))).toBe(false);
    expect(refusedByStorage(server('database table is locked (6) (SQLITE_LOCKED)', 1))).toBe(false);
  });
});

describe('the answer to a refused write', () => {
  it("tells what the database said, without FerretDB's call chain", () => {
    const err = new Error(
      '[msg_insert.go:168 handler.(*Handler).MsgInsert] [collection.go:163 postgresql.(*collection).InsertAll.func1] ERROR: index row size 7024 exceeds btree version 4 maximum 2704 for index "t_idx" (SQLSTATE 54000)',
    );
    const refused = storageRefusal(err);
    expect(refused.code).toBe('DBAAS_WRITE_REFUSED_BY_STORAGE');
    expect(refused.message).toBe('the database refused the write; nothing of it was applied: ERROR: index row size 7024 exceeds btree version 4 maximum 2704 for index "t_idx" (SQLSTATE 54000)');
  });

  it('leaves no stray "]" when the call chain holds a generic function\'s [...] or arrives cut', () => {
    expect(databaseSaid(new Error('[msg_insert.go:98 handler.(*Handler).MsgInsert] [iterator.go:60 iterator.ConsumeValues[...]] unexpected EOF'))).toBe('unexpected EOF');
    expect(databaseSaid(new Error('sert.go:98 handler.(*Handler).MsgInsert] unexpected EOF'))).toBe('unexpected EOF');
  });
});
