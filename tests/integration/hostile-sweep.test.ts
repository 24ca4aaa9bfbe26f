/**
 * A seeded sweep of hostile requests over EVERY route of the HTTP API, through a
 * real socket, with API keys and an admin token set (the product promise "fails
 * clearly": bad input gets a 4xx with a stable error code and changes nothing).
 *
 * Every refusal must be a 4xx whose body is `{error: {code, message, …}}` with a
 * catalogue code of that status that the README or docs/API.md documents, and no stack trace or
 * path. Afterwards nothing changed: verify's checksums equal those taken before,
 * the next write takes exactly the seq after verify's checkpoint (no refused
 * request reached the master), the counts, databases, indexes, workers and the
 * slave target are the same. bad-input.test.ts pins the exact code of each data
 * refusal; this file covers breadth: every route, body framing, content types,
 * auth headers, query strings and methods. The content type of each request is
 * drawn from a seeded generator (DBAAS_SWEEP_SEED), as it must not matter.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE, isErrorCode } from '../../common/errors.js';
import { rng } from '../prng.js';
import { startTestCluster, type TestCluster } from './harness.js';

const SEED = Number(process.env.DBAAS_SWEEP_SEED ?? 20261201);
const ADMIN = 'sweep-admin-token';
const KEY = 'sweep-api-key';
const BODY_LIMIT = 1_048_576; // DBAAS_BODY_LIMIT_BYTES's default

type Method = 'GET' | 'POST' | 'DELETE' | 'PUT' | 'PATCH' | 'OPTIONS';
type Auth = 'admin' | 'key';
interface Route {
  method: Method;
  path: string;
  auth: Auth;
  /** A valid body of this route (absent: it takes none); each hostile body is built from it. */
  base?: Record<string, unknown>;
  /** Per field, values that make the body invalid. */
  bad?: Record<string, unknown[]>;
}

const LONG = 'x'.repeat(100_000);
/** Values no field of this API takes, whatever the field. */
const NEVER_VALID: unknown[] = [LONG, { $where: 'sleep(100)' }, [[[[[]]]]], { __proto__: null, constructor: { prototype: { polluted: 1 } } }];
const BAD_NAMES = ['', 'Bad Name', '../../etc/passwd', 'a.b', '$cmd', 'x\u0000y', 'n'.repeat(300), 7, null, ['users'], { $gt: '' }];

