/**
 * Caps on what a client can create (DBAAS_MAX_TABLES per database,
 * DBAAS_MAX_DATABASES): one more is refused 409 with a stable code and
 * changes nothing; writes to what exists go on; a clear of a database frees
 * its tables; every replica ends equal.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCluster, type TestCluster } from './harness.js';
import { dumpAllReplicas } from './replicas.js';

let c: TestCluster;

beforeAll(async () => {
  c = await startTestCluster({ DBAAS_MAX_TABLES: '3', DBAAS_MAX_DATABASES: '1' });
});

afterAll(async () => {
  await c?.close();
});

const insert = (table: string, database?: string) => c.post('/api/v1/db/write', { table, operation: 'insert', data: { v: 1 }, ...(database ? { database } : {}) });

describe('limits on tables and databases', () => {
  it('refuses a table past DBAAS_MAX_TABLES and a database past DBAAS_MAX_DATABASES, changing nothing', async () => {
    for (const t of ['t1', 't2', 't3']) expect((await insert(t)).status).toBe(200);
    const fourth = await insert('t4');
    expect(fourth.status).toBe(409);
    expect(fourth.body.error.code).toBe('DBAAS_TABLE_LIMIT_REACHED');
    const upsert = await c.post('/api/v1/db/write', { table: 't4', operation: 'upsert', where: { k: 1 }, data: { $set: { v: 2 } } });
    expect(upsert.body.error.code).toBe('DBAAS_TABLE_LIMIT_REACHED');
    const index = await c.post('/api/v1/db/indexes', { table: 't5', keys: 'v' });
    expect(index.status).toBe(409);
    expect(index.body.error.code).toBe('DBAAS_TABLE_LIMIT_REACHED');
    // The tables that exist still take writes.
    const more = await insert('t1');
    expect(more.status).toBe(200);
    const tables = await c.get('/api/v1/db/tables');
    expect((tables.body as Array<{ table: string }>).map((t) => t.table).sort()).toEqual(['t1', 't2', 't3']);

    expect((await c.post('/api/v1/db/databases', { name: 'shop' })).status).toBe(201);
    const second = await c.post('/api/v1/db/databases', { name: 'blog' });
    expect(second.status).toBe(409);
    expect(second.body.error.code).toBe('DBAAS_DATABASE_LIMIT_REACHED');
    expect((await c.get('/api/v1/db/databases')).body.databases.map((d: { name: string }) => d.name)).toEqual(['default', 'shop']);

    // Each database has its own count.
    for (const t of ['a', 'b', 'c']) expect((await insert(t, 'shop')).status).toBe(200);
    expect((await insert('d', 'shop')).body.error.code).toBe('DBAAS_TABLE_LIMIT_REACHED');

    // A clear frees the database's tables.
    expect((await c.post('/api/v1/db/clear', {})).status).toBe(200);
    for (const t of ['t4', 't5', 't6']) expect((await insert(t)).status).toBe(200);
    expect((await insert('t7')).body.error.code).toBe('DBAAS_TABLE_LIMIT_REACHED');

    // Dropping a database frees its place.
    expect((await c.post('/api/v1/db/databases', { name: 'blog' })).status).toBe(409);
    const drop = await c.orch.app.inject({ method: 'DELETE', url: '/api/v1/db/databases/shop' });
    expect(drop.statusCode).toBe(200);
    expect((await c.post('/api/v1/db/databases', { name: 'blog' })).status).toBe(201);

    const dumps = [...(await dumpAllReplicas(c.orch)).values()];
    expect(dumps.length).toBe(2);
    expect(Object.keys(dumps[0] ?? {}).sort()).toEqual(['t4', 't5', 't6']);
    expect(dumps[1]).toEqual(dumps[0]);
  });

  it('admits exactly one of many creates racing for the last free place, through two orchestrators (databases and tables)', async () => {
    // A second orchestrator on the same namespace: the creates race across two ZooKeeper sessions and two caches.
    const b = await startTestCluster({ DBAAS_MAX_TABLES: '3', DBAAS_MAX_DATABASES: '1' }, { namespace: c.namespace, dataDir: c.dataDir });
    try {
      expect((await c.orch.app.inject({ method: 'DELETE', url: '/api/v1/db/databases/blog' })).statusCode).toBe(200);
      const names = Array.from({ length: 10 }, (_, i) => `race${i}`);
      const creates = await Promise.all(names.map((name, i) => (i % 2 === 0 ? c : b).post('/api/v1/db/databases', { name })));
      const won = names.filter((_, i) => creates[i]?.status === 201);
      expect(won.length, JSON.stringify(creates.map((r) => [r.status, r.body?.error?.code]))).toBe(1);
      for (const r of creates.filter((r) => r.status !== 201)) {
        expect(r.status).toBe(409);
        expect(r.body.error.code).toBe('DBAAS_DATABASE_LIMIT_REACHED');
      }
      for (const o of [c, b]) expect((await o.get('/api/v1/db/databases')).body.databases.map((d: { name: string }) => d.name)).toEqual(['default', won[0]]);

      // Tables: the master admits them one write at a time in its serial stage, so the cap is exact there too.
      const database = won[0] as string;
      for (const t of ['a', 'b']) expect((await insert(t, database)).status).toBe(200);
      const tables = Array.from({ length: 10 }, (_, i) => `t${i}`);
      const inserts = await Promise.all(tables.map((t, i) => (i % 2 === 0 ? c : b).post('/api/v1/db/write', { table: t, operation: 'insert', data: { v: 1 }, database })));
      const taken = tables.filter((_, i) => inserts[i]?.status === 200);
      expect(taken.length, JSON.stringify(inserts.map((r) => [r.status, r.body?.error?.code]))).toBe(1);
      for (const r of inserts.filter((r) => r.status !== 200)) expect(r.body.error.code).toBe('DBAAS_TABLE_LIMIT_REACHED');
      const listed = await c.get(`/api/v1/db/tables?database=${database}`);
      expect((listed.body as Array<{ table: string }>).map((t) => t.table).sort()).toEqual(['a', 'b', taken[0]].sort());
      const dumps = [...(await dumpAllReplicas(c.orch)).values()];
      expect(dumps[1]).toEqual(dumps[0]);
    } finally {
      await b.close();
    }
  });
});
