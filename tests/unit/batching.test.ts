import { describe, expect, it } from 'vitest';
import type { WriteCommand } from '../../common/commands.js';
import { DbaasError } from '../../common/errors.js';
import type { SyncOp } from '../../common/messages.js';
import { decodeSync, encode } from '../../common/messages.js';
import { planApply } from '../../worker/apply-plan.js';
import { buildWrite, type BuiltWrite } from '../../worker/entry-builder.js';
import { BatchView, idOnly, planBatch } from '../../worker/write-batch.js';
import { MemoryDb, rng } from './memory-db.js';

const ins = (table: string, ...ids: string[]): WriteCommand => ({ kind: 'insert', table, docs: ids.map((_id) => ({ _id, n: 0 })) });
const upd = (table: string, where: Record<string, unknown>): WriteCommand => ({ kind: 'update', table, where, update: { $inc: { n: 1 } } });

describe('idOnly', () => {
  it('recognises a filter on one _id, and nothing else', () => {
    expect(idOnly({ _id: 'a' })).toBe('a');
    expect(idOnly({ _id: { $eq: 'a' } })).toBe('a');
    expect(idOnly({ _id: 'a', x: 1 })).toBeUndefined();
    expect(idOnly({ _id: { $in: ['a'] } })).toBeUndefined();
    expect(idOnly({ _id: 5 })).toBeUndefined();
    expect(idOnly({})).toBeUndefined();
  });
});

describe('planBatch', () => {
  it('takes a run of inserts and writes by _id, across tables', () => {
    expect(planBatch([ins('a', 'x'), upd('a', { _id: 'x' }), ins('b', 'y'), { kind: 'delete', table: 'a', where: { _id: 'x' } }])).toBe(4);
  });

  it('keeps clear alone', () => {
    expect(planBatch([{ kind: 'clear' }, ins('a', 'x')])).toBe(1);
    expect(planBatch([ins('a', 'x'), { kind: 'clear' }, ins('a', 'y')])).toBe(1);
  });

  it('ends a batch before a filtered write on a table the batch already touched', () => {
    expect(planBatch([ins('a', 'x'), upd('a', { group: 1 }), ins('a', 'y')])).toBe(1);
    expect(planBatch([upd('a', { group: 1 }), upd('a', { group: 2 })])).toBe(1);
    // Another table is fine, and so is a write by _id after the filtered one.
    expect(planBatch([ins('b', 'x'), upd('a', { group: 1 }), upd('a', { _id: 'z' })])).toBe(3);
  });

  it('lets answered-without-building writes (retries) join', () => {
    expect(planBatch([undefined, ins('a', 'x'), undefined])).toBe(3);
  });

  it('respects the limits, but always takes one', () => {
    const many = Array.from({ length: 10 }, (_, i) => ins('a', `i${i}`));
    expect(planBatch(many, { maxWrites: 4, maxDocs: 100 })).toBe(4);
    const big = { kind: 'insert', table: 'a', docs: Array.from({ length: 50 }, (_, i) => ({ _id: `b${i}` })) } as WriteCommand;
    expect(planBatch([big, big], { maxWrites: 10, maxDocs: 60 })).toBe(1);
    expect(planBatch([big], { maxWrites: 10, maxDocs: 10 })).toBe(1);
    expect(planBatch([])).toBe(0);
  });
});