const ROUTES: Route[] = [
  {
    method: 'POST',
    path: '/api/v1/db/write',
    auth: 'key',
    base: { table: 'users', operation: 'insert', data: { username: 'eve' } },
    bad: {
      table: BAD_NAMES,
      operation: ['drop', '', 1, null, ['insert'], 'INSERT'],
      data: ['eve', 7, null, [], [1], { $set: { a: 1 } }, { 'a.b': 1 }, { _id: 7 }, { _id: {} }, { _id: ['x'] }, { _id: null }, { _id: '' }, { a: 'x\u0000' }],
      database: BAD_NAMES.slice(0, 8),
      requestId: ['', 'has space', 'r'.repeat(200), 12, {}],
    },
  },
  {
    method: 'POST',
    path: '/api/v1/db/write',
    auth: 'key',
    base: { table: 'users', operation: 'update', where: { username: 'ana' }, data: { $set: { age: 31 } } },
    bad: {
      where: [[], 'a>1', null, 7, { $where: '1' }, { $expr: { $gt: ['$age', 0] } }, { age: { $function: {} } }, { '': 1 }, { 'a.$': 1 }],
      data: [{}, [], { $rename: { a: 'b' } }, { $set: { _id: 'z' } }, { $inc: { age: '1' } }, { $set: 5 }, { $set: { 'a.__proto__.b': 1 } }],
    },
  },
  {
    method: 'POST',
    path: '/api/v1/db/read',
    auth: 'key',
    base: { table: 'users', where: { username: 'ana' } },
    bad: {
      table: BAD_NAMES,
      where: [[], 'a>1', 'x OR 1=1', 7, { $where: '1' }, { age: { $regex: '(' } }, { age: { $in: 1 } }, { _id: { $nor: [] } }],
      limit: [-1, 0, 1.5, '10', 1e308, 100_001],
      skip: [-1, '1', 1.5],
      sort: [{ age: 2 }, [['age', 1]], { $natural: 1 }, 'age'],
      columns: ['username', [], [1], ['$where']],
      afterSeq: [-1, '3', 1.5, Infinity],
      count: ['true', 1],
    },
  },
  { method: 'POST', path: '/api/v1/db/clear', auth: 'admin', base: {}, bad: { database: BAD_NAMES.slice(0, 8), requestId: ['', 'has space', 'c'.repeat(200), 3] } },
  { method: 'GET', path: '/api/v1/db/databases', auth: 'key' },
  { method: 'POST', path: '/api/v1/db/databases', auth: 'admin', base: { name: 'swept' }, bad: { name: [...BAD_NAMES, 'default', 'Upper', 'a-b', 'n'.repeat(31)] } },
  { method: 'DELETE', path: '/api/v1/db/databases/nope', auth: 'admin' },
  {
    method: 'POST',
    path: '/api/v1/db/indexes',
    auth: 'key',
    base: { table: 'users', keys: { city: 1 } },
    bad: { table: [...BAD_NAMES, '_dbaas_oplog'], keys: [{ age: 2 }, '_id', {}, [], 7, { $where: 1 }, { '': 1 }], name: ['_id_', 7, LONG], unique: ['yes', 1] },
  },
  { method: 'DELETE', path: '/api/v1/db/indexes', auth: 'key', base: { table: 'users', name: 'nope_1' }, bad: { table: BAD_NAMES, name: ['', 7, null, LONG, ['a']] } },
  { method: 'GET', path: '/api/v1/db/indexes?table=users', auth: 'key' },
  { method: 'GET', path: '/api/v1/db/tables', auth: 'key' },
  { method: 'POST', path: '/api/v1/backup', auth: 'admin', base: {}, bad: { oplogAfter: [-1, 1.5, '3', null, [], Infinity] } },
  { method: 'POST', path: '/api/v1/crash/master', auth: 'admin', base: {}, bad: { role: ['master'] } },
  { method: 'POST', path: '/api/v1/crash/slave', auth: 'admin', base: {}, bad: { pid: [1] } },
  { method: 'POST', path: '/api/v1/scale', auth: 'admin', base: { slaves: 1 }, bad: { slaves: [0, 99, -1, 1.5, '1', null, true, [1], Infinity] } },
  { method: 'GET', path: '/api/v1/scale', auth: 'key' },
  { method: 'POST', path: '/api/v1/switchover', auth: 'admin', base: {}, bad: { target: ['', 5, null, [], {}, 'n'.repeat(129), 'no-such-worker', 'w../../x'] } },
  { method: 'GET', path: '/api/v1/events', auth: 'key' },
  { method: 'GET', path: '/api/v1/verify', auth: 'admin' },
  { method: 'POST', path: '/api/v1/workers/no-such-worker/read', auth: 'admin', base: { table: 'users' }, bad: { table: BAD_NAMES, where: [[], { $where: '1' }] } },
  { method: 'GET', path: '/api/v1/workers/list', auth: 'key' },
  { method: 'GET', path: '/api/v1/worker/list', auth: 'key' },
  { method: 'GET', path: '/api/v1/workers', auth: 'key' },
  { method: 'GET', path: '/api/v1/orchestrators', auth: 'key' },
  { method: 'GET', path: '/api/v1/stats', auth: 'key' },
  { method: 'GET', path: '/metrics', auth: 'key' },
  { method: 'GET', path: '/docs/json', auth: 'key' },
];

/** Query strings the routes that read one must refuse (the path's own query, if any, is replaced). */
const QUERY_CASES: Array<[path: string, query: string]> = [
  ['/api/v1/events', 'after=-1'],
  ['/api/v1/events', 'after=x'],
  ['/api/v1/events', 'after=1&after=2'],
  ['/api/v1/events', 'after=1e400'],
  ['/api/v1/events', 'after=99999999999999999999'],
  ['/api/v1/events', 'after=%00'],
  ['/api/v1/db/indexes', ''],
  ['/api/v1/db/indexes', 'table=Bad%20Name'],
  ['/api/v1/db/indexes', 'table[]=users'],
  ['/api/v1/db/indexes', 'table=users&table=rides'],
  ['/api/v1/db/indexes', 'table=users&database=Nope'],
  ['/api/v1/db/indexes', 'table=users&database=nope'],
  ['/api/v1/db/indexes', `table=${'t'.repeat(5000)}`],
  ['/api/v1/db/indexes', 'table=%00'],
  ['/api/v1/db/indexes', 'table=%ff%fe'],
  ['/api/v1/db/indexes', '__proto__[table]=users'],
  ['/api/v1/db/tables', 'database=Bad'],
  ['/api/v1/db/tables', 'database=a&database=b'],
  ['/api/v1/db/tables', 'database=nope'],
  ['/api/v1/db/tables', 'database=%24cmd'],
];

