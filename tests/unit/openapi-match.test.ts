/**
 * The OpenAPI schemas of the request bodies against the parsers that really
 * decide, on a table of bodies of every form: a body the schema allows must
 * not be refused for its shape, and the reverse (issue 13: `{"table": "A"}`
 * was allowed by the schema and refused by the server). Each body is declared
 * once (common/validation.ts, orchestrator/admin-bodies.ts): the document
 * shows the very schema object the parser's declaration holds. The schema is
 * compiled by fastify's own validator here; the service itself uses the
 * schemas for documentation only.
 */
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLEAR_BODY, READ_BODY, WRITE_BODY, WRITE_FORMS, parseClearBody, parseReadBody, parseWriteBody } from '../../common/validation.js';
import { EVENTS_QUERY, SWITCHOVER_BODY, scaleBody } from '../../orchestrator/admin-bodies.js';
import { ROUTE_DOCS } from '../../orchestrator/api-docs.js';
import { CREATE_INDEX_BODY, DROP_INDEX_BODY, INDEXES_QUERY, TABLES_QUERY, parseCreateIndexBody, parseDropIndexBody } from '../../common/index-bodies.js';

const app = Fastify({ ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, strict: false } } });
// Query strings are strings: fastify coerces them for a schema (its default), as the document's readers do.
const queries = Fastify({ ajv: { customOptions: { removeAdditional: false, useDefaults: false, strict: false } } });
const SCALE = scaleBody(1, 16);

beforeAll(async () => {
  app.post('/write', { schema: { body: ROUTE_DOCS['POST /api/v1/db/write']?.body as object } }, async () => ({ ok: true }));
  app.post('/read', { schema: { body: ROUTE_DOCS['POST /api/v1/db/read']?.body as object } }, async () => ({ ok: true }));
  app.post('/clear', { schema: { body: ROUTE_DOCS['POST /api/v1/db/clear']?.body as object } }, async () => ({ ok: true }));
  app.post('/scale', { schema: { body: SCALE.schema } }, async () => ({ ok: true }));
  app.post('/indexes', { schema: { body: ROUTE_DOCS['POST /api/v1/db/indexes']?.body as object } }, async () => ({ ok: true }));
  app.post('/dropindex', { schema: { body: ROUTE_DOCS['DELETE /api/v1/db/indexes']?.body as object } }, async () => ({ ok: true }));
  app.post('/switchover', { schema: { body: ROUTE_DOCS['POST /api/v1/switchover']?.body as object } }, async () => ({ ok: true }));
  queries.get('/events', { schema: { querystring: ROUTE_DOCS['GET /api/v1/events']?.querystring as object } }, async () => ({ ok: true }));
  await Promise.all([app.ready(), queries.ready()]);
});
afterAll(async () => Promise.all([app.close(), queries.close()]));

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
  ['upsert without where', { table: 'users', operation: 'upsert', data: { b: 1 } }, false],
  ['upsert without data', { table: 'users', operation: 'upsert', where: {} }, false],
  ['no operation, data only', { table: 'users', data: { a: 1 } }, false],
  ['legacy insert, empty', { table: 'users', insert: [], column: [] }, false],
  ['legacy delete with column', { table: 'users', delete: "a='b'", column: ['a'] }, false],
  ['in a database', { table: 'users', database: 'shop', operation: 'insert', data: { a: 1 } }, true],
  ['bad database name', { table: 'users', database: 'Shop', operation: 'insert', data: { a: 1 } }, false],
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
  ['in a database', { table: 'rides', database: 'shop' }, true],
  ['bad database name', { table: 'rides', database: 'a-b' }, false],
];

const CLEARS: ReadonlyArray<readonly [string, unknown, boolean]> = [
  ['empty object', {}, true],
  ['requestId', { requestId: 'clear-1' }, true],
  ['bad requestId', { requestId: 'a b' }, false],
  ['unknown field', { table: 'x' }, false],
  ['one database', { database: 'shop', requestId: 'clear-2' }, true],
  ['bad database name', { database: '1shop' }, false],
];

