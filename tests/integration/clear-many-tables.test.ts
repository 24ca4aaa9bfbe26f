/**
 * A clear of a database holding as many tables as DBAAS_MAX_TABLES allows,
 * beside a steady writer on another database: the clear answers 200, every
 * write of the writer is acknowledged and kept, the table quota is freed, and
 * every replica ends equal. (E's fault run: 1,000 tables cleared through one
 * drop per table stalled the write stage past the request timeout.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCluster, type TestCluster } from './harness.js';
import { dumpAllReplicas } from './replicas.js';

const TABLES = 300;
let c: TestCluster;

beforeAll(async () => {
  c = await startTestCluster({ DBAAS_MAX_TABLES: String(TABLES) });
});

afterAll(async () => {
  await c?.close();
});

const insert = (database: string, table: string, data: Record<string, unknown>) => c.post('/api/v1/db/write', { database, table, operation: 'insert', data });

describe('clear of a database with many tables', () => {
  it('answers 200 beside a steady writer whose writes are all acknowledged; the quota is freed; replicas equal', async () => {
    expect((await c.post('/api/v1/db/databases', { name: 'big' })).status).toBe(201);
    const names = Array.from({ length: TABLES }, (_, i) => `t${i}`);
    for (let i = 0; i < names.length; i += 50) {
      const res = await Promise.all(names.slice(i, i + 50).map((table) => insert('big', table, { v: 1 })));
      expect(res.map((r) => r.status)).toEqual(res.map(() => 200));
    }
    expect((await insert('big', 'extra', { v: 1 })).body.error?.code).toBe('DBAAS_TABLE_LIMIT_REACHED');

    let stop = false;
    const statuses: number[] = [];
    const writer = (async () => {
      for (let n = 0; !stop || n < 3; n++) statuses.push((await insert('default', 'steady', { n })).status);
    })();
    const clear = await c.post('/api/v1/db/clear', { database: 'big' });
    stop = true;
    await writer;
    expect(clear.status).toBe(200);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);

    // The quota is freed: a new table in the cleared database is admitted, and it is the only one.
    expect((await insert('big', 'after', { v: 2 })).status).toBe(200);
    const tables = await c.get('/api/v1/db/tables?database=big');
    expect((tables.body as Array<{ table: string }>).map((t) => t.table)).toEqual(['after']);

    const dumps = [...(await dumpAllReplicas(c.orch)).values()];
    expect(dumps.length).toBe(2);
    expect(dumps[0]?.steady?.length).toBe(statuses.length);
    expect(dumps[1]).toEqual(dumps[0]);
  });
});
