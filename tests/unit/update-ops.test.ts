import { describe, it, expect } from 'vitest';
import type { Doc, UpdateSpec } from '../../common/commands.js';
import { MAX_ARRAY_LENGTH, MAX_OBJECT_KEYS } from '../../common/limits.js';
import { applyUpdate, deepEqual, seedFromFilter } from '../../common/update-ops.js';
import { validateFilter, validateUpdate } from '../../common/validation.js';
import { expectCode } from './expect-code.js';


/** Applies an update the way the worker does: validated first. */
function apply(doc: Doc, data: unknown): Doc {
  return applyUpdate(doc, validateUpdate(data, 'data'));
}

describe('applyUpdate: copying', () => {
  it('never changes the input document', () => {
    const doc = { _id: 'x', a: { b: 1 }, tags: ['t'], n: 1 };
    const before = structuredClone(doc);
    const out = apply(doc, { $set: { 'a.b': 2 }, $push: { tags: 'u' }, $inc: { n: 1 } });
    expect(doc).toEqual(before);
    expect(out).toEqual({ _id: 'x', a: { b: 2 }, tags: ['t', 'u'], n: 2 });
  });

  it('returns a deep copy even for an empty update', () => {
    const doc = { a: { b: [1] } };
    const out = applyUpdate(doc, { $set: {} });
    expect(out).toEqual(doc);
    expect(out).not.toBe(doc);
    expect(out['a']).not.toBe(doc.a);
  });

  it('does not share values with the update', () => {
    const value = { deep: [1] };
    const update: UpdateSpec = { $set: { a: value }, $push: { list: value } };
    const out = applyUpdate({}, update);
    expect(out['a']).not.toBe(value);
    expect((out['list'] as unknown[])[0]).not.toBe(value);
  });
});

describe('applyUpdate: $set', () => {
  it('sets top-level and dotted paths, creating intermediate objects', () => {
    expect(apply({ a: 1 }, { $set: { a: 2, 'b.c.d': 'x' } })).toEqual({ a: 2, b: { c: { d: 'x' } } });
  });

  it('adds to an existing nested object', () => {
    expect(apply({ a: { keep: 1 } }, { 'a.add': 2 })).toEqual({ a: { keep: 1, add: 2 } });
  });

  it('replaces values of any type', () => {
    expect(apply({ a: [1], b: 'x' }, { $set: { a: { o: 1 }, b: null } })).toEqual({ a: { o: 1 }, b: null });
  });

  it('conflicts when a path goes through a scalar or null', () => {
    expectCode(() => apply({ a: 5 }, { $set: { 'a.b': 1 } }), 'DBAAS_WRITE_TYPE_CONFLICT');
    expectCode(() => apply({ a: 'x' }, { $set: { 'a.b.c': 1 } }), 'DBAAS_WRITE_TYPE_CONFLICT');
    expectCode(() => apply({ a: null }, { $set: { 'a.b': 1 } }), 'DBAAS_WRITE_TYPE_CONFLICT');
  });

  it('addresses array elements by index', () => {
    expect(apply({ tags: ['a', 'b'] }, { $set: { 'tags.1': 'B' } })).toEqual({ tags: ['a', 'B'] });
    expect(apply({ list: [{ n: 1 }] }, { $set: { 'list.0.n': 2 } })).toEqual({ list: [{ n: 2 }] });
  });

  it('pads with null when setting past the end of an array', () => {
    expect(apply({ tags: ['a'] }, { $set: { 'tags.3': 'd' } })).toEqual({ tags: ['a', null, null, 'd'] });
    expect(apply({ list: [] }, { $set: { 'list.1.x': 1 } })).toEqual({ list: [null, { x: 1 }] });
  });

  it('treats a numeric segment on a missing field as an object key', () => {
    expect(apply({}, { $set: { 'a.0': 'x' } })).toEqual({ a: { '0': 'x' } });
  });

  it('conflicts on a non-index segment into an array', () => {
    expectCode(() => apply({ tags: ['a'] }, { $set: { 'tags.x': 1 } }), 'DBAAS_WRITE_TYPE_CONFLICT');
    expectCode(() => apply({ tags: ['a'] }, { $set: { 'tags.01': 1 } }), 'DBAAS_WRITE_TYPE_CONFLICT');
    expectCode(() => apply({ tags: [{ a: 1 }] }, { $set: { 'tags.first.a': 1 } }), 'DBAAS_WRITE_TYPE_CONFLICT');
  });

  it('refuses to grow an array past the limit', () => {
    expectCode(() => apply({ tags: [] }, { $set: { [`tags.${MAX_ARRAY_LENGTH}`]: 1 } }), 'DBAAS_REQ_LIMIT_EXCEEDED');
  });

  it('refuses to grow an object past the key limit an inserted document has (else no backup of it could be restored)', () => {
    const full = Object.fromEntries(Array.from({ length: MAX_OBJECT_KEYS }, (_, i) => [`k${i}`, i]));
    expectCode(() => apply({ m: full }, { $set: { 'm.more': 1 } }), 'DBAAS_REQ_LIMIT_EXCEEDED');
    expectCode(() => apply({ ...full, _id: 'x' }, { $inc: { more: 1 } }), 'DBAAS_REQ_LIMIT_EXCEEDED');
    expectCode(() => apply({ m: full }, { $push: { 'm.list': 1 } }), 'DBAAS_REQ_LIMIT_EXCEEDED');
    const half = Object.fromEntries(Array.from({ length: 600 }, (_, i) => [`m.a${i}`, i]));
    const other = Object.fromEntries(Array.from({ length: 600 }, (_, i) => [`m.b${i}`, i]));
    expectCode(() => apply(apply({}, { $set: half }), { $set: other }), 'DBAAS_REQ_LIMIT_EXCEEDED');
    // Replacing a field of a full object, or removing one, is fine.
    expect(apply({ m: full }, { $set: { 'm.k0': 'x' } }).m).toMatchObject({ k0: 'x' });
    expect(Object.keys(apply({ m: full }, { $unset: { 'm.k0': '' } }).m as object)).toHaveLength(MAX_OBJECT_KEYS - 1);
  });

  it('stores keys like constructor as plain fields', () => {
    const out = apply({}, { $set: { constructor: 1, 'toString.x': 2 } });
    expect(Object.keys(out)).toEqual(['constructor', 'toString']);
    expect(Object.getOwnPropertyDescriptor(out, 'toString')?.value).toEqual({ x: 2 });
  });
});

