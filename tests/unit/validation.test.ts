import { describe, it, expect } from 'vitest';
import {
  MAX_ARRAY_LENGTH,
  MAX_DEPTH,
  MAX_DOCS_PER_INSERT,
  MAX_ID_LENGTH,
  MAX_KEY_LENGTH,
  MAX_OBJECT_KEYS,
  MAX_READ_LIMIT,
  MAX_REGEX_LENGTH,
  MAX_REQUEST_ID_LENGTH,
  MAX_SKIP,
  MAX_STRING_LENGTH,
  LIMITS,
} from '../../common/limits.js';
import {
  parseClearBody,
  parseReadBody,
  parseWriteBody,
  validateDocument,
  validateFilter,
  validateUpdate,
} from '../../common/validation.js';
import { expectCode } from './expect-code.js';


/** `{a: {a: … {leaf}}}` with `levels` objects in total. */
function nested(levels: number, leaf: unknown = 1): Record<string, unknown> {
  let value: unknown = leaf;
  for (let i = 0; i < levels; i++) value = { a: value };
  return value as Record<string, unknown>;
}

/** Parses JSON the way the HTTP layer does, so `__proto__` becomes an own key. */
function json(text: string): unknown {
  return JSON.parse(text) as unknown;
}

describe('limits', () => {
  it('has the agreed values and is frozen', () => {
    expect(LIMITS).toMatchObject({
      MAX_DEPTH: 20,
      MAX_ARRAY_LENGTH: 10000,
      MAX_OBJECT_KEYS: 1000,
      MAX_STRING_LENGTH: 1_000_000,
      MAX_KEY_LENGTH: 256,
      MAX_DOCS_PER_INSERT: 1000,
      MAX_REGEX_LENGTH: 256,
      MAX_READ_LIMIT: 100000,
      MAX_SKIP: 1_000_000_000,
      MAX_REQUEST_ID_LENGTH: 128,
      MAX_ID_LENGTH: 256,
    });
    expect(Object.isFrozen(LIMITS)).toBe(true);
  });
});

describe('parseWriteBody: insert', () => {
  it('accepts one document', () => {
    const doc = { created_by: 'ana', source: 1, destination: 2, timestamp: '2026-11-21T10:00:00Z', users: [] };
    expect(parseWriteBody({ table: 'rides', operation: 'insert', data: doc })).toEqual({
      command: { kind: 'insert', table: 'rides', docs: [doc] },
    });
  });

  it('accepts an array of documents and a requestId', () => {
    expect(parseWriteBody({ table: 'users', operation: 'insert', data: [{ a: 1 }, { _id: 'x', b: 2 }], requestId: 'req-1.a:B_2' })).toEqual({
      requestId: 'req-1.a:B_2',
      command: { kind: 'insert', table: 'users', docs: [{ a: 1 }, { _id: 'x', b: 2 }] },
    });
  });

  it('returns copies, not the caller objects', () => {
    const doc = { nested: { x: 1 } };
    const req = parseWriteBody({ table: 't', operation: 'insert', data: doc });
    expect(req.command.kind === 'insert' && req.command.docs[0]).not.toBe(doc);
    expect(req.command.kind === 'insert' && req.command.docs[0]?.['nested']).not.toBe(doc.nested);
  });

  it('accepts exactly MAX_DOCS_PER_INSERT documents', () => {
    const data = Array.from({ length: MAX_DOCS_PER_INSERT }, (_, i) => ({ i }));
    const req = parseWriteBody({ table: 't', operation: 'insert', data });
    expect(req.command.kind === 'insert' && req.command.docs.length).toBe(MAX_DOCS_PER_INSERT);
  });

  it('rejects more than MAX_DOCS_PER_INSERT documents', () => {
    const data = Array.from({ length: MAX_DOCS_PER_INSERT + 1 }, (_, i) => ({ i }));
    expectCode(() => parseWriteBody({ table: 't', operation: 'insert', data }), 'DBAAS_REQ_LIMIT_EXCEEDED');
  });

  it('rejects an empty array, missing data and a where', () => {
    expectCode(() => parseWriteBody({ table: 't', operation: 'insert', data: [] }), 'DBAAS_REQ_INVALID');
    expectCode(() => parseWriteBody({ table: 't', operation: 'insert' }), 'DBAAS_REQ_INVALID');
    expectCode(() => parseWriteBody({ table: 't', operation: 'insert', data: { a: 1 }, where: {} }), 'DBAAS_REQ_INVALID');
  });

  it('rejects non-object documents, naming the element', () => {
    expectCode(() => parseWriteBody({ table: 't', operation: 'insert', data: 'ana' }), 'DBAAS_DOC_INVALID');
    const err = expectCode(() => parseWriteBody({ table: 't', operation: 'insert', data: [{ a: 1 }, [1]] }), 'DBAAS_DOC_INVALID');
    expect(err.message).toContain('data[1]');
  });

  it('rejects a document with a $ key', () => {
    const err = expectCode(() => parseWriteBody({ table: 't', operation: 'insert', data: { $where: 'x' } }), 'DBAAS_DOC_INVALID');
    expect(err.message).toContain('data.$where');
  });
});

