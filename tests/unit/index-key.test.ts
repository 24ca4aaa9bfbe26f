import { describe, expect, it } from 'vitest';
import type { IndexSpec } from '../../common/commands.js';
import { DbaasError } from '../../common/errors.js';
import { checkIndexKeys, indexKeyBytes, MAX_INDEX_KEY_BYTES } from '../../common/index-spec.js';

const one: IndexSpec = { name: 'k_1', keys: [['k', 1]], unique: false };
const pair: IndexSpec = { name: 'a_b', keys: [['a.b', 1], ['c', -1]], unique: false };

describe('an index entry (MAX_INDEX_KEY_BYTES)', () => {
  it('counts the indexed values as a BSON array: a missing one as null, a dotted path inside objects', () => {
    // [ "x" ]: 5 + (type, "0", NUL, int32 length, "x", NUL)
    expect(indexKeyBytes(one, { _id: '1', k: 'x' })).toBe(5 + 1 + 1 + 1 + 4 + 1 + 1);
    expect(indexKeyBytes(one, { _id: '1' })).toBe(5 + 3);
    expect(indexKeyBytes(pair, { _id: '1', a: { b: 'y'.repeat(100) }, c: 1 })).toBe(5 + (3 + 4 + 100 + 1) + (3 + 4));
    // Through an array the path reads nothing (as PostgreSQL's jsonb -> does).
    expect(indexKeyBytes(pair, { _id: '1', a: [{ b: 'y'.repeat(2000) }] })).toBe(5 + 3 + 3);
  });

  it('refuses a document past the bound with 400 DBAAS_INDEX_KEY_TOO_LARGE, naming the index; one at the bound passes', () => {
    const fits = { _id: 'd1', k: 'z'.repeat(MAX_INDEX_KEY_BYTES - 5 - 8) };
    expect(indexKeyBytes(one, fits)).toBe(MAX_INDEX_KEY_BYTES);
    expect(() => checkIndexKeys([one, pair], fits, 't')).not.toThrow();
    const over = { ...fits, k: `${fits.k}z` };
    let err: unknown;
    try {
      checkIndexKeys([pair, one], over, 't');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DbaasError);
    expect((err as DbaasError).code).toBe('DBAAS_INDEX_KEY_TOO_LARGE');
    expect((err as DbaasError).status).toBe(400);
    expect((err as DbaasError).message).toBe('t: the document with _id "d1" would hold 1025 bytes in index k_1 (k), over the 1024 one index entry may hold; nothing was changed');
  });

  it('costs little per write: 10,000 documents under two indexes well under a second', () => {
    const docs = Array.from({ length: 10_000 }, (_, i) => ({ _id: `d${i}`, k: `value-${i}`, a: { b: i }, c: 'x', other: 'y'.repeat(200) }));
    const started = performance.now();
    for (const doc of docs) checkIndexKeys([one, pair], doc, 't');
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
