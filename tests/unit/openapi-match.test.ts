/**
 * The OpenAPI schemas of the write and read bodies against the validators that
 * really decide (common/validation.ts), on a table of bodies of every form: a
 * body the schema allows must not be refused for its shape, and the reverse
 * (issue 13: `{"table": "A"}` was allowed by the schema and refused by the
 * server). The schema is compiled by fastify's own validator here; the service
 * itself uses the schemas for documentation only.
 */
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseReadBody, parseWriteBody } from '../../common/validation.js';
import { ROUTE_DOCS } from '../../orchestrator/api-docs.js';

const app = Fastify({ ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, strict: false } } });

beforeAll(async () => {
  app.post('/write', { schema: { body: ROUTE_DOCS['POST /api/v1/db/write']?.body as object } }, async () => ({ ok: true }));
  app.post('/read', { schema: { body: ROUTE_DOCS['POST /api/v1/db/read']?.body as object } }, async () => ({ ok: true }));
  await app.ready();
});
afterAll(async () => app.close());

async function schemaAccepts(url: string, body: unknown): Promise<boolean> {
  const res = await app.inject({ method: 'POST', url, payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  return res.statusCode === 200;
}
function validatorAccepts(parse: (b: unknown) => unknown, body: unknown): boolean {
  try {
    parse(body);
    return true;
  } catch {
    return false;
  }
}

const WRITES: ReadonlyArray<readonly [string, unknown, boolean]> = [
  ['insert one', { table: 'users', operation: 'insert', data: { name: 'ana' } }, true],
  ['insert many', { table: 'users', operation: 'insert', data: [{ a: 1 }, { a: 2 }], requestId: 'r-1' }, true],
  ['update', { table: 'users', operation: 'update', where: { a: 1 }, data: { $set: { b: 2 } } }, true],
  ['upsert', { table: 'users', operation: 'upsert', where: { a: 1 }, data: { b: 2 } }, true],
  ['delete', { table: 'users', operation: 'delete', where: {} }, true],
  ['legacy insert', { table: 'users', insert: ['ana', 'x'], column: ['username', 'password'] }, true],
  ['legacy delete', { table: 'users', delete: "username='ana'" }, true],
  ['table only', { table: 'A' }, false],
  ['no table', { operation: 'insert', data: {} }, false],
  ['insert without data', { table: 'users', operation: 'insert' }, false],
  ['insert with where', { table: 'users', operation: 'insert', data: {}, where: {} }, false],
  ['insert of an empty array', { table: 'users', operation: 'insert', data: [] }, false],
  ['update without where', { table: 'users', operation: 'update', data: { $set: { b: 1 } } }, false],
  ['update without data', { table: 'users', operation: 'update', where: {} }, false],
  ['delete without where', { table: 'users', operation: 'delete' }, false],
  ['delete with data', { table: 'users', operation: 'delete', where: {}, data: {} }, false],
  ['unknown operation', { table: 'users', operation: 'drop', where: {} }, false],
  ['legacy mixed with modern', { table: 'users', operation: 'insert', data: {}, insert: ['a'], column: ['b'] }, false],
  ['legacy insert without column', { table: 'users', insert: ['a'] }, false],
  ['legacy delete and insert', { table: 'users', delete: "a='b'", insert: ['a'], column: ['b'] }, false],
  ['legacy delete, empty', { table: 'users', delete: '' }, false],
  ['unknown field', { table: 'users', operation: 'delete', where: {}, extra: 1 }, false],
  ['bad table name', { table: '1users', operation: 'delete', where: {} }, false],
];

const READS: ReadonlyArray<readonly [string, unknown, boolean]> = [
  ['everything', { table: 'rides' }, true],
  ['filter, columns, sort, limit', { table: 'rides', where: { source: 1 }, columns: ['_id', 'source'], sort: { source: -1 }, limit: 10, skip: 0 }, true],
  ['legacy where', { table: 'rides', where: 'source=1' }, true],
  ['count after a seq', { table: 'rides', count: true, afterSeq: 3 }, true],
  ['no table', { where: {} }, false],
  ['empty legacy where', { table: 'rides', where: '' }, false],
  ['empty columns', { table: 'rides', columns: [] }, false],
  ['repeated column', { table: 'rides', columns: ['a', 'a'] }, false],
  ['limit 0', { table: 'rides', limit: 0 }, false],
  ['sort by 2', { table: 'rides', sort: { a: 2 } }, false],
  ['negative afterSeq', { table: 'rides', afterSeq: -1 }, false],
  ['unknown field', { table: 'rides', filter: {} }, false],
];

describe('OpenAPI body schemas agree with the validators', () => {
  it.each(WRITES)('write, %s: %j → %s', async (_name, body, expected) => {
    expect(validatorAccepts(parseWriteBody, body)).toBe(expected);
    expect(await schemaAccepts('/write', body)).toBe(expected);
  });

  it.each(READS)('read, %s: %j → %s', async (_name, body, expected) => {
    expect(validatorAccepts(parseReadBody, body)).toBe(expected);
    expect(await schemaAccepts('/read', body)).toBe(expected);
  });
});
