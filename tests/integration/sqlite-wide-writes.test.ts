/**
 * Wide writes on FerretDB/SQLite (the docker and swarm runtimes' workers, the process runtime without
 * DBAAS_WORKER_PG_URL). FerretDB 1.24's `_id` index there is on `_ferretdb_sjson->"_id"`, its statements
 * filter on `_ferretdb_sjson->'$._id'`: every replaceOne or deleteOne by `_id` scans the table, the
 * UPDATE's scan under SQLite's one write lock. Written one document at a time a 20,000-document update
 * took about an hour (E9's swarm run: a master stuck, "database is locked"). A master (nobody else reads
 * its data) now replaces and deletes a chunk at a time (tables.ts replaceInChunks); a slave still
 * replaces in place, so that a read never misses a document that exists.
 */
import { Collection } from 'mongodb';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SyncOp } from '../../common/messages.js';
import { Store } from '../../worker/store.js';
import { ferretdbBinary, startFerretDbOnSqlite } from './ferretdb.js';

describe.skipIf(!ferretdbBinary)('wide writes on FerretDB/SQLite', () => {
  let ferret: Awaited<ReturnType<typeof startFerretDbOnSqlite>>;
  let store: Store;
  const N = 3000;
  const docs = (table: string, v: number): SyncOp[] => Array.from({ length: N }, (_, i) => ({ t: 'put', table, doc: { _id: `d${i}`, n: i, v } }));
  const fresh = (table: string): SyncOp[] => docs(table, 0).map((op) => ({ ...op, fresh: true }) as SyncOp);
  const stored = async (table: string): Promise<Map<string, unknown>> => new Map((await store.db.collection(table).find({}).toArray()).map((d) => [String(d._id), d.v]));

  beforeAll(async () => {
    ferret = await startFerretDbOnSqlite('f9-sqlite-wide');
    store = await Store.connect(ferret.mongoUrl, 'wide', 30_000);
    expect(store.pgUrl).toBeUndefined();
  }, 60_000);

  afterEach(() => {
    vi.restoreAllMocks();
    store.tables.readByWriterOnly = false;
  });

  afterAll(async () => {
    await store?.close();
    await ferret?.close();
  });

  it('a master writes a 3,000-document update, its crash repair and a wide delete a chunk at a time, not one round trip per document', async () => {
    store.tables.readByWriterOnly = true;
    await store.applyOps(fresh('m'));
    const replaceOne = vi.spyOn(Collection.prototype, 'replaceOne');
    const deleteOne = vi.spyOn(Collection.prototype, 'deleteOne');
    await store.applyOps(docs('m', 1));
    expect(replaceOne).not.toHaveBeenCalled();
    expect([...(await stored('m')).values()].filter((v) => v === 1)).toHaveLength(N);

    // A crash inside the next update: a third of it written, and some documents deleted and not yet inserted again.
    await store.applyOps(docs('m', 2).slice(0, 1000));
    await store.db.collection<{ _id: string }>('m').deleteMany({ _id: { $in: ['d1500', 'd2999', 'd7'] } });
    await store.replayOps(docs('m', 2));
    expect(replaceOne).not.toHaveBeenCalled();
    const after = await stored('m');
    expect(after.size).toBe(N);
    expect([...after.values()].every((v) => v === 2)).toBe(true);

    // A sparse update (other documents inside its _id range) and a wide delete.
    await store.applyOps(docs('m', 3).filter((_, i) => i % 3 === 0));
    expect([...(await stored('m')).entries()].every(([id, v]) => v === (Number(id.slice(1)) % 3 === 0 ? 3 : 2))).toBe(true);
    await store.applyOps(Array.from({ length: N - 10 }, (_, i) => ({ t: 'del', table: 'm', id: `d${i}` })));
    expect(deleteOne).not.toHaveBeenCalled();
    expect([...(await stored('m')).keys()].sort()).toEqual(Array.from({ length: 10 }, (_, i) => `d${N - 10 + i}`).sort());
  }, 120_000);

  it('a slave replaces in place: a reader during its wide update finds every document, before or after', async () => {
    await store.applyOps(fresh('s'));
    const coll = store.db.collection<{ _id: string }>('s');
    const update = store.applyOps(docs('s', 1).slice(0, 300));
    let done = false;
    void update.finally(() => (done = true));
    const missed: string[] = [];
    let reads = 0;
    for (let i = 0; !done; i++, reads++) {
      const id = `d${(i * 7) % 300}`;
      const doc = await coll.findOne({ _id: id });
      if (!doc) missed.push(id);
    }
    await update;
    expect(reads).toBeGreaterThan(0);
    expect(missed).toEqual([]);
    expect([...(await stored('s')).values()].filter((v) => v === 1)).toHaveLength(300);
  }, 120_000);
});