const SCALES: ReadonlyArray<readonly [string, unknown, boolean]> = [
  ['in bounds', { slaves: 3 }, true],
  ['lowest', { slaves: 1 }, true],
  ['highest', { slaves: 16 }, true],
  ['below', { slaves: 0 }, false],
  ['above', { slaves: 17 }, false],
  ['not an integer', { slaves: 2.5 }, false],
  ['a string', { slaves: '3' }, false],
  ['missing', {}, false],
  ['unknown field', { slaves: 2, now: true }, false],
];

const SWITCHOVERS: ReadonlyArray<readonly [string, unknown, boolean]> = [
  ['no target', {}, true],
  ['a target', { target: 'w1-abc' }, true],
  ['empty target', { target: '' }, false],
  ['long target', { target: 'x'.repeat(129) }, false],
  ['a number', { target: 12 }, false],
  ['unknown field', { to: 'w1' }, false],
];

const CREATE_INDEXES: ReadonlyArray<readonly [string, unknown, boolean]> = [
  ['one field', { table: 'users', keys: 'email' }, true],
  ['compound, unique, named', { table: 'users', keys: { city: 1, age: -1 }, unique: true, name: 'city_age' }, true],
  ['in a database, with a requestId', { table: 'users', database: 'shop', keys: 'sku', requestId: 'ix-1' }, true],
  ['dotted path', { table: 'users', keys: { 'address.city': 1 } }, true],
  ['no keys', { table: 'users' }, false],
  ['no table', { keys: 'email' }, false],
  ['empty keys', { table: 'users', keys: {} }, false],
  ['empty field name', { table: 'users', keys: '' }, false],
  ['direction 2', { table: 'users', keys: { a: 2 } }, false],
  ['keys an array', { table: 'users', keys: ['a'] }, false],
  ['nine fields', { table: 'users', keys: Object.fromEntries('abcdefghi'.split('').map((k) => [k, 1])) }, false],
  ['unique not a boolean', { table: 'users', keys: 'a', unique: 'yes' }, false],
  ['name with a space', { table: 'users', keys: 'a', name: 'a b' }, false],
  ['the _id index name', { table: 'users', keys: 'a', name: '_id_' }, false],
  ['bad table', { table: '1users', keys: 'a' }, false],
  ['bad database', { table: 'users', database: 'Shop', keys: 'a' }, false],
  ['unknown field', { table: 'users', keys: 'a', sparse: true }, false],
];

const DROP_INDEXES: ReadonlyArray<readonly [string, unknown, boolean]> = [
  ['by name', { table: 'users', name: 'email_1' }, true],
  ['in a database', { table: 'users', database: 'shop', name: 'email_1', requestId: 'rq-1' }, true],
  ['no name', { table: 'users' }, false],
  ['the _id index', { table: 'users', name: '_id_' }, false],
  ['unknown field', { table: 'users', name: 'x', force: true }, false],
];

const EVENT_QUERIES: ReadonlyArray<readonly [string, string, boolean]> = [
  ['none', '', true],
  ['after 0', '?after=0', true],
  ['after 15 digits', '?after=999999999999999', true],
  ['after 16 digits', '?after=1000000000000000', false],
  ['negative', '?after=-1', false],
  ['not a number', '?after=x', false],
];