/** Path parameters that name nothing or are not names. */
const PATH_CASES: Array<[Method, string]> = [
  ['DELETE', '/api/v1/db/databases/nope'],
  ['DELETE', '/api/v1/db/databases/default'],
  ['DELETE', '/api/v1/db/databases/Bad%20Name'],
  ['DELETE', '/api/v1/db/databases/%00'],
  ['DELETE', '/api/v1/db/databases/..%2F..%2Fetc'],
  ['DELETE', `/api/v1/db/databases/${'d'.repeat(2000)}`],
  ['DELETE', '/api/v1/db/databases/%ff'],
  ['POST', '/api/v1/workers/%00/read'],
  ['POST', `/api/v1/workers/${'w'.repeat(2000)}/read`],
  ['POST', '/api/v1/crash/both'],
  ['POST', '/api/v1/db/write/..%2Fclear'],
  ['GET', '/api/v1/db/%zz'],
];

/** [Authorization header or undefined, status, code]: what a wrong or missing credential gets on a guarded route. */
const AUTH_CASES: Array<[header: string | undefined, status: number, code: string]> = [
  [undefined, 401, 'DBAAS_AUTH_MISSING'],
  ['Bearer', 401, 'DBAAS_AUTH_MISSING'],
  ['Bearer a b', 401, 'DBAAS_AUTH_MISSING'],
  ['Token sweep-admin-token', 401, 'DBAAS_AUTH_MISSING'],
  ['Basic !!!', 401, 'DBAAS_AUTH_MISSING'],
  [`Basic ${Buffer.from('user').toString('base64')}`, 401, 'DBAAS_AUTH_MISSING'],
  ['Bearer wrong-token', 403, 'DBAAS_AUTH_INVALID'],
  [`Bearer ${'x'.repeat(8000)}`, 403, 'DBAAS_AUTH_INVALID'],
  [`Basic ${Buffer.from('user:wrong').toString('base64')}`, 403, 'DBAAS_AUTH_INVALID'],
  [`Bearer ${ADMIN}x`, 403, 'DBAAS_AUTH_INVALID'],
];

const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/json; charset=latin1',
  'application/octet-stream',
  undefined,
];

/**
 * A stack frame, a source location or a file path: none may reach a client. Linear
 * in the text (no nested quantifiers): it runs in the orchestrator's own process
 * on answers that echo 100,000-character inputs.
 */
const STACK_LIKE = /(^|\n)\s*at\s|\.(?:ts|js|mjs|cjs):\d|file:\/\/|node_modules|\/work\/|\/tmp\/|\/home\/|Error: /;

/** Where codes are documented: the README's catalogue and docs/API.md. */
const API_DOC = ['../../README.md', '../../docs/API.md'].map((f) => readFileSync(new URL(f, import.meta.url), 'utf8')).join('\n');

let c: TestCluster;
const random = rng(SEED);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;

/** What a hostile request got, for one report at the end rather than one failure per case. */
interface Seen {
  what: string;
  status: number;
  code: unknown;
  text: string;
}
const problems: string[] = [];
let sent = 0;
let lastSent = '';

