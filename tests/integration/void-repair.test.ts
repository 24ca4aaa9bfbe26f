/**
 * Crash repair of a batch the database refuses (worker/void-batch.ts,
 * Store.repairBatch), on a real FerretDB on PostgreSQL: the master stored the
 * batch's entries and crashed while writing its data, or while voiding it. A
 * restart (a new Store on the same database) voids the batch and puts every
 * document back as it was before the batch; a batch that was written is replayed.
 * The refusal is a value over a B-tree index row (2,704 bytes) in an indexed field.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WriteCommand } from '../../common/commands.js';
import type { SyncEntry } from '../../common/messages.js';
import { buildWrite } from '../../worker/entry-builder.js';
import { Store } from '../../worker/store.js';
import { replayFrom } from '../../worker/sync-order.js';
import { PreImages, refusedByStorage, undoOps, voided } from '../../worker/void-batch.js';
import { BatchView } from '../../worker/write-batch.js';
import { ferretdbOnPostgres, startFerretDb, type TestFerretDb } from './ferretdb.js';

const DB = 'w';

describe.skipIf(!ferretdbOnPostgres)('crash repair of a refused batch (Store.repairBatch)', () => {
  let db: TestFerretDb;
  let seq = 0;

  beforeAll(async () => {
    db = await startFerretDb('void-repair');
    const store = await open();
    await store.applyOps([
      { t: 'index', table: 't', index: { name: 'k_1', keys: [['k', 1]], unique: false } },
      { t: 'put', table: 't', doc: { _id: 'a', k: 'a', n: 1 }, fresh: true },
      { t: 'put', table: 't', doc: { _id: 'b', k: 'b', n: 1 }, fresh: true },
    ]);
    await store.close();
  }, 60_000);

  afterAll(async () => {
    await db?.close();
  });

  async function open(): Promise<Store> {
    const store = await Store.connect(db.mongoUrl, DB, 10_000);
    store.pgUrl = db.pgUrl;
    return store;
  }

  async function dump(store: Store): Promise<unknown[]> {
    const docs: Array<{ _id: string }> = [];
    for await (const d of store.scanTable('t')) docs.push(d as { _id: string });
    return docs.sort((x, y) => x._id.localeCompare(y._id));
  }

  /** Inserted values over a B-tree row, by `_id`: built small, stored big (storeAndWrite). */
  const BIG = new Map<string, string>();
  function withoutBigValues(cmd: WriteCommand): WriteCommand {
    if (cmd.kind !== 'insert') return cmd;
    return {
      ...cmd,
      docs: cmd.docs.map((d) => {
        if (typeof d.k !== 'string' || d.k.length <= 2704) return d;
        BIG.set(String(d._id), d.k);
        return { ...d, k: 'small' };
      }),
    };
  }

  /** Builds, stores and writes a batch as MasterRole.stage1 does; resolves with the error its data got, if any. */
  async function storeAndWrite(store: Store, commands: WriteCommand[]): Promise<{ entries: SyncEntry[]; err?: unknown }> {
    const pre = new PreImages(store);
    const view = new BatchView(pre);
    const entries: SyncEntry[] = [];
    const first = seq + 1;
    for (const cmd of commands) {
      const built = await buildWrite(view, withoutBigValues(cmd));
      // The value PostgreSQL refuses goes into the op after the build: the master refuses it since f8c3f09
      // (DBAAS_INDEX_KEY_TOO_LARGE), but the repair must still void whatever the storage refuses.
      for (const op of built.ops) if (op.t === 'put' && BIG.has(op.doc._id)) op.doc = { ...op.doc, k: BIG.get(op.doc._id) };
      view.record(built.ops);
      seq += 1;
      entries.push({ v: 1, seq, term: 1, requestId: `r${seq}`, ts: Date.now(), ops: built.ops, result: { ...built.result, seq }, ...(commands.length > 1 ? { first } : {}) });
    }
    await store.recordEntries(entries, undoOps(entries, pre));
    try {
      await store.applyOps(entries.flatMap((e) => e.ops));
      return { entries };
    } catch (err) {
      return { entries, err };
    }
  }

  /** What a restart does: a new Store on the same database repairs the newest batch. */
  async function restart(): Promise<{ store: Store; how: string }> {
    const store = await open();
    await store.openLedger();
    const last = await store.lastEntry();
    if (!last) throw new Error('no oplog');
    const how = await store.repairBatch(await store.batchBetween(replayFrom(last) - 1, last._id));
    return { store, how };
  }

  const refusedBatch: WriteCommand[] = [
    { kind: 'update', table: 't', where: { _id: 'a' }, update: { $inc: { n: 1 } } },
    { kind: 'delete', table: 't', where: { _id: 'b' } },
    { kind: 'insert', table: 't', docs: [{ _id: 'c', k: 'c' }] },
    { kind: 'insert', table: 't', docs: [{ _id: 'big', k: randomBytes(6000).toString('base64') }] },
    { kind: 'update', table: 't', where: { _id: 'a' }, update: { $inc: { n: 10 } } },
  ];

  it('voids a batch refused while its data was written, and puts every document back', async () => {
    const store = await open();
    const before = await dump(store);
    const { entries, err } = await storeAndWrite(store, refusedBatch);
    expect(refusedByStorage(err)).toBe(true);
    // Half-written: the crash comes here.
    expect(await dump(store)).not.toEqual(before);
    await store.close();

    const { store: again, how } = await restart();
    expect(how).toBe('voided');
    expect(await dump(again)).toEqual(before);
    const stored = await again.entriesBetween(entries[0]!.seq - 1, entries.at(-1)!.seq);
    expect(stored).toEqual(entries.map((e) => ({ ...voided(e), _id: e.seq })));
    for (const e of entries) expect(await again.lookupRequest(e.requestId)).toBeUndefined();
    // Repairing again changes nothing.
    await again.close();
    const { store: third, how: how2 } = await restart();
    expect(how2).toBe('voided');
    expect(await dump(third)).toEqual(before);
    await third.close();
  });

  it('finishes a void the crash interrupted (only the newest entry rewritten)', async () => {
    const store = await open();
    const before = await dump(store);
    const { entries, err } = await storeAndWrite(store, refusedBatch.map((c) => (c.kind === 'insert' ? { ...c, docs: c.docs.map((d) => ({ ...d, _id: `${String(d._id)}2` })) } : c)));
    expect(refusedByStorage(err)).toBe(true);
    const [newest] = await store.batchBetween(entries.at(-1)!.seq - 1, entries.at(-1)!.seq);
    await store.oplog.rewrite([{ ...newest!, ...voided(newest!), _id: newest!.seq }]);
    await store.close();

    const { store: again, how } = await restart();
    expect(how).toBe('voided');
    expect(await dump(again)).toEqual(before);
    expect((await again.entriesBetween(entries[0]!.seq - 1, entries.at(-1)!.seq)).every((e) => e.void === true && e.ops.length === 0)).toBe(true);
    await again.close();
  });

  it('replays a batch whose data was written, and keeps its ledger records', async () => {
    const store = await open();
    const { entries, err } = await storeAndWrite(store, [
      { kind: 'update', table: 't', where: { _id: 'a' }, update: { $inc: { n: 100 } } },
      { kind: 'insert', table: 't', docs: [{ _id: 'd', k: 'd' }] },
    ]);
    expect(err).toBeUndefined();
    const after = await dump(store);
    await store.close();

    const { store: again, how } = await restart();
    expect(how).toBe('replayed');
    expect(await dump(again)).toEqual(after);
    for (const e of entries) expect((await again.lookupRequest(e.requestId))?.seq).toBe(e.seq);
    await again.close();
  });
});
