/**
 * The master's lookups by `_id` on FerretDB/SQLite (the docker and swarm runtimes' workers, and the
 * process runtime without DBAAS_WORKER_PG_URL): Store.idsExisting and Store.findByIds ask one `$in`
 * per 1,000 ids (Tables.docsIn), since SQLite reads the whole table for every query. They answer as
 * the lookups one id at a time did: the ids that exist, in the order asked; a taken `_id` refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWrite } from '../../worker/entry-builder.js';
import { Store } from '../../worker/store.js';
import { BatchView } from '../../worker/write-batch.js';
import { ferretdbBinary, startFerretDbOnSqlite } from './ferretdb.js';

describe.skipIf(!ferretdbBinary)('lookups by _id on FerretDB/SQLite', () => {
  let ferret: Awaited<ReturnType<typeof startFerretDbOnSqlite>>;
  let store: Store;
  const table = 'docs';
  // More than one `$in` chunk: 2,500 documents, every third id of 0..3,000 asked.
  const held = Array.from({ length: 2500 }, (_, i) => ({ _id: `d${i}`, n: i }));

  beforeAll(async () => {
    ferret = await startFerretDbOnSqlite('g7-sqlite-lookups');
    store = await Store.connect(ferret.mongoUrl, 'lookups', 30_000);
    expect(store.pgUrl).toBeUndefined();
    await store.db.collection<{ _id: string; n: number }>(table).insertMany(held);
  }, 60_000);

  afterAll(async () => {
    await store?.close();
    await ferret?.close();
  });

  it('idsExisting answers the ids the table holds, in the order asked, across chunks; findByIds their documents', async () => {
    const asked = Array.from({ length: 1000 }, (_, i) => `d${3000 - 3 * i}`);
    const expected = asked.filter((id) => Number(id.slice(1)) < 2500);
    expect(expected.length).toBeGreaterThan(0);
    expect(await store.idsExisting(table, asked)).toEqual(expected);
    expect(await store.idsExisting(table, [...asked, 'd7', 'd1', 'x'])).toEqual([...expected, 'd7', 'd1']);
    expect(await store.idsExisting('nothing-here', asked)).toEqual([]);
    const docs = await store.findByIds(table, ['d5', 'nope', 'd2499', 'd1200']);
    expect([...docs.entries()].sort()).toEqual([
      ['d1200', { _id: 'd1200', n: 1200 }],
      ['d2499', { _id: 'd2499', n: 2499 }],
      ['d5', { _id: 'd5', n: 5 }],
    ]);
  });

  it('the master builds a 1,500-document insert; one taken _id among them refuses it, as does an _id given twice', async () => {
    const fresh = Array.from({ length: 1500 }, (_, i) => ({ _id: `new${i}`, v: i }));
    const built = await buildWrite(new BatchView(store), { kind: 'insert', table, docs: fresh });
    expect(built.result.inserted).toBe(1500);
    const taken = [...fresh.slice(0, 1200), { _id: 'd2400', v: 0 }, ...fresh.slice(1200)];
    await expect(buildWrite(new BatchView(store), { kind: 'insert', table, docs: taken })).rejects.toMatchObject({ code: 'DBAAS_WRITE_DUPLICATE_ID', message: expect.stringContaining('"d2400" already exists') });
    const twice = [...fresh, { _id: 'new3', v: 0 }];
    await expect(buildWrite(new BatchView(store), { kind: 'insert', table, docs: twice })).rejects.toMatchObject({ code: 'DBAAS_WRITE_DUPLICATE_ID', message: expect.stringContaining('appears twice') });
  });
});
