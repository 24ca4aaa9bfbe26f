import { BSON } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { bsonSize, GENERATED_ID_BYTES } from '../../common/bson-size.js';
import { MAX_DOCUMENT_BYTES } from '../../common/limits.js';
import { validateDocument } from '../../common/validation.js';
import { expectCode } from './expect-code.js';

/** `{k0: [0 × 10,000], k1: …}`: BSON about five times its JSON. */
function zeros(arrays: number): Record<string, unknown> {
  const doc: Record<string, unknown> = {};
  for (let i = 0; i < arrays; i++) doc[`k${i}`] = new Array<number>(10_000).fill(0);
  return doc;
}

describe('bsonSize', () => {
  it('counts what the driver counts, for every kind of JSON value', () => {
    const docs: Array<Record<string, unknown>> = [
      {},
      { _id: 'x' },
      { a: 1, b: -1, c: 2_147_483_647, d: 2_147_483_648, e: -2_147_483_648, f: -2_147_483_649, g: 1.5, h: -0, i: 1e300, j: 2 ** 53, k: 2 ** 60 },
      { s: '', t: 'é😀ключ', u: 'x'.repeat(1000), 'ключ😀': true, no: false, nil: null },
      { arr: [], nested: [[1, [2, [3]]], { a: [{}] }], big: Array.from({ length: 12_345 }, (_, i) => i) },
      { deep: { a: { b: { c: { d: [null, 'x', 0.25, { e: [] }] } } } } },
    ];
    for (const doc of docs) expect(bsonSize(doc), JSON.stringify(doc).slice(0, 80)).toBe(BSON.calculateObjectSize(doc));
    expect(GENERATED_ID_BYTES).toBe(BSON.calculateObjectSize({ _id: 'x'.repeat(24) }) - 5);
  });

  it('validateDocument refuses a document over MAX_DOCUMENT_BYTES as BSON (400 DBAAS_REQ_LIMIT_EXCEEDED), counting the _id an insert adds', () => {
    // 170 arrays of 10,000 zeros: 3.4 MB of JSON, past 16 MiB of BSON.
    const err = expectCode(() => validateDocument(zeros(170), 'data[3]'), 'DBAAS_REQ_LIMIT_EXCEEDED');
    expect(err.message).toMatch(/^data\[3\]: as BSON the document would be 168\d{5} bytes, over the 16760832 /);
    expect(err.status).toBe(400);
    // To the byte: a document of exactly the bound passes, one byte more does not; without an _id, the one the insert adds counts.
    const strings: Record<string, unknown> = {};
    for (let i = 0; i < 16; i++) strings[`s${i}`] = 'x'.repeat(1_000_000);
    for (const base of [{ _id: 'given', ...strings }, strings]) {
      const room = MAX_DOCUMENT_BYTES - bsonSize(base) - (Object.hasOwn(base, '_id') ? 0 : GENERATED_ID_BYTES) - 8; // a field `p`: 8 bytes and its text
      expect(bsonSize(validateDocument({ ...base, p: 'x'.repeat(room) }, 'data'))).toBe(bsonSize(base) + room + 8);
      expectCode(() => validateDocument({ ...base, p: 'x'.repeat(room + 1) }, 'data'), 'DBAAS_REQ_LIMIT_EXCEEDED');
    }
  });
});