describe('parseWriteBody: update and upsert', () => {
  it('accepts update operators', () => {
    expect(
      parseWriteBody({ table: 'rides', operation: 'update', where: { _id: 'r1' }, data: { $addToSet: { users: 'bo' } } }),
    ).toEqual({
      command: { kind: 'update', table: 'rides', where: { _id: 'r1' }, update: { $addToSet: { users: 'bo' } } },
    });
  });

  it('turns a plain object into $set', () => {
    expect(parseWriteBody({ table: 'users', operation: 'upsert', where: { username: 'ana' }, data: { password: 'pw' } })).toEqual({
      command: { kind: 'upsert', table: 'users', where: { username: 'ana' }, update: { $set: { password: 'pw' } } },
    });
  });

  it('accepts an empty where meaning every document', () => {
    const req = parseWriteBody({ table: 't', operation: 'update', where: {}, data: { $inc: { n: 1 } } });
    expect(req.command).toEqual({ kind: 'update', table: 't', where: {}, update: { $inc: { n: 1 } } });
  });

  it('needs a where', () => {
    expectCode(() => parseWriteBody({ table: 't', operation: 'update', data: { a: 1 } }), 'DBAAS_WRITE_MISSING_WHERE');
    expectCode(() => parseWriteBody({ table: 't', operation: 'upsert', data: { a: 1 } }), 'DBAAS_WRITE_MISSING_WHERE');
  });

  it('needs data', () => {
    expectCode(() => parseWriteBody({ table: 't', operation: 'update', where: { a: 1 } }), 'DBAAS_UPDATE_INVALID');
    expectCode(() => parseWriteBody({ table: 't', operation: 'upsert', where: { a: 1 } }), 'DBAAS_UPDATE_INVALID');
  });

  it('rejects mixing operators and plain fields', () => {
    expectCode(
      () => parseWriteBody({ table: 't', operation: 'update', where: {}, data: { $set: { a: 1 }, b: 2 } }),
      'DBAAS_UPDATE_INVALID',
    );
  });

  it('validates the where', () => {
    expectCode(
      () => parseWriteBody({ table: 't', operation: 'update', where: { $where: 'sleep(1)' }, data: { a: 1 } }),
      'DBAAS_QUERY_OPERATOR_NOT_ALLOWED',
    );
    expectCode(() => parseWriteBody({ table: 't', operation: 'update', where: 'a=1', data: { a: 1 } }), 'DBAAS_QUERY_INVALID');
    expectCode(() => parseWriteBody({ table: 't', operation: 'update', where: null, data: { a: 1 } }), 'DBAAS_QUERY_INVALID');
  });
});

describe('parseWriteBody: delete', () => {
  it('accepts a filter', () => {
    expect(parseWriteBody({ table: 'users', operation: 'delete', where: { username: 'ana' } })).toEqual({
      command: { kind: 'delete', table: 'users', where: { username: 'ana' } },
    });
  });

  it('accepts an explicit {} meaning every document', () => {
    expect(parseWriteBody({ table: 'users', operation: 'delete', where: {} }).command).toEqual({ kind: 'delete', table: 'users', where: {} });
  });

  it('needs a where and refuses data', () => {
    expectCode(() => parseWriteBody({ table: 'users', operation: 'delete' }), 'DBAAS_WRITE_MISSING_WHERE');
    expectCode(() => parseWriteBody({ table: 'users', operation: 'delete', where: {}, data: { a: 1 } }), 'DBAAS_REQ_INVALID');
  });
});

