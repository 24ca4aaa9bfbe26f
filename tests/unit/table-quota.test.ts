/**
 * DBAAS_MAX_TABLES as the master counts it (worker/table-quota.ts): tables a
 * database holds are listed once, then counted as writes create them; a write
 * that would create one past the limit is refused having counted nothing; a
 * clear makes the next write list the database again.
 */
import { describe, expect, it } from 'vitest';
import type { SyncOp } from '../../common/messages.js';
import { TableQuota } from '../../worker/table-quota.js';

const put = (table: string): SyncOp => ({ t: 'put', table, doc: { _id: 'x' }, fresh: true });

describe('TableQuota', () => {
  it('admits writes to held tables, and new tables up to the limit, per database', async () => {
    const lists: string[] = [];
    const stored: Record<string, string[]> = { default: ['a', 'b'], shop: [] };
    const quota = new TableQuota(3, async (database) => {
      lists.push(database);
      return stored[database] ?? [];
    });
    await quota.admit([put('a'), put('b')]);
    await quota.admit([put('c')]);
    await expect(quota.admit([put('d')])).rejects.toMatchObject({ code: 'DBAAS_TABLE_LIMIT_REACHED', status: 409 });
    await expect(quota.admit([{ t: 'index', table: 'e', index: { name: 'n_1', keys: [['n', 1]], unique: false } }])).rejects.toMatchObject({
      code: 'DBAAS_TABLE_LIMIT_REACHED',
    });
    await quota.admit([put('c'), { t: 'del', table: 'zz', id: 'x' }]);
    // Another database counts its own tables.
    for (const t of ['shop.a', 'shop.b', 'shop.c']) await quota.admit([put(t)]);
    await expect(quota.admit([put('shop.d')])).rejects.toMatchObject({ code: 'DBAAS_TABLE_LIMIT_REACHED' });
    expect(lists).toEqual(['default', 'shop']);
    // A clear of the database: listed again at the next write, from what the storage holds then.
    stored.shop = ['shop.a'];
    await quota.admit([{ t: 'clear', database: 'shop' }]);
    await quota.admit([put('shop.d'), put('shop.e')]);
    await expect(quota.admit([put('shop.f')])).rejects.toMatchObject({ code: 'DBAAS_TABLE_LIMIT_REACHED' });
    expect(lists).toEqual(['default', 'shop', 'shop']);
  });

  it('refuses a write creating several tables past the limit whole', async () => {
    const quota = new TableQuota(2, async () => ['a']);
    await expect(quota.admit([put('b'), put('c')])).rejects.toMatchObject({ code: 'DBAAS_TABLE_LIMIT_REACHED' });
    await quota.admit([put('b')]);
  });
});