describe('applyUpdate: $unset', () => {
  it('removes top-level and nested fields', () => {
    expect(apply({ a: 1, b: { c: 1, d: 2 } }, { $unset: { a: '', 'b.c': 1 } })).toEqual({ b: { d: 2 } });
  });

  it('is a no-op for missing fields or paths through scalars', () => {
    expect(apply({ a: 1 }, { $unset: { b: 1, 'c.d': 1, 'a.x': 1 } })).toEqual({ a: 1 });
  });

  it('sets an array element to null instead of shifting the array', () => {
    expect(apply({ t: [1, 2, 3] }, { $unset: { 't.1': 1 } })).toEqual({ t: [1, null, 3] });
    expect(apply({ t: [1] }, { $unset: { 't.5': 1, 't.x': 1 } })).toEqual({ t: [1] });
  });

  it('only removes own fields', () => {
    expect(apply({ a: 1 }, { $unset: { toString: 1 } })).toEqual({ a: 1 });
  });
});

describe('applyUpdate: $inc', () => {
  it('adds to numbers and creates missing fields', () => {
    expect(apply({ n: 1, m: { x: 2 } }, { $inc: { n: 2, 'm.x': -0.5, 'm.y': 3, z: 1 } })).toEqual({ n: 3, m: { x: 1.5, y: 3 }, z: 1 });
  });

  it('increments an array element', () => {
    expect(apply({ scores: [1, 2] }, { $inc: { 'scores.1': 10 } })).toEqual({ scores: [1, 12] });
  });

  it('conflicts on a non-number target', () => {
    expectCode(() => apply({ n: '1' }, { $inc: { n: 1 } }), 'DBAAS_WRITE_TYPE_CONFLICT');
    expectCode(() => apply({ n: null }, { $inc: { n: 1 } }), 'DBAAS_WRITE_TYPE_CONFLICT');
    expectCode(() => apply({ n: [1] }, { $inc: { n: 1 } }), 'DBAAS_WRITE_TYPE_CONFLICT');
    expectCode(() => apply({ n: 5 }, { $inc: { 'n.x': 1 } }), 'DBAAS_WRITE_TYPE_CONFLICT');
  });

  it('conflicts on overflow', () => {
    expectCode(() => apply({ n: Number.MAX_VALUE }, { $inc: { n: Number.MAX_VALUE } }), 'DBAAS_WRITE_TYPE_CONFLICT');
  });
});