describe('parseWriteBody: legacy forms', () => {
  it('accepts insert with columns', () => {
    expect(parseWriteBody({ table: 'users', insert: ['ana', 'pw'], column: ['username', 'password'] })).toEqual({
      command: { kind: 'insert', table: 'users', docs: [{ username: 'ana', password: 'pw' }] },
    });
  });

  it('accepts a legacy insert with a requestId', () => {
    expect(parseWriteBody({ table: 'users', insert: ['ana'], column: ['username'], requestId: 'r1' })).toEqual({
      requestId: 'r1',
      command: { kind: 'insert', table: 'users', docs: [{ username: 'ana' }] },
    });
  });

  it('accepts delete with a where string', () => {
    expect(parseWriteBody({ table: 'users', delete: "username='ana'" })).toEqual({
      command: { kind: 'delete', table: 'users', where: { username: 'ana' } },
    });
  });

  it('rejects unequal, empty or missing arrays', () => {
    expectCode(() => parseWriteBody({ table: 'users', insert: ['ana', 'pw'], column: ['username'] }), 'DBAAS_REQ_INVALID');
    expectCode(() => parseWriteBody({ table: 'users', insert: [], column: [] }), 'DBAAS_REQ_INVALID');
    expectCode(() => parseWriteBody({ table: 'users', insert: ['ana'] }), 'DBAAS_REQ_INVALID');
    expectCode(() => parseWriteBody({ table: 'users', column: ['username'] }), 'DBAAS_REQ_INVALID');
    expectCode(() => parseWriteBody({ table: 'users', insert: 'ana', column: 'username' }), 'DBAAS_REQ_INVALID');
  });

  it('rejects bad or repeated column names', () => {
    expectCode(() => parseWriteBody({ table: 'users', insert: ['x'], column: ['$where'] }), 'DBAAS_DOC_INVALID');
    expectCode(() => parseWriteBody({ table: 'users', insert: ['x'], column: ['a.b'] }), 'DBAAS_DOC_INVALID');
    expectCode(() => parseWriteBody({ table: 'users', insert: ['x'], column: [''] }), 'DBAAS_DOC_INVALID');
    expectCode(() => parseWriteBody({ table: 'users', insert: ['x'], column: ['__proto__'] }), 'DBAAS_DOC_INVALID');
    expectCode(() => parseWriteBody({ table: 'users', insert: ['x'], column: [1] }), 'DBAAS_REQ_INVALID');
    expectCode(() => parseWriteBody({ table: 'users', insert: ['x', 'y'], column: ['a', 'a'] }), 'DBAAS_REQ_INVALID');
  });

  it('checks the resulting document, including _id', () => {
    expectCode(() => parseWriteBody({ table: 'users', insert: [5], column: ['_id'] }), 'DBAAS_DOC_INVALID');
  });

  it('rejects a bad legacy delete', () => {
    expectCode(() => parseWriteBody({ table: 'users', delete: '' }), 'DBAAS_QUERY_INVALID');
    expectCode(() => parseWriteBody({ table: 'users', delete: "a='x' OR 1=1" }), 'DBAAS_QUERY_INVALID');
    expectCode(() => parseWriteBody({ table: 'users', delete: { username: 'ana' } }), 'DBAAS_REQ_INVALID');
    expectCode(() => parseWriteBody({ table: 'users', delete: "a='x'", insert: ['x'], column: ['a'] }), 'DBAAS_REQ_INVALID');
  });

  it('rejects mixing legacy and modern keys', () => {
    expectCode(() => parseWriteBody({ table: 'users', operation: 'insert', insert: ['ana'], column: ['username'] }), 'DBAAS_REQ_INVALID');
    expectCode(() => parseWriteBody({ table: 'users', delete: "a='x'", where: { a: 'x' } }), 'DBAAS_REQ_INVALID');
    expectCode(() => parseWriteBody({ table: 'users', insert: ['ana'], column: ['username'], data: {} }), 'DBAAS_REQ_INVALID');
  });
});

describe('parseWriteBody: envelope', () => {
  it.each([null, undefined, 'x', 5, [], [{ table: 't' }], new Date()])('rejects a body that is not a plain object: %j', (body) => {
    expectCode(() => parseWriteBody(body), 'DBAAS_REQ_INVALID');
  });

  it('rejects unknown top-level fields', () => {
    const err = expectCode(() => parseWriteBody({ table: 't', operation: 'insert', data: {}, upsert: true }), 'DBAAS_REQ_UNKNOWN_FIELD');
    expect(err.message).toContain('upsert');
    expectCode(() => parseWriteBody(json('{"table":"t","operation":"insert","data":{},"__proto__":{"x":1}}')), 'DBAAS_REQ_UNKNOWN_FIELD');
  });

  it.each([
    [undefined],
    [5],
    [''],
    ['1users'],
    ['_users'],
    ['us-ers'],
    ['us.ers'],
    ['users$'],
    ['a'.repeat(65)],
    ['_dbaas_oplog'],
    ['_DBAAS'],
  ])('rejects table %j', (table) => {
    expectCode(() => parseWriteBody({ table, operation: 'delete', where: {} }), 'DBAAS_REQ_BAD_TABLE');
  });

  // MongoDB reserves only names starting with "system." and those cannot pass the pattern.
  it.each([['users'], ['Rides_2'], ['a'], ['a'.repeat(64)], ['dbaas'], ['mysystem'], ['system'], ['systems'], ['system_users']])('accepts table %j', (table) => {
    expect(parseWriteBody({ table, operation: 'delete', where: {} }).command).toEqual({ kind: 'delete', table, where: {} });
  });

  it.each([[undefined], ['INSERT'], ['replace'], ['find'], [1], [null]])('rejects operation %j', (operation) => {
    expectCode(() => parseWriteBody({ table: 't', operation, where: {} }), 'DBAAS_REQ_BAD_OPERATION');
  });

  it('rejects a body with neither operation nor legacy keys as a bad operation', () => {
    expectCode(() => parseWriteBody({ table: 't' }), 'DBAAS_REQ_BAD_OPERATION');
  });

  it.each([[''], ['has space'], ['a/b'], ['ü'], ['x'.repeat(MAX_REQUEST_ID_LENGTH + 1)], [5], [null]])('rejects requestId %j', (requestId) => {
    expectCode(() => parseWriteBody({ table: 't', operation: 'delete', where: {}, requestId }), 'DBAAS_REQ_INVALID');
  });

  it('accepts a requestId of the maximum length', () => {
    const requestId = 'x'.repeat(MAX_REQUEST_ID_LENGTH);
    expect(parseWriteBody({ table: 't', operation: 'delete', where: {}, requestId }).requestId).toBe(requestId);
  });
});