async function send(method: Method, path: string, body: string | Buffer | undefined, opts: { auth?: Auth | string | null; contentType?: string | null } = {}): Promise<Seen & { headers: Headers }> {
  const headers: Record<string, string> = {};
  const auth = opts.auth === undefined ? 'admin' : opts.auth;
  if (auth === 'admin') headers['authorization'] = `Bearer ${ADMIN}`;
  else if (auth === 'key') headers['authorization'] = `Bearer ${KEY}`;
  else if (typeof auth === 'string') headers['authorization'] = auth;
  const contentType = opts.contentType === undefined ? pick(CONTENT_TYPES) : opts.contentType;
  if (contentType !== null && contentType !== undefined && body !== undefined) headers['content-type'] = contentType;
  sent += 1;
  let res: Response;
  try {
    res = await fetch(`${c.url}${path}`, { method, headers, body, signal: AbortSignal.timeout(20_000) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? String(err);
    return { what: `${method} ${path.slice(0, 80)} (${typeof body === 'string' ? body.slice(0, 80) : 'bytes'}) after ${lastSent}`, status: 0, code: cause, text: '', headers: new Headers() };
  } finally {
    lastSent = `${method} ${path.slice(0, 80)} ${typeof body === 'string' ? body.slice(0, 60) : ''}`;
  }
  const text = await res.text();
  let code: unknown;
  try {
    code = (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
  } catch {
    code = undefined;
  }
  return { what: `${method} ${path.slice(0, 80)}`, status: res.status, code, text, headers: res.headers };
}

/** Checks a refusal: a 4xx with a documented catalogue code of that status, the error shape, and nothing internal. */
function check(label: string, seen: Seen, want?: { status: number; code: string }): void {
  const where = `${label} [${seen.what}] → ${seen.status} ${String(seen.code)} ${seen.text.slice(0, 160)}`;
  if (want && (seen.status !== want.status || seen.code !== want.code)) {
    problems.push(`${where}: expected ${want.status} ${want.code}`);
    return;
  }
  if (seen.status < 400 || seen.status >= 500) return void problems.push(`${where}: not a 4xx`);
  if (typeof seen.code !== 'string' || !isErrorCode(seen.code)) return void problems.push(`${where}: no catalogue code`);
  if (ERROR_CATALOGUE[seen.code].status !== seen.status) problems.push(`${where}: ${seen.code} is ${ERROR_CATALOGUE[seen.code].status} in the catalogue`);
  if (!API_DOC.includes(seen.code)) problems.push(`${where}: ${seen.code} is not in README.md or docs/API.md`);
  const body = JSON.parse(seen.text) as { error: Record<string, unknown> };
  const extra = Object.keys(body).filter((k) => k !== 'error').concat(Object.keys(body.error).filter((k) => !['code', 'message', 'details', 'requestId'].includes(k)));
  if (extra.length > 0) problems.push(`${where}: unexpected fields ${extra.join(', ')}`);
  if (typeof body.error['message'] !== 'string' || (body.error['message'] as string).trim() === '') problems.push(`${where}: no message`);
  if (STACK_LIKE.test(seen.text)) problems.push(`${where}: looks like a stack trace or a path`);
}

/** `base` with `field` set to `value`, as JSON text; `1e400` (Infinity once parsed) is written as such. */
function withField(base: Record<string, unknown>, field: string, value: unknown): string {
  const text = JSON.stringify({ ...base, [field]: value === Infinity ? '\u0000inf' : value });
  return text.replace('"\\u0000inf"', '1e400');
}

/** Hostile bodies every route with a body must refuse, built from its valid one. */
function framingBodies(base: Record<string, unknown>): Array<[string, string | Buffer, { status?: number; code?: string }?]> {
  const json = JSON.stringify(base);
  const inner = json.slice(1, -1);
  const comma = inner === '' ? '' : ',';
  return [
    ['not JSON', 'not json', { code: 'DBAAS_REQ_INVALID_JSON' }],
    ['truncated', json.slice(0, -1), { code: 'DBAAS_REQ_INVALID_JSON' }],
    ['trailing garbage', `${json} x`, { code: 'DBAAS_REQ_INVALID_JSON' }],
    ['NaN', `{${inner}${comma}"n":NaN}`, { code: 'DBAAS_REQ_INVALID_JSON' }],
    ['single quotes', `{${inner}${comma}'n':1}`, { code: 'DBAAS_REQ_INVALID_JSON' }],
    ['invalid UTF-8', Buffer.concat([Buffer.from(`{${inner}${comma}"n":"`), Buffer.from([0xff, 0xfe, 0xc0, 0xaf]), Buffer.from('"}')]), { code: 'DBAAS_REQ_INVALID_JSON' }],
    ['an overlong UTF-8 "/"', Buffer.concat([Buffer.from(`{${inner}${comma}"`), Buffer.from([0xc0, 0xaf]), Buffer.from('":1}')]), { code: 'DBAAS_REQ_INVALID_JSON' }],
    ['UTF-16', Buffer.from(json, 'utf16le')],
    ['over the body limit', `{${inner}${comma}"pad":"${'p'.repeat(BODY_LIMIT + 10)}"}`, { status: 413, code: 'DBAAS_REQ_BODY_TOO_LARGE' }],
    ['an array of it', `[${json}]`],
    ['a string', JSON.stringify(json)],
    ['a number', '42'],
    ['null', 'null'],
    ['true', 'true'],
    ['100,000 arrays deep', '['.repeat(100_000) + ']'.repeat(100_000)],
    ['20,000 objects deep', '{"a":'.repeat(20_000) + '1' + '}'.repeat(20_000)],
    ['a field 20,000 objects deep', `{${inner}${comma}"zz":${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}}`],
    ['an unknown field', `{${inner}${comma}"unknownField":1}`],
    ['a __proto__ key', `{${inner}${comma}"__proto__":{"polluted":true}}`],
    ['a constructor key', `{${inner}${comma}"constructor":{"prototype":{"polluted":true}}}`],
    ['a $-operator key', `{${inner}${comma}"$where":"sleep(100)"}`],
    ['a dotted key', `{${inner}${comma}"a.b":1}`],
    ['a 100,000-char key', `{${inner}${comma}"${'k'.repeat(100_000)}":1}`],
  ];
}

/** Every table of the seed, with what a count reads. */
const SEEDED: Record<string, number> = { users: 3, rides: 2, 'swept_db.items': 2 };
let before: { seq: number; tables: Record<string, unknown>; pids: number[]; databases: unknown; indexes: unknown; target: number };

async function snapshot(): Promise<typeof before> {
  const verify = await send('GET', '/api/v1/verify', undefined, { contentType: null });
  expect(verify.status, verify.text).toBe(200);
  const report = JSON.parse(verify.text) as { result: string; seq: number; tables: Record<string, unknown> };
  expect(report.result, verify.text).toBe('equal');
  const json = async (path: string): Promise<unknown> => JSON.parse((await send('GET', path, undefined, { auth: 'key', contentType: null })).text);
  return {
    seq: report.seq,
    tables: report.tables,
    pids: (await json('/api/v1/workers/list')) as number[],
    databases: await json('/api/v1/db/databases'),
    indexes: await json('/api/v1/db/indexes?table=users'),
    target: ((await json('/api/v1/scale')) as { targetSlaves: number }).targetSlaves,
  };
}

beforeAll(async () => {
  c = await startTestCluster({ DBAAS_ADMIN_TOKEN: ADMIN, DBAAS_API_KEYS: KEY }, { listen: true });
  const post = async (path: string, body: unknown, auth: Auth = 'key'): Promise<void> => {
    const res = await send('POST', path, JSON.stringify(body), { auth, contentType: 'application/json' });
    expect(res.status, `${path}: ${res.text}`).toBeLessThan(300);
  };
  await post('/api/v1/db/databases', { name: 'swept_db' }, 'admin');
  await post('/api/v1/db/write', { table: 'users', operation: 'insert', data: [{ _id: 'u1', username: 'ana', age: 30 }, { _id: 'u2', username: 'bo' }, { _id: 'u3', username: 'cy' }] });
  await post('/api/v1/db/write', { table: 'rides', operation: 'insert', data: [{ _id: 'r1', source: 1 }, { _id: 'r2', source: 2 }] });
  await post('/api/v1/db/write', { database: 'swept_db', table: 'items', operation: 'insert', data: [{ _id: 'i1' }, { _id: 'i2' }] });
  await post('/api/v1/db/indexes', { table: 'users', keys: { age: 1 } });
  before = await snapshot();
});

afterAll(async () => {
  await c?.close();
});

describe(`a hostile-input sweep over every route (seed ${SEED})`, () => {
  it('refuses every hostile request with a documented 4xx and no internals', async () => {
    const started = Date.now();
    for (const route of ROUTES) {
      const label = `${route.method} ${route.path}`;
      // Credentials first: a wrong or missing one is refused before the body is looked at, even a valid body.
      for (const [header, status, code] of AUTH_CASES) {
        const body = route.base === undefined ? undefined : JSON.stringify(route.base);
        check(`auth ${header?.slice(0, 30) ?? 'none'}`, await send(route.method, route.path, body, { auth: header ?? null }), { status, code });
      }
      if (route.auth === 'admin') check('an API key on an admin route', await send(route.method, route.path, route.base && JSON.stringify(route.base), { auth: 'key' }), { status: 403, code: 'DBAAS_AUTH_INVALID' });
      // Methods the path does not take: 405 naming those it does.
      const path = route.path.split('?')[0] as string;
      for (const method of ['PUT', 'PATCH', route.method === 'GET' ? 'POST' : 'GET'] as Method[]) {
        if (ROUTES.some((r) => r.method === method && r.path.split('?')[0] === path)) continue;
        const seen = await send(method, path, method === 'GET' ? undefined : '{}', { auth: route.auth });
        check(`method ${method}`, seen, { status: 405, code: 'DBAAS_ROUTE_METHOD_NOT_ALLOWED' });
        if (!seen.headers.get('allow')?.includes(route.method)) problems.push(`${label}: a 405 to ${method} without Allow: ${route.method}`);
      }
      if (route.base === undefined) continue;
      for (const [what, body, want] of framingBodies(route.base)) {
        const seen = await send(route.method, route.path, body, { auth: route.auth });
        check(`${label}: ${what}`, seen, want?.code ? { status: want.status ?? 400, code: want.code } : undefined);
      }
      for (const [field, values] of Object.entries(route.bad ?? {})) {
        for (const value of [...values, pick(NEVER_VALID)]) {
          check(`${label}: ${field}=${JSON.stringify(value)?.slice(0, 40)}`, await send(route.method, route.path, withField(route.base, field, value), { auth: route.auth }));
        }
      }
    }
    for (const [path, query] of QUERY_CASES) check(`query ${query.slice(0, 40)}`, await send('GET', `${path}?${query}`, undefined, { auth: 'key' }));
    for (const [method, path] of PATH_CASES) check(`path ${path.slice(0, 60)}`, await send(method, path, method === 'GET' ? undefined : '{}', { auth: 'admin' }));
    // A DELETE of an index by query string (clients that send no DELETE body) with a bad query.
    for (const query of ['table=users', 'name=x', 'table=Bad&name=x', 'table=users&name=x&extra=1']) check(`DELETE index ?${query}`, await send('DELETE', `/api/v1/db/indexes?${query}`, undefined, { auth: 'key' }));
    expect(problems, problems.join('\n')).toEqual([]);
    expect(sent).toBeGreaterThan(500);
    // It is a sweep, not a soak: bounded, and quick (8.8 s at load 10; the bound leaves room for a loaded CI).
    expect(Date.now() - started).toBeLessThan(90_000);
  }, 120_000);

  it('changed nothing: checksums, the next seq, counts, databases, indexes, workers and the slave target are as before', async () => {
    const after = await snapshot();
    expect(after.tables).toEqual(before.tables);
    expect(after.seq).toBe(before.seq + 1); // only the second verify's own checkpoint
    expect({ pids: after.pids, databases: after.databases, indexes: after.indexes, target: after.target }).toEqual({
      pids: before.pids,
      databases: before.databases,
      indexes: before.indexes,
      target: before.target,
    });
    for (const [name, count] of Object.entries(SEEDED)) {
      const [database, table] = name.includes('.') ? (name.split('.') as [string, string]) : [undefined, name];
      const res = await send('POST', '/api/v1/db/read', JSON.stringify({ table, ...(database ? { database } : {}), count: true, afterSeq: after.seq }), { auth: 'key', contentType: 'application/json' });
      expect(res.text, name).toBe(JSON.stringify({ count }));
    }
    const next = await send('POST', '/api/v1/db/write', JSON.stringify({ table: 'rides', operation: 'insert', data: { _id: 'r3' } }), { auth: 'key', contentType: 'application/json' });
    expect(next.status, next.text).toBe(200);
    expect(JSON.parse(next.text).seq).toBe(after.seq + 1);
  });
});