describe('applyUpdate: $push', () => {
  it('appends one value and creates missing arrays', () => {
    expect(apply({ t: [1] }, { $push: { t: 1, u: 'x', 'v.w': { o: 1 } } })).toEqual({ t: [1, 1], u: ['x'], v: { w: [{ o: 1 }] } });
  });

  it('appends every $each value, duplicates included', () => {
    expect(apply({ t: [1] }, { $push: { t: { $each: [1, 2, [3]] } } })).toEqual({ t: [1, 1, 2, [3]] });
  });

  it('creates an empty array from an empty $each', () => {
    expect(apply({}, { $push: { t: { $each: [] } } })).toEqual({ t: [] });
  });

  it('pushes an array as one element', () => {
    expect(apply({}, { $push: { t: [1, 2] } })).toEqual({ t: [[1, 2]] });
  });

  it('conflicts on a non-array target', () => {
    expectCode(() => apply({ t: 'x' }, { $push: { t: 1 } }), 'DBAAS_WRITE_TYPE_CONFLICT');
    expectCode(() => apply({ t: { a: 1 } }, { $push: { t: 1 } }), 'DBAAS_WRITE_TYPE_CONFLICT');
    expectCode(() => apply({ t: 5 }, { $push: { 't.x': 1 } }), 'DBAAS_WRITE_TYPE_CONFLICT');
  });

  it('refuses to grow an array past the limit', () => {
    const t = new Array(MAX_ARRAY_LENGTH).fill(0);
    expectCode(() => apply({ t }, { $push: { t: 1 } }), 'DBAAS_REQ_LIMIT_EXCEEDED');
  });
});

describe('applyUpdate: $addToSet', () => {
  it('adds only values that are not present, by deep equality', () => {
    const doc = { users: ['ana', { n: 1, m: 2 }] };
    expect(apply(doc, { $addToSet: { users: 'ana' } })).toEqual(doc);
    expect(apply(doc, { $addToSet: { users: { m: 2, n: 1 } } })).toEqual(doc);
    expect(apply(doc, { $addToSet: { users: 'bo' } })).toEqual({ users: ['ana', { n: 1, m: 2 }, 'bo'] });
  });

  it('adds each $each value once, also within the list', () => {
    expect(apply({ t: [1] }, { $addToSet: { t: { $each: [1, 2, 2, 3] } } })).toEqual({ t: [1, 2, 3] });
  });

  it('creates missing arrays', () => {
    expect(apply({}, { $addToSet: { 'a.t': 'x' } })).toEqual({ a: { t: ['x'] } });
  });

  it('treats 1 and "1" as different', () => {
    expect(apply({ t: [1] }, { $addToSet: { t: '1' } })).toEqual({ t: [1, '1'] });
  });

  it('conflicts on a non-array target', () => {
    expectCode(() => apply({ t: 1 }, { $addToSet: { t: 1 } }), 'DBAAS_WRITE_TYPE_CONFLICT');
  });
});

describe('applyUpdate: $pull', () => {
  it('removes every element deep-equal to the value', () => {
    expect(apply({ t: [1, 2, 1, { a: [1] }] }, { $pull: { t: 1 } })).toEqual({ t: [2, { a: [1] }] });
    expect(apply({ t: [{ a: [1], b: 2 }, { a: [1] }] }, { $pull: { t: { b: 2, a: [1] } } })).toEqual({ t: [{ a: [1] }] });
  });

  it('does not treat an object as a partial match', () => {
    expect(apply({ t: [{ a: 1, b: 2 }] }, { $pull: { t: { a: 1 } } })).toEqual({ t: [{ a: 1, b: 2 }] });
  });

  it('removes every element listed in $in', () => {
    expect(apply({ t: ['a', 'b', 'c', 'a'] }, { $pull: { t: { $in: ['a', 'c', 'z'] } } })).toEqual({ t: ['b'] });
  });

  it('is a no-op for missing fields and paths through scalars', () => {
    expect(apply({ a: 1 }, { $pull: { t: 1, 'x.y': 1, 'a.b': 1 } })).toEqual({ a: 1 });
  });

  it('works on nested arrays', () => {
    expect(apply({ a: { t: [1, 2] } }, { $pull: { 'a.t': 2 } })).toEqual({ a: { t: [1] } });
  });

  it('conflicts on a non-array target', () => {
    expectCode(() => apply({ t: 'x' }, { $pull: { t: 'x' } }), 'DBAAS_WRITE_TYPE_CONFLICT');
    expectCode(() => apply({ t: { x: 1 } }, { $pull: { t: 1 } }), 'DBAAS_WRITE_TYPE_CONFLICT');
  });
});

describe('applyUpdate: several operators', () => {
  it('applies each to its own path', () => {
    const doc = { _id: 'r1', users: ['ana'], seats: 3, note: 'x', old: 1 };
    const out = apply(doc, { $addToSet: { users: 'bo' }, $inc: { seats: -1 }, $set: { note: 'y' }, $unset: { old: '' } });
    expect(out).toEqual({ _id: 'r1', users: ['ana', 'bo'], seats: 2, note: 'y' });
  });

  it('keeps _id', () => {
    expect(apply({ _id: 'keep', a: 1 }, { a: 2 })['_id']).toBe('keep');
  });
});