describe('parseClearBody', () => {
  it.each([undefined, {}])('accepts %j', (body) => {
    expect(parseClearBody(body)).toEqual({ command: { kind: 'clear' } });
  });

  it('keeps a requestId', () => {
    expect(parseClearBody({ requestId: 'c-1' })).toEqual({ command: { kind: 'clear' }, requestId: 'c-1' });
  });

  it('rejects unknown fields, bad ids and non-objects', () => {
    expectCode(() => parseClearBody({ table: 'users' }), 'DBAAS_REQ_UNKNOWN_FIELD');
    expectCode(() => parseClearBody({ requestId: '' }), 'DBAAS_REQ_INVALID');
    expectCode(() => parseClearBody('all'), 'DBAAS_REQ_INVALID');
    expectCode(() => parseClearBody([]), 'DBAAS_REQ_INVALID');
    expectCode(() => parseClearBody(null), 'DBAAS_REQ_INVALID');
  });
});

describe('parseReadBody', () => {
  it('defaults where to {} and count to false', () => {
    expect(parseReadBody({ table: 'users' })).toEqual({ table: 'users', where: {}, count: false });
  });

  it('accepts every option', () => {
    const body = {
      table: 'rides',
      where: { source: 1, destination: 2, timestamp: { $gt: '2026-11-21' } },
      columns: ['_id', 'created_by', 'timestamp', 'address.city'],
      sort: { timestamp: 1, 'a.b': -1 },
      limit: 100,
      skip: 0,
      count: true,
      afterSeq: 42,
    };
    expect(parseReadBody(body)).toEqual(body);
  });

  it('parses a legacy where string', () => {
    expect(parseReadBody({ table: 'rides', where: "source=1 AND destination='2'" }).where).toEqual({ source: 1, destination: '2' });
    expectCode(() => parseReadBody({ table: 'rides', where: 'source<1' }), 'DBAAS_QUERY_INVALID');
  });

  it('validates the where object', () => {
    expectCode(() => parseReadBody({ table: 'rides', where: { $expr: {} } }), 'DBAAS_QUERY_OPERATOR_NOT_ALLOWED');
    expectCode(() => parseReadBody({ table: 'rides', where: [] }), 'DBAAS_QUERY_INVALID');
  });

  it('accepts the limit bounds', () => {
    expect(parseReadBody({ table: 't', limit: 1 }).limit).toBe(1);
    expect(parseReadBody({ table: 't', limit: MAX_READ_LIMIT }).limit).toBe(MAX_READ_LIMIT);
    expect(parseReadBody({ table: 't', skip: MAX_SKIP }).skip).toBe(MAX_SKIP);
    expect(parseReadBody({ table: 't', afterSeq: 0 }).afterSeq).toBe(0);
  });

  it.each([
    ['limit', 0],
    ['limit', -1],
    ['limit', 1.5],
    ['limit', '10'],
    ['limit', null],
    ['skip', -1],
    ['skip', 0.5],
    ['skip', '0'],
    ['count', 'true'],
    ['count', 1],
    ['afterSeq', -1],
    ['afterSeq', 1.5],
    ['afterSeq', '42'],
  ])('rejects %s = %j', (field, value) => {
    expectCode(() => parseReadBody({ table: 't', [field]: value }), 'DBAAS_REQ_INVALID');
  });

  it('reports limits above the maximum as exceeded', () => {
    expectCode(() => parseReadBody({ table: 't', limit: MAX_READ_LIMIT + 1 }), 'DBAAS_REQ_LIMIT_EXCEEDED');
    expectCode(() => parseReadBody({ table: 't', skip: MAX_SKIP + 1 }), 'DBAAS_REQ_LIMIT_EXCEEDED');
  });

  it.each([
    [[]],
    ['username'],
    [['a', 'a']],
    [['a', 'a.b']],
    [['a.b', 'a']],
    [[1]],
    [['']],
    [['a.$']],
    [['$meta']],
    [['__proto__']],
    [['a..b']],
  ])('rejects columns %j', (columns) => {
    expectCode(() => parseReadBody({ table: 't', columns }), 'DBAAS_REQ_INVALID');
  });

  it('rejects more than 1000 columns', () => {
    const columns = Array.from({ length: 1001 }, (_, i) => `c${i}`);
    expectCode(() => parseReadBody({ table: 't', columns }), 'DBAAS_REQ_LIMIT_EXCEEDED');
  });

  it('accepts sibling columns that only share a name prefix', () => {
    expect(parseReadBody({ table: 't', columns: ['a', 'ab', 'a_b'] }).columns).toEqual(['a', 'ab', 'a_b']);
  });

  it.each([[[]], ['timestamp'], [{ a: 'asc' }], [{ a: 0 }], [{ a: 2 }], [{ a: true }], [{ $natural: 1 }], [{ 'a..b': 1 }]])(
    'rejects sort %j',
    (sort) => {
      expectCode(() => parseReadBody({ table: 't', sort }), 'DBAAS_REQ_INVALID');
    },
  );

  it('rejects more than 32 sort keys', () => {
    const sort = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 1]));
    expectCode(() => parseReadBody({ table: 't', sort }), 'DBAAS_REQ_LIMIT_EXCEEDED');
  });

  it('rejects unknown fields, bad tables and non-object bodies', () => {
    expectCode(() => parseReadBody({ table: 't', filter: {} }), 'DBAAS_REQ_UNKNOWN_FIELD');
    expectCode(() => parseReadBody({ table: 't', requestId: 'r' }), 'DBAAS_REQ_UNKNOWN_FIELD');
    expectCode(() => parseReadBody({ where: {} }), 'DBAAS_REQ_BAD_TABLE');
    expectCode(() => parseReadBody({ table: '_dbaas_oplog' }), 'DBAAS_REQ_BAD_TABLE');
    expectCode(() => parseReadBody(undefined), 'DBAAS_REQ_INVALID');
    expectCode(() => parseReadBody('users'), 'DBAAS_REQ_INVALID');
  });
});