describe('BatchView', () => {
  it('sees the earlier writes of the batch over the database', async () => {
    const db = new MemoryDb();
    db.applySequential([{ t: 'put', table: 'a', doc: { _id: 'x', n: 1 } }]);
    const view = new BatchView(db);
    view.record([{ t: 'put', table: 'a', doc: { _id: 'y', n: 2 } }, { t: 'del', table: 'a', id: 'x' }]);
    expect(await view.findById('a', 'y')).toEqual({ _id: 'y', n: 2 });
    expect(await view.findById('a', 'x')).toBeUndefined();
    expect(await view.idsExisting('a', ['x', 'y', 'z'])).toEqual(['y']);
  });

  it('reads the documents a batch addresses by _id once, up front; later writes of the batch still see the earlier ones', async () => {
    const db = new MemoryDb();
    db.applySequential([
      { t: 'put', table: 'a', doc: { _id: 'x', n: 1 } },
      { t: 'put', table: 'a', doc: { _id: 'y', n: 5 } },
    ]);
    const writes = [upd('a', { _id: 'x' }), upd('a', { _id: 'y' }), upd('a', { _id: 'x' }), upd('a', { _id: 'z' }), upd('a', { _id: 'x' })];
    const view = new BatchView(db);
    await view.prefetch(writes);
    expect(db.calls.findById).toBe(3);
    const ops: SyncOp[] = [];
    for (const w of writes) {
      const built = await buildWrite(view, w);
      view.record(built.ops);
      ops.push(...built.ops);
    }
    expect(db.calls.findById).toBe(3);
    db.applySteps(planApply(ops));
    // Three $inc of x in one batch compose: 1 + 3, none lost or doubled.
    expect(await db.findById('a', 'x')).toEqual({ _id: 'x', n: 4 });
    expect(await db.findById('a', 'y')).toEqual({ _id: 'y', n: 6 });
    expect(await db.findById('a', 'z')).toBeUndefined();
  });

  it('records a clear (alone in its batch) and refuses any read after it', async () => {
    const view = new BatchView(new MemoryDb());
    view.record([{ t: 'clear' }]);
    await expect(view.findById('a', 'x')).rejects.toThrow(/batch rule broken/);
    const busy = new BatchView(new MemoryDb());
    busy.record([{ t: 'put', table: 'a', doc: { _id: 'y' } }]);
    expect(() => busy.record([{ t: 'clear' }])).toThrow(/batch rule broken/);
  });

  it('refuses a filtered read of a table the batch touched (the planner never asks)', async () => {
    const view = new BatchView(new MemoryDb());
    view.record([{ t: 'put', table: 'a', doc: { _id: 'y' } }]);
    expect(() => view.findForUpdate('a', { n: 1 })).toThrow(/batch rule broken/);
    expect(() => view.matchingIds('a', { n: 1 })).toThrow(/batch rule broken/);
    const found = [];
    for await (const doc of view.findForUpdate('b', { n: 1 })) found.push(doc);
    expect(found).toEqual([]);
  });
});

describe('buildWrite', () => {
  it('inserts documents without _id without asking the database, and marks new documents', async () => {
    const db = new MemoryDb();
    const built = await buildWrite(db, { kind: 'insert', table: 'a', docs: [{ v: 1 }, { v: 2 }] });
    expect(db.calls.exists).toBe(0);
    expect(built.result.ids).toHaveLength(2);
    expect(built.ops.every((op) => op.t === 'put' && op.fresh === true)).toBe(true);
  });

  it('checks explicit ids, in the database and in the batch', async () => {
    const db = new MemoryDb();
    db.applySequential([{ t: 'put', table: 'a', doc: { _id: 'x' } }]);
    await expect(buildWrite(db, ins('a', 'x'))).rejects.toMatchObject({ code: 'DBAAS_WRITE_DUPLICATE_ID' });
    await expect(buildWrite(db, ins('a', 'y', 'y'))).rejects.toMatchObject({ code: 'DBAAS_WRITE_DUPLICATE_ID' });
    const view = new BatchView(db);
    view.record((await buildWrite(view, ins('a', 'z'))).ops);
    await expect(buildWrite(view, ins('a', 'z'))).rejects.toBeInstanceOf(DbaasError);
  });

  it('reads one document for a write by _id, and marks an upsert by a missing _id as new', async () => {
    const db = new MemoryDb();
    const built = await buildWrite(db, { kind: 'upsert', table: 'a', where: { _id: 'k' }, update: { $set: { v: 1 } } });
    expect(db.calls).toEqual({ findById: 1, find: 0, exists: 0 });
    expect(built.ops).toEqual([{ t: 'put', table: 'a', doc: { _id: 'k', v: 1 }, fresh: true }]);
    // Seeded from a wider filter, the _id may exist under other values: no hint.
    const wide = await buildWrite(db, { kind: 'upsert', table: 'a', where: { _id: 'k', v: 9 }, update: { $set: { w: 1 } } });
    expect(wide.ops[0]).not.toHaveProperty('fresh');
  });

  it('refuses an upsert that matched nothing when the _id its filter names exists (never overwrites it)', async () => {
    const db = new MemoryDb();
    db.applySequential([{ t: 'put', table: 'acct', doc: { _id: 'acct1', owner: 'ana', balance: 10 } }]);
    const steal = { kind: 'upsert', table: 'acct', where: { _id: 'acct1', owner: 'mallory' }, update: { $set: { note: 'x' } } } as const;
    await expect(buildWrite(db, steal)).rejects.toMatchObject({ code: 'DBAAS_WRITE_DUPLICATE_ID' });
    expect(db.dump()).toEqual({ acct: [{ _id: 'acct1', owner: 'ana', balance: 10 }] });
    // A matching filter still updates, and a free _id is still inserted.
    const own = await buildWrite(db, { kind: 'upsert', table: 'acct', where: { _id: 'acct1', owner: 'ana' }, update: { $set: { note: 'x' } } });
    expect(own.ops).toEqual([{ t: 'put', table: 'acct', doc: { _id: 'acct1', owner: 'ana', balance: 10, note: 'x' } }]);
    const fresh = await buildWrite(db, { kind: 'upsert', table: 'acct', where: { _id: 'acct2', owner: 'bo' }, update: { $set: { note: 'y' } } });
    expect(fresh.result).toMatchObject({ inserted: 1, ids: ['acct2'] });
  });
});

