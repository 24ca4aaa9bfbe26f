import { describe, expect, it } from 'vitest';
import type { SyncEntry, SyncOp } from '../../common/messages.js';
import { RecentEntries } from '../../worker/recent-entries.js';

function entry(seq: number, requestId: string, docs = 1): SyncEntry {
  const ops: SyncOp[] = Array.from({ length: docs }, (_, i) => ({ t: 'put', table: 't', doc: { _id: `${seq}-${i}` } }));
  return { v: 1, seq, term: 1, requestId, ts: 0, ops, result: { ok: true, seq, inserted: docs, ids: [], matched: 0, modified: 0, deleted: 0 } };
}

describe('RecentEntries', () => {
  it('answers the newest entries by requestId and forgets the oldest past the count bound', () => {
    const r = new RecentEntries(3, 1000);
    r.add([entry(1, 'a'), entry(2, 'b'), entry(3, 'c'), entry(4, 'd')]);
    expect(r.size).toBe(3);
    expect(r.get('a')).toBeUndefined();
    expect(r.get('d')?.seq).toBe(4);
    expect(r.get('b')?.seq).toBe(2);
  });

  it('bounds the documents it holds, and skips an entry larger than the whole bound', () => {
    const r = new RecentEntries(100, 10);
    r.add([entry(1, 'a', 4), entry(2, 'b', 4), entry(3, 'c', 4)]);
    expect([r.get('a'), r.get('b')?.seq, r.get('c')?.seq]).toEqual([undefined, 2, 3]);
    r.add([entry(4, 'huge', 11)]);
    expect(r.get('huge')).toBeUndefined();
    expect(r.get('c')?.seq).toBe(3);
  });

  it('keeps the higher seq when a requestId comes again, and clears', () => {
    const r = new RecentEntries();
    r.add([entry(5, 'x')]);
    r.add([entry(3, 'x')]);
    expect(r.get('x')?.seq).toBe(5);
    r.clear();
    expect(r.size).toBe(0);
  });
});