describe('one declaration per body: the document shows the schema the parser is declared with', () => {
  it('uses the declared schemas', () => {
    expect(ROUTE_DOCS['POST /api/v1/db/write']?.body).toBe(WRITE_BODY.schema);
    expect(ROUTE_DOCS['POST /api/v1/db/read']?.body).toBe(READ_BODY.schema);
    expect(ROUTE_DOCS['POST /api/v1/workers/:id/read']?.body).toBe(READ_BODY.schema);
    expect(ROUTE_DOCS['POST /api/v1/db/clear']?.body).toBe(CLEAR_BODY.schema);
    expect(ROUTE_DOCS['POST /api/v1/switchover']?.body).toBe(SWITCHOVER_BODY.schema);
    expect(ROUTE_DOCS['POST /api/v1/db/indexes']?.body).toBe(CREATE_INDEX_BODY.schema);
    expect(ROUTE_DOCS['DELETE /api/v1/db/indexes']?.body).toBe(DROP_INDEX_BODY.schema);
    expect(ROUTE_DOCS['GET /api/v1/db/indexes']?.querystring).toBe(INDEXES_QUERY.schema);
    expect(ROUTE_DOCS['GET /api/v1/db/tables']?.querystring).toBe(TABLES_QUERY.schema);
    expect(ROUTE_DOCS['GET /api/v1/events']?.querystring).toBe(EVENTS_QUERY.schema);
  });

  it('documents exactly the fields the parsers allow, in their order', () => {
    for (const body of [WRITE_BODY, READ_BODY, CLEAR_BODY, CREATE_INDEX_BODY, DROP_INDEX_BODY, INDEXES_QUERY, TABLES_QUERY]) {
      expect(Object.keys(body.schema['properties'] as object)).toEqual([...body.allowed]);
    }
    expect([...WRITE_BODY.allowed]).toEqual(['table', 'database', 'requestId', 'operation', 'data', 'where', 'insert', 'column', 'delete']);
    expect([...READ_BODY.allowed]).toEqual(['table', 'database', 'where', 'columns', 'sort', 'limit', 'skip', 'count', 'afterSeq']);
    // One documented form per operation, from the table the parser checks.
    const titles = (WRITE_BODY.schema['oneOf'] as Array<{ title: string }>).map((f) => f.title);
    expect(titles).toEqual([...Object.keys(WRITE_FORMS), 'legacy insert', 'legacy delete']);
  });
});

describe('OpenAPI body schemas agree with the validators', () => {
  it.each(WRITES)('write, %s: %j → %s', async (_name, body, expected) => {
    expect(validatorAccepts(parseWriteBody, body)).toBe(expected);
    expect(await schemaAccepts('/write', body)).toBe(expected);
  });

  it.each(READS)('read, %s: %j → %s', async (_name, body, expected) => {
    expect(validatorAccepts(parseReadBody, body)).toBe(expected);
    expect(await schemaAccepts('/read', body)).toBe(expected);
  });

  it.each(CLEARS)('clear, %s: %j → %s', async (_name, body, expected) => {
    expect(validatorAccepts(parseClearBody, body)).toBe(expected);
    expect(await schemaAccepts('/clear', body)).toBe(expected);
  });

  it.each(SCALES)('scale (1 to 16), %s: %j → %s', async (_name, body, expected) => {
    expect(validatorAccepts((b) => SCALE.parse(b), body)).toBe(expected);
    expect(await schemaAccepts('/scale', body)).toBe(expected);
  });

  it.each(CREATE_INDEXES)('create index, %s: %j → %s', async (_name, body, expected) => {
    expect(validatorAccepts(parseCreateIndexBody, body)).toBe(expected);
    expect(await schemaAccepts('/indexes', body)).toBe(expected);
  });

  it.each(DROP_INDEXES)('drop index, %s: %j → %s', async (_name, body, expected) => {
    expect(validatorAccepts(parseDropIndexBody, body)).toBe(expected);
    expect(await schemaAccepts('/dropindex', body)).toBe(expected);
  });

  it.each(SWITCHOVERS)('switchover, %s: %j → %s', async (_name, body, expected) => {
    expect(validatorAccepts((b) => SWITCHOVER_BODY.parse(b), body)).toBe(expected);
    expect(await schemaAccepts('/switchover', body)).toBe(expected);
  });

  it.each(EVENT_QUERIES)('events query, %s: %s → %s', async (_name, query, expected) => {
    const parsed = Object.fromEntries(new URLSearchParams(query));
    expect(validatorAccepts((q) => EVENTS_QUERY.parse(q), parsed)).toBe(expected);
    expect((await queries.inject({ method: 'GET', url: `/events${query}` })).statusCode === 200).toBe(expected);
  });
});

describe('the document head', () => {
  it('carries the package version, a relative server, and no status that cannot happen (415: every content type is parsed as JSON)', async () => {
    const { openApiOptions } = await import('../../orchestrator/api-docs.js');
    const { packageVersion } = await import('../../common/package-version.js');
    const head = (openApiOptions() as { openapi: { info: { version: string }; servers: Array<{ url: string }> } }).openapi;
    expect(head.info.version).toBe(packageVersion(import.meta.url));
    expect(head.info.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(head.servers).toEqual([{ url: '/', description: 'this orchestrator' }]);
    expect(JSON.stringify(ROUTE_DOCS)).not.toContain('"415"');
  });
});