describe('a batch leaves the same data and answers as the same writes one at a time', () => {
  const TABLES = ['a', 'b'];

  function randomWrite(r: () => number, ids: string[]): WriteCommand {
    const table = TABLES[Math.floor(r() * TABLES.length)] as string;
    const id = ids[Math.floor(r() * ids.length)] as string;
    const x = r();
    if (x < 0.3) return ins(table, id);
    if (x < 0.5) return { kind: 'update', table, where: { _id: id }, update: { $inc: { n: 1 }, $push: { log: Math.floor(r() * 100) } } };
    if (x < 0.6) return { kind: 'upsert', table, where: { _id: id }, update: { $inc: { n: 10 } } };
    if (x < 0.7) return { kind: 'delete', table, where: { _id: id } };
    if (x < 0.8) return { kind: 'update', table, where: { n: Math.floor(r() * 3) }, update: { $set: { g: Math.floor(r() * 5) } } };
    if (x < 0.85) return { kind: 'delete', table, where: { g: Math.floor(r() * 5) } };
    if (x < 0.98) return { kind: 'update', table, where: { _id: id }, update: { $set: { n: 'text' } } };
    return { kind: 'clear' };
  }

  async function answer(src: Parameters<typeof buildWrite>[0], cmd: WriteCommand): Promise<BuiltWrite | string> {
    try {
      return await buildWrite(src, cmd);
    } catch (err) {
      if (err instanceof DbaasError) return err.code;
      throw err;
    }
  }

  it('for random mixes of writes (200 seeds)', async () => {
    for (let seed = 1; seed <= 200; seed++) {
      const r = rng(seed);
      const ids = Array.from({ length: 6 }, (_, i) => `d${i}`);
      const writes = Array.from({ length: 40 }, () => randomWrite(r, ids));

      const one = new MemoryDb();
      const oneAnswers: Array<BuiltWrite | string> = [];
      for (const w of writes) {
        const a = await answer(one, w);
        oneAnswers.push(a);
        if (typeof a !== 'string') one.applySequential(a.ops);
      }

      const batched = new MemoryDb();
      const batchAnswers: Array<BuiltWrite | string> = [];
      const maxWrites = 1 + Math.floor(r() * 12);
      for (let i = 0; i < writes.length; ) {
        const n = planBatch(writes.slice(i, i + maxWrites), { maxWrites, maxDocs: 1000 });
        const view = new BatchView(batched);
        // As the master does: the documents addressed by `_id` read up front (issue 17: updates).
        if (r() < 0.5) await view.prefetch(writes.slice(i, i + n));
        const ops: SyncOp[] = [];
        for (const w of writes.slice(i, i + n)) {
          const a = await answer(view, w);
          batchAnswers.push(a);
          if (typeof a !== 'string') {
            view.record(a.ops);
            ops.push(...a.ops);
          }
        }
        batched.applySteps(planApply(ops));
        i += n;
      }
      expect({ seed, answers: batchAnswers }).toEqual({ seed, answers: oneAnswers });
      expect({ seed, data: batched.dump() }).toEqual({ seed, data: one.dump() });
    }
  });
});

describe('SyncEntry.first on the wire', () => {
  const entry = { v: 1, seq: 7, term: 1, requestId: 'r', ts: 1, ops: [], result: { ok: true } };
  it('is optional, and must name a seq no later than the entry', () => {
    expect(decodeSync(encode(entry))?.first).toBeUndefined();
    expect(decodeSync(encode({ ...entry, first: 5 }))?.first).toBe(5);
    expect(decodeSync(encode({ ...entry, first: 7 }))?.first).toBe(7);
    expect(decodeSync(encode({ ...entry, first: 8 }))).toBeUndefined();
    expect(decodeSync(encode({ ...entry, first: 0 }))).toBeUndefined();
    expect(decodeSync(encode({ ...entry, first: 'x' }))).toBeUndefined();
  });
});
