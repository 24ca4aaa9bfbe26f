/**
 * DatabaseStore's cap (DBAAS_MAX_DATABASES) is exact when creates race through
 * several ZooKeeper sessions (orchestrators): each create is a compare-and-set
 * on the parent znode's version, counted again when another create won.
 */
import { describe, expect, it } from 'vitest';
import { DatabaseStore } from '../../coordination/database-store.js';
import { zkPaths } from '../../coordination/paths.js';
import { DbaasError } from '../../common/errors.js';
import { MemoryZk, MemoryZkServer } from './memory-zk.js';

async function stores(server: MemoryZkServer, n: number): Promise<DatabaseStore[]> {
  const out: DatabaseStore[] = [];
  for (let i = 0; i < n; i += 1) {
    const zk = new MemoryZk(server);
    await zk.start();
    out.push(new DatabaseStore(zk, zkPaths('cap')));
  }
  return out;
}

describe('DatabaseStore.create', () => {
  it('lets exactly max of many racing creates through, across sessions, and refuses the rest 409', async () => {
    const server = new MemoryZkServer();
    const [a, b, c] = await stores(server, 3);
    const racers = [a, b, c] as DatabaseStore[];
    expect(await a?.create('first', 5)).toMatchObject({ name: 'first' });
    const results = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => (racers[i % 3] as DatabaseStore).create(`db${i}`, 5)));
    const made = results.filter((r) => r.status === 'fulfilled' && r.value !== undefined);
    expect(made.length).toBe(4);
    for (const r of results) {
      if (r.status === 'rejected') expect((r.reason as DbaasError).code).toBe('DBAAS_DATABASE_LIMIT_REACHED');
    }
    expect(results.filter((r) => r.status === 'rejected').length).toBe(26);
    expect((await (c as DatabaseStore).list()).length).toBe(1 + 5);
  });

  it('answers undefined for a name that exists, also when it won the race elsewhere, and frees a place on a drop', async () => {
    const server = new MemoryZkServer();
    const [a, b] = (await stores(server, 2)) as [DatabaseStore, DatabaseStore];
    const both = await Promise.all([a.create('same', 1), b.create('same', 1)]);
    expect(both.filter((r) => r !== undefined).length).toBe(1);
    await expect(a.create('other', 1)).rejects.toMatchObject({ code: 'DBAAS_DATABASE_LIMIT_REACHED' });
    expect(await b.remove('same')).toBe(true);
    expect(await a.create('other', 1)).toMatchObject({ name: 'other' });
  });
});