describe('validateFilter: accepted forms', () => {
  it('accepts literals of every JSON type', () => {
    const where = { s: 'x', n: 1.5, b: false, z: null, arr: [1, 'a'], obj: { x: 1, y: [2] }, 'a.b.0': 3, _id: 'id1' };
    expect(validateFilter(where)).toEqual(where);
  });

  it('accepts every allowed field operator', () => {
    const where = {
      a: { $eq: 1, $ne: 2 },
      b: { $gt: 1, $gte: 1, $lt: 9, $lte: 9 },
      c: { $in: [1, 'x', null, { k: 1 }] },
      d: { $nin: [] },
      e: { $exists: false },
      f: { $not: { $gt: 5 } },
      g: { $regex: '^an', $options: 'imsx' },
      h: { $not: { $regex: 'x', $options: 'i' } },
      i: { $eq: { nested: [1] } },
    };
    expect(validateFilter(where)).toEqual(where);
  });

  it('accepts $and and $or, nested', () => {
    const where = { $or: [{ a: 1 }, { $and: [{ b: { $gt: 1 } }, { c: 'x' }] }], d: 2 };
    expect(validateFilter(where)).toEqual(where);
  });

  it('accepts an empty filter', () => {
    expect(validateFilter({})).toEqual({});
  });

  it('returns a new object, not the caller one', () => {
    const where = { a: { $in: [1] }, b: { c: 1 } };
    const out = validateFilter(where);
    expect(out).not.toBe(where);
    expect(out['a']).not.toBe(where.a);
    expect(out['b']).not.toBe(where.b);
  });

  it('accepts a null-prototype object', () => {
    const where = Object.create(null) as Record<string, unknown>;
    where['a'] = 1;
    expect(validateFilter(where)).toEqual({ a: 1 });
  });

  it('accepts a filter at the depth limit', () => {
    expect(() => validateFilter(nested(MAX_DEPTH))).not.toThrow();
  });
});

describe('validateFilter: refused operators', () => {
  it.each([
    ['$where at top level', { $where: 'sleep(100)' }, 'where'],
    ['$expr', { $expr: { $eq: ['$a', 1] } }, 'where'],
    ['$nor', { $nor: [{ a: 1 }] }, 'where'],
    ['$jsonSchema', { $jsonSchema: {} }, 'where'],
    ['$text', { $text: { $search: 'x' } }, 'where'],
    ['$comment', { $comment: 'x' }, 'where'],
    ['$where on a field', { age: { $where: 'x' } }, 'where.age'],
    ['$function on a field', { age: { $function: { body: 'x' } } }, 'where.age'],
    ['$accumulator', { age: { $accumulator: {} } }, 'where.age'],
    ['$elemMatch', { tags: { $elemMatch: { a: 1 } } }, 'where.tags'],
    ['$size', { tags: { $size: 1 } }, 'where.tags'],
    ['$type', { tags: { $type: 'string' } }, 'where.tags'],
    ['$all', { tags: { $all: [1] } }, 'where.tags'],
    ['$mod', { n: { $mod: [2, 0] } }, 'where.n'],
    ['inside $not', { a: { $not: { $where: 'x' } } }, 'where.a.$not'],
    ['inside $and', { $and: [{ $where: 'x' }] }, 'where.$and[0]'],
    ['inside $or', { $or: [{ a: { $expr: 1 } }] }, 'where.$or[0].a'],
    ['next to a field name', { a: { b: 1, $where: 'x' } }, 'where.a'],
  ])('refuses %s', (_name, where, path) => {
    const err = expectCode(() => validateFilter(where), 'DBAAS_QUERY_OPERATOR_NOT_ALLOWED');
    expect(err.message.startsWith(`${path}: `)).toBe(true);
  });

  it('names the field and the operator', () => {
    const err = expectCode(() => validateFilter({ age: { $where: 'x' } }), 'DBAAS_QUERY_OPERATOR_NOT_ALLOWED');
    expect(err.message).toBe('where.age: operator $where is not allowed');
  });

  it('refuses forbidden operators hidden in literals', () => {
    expectCode(() => validateFilter({ a: { b: { $where: 'x' } } }), 'DBAAS_QUERY_OPERATOR_NOT_ALLOWED');
    expectCode(() => validateFilter({ a: { $eq: { $where: 'x' } } }), 'DBAAS_QUERY_OPERATOR_NOT_ALLOWED');
    expectCode(() => validateFilter({ a: { $in: [{ $function: 'x' }] } }), 'DBAAS_QUERY_OPERATOR_NOT_ALLOWED');
    expectCode(() => validateFilter({ a: [{ $expr: 1 }] }), 'DBAAS_QUERY_OPERATOR_NOT_ALLOWED');
  });

  it('uses the given path', () => {
    const err = expectCode(() => validateFilter({ $where: 'x' }, 'body.filter'), 'DBAAS_QUERY_OPERATOR_NOT_ALLOWED');
    expect(err.message).toMatch(/^body\.filter: /);
  });
});