describe('seedFromFilter', () => {
  it('takes top-level literals and $eq', () => {
    expect(seedFromFilter({ username: 'ana', age: { $eq: 30 }, obj: { a: 1 }, arr: [1, 2] })).toEqual({
      username: 'ana',
      age: 30,
      obj: { a: 1 },
      arr: [1, 2],
    });
  });

  it('makes dotted paths into nested objects', () => {
    expect(seedFromFilter({ 'a.b': 1, 'a.c': { $eq: 'x' }, 'd.e.f': null })).toEqual({ a: { b: 1, c: 'x' }, d: { e: { f: null } } });
  });

  it('takes equalities inside $and, nested $and included', () => {
    expect(seedFromFilter({ $and: [{ a: 1 }, { b: { $eq: 2 } }, { $and: [{ c: 3 }] }], d: 4 })).toEqual({ a: 1, b: 2, c: 3, d: 4 });
  });

  it('ignores other operators and $or', () => {
    expect(
      seedFromFilter({
        a: { $gt: 1 },
        b: { $in: [1] },
        c: { $ne: 1 },
        d: { $exists: true },
        e: { $regex: 'x' },
        f: { $not: { $eq: 1 } },
        $or: [{ g: 1 }],
      }),
    ).toEqual({});
  });

  it('takes $eq next to other operators', () => {
    expect(seedFromFilter({ a: { $eq: 5, $gt: 1 } })).toEqual({ a: 5 });
  });

  it('keeps a string _id', () => {
    expect(seedFromFilter({ _id: 'u1', name: 'ana' })).toEqual({ _id: 'u1', name: 'ana' });
    expect(seedFromFilter({ _id: { $eq: 'u2' } })).toEqual({ _id: 'u2' });
    expect(seedFromFilter({ _id: { $in: ['u3'] } })).toEqual({});
  });

  it('refuses an _id that could not be stored', () => {
    expectCode(() => seedFromFilter({ _id: 5 }), 'DBAAS_DOC_INVALID');
    expectCode(() => seedFromFilter({ _id: '' }), 'DBAAS_DOC_INVALID');
    expectCode(() => seedFromFilter({ '_id.x': 'a' }), 'DBAAS_DOC_INVALID');
  });

  it('accepts the same equality twice', () => {
    expect(seedFromFilter({ a: 1, $and: [{ a: 1 }] })).toEqual({ a: 1 });
  });

  it('refuses conflicting equalities', () => {
    expectCode(() => seedFromFilter({ a: 1, $and: [{ a: 2 }] }), 'DBAAS_QUERY_INVALID');
    expectCode(() => seedFromFilter({ a: { b: 1 }, 'a.c': 2 }), 'DBAAS_QUERY_INVALID');
  });

  it('returns copies of filter values', () => {
    const where = { obj: { a: [1] } };
    const seed = seedFromFilter(where);
    expect(seed['obj']).toEqual(where.obj);
    expect(seed['obj']).not.toBe(where.obj);
  });

  it('seeds an upsert that the update then completes', () => {
    const where = validateFilter({ username: 'ana', age: { $gte: 18 } });
    const doc = apply(seedFromFilter(where), { $set: { password: 'pw' }, $inc: { logins: 1 } });
    expect(doc).toEqual({ username: 'ana', password: 'pw', logins: 1 });
  });

  it('lets the update override a seeded value', () => {
    expect(apply(seedFromFilter({ a: 1 }), { $set: { a: 2 } })).toEqual({ a: 2 });
  });
});

describe('deepEqual', () => {
  it.each([
    [1, 1],
    ['a', 'a'],
    [null, null],
    [true, true],
    [0, -0],
    [[], []],
    [{}, {}],
    [[1, [2, { a: 3 }]], [1, [2, { a: 3 }]]],
    [{ a: 1, b: { c: [1] } }, { b: { c: [1] }, a: 1 }],
  ])('%j equals %j', (a, b) => {
    expect(deepEqual(a, b)).toBe(true);
    expect(deepEqual(b, a)).toBe(true);
  });

  it.each([
    [1, '1'],
    [null, undefined],
    [null, {}],
    [[], {}],
    [[1, 2], [2, 1]],
    [[1], [1, 1]],
    [{ a: 1 }, { a: 1, b: 2 }],
    [{ a: 1 }, { b: 1 }],
    [{ a: undefined }, { b: undefined }],
    [{ a: [1] }, { a: [1, 2] }],
    [{ a: { b: 1 } }, { a: { b: '1' } }],
    [0, false],
    ['', null],
  ])('%j differs from %j', (a, b) => {
    expect(deepEqual(a, b)).toBe(false);
    expect(deepEqual(b, a)).toBe(false);
  });

  it('ignores inherited properties', () => {
    const withProto = Object.create({ inherited: 1 }) as Record<string, unknown>;
    expect(deepEqual({ inherited: 1 }, withProto)).toBe(false);
  });
});
