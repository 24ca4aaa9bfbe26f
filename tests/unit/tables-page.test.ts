import type { Db } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { compareKeys, type SnapshotKey } from '../../worker/snapshot-key.js';
import { Tables } from '../../worker/tables.js';

type Row = { _id: string } & Record<string, unknown>;

/** Just what Tables.page asks of a database: listCollections, and find with `_id` $gt, sort by _id, limit. */
function fakeDb(data: Record<string, Row[]>): Db {
  const bytes = (a: string, b: string): number => compareKeys({ table: '', id: a }, { table: '', id: b });
  return {
    listCollections: () => ({ toArray: async () => Object.keys(data).map((name) => ({ name })) }),
    collection: (name: string) => ({
      find: (filter: { _id?: { $gt: string } }) => {
        let limit = Infinity;
        const cursor = {
          sort: () => cursor,
          limit: (n: number) => {
            limit = n;
            return cursor;
          },
          toArray: async () =>
            (data[name] ?? [])
              .filter((d) => filter._id === undefined || bytes(d._id, filter._id.$gt) > 0)
              .sort((a, b) => bytes(a._id, b._id))
              .slice(0, limit),
        };
        return cursor;
      },
    }),
  } as unknown as Db;
}

function rows(prefix: string, n: number): Row[] {
  return Array.from({ length: n }, (_, i) => ({ _id: `${prefix}${String(i).padStart(4, '0')}` }));
}

async function pageAll(t: Tables, limit: number): Promise<{ keys: string[]; ends: SnapshotKey[] }> {
  const keys: string[] = [];
  const ends: SnapshotKey[] = [];
  let after: SnapshotKey | undefined;
  for (let guard = 0; guard < 1000; guard++) {
    const p = await t.page(after, limit, 16 * 1_048_576);
    for (const d of p.docs) keys.push(`${d.table}/${d.doc._id}`);
    if (!p.end) return { keys, ends };
    // The end is the page's last document, table included.
    const last = p.docs.at(-1);
    expect(p.end).toEqual({ table: last?.table, id: last?.doc._id });
    ends.push(p.end);
    after = p.end;
  }
  throw new Error('no end');
}

describe('Tables.page', () => {
  it('covers every document once, in key order, for page sizes that end exactly at a table boundary and elsewhere', async () => {
    const data = { a: rows('k', 300), b: rows('k', 7), c: rows('x', 301) };
    const all = Object.entries(data).flatMap(([t, rs]) => rs.map((r) => `${t}/${r._id}`));
    for (const limit of [1, 7, 150, 300, 301, 307, 1000]) {
      const { keys } = await pageAll(new Tables(fakeDb(data)), limit);
      expect({ limit, keys }).toEqual({ limit, keys: all });
    }
  });

  it('a page that fills up exactly at the end of a table ends there, not in the next table', async () => {
    const t = new Tables(fakeDb({ a: rows('k', 3), b: rows('a', 3) }));
    const p = await t.page(undefined, 3, 16 * 1_048_576);
    expect(p.end).toEqual({ table: 'a', id: 'k0002' });
  });
});