describe('validateFilter: malformed filters', () => {
  it.each([
    ['not an object', 'a=1'],
    ['an array', [{ a: 1 }]],
    ['null', null],
    ['mixed operators and fields', { a: { $gt: 1, b: 2 } }],
    ['$in not an array', { a: { $in: 1 } }],
    ['$nin not an array', { a: { $nin: 'x' } }],
    ['$exists not a boolean', { a: { $exists: 1 } }],
    ['$regex not a string', { a: { $regex: 5 } }],
    ['$regex that does not compile', { a: { $regex: '(' } }],
    ['$options without $regex', { a: { $options: 'i' } }],
    ['$options with a bad letter', { a: { $regex: 'x', $options: 'g' } }],
    ['$options with a repeated letter', { a: { $regex: 'x', $options: 'ii' } }],
    ['$options not a string', { a: { $regex: 'x', $options: 1 } }],
    ['$not with a literal', { a: { $not: 5 } }],
    ['$not with a document', { a: { $not: { b: 1 } } }],
    ['$not empty', { a: { $not: {} } }],
    ['$and empty', { $and: [] }],
    ['$or not an array', { $or: { a: 1 } }],
    ['$and element not an object', { $and: [1] }],
    ['field operator at top level', { $eq: 1 }],
    ['logical operator on a field', { a: { $and: [{ b: 1 }] } }],
    ['allowed operator inside a literal', { a: { b: { $gt: 1 } } }],
    ['empty field path', { '': 1 }],
    ['empty path segment', { 'a..b': 1 }],
    ['$ path segment', { 'a.$b': 1 }],
    ['__proto__ path segment', { 'a.__proto__': 1 }],
    ['NUL in a field path', { 'a\0b': 1 }],
    ['a literal with a dotted key', { a: { 'b.c': 1 } }],
    ['a non-finite number', { a: Infinity }],
    ['a non-JSON value', { a: () => 1 }],
    ['a Date', { a: new Date(0) }],
    ['undefined', { a: undefined }],
  ])('rejects %s', (_name, where) => {
    expectCode(() => validateFilter(where), 'DBAAS_QUERY_INVALID');
  });

  it('rejects a __proto__ key from JSON', () => {
    expectCode(() => validateFilter(json('{"__proto__": {"polluted": 1}}')), 'DBAAS_QUERY_INVALID');
    expectCode(() => validateFilter(json('{"a": {"__proto__": {"polluted": 1}}}')), 'DBAAS_QUERY_INVALID');
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('enforces limits', () => {
    expectCode(() => validateFilter({ a: { $regex: 'x'.repeat(MAX_REGEX_LENGTH + 1) } }), 'DBAAS_REQ_LIMIT_EXCEEDED');
    expect(() => validateFilter({ a: { $regex: 'x'.repeat(MAX_REGEX_LENGTH) } })).not.toThrow();
    expectCode(() => validateFilter(nested(MAX_DEPTH + 1)), 'DBAAS_REQ_LIMIT_EXCEEDED');
    expectCode(() => validateFilter({ a: { $in: new Array(MAX_ARRAY_LENGTH + 1).fill(1) } }), 'DBAAS_REQ_LIMIT_EXCEEDED');
    const wide = Object.fromEntries(Array.from({ length: MAX_OBJECT_KEYS + 1 }, (_, i) => [`k${i}`, 1]));
    expectCode(() => validateFilter(wide), 'DBAAS_REQ_LIMIT_EXCEEDED');
    expectCode(() => validateFilter({ a: 'x'.repeat(MAX_STRING_LENGTH + 1) }), 'DBAAS_REQ_LIMIT_EXCEEDED');
  });

  it('survives very deep input without overflowing the stack', () => {
    let where: unknown = { a: 1 };
    for (let i = 0; i < 100_000; i++) where = { $or: [where] };
    expectCode(() => validateFilter(where), 'DBAAS_REQ_LIMIT_EXCEEDED');
    where = 1;
    for (let i = 0; i < 100_000; i++) where = { a: where };
    expectCode(() => validateFilter(where), 'DBAAS_REQ_LIMIT_EXCEEDED');
  });
});

describe('validateDocument', () => {
  it('accepts every JSON type and returns a deep copy', () => {
    const doc = { _id: 'a1', s: 'x', n: -0.5, b: true, z: null, arr: [1, [2], { c: 3 }], obj: { d: { e: 'f' } }, constructor: 'ok' };
    const out = validateDocument(doc, 'data');
    expect(out).toEqual(doc);
    expect(out).not.toBe(doc);
    expect(out['obj']).not.toBe(doc.obj);
    expect(out['arr']).not.toBe(doc.arr);
  });

  it('accepts a document at the limits', () => {
    expect(() => validateDocument(nested(MAX_DEPTH), 'data')).not.toThrow();
    expect(() => validateDocument({ a: new Array(MAX_ARRAY_LENGTH).fill(0) }, 'data')).not.toThrow();
    expect(() => validateDocument({ ['k'.repeat(MAX_KEY_LENGTH)]: 1 }, 'data')).not.toThrow();
    expect(() => validateDocument({ _id: 'i'.repeat(MAX_ID_LENGTH) }, 'data')).not.toThrow();
    expect(() => validateDocument({ s: 'x'.repeat(MAX_STRING_LENGTH) }, 'data')).not.toThrow();
  });

  it.each([
    ['not an object', 'x'],
    ['an array', [{ a: 1 }]],
    ['null', null],
    ['an empty key', { '': 1 }],
    ['a $ key', { $set: 1 }],
    ['a nested $ key', { a: { $gt: 1 } }],
    ['a $ key in an array element', { a: [{ $where: 1 }] }],
    ['a dotted key', { 'a.b': 1 }],
    ['a NUL in a key', { 'a\0': 1 }],
    ['a key that is too long', { ['k'.repeat(MAX_KEY_LENGTH + 1)]: 1 }],
    ['NaN', { n: NaN }],
    ['Infinity', { n: -Infinity }],
    ['undefined', { u: undefined }],
    ['a function', { f: () => 1 }],
    ['a bigint', { b: 1n }],
    ['a Date', { d: new Date(0) }],
    ['a numeric _id', { _id: 5 }],
    ['an object _id', { _id: { a: 1 } }],
    ['an empty _id', { _id: '' }],
    ['a long _id', { _id: 'i'.repeat(MAX_ID_LENGTH + 1) }],
  ])('rejects %s', (_name, doc) => {
    expectCode(() => validateDocument(doc, 'data'), 'DBAAS_DOC_INVALID');
  });

  it('rejects __proto__ keys at any level', () => {
    expectCode(() => validateDocument(json('{"__proto__": {"polluted": 1}}'), 'data'), 'DBAAS_DOC_INVALID');
    expectCode(() => validateDocument(json('{"a": [{"__proto__": 1}]}'), 'data'), 'DBAAS_DOC_INVALID');
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('allows a nested _id of any type', () => {
    expect(validateDocument({ sub: { _id: 5 } }, 'data')).toEqual({ sub: { _id: 5 } });
  });

  it('enforces limits with DBAAS_REQ_LIMIT_EXCEEDED', () => {
    expectCode(() => validateDocument(nested(MAX_DEPTH + 1), 'data'), 'DBAAS_REQ_LIMIT_EXCEEDED');
    expectCode(() => validateDocument({ a: nested(MAX_DEPTH) }, 'data'), 'DBAAS_REQ_LIMIT_EXCEEDED');
    expectCode(() => validateDocument({ a: new Array(MAX_ARRAY_LENGTH + 1).fill(0) }, 'data'), 'DBAAS_REQ_LIMIT_EXCEEDED');
    expectCode(() => validateDocument({ s: 'x'.repeat(MAX_STRING_LENGTH + 1) }, 'data'), 'DBAAS_REQ_LIMIT_EXCEEDED');
    const wide = Object.fromEntries(Array.from({ length: MAX_OBJECT_KEYS + 1 }, (_, i) => [`k${i}`, 1]));
    expectCode(() => validateDocument(wide, 'data'), 'DBAAS_REQ_LIMIT_EXCEEDED');
  });

  it('counts arrays as nesting levels', () => {
    let value: unknown = 1;
    for (let i = 0; i < MAX_DEPTH; i++) value = [value];
    expectCode(() => validateDocument({ a: value }, 'data'), 'DBAAS_REQ_LIMIT_EXCEEDED');
  });

  it('names the field in the message', () => {
    const err = expectCode(() => validateDocument({ a: { b: [1, { $x: 1 }] } }, 'data[0]'), 'DBAAS_DOC_INVALID');
    expect(err.message).toContain('data[0].a.b[1].$x');
  });
});

describe('validateUpdate', () => {
  it('turns a plain object into $set, dotted paths included', () => {
    expect(validateUpdate({ a: 1, 'b.c': { d: [1] } }, 'data')).toEqual({ $set: { a: 1, 'b.c': { d: [1] } } });
  });

  it('accepts every operator', () => {
    const data = {
      $set: { a: 1 },
      $unset: { b: 1 },
      $inc: { c: -2.5 },
      $push: { d: 'x', e: { $each: [1, 2] } },
      $addToSet: { f: { g: 1 }, h: { $each: [] } },
      $pull: { i: 'x', j: { $in: [1, 2] } },
    };
    expect(validateUpdate(data, 'data')).toEqual({ ...data, $unset: { b: '' } });
  });

  it('accepts an empty operator object', () => {
    expect(validateUpdate({ $set: {} }, 'data')).toEqual({ $set: {} });
  });

  it('allows sibling paths that only share a name prefix', () => {
    expect(validateUpdate({ $set: { a: 1 }, $inc: { ab: 1, 'c.a': 1, 'c.b': 2 } }, 'data')).toEqual({
      $set: { a: 1 },
      $inc: { ab: 1, 'c.a': 1, 'c.b': 2 },
    });
  });

  it('returns copies of values', () => {
    const value = { x: [1] };
    const out = validateUpdate({ $set: { a: value } }, 'data');
    expect(out.$set?.['a']).toEqual(value);
    expect(out.$set?.['a']).not.toBe(value);
  });

  it.each([
    ['not an object', 'x'],
    ['an array', [{ $set: { a: 1 } }]],
    ['null', null],
    ['empty', {}],
    ['mixed operators and fields', { $set: { a: 1 }, b: 2 }],
    ['an unknown operator', { $rename: { a: 'b' } }],
    ['$where', { $where: 'x' }],
    ['an operator value that is not an object', { $set: 5 }],
    ['_id', { $set: { _id: 'x' } }],
    ['_id in plain form', { _id: 'x' }],
    ['a path below _id', { $unset: { '_id.a': 1 } }],
    ['the same path twice', { $set: { a: 1 }, $inc: { a: 1 } }],
    ['a path and its prefix', { $set: { a: { b: 1 } }, $unset: { 'a.b': 1 } }],
    ['a prefix after its path', { $set: { 'a.b.c': 1 }, $push: { 'a.b': 1 } }],
    ['$inc with a string', { $inc: { a: '1' } }],
    ['$inc with null', { $inc: { a: null } }],
    ['$inc with Infinity', { $inc: { a: Infinity } }],
    ['an empty path', { $set: { '': 1 } }],
    ['an empty segment', { $set: { 'a..b': 1 } }],
    ['a $ segment', { $set: { 'a.$': 1 } }],
    ['a $ path in plain form', { 'a.$[]': 1 }],
    ['a __proto__ segment', { $set: { 'a.__proto__.b': 1 } }],
    ['a NUL in a path', { $set: { 'a\0': 1 } }],
    ['a $ key inside a value', { $set: { a: { $gt: 1 } } }],
    ['a dotted key inside a value', { $set: { a: { 'b.c': 1 } } }],
    ['$push with $position', { $push: { a: { $each: [1], $position: 0 } } }],
    ['$push with $slice', { $push: { a: { $each: [1], $slice: 1 } } }],
    ['$each not an array', { $push: { a: { $each: 1 } } }],
    ['$addToSet with $in', { $addToSet: { a: { $in: [1] } } }],
    ['$pull with $each', { $pull: { a: { $each: [1] } } }],
    ['$pull with a condition', { $pull: { a: { $gte: 6 } } }],
    ['$pull $in not an array', { $pull: { a: { $in: 'x' } } }],
    ['a non-finite number value', { $set: { a: NaN } }],
    ['a non-JSON value', { $push: { a: new Date(0) } }],
  ])('rejects %s', (_name, data) => {
    expectCode(() => validateUpdate(data, 'data'), 'DBAAS_UPDATE_INVALID');
  });

  it('rejects __proto__ keys from JSON', () => {
    expectCode(() => validateUpdate(json('{"__proto__": {"x": 1}}'), 'data'), 'DBAAS_UPDATE_INVALID');
    expectCode(() => validateUpdate(json('{"$set": {"__proto__": {"x": 1}}}'), 'data'), 'DBAAS_UPDATE_INVALID');
    expectCode(() => validateUpdate(json('{"$set": {"a": {"__proto__": {"x": 1}}}}'), 'data'), 'DBAAS_UPDATE_INVALID');
  });

  it('counts path segments towards the depth limit', () => {
    const deepPath = Array.from({ length: MAX_DEPTH }, (_, i) => `p${i}`).join('.');
    expect(() => validateUpdate({ $set: { [deepPath]: 1 } }, 'data')).not.toThrow();
    expectCode(() => validateUpdate({ $set: { [deepPath]: {} } }, 'data'), 'DBAAS_REQ_LIMIT_EXCEEDED');
    expectCode(() => validateUpdate({ $set: { [`${deepPath}.x`]: 1 } }, 'data'), 'DBAAS_UPDATE_INVALID');
    // a.b sits at level 3, so its value may nest MAX_DEPTH - 2 more objects.
    expect(() => validateUpdate({ $set: { 'a.b': nested(MAX_DEPTH - 2) } }, 'data')).not.toThrow();
    expectCode(() => validateUpdate({ $set: { 'a.b': nested(MAX_DEPTH - 1) } }, 'data'), 'DBAAS_REQ_LIMIT_EXCEEDED');
    // A pushed element sits inside the array, one level deeper.
    expectCode(() => validateUpdate({ $push: { 'a.b': nested(MAX_DEPTH - 2) } }, 'data'), 'DBAAS_REQ_LIMIT_EXCEEDED');
    expect(() => validateUpdate({ $push: { 'a.b': { $each: [nested(MAX_DEPTH - 3)] } } }, 'data')).not.toThrow();
  });

  it('enforces other limits', () => {
    expectCode(() => validateUpdate({ $push: { a: { $each: new Array(MAX_ARRAY_LENGTH + 1).fill(1) } } }, 'data'), 'DBAAS_REQ_LIMIT_EXCEEDED');
    expectCode(() => validateUpdate({ $set: { a: 'x'.repeat(MAX_STRING_LENGTH + 1) } }, 'data'), 'DBAAS_REQ_LIMIT_EXCEEDED');
    const wide = Object.fromEntries(Array.from({ length: MAX_OBJECT_KEYS + 1 }, (_, i) => [`k${i}`, 1]));
    expectCode(() => validateUpdate({ $set: wide }, 'data'), 'DBAAS_REQ_LIMIT_EXCEEDED');
  });

  it('names the path in conflict messages', () => {
    const err = expectCode(() => validateUpdate({ $set: { 'a.b': 1 }, $inc: { a: 1 } }, 'data'), 'DBAAS_UPDATE_INVALID');
    expect(err.message).toBe('data.$inc.a: conflicts with a elsewhere in the same update');
  });
});
