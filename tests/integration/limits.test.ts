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
});
