/**
 * Databases and scoped keys, the pure parts (issue 20): qualified table names
 * through the body parsers and the wire, the drop op in apply plans, the
 * DBAAS_API_KEYS grammar, and the scope guard.
 */
import { createHash } from 'node:crypto';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { parseApiKey, scopeAllows, type ApiKey } from '../../common/api-keys.js';
import { loadOrchestratorConfig } from '../../common/config.js';
import { qualifiedTable, splitTable } from '../../common/databases.js';
import { DbaasError } from '../../common/errors.js';
import { decodeSync, encode, WIRE_VERSION } from '../../common/messages.js';
import { parseClearBody, parseReadBody, parseWriteBody, validateReadCommand, validateWriteCommand } from '../../common/validation.js';
import { checkScope, makeGuards } from '../../orchestrator/auth.js';
import { planApply } from '../../worker/apply-plan.js';
import { expectCode } from './expect-code.js';

describe('qualified table names', () => {
  it('are the bare name in default and <database>.<table> elsewhere, and split back', () => {
    expect(qualifiedTable(undefined, 'rides')).toBe('rides');
    expect(qualifiedTable('default', 'rides')).toBe('rides');
    expect(qualifiedTable('shop', 'rides')).toBe('shop.rides');
    expect(splitTable('shop.rides')).toEqual({ database: 'shop', table: 'rides' });
    expect(splitTable('rides')).toEqual({ database: 'default', table: 'rides' });
  });

  it('come out of the body parsers, and old bodies are unchanged', () => {
    expect(parseWriteBody({ table: 'users', operation: 'insert', data: { a: 1 } }).command).toEqual({ kind: 'insert', table: 'users', docs: [{ a: 1 }] });
    expect(parseWriteBody({ table: 'users', database: 'default', operation: 'delete', where: {} }).command).toEqual({ kind: 'delete', table: 'users', where: {} });
    expect(parseWriteBody({ table: 'users', database: 'shop', insert: ['ana'], column: ['username'] }).command).toEqual({
      kind: 'insert',
      table: 'shop.users',
      docs: [{ username: 'ana' }],
    });
    expect(parseReadBody({ table: 'users', database: 'shop', where: "username='ana'" }).table).toBe('shop.users');
    expect(parseClearBody({ database: 'shop' }).command).toEqual({ kind: 'clear', database: 'shop' });
    expect(parseClearBody({}).command).toEqual({ kind: 'clear' });
  });

  it('refuse bad database names with DBAAS_REQ_BAD_DATABASE, and a dotted table', () => {
    for (const database of ['Shop', 'a-b', '', 'x'.repeat(31), 1, 'a.b']) {
      expectCode(() => parseWriteBody({ table: 'users', database, operation: 'insert', data: {} }), 'DBAAS_REQ_BAD_DATABASE');
      expectCode(() => parseReadBody({ table: 'users', database }), 'DBAAS_REQ_BAD_DATABASE');
    }
    expectCode(() => parseReadBody({ table: 'shop.users' }), 'DBAAS_REQ_BAD_TABLE');
  });

  it('cross the wire: a worker accepts the qualified commands the orchestrator sends, and nothing else', () => {
    const read = parseReadBody({ table: 'users', database: 'shop', where: { a: 1 }, limit: 3 });
    expect(validateReadCommand(JSON.parse(JSON.stringify(read)))).toEqual(read);
    const write = parseWriteBody({ table: 'users', database: 'shop', operation: 'update', where: { a: 1 }, data: { b: 2 } }).command;
    expect(validateWriteCommand(JSON.parse(JSON.stringify(write)))).toEqual(write);
    expect(validateWriteCommand({ kind: 'clear', database: 'shop' })).toEqual({ kind: 'clear', database: 'shop' });
    expectCode(() => validateWriteCommand({ kind: 'clear', database: 'Shop' }), 'DBAAS_REQ_BAD_DATABASE');
    expectCode(() => validateReadCommand({ table: 'Shop.users', where: {} }), 'DBAAS_REQ_BAD_TABLE');
    expectCode(() => validateReadCommand({ table: 'users', database: 'shop', where: {} }), 'DBAAS_REQ_UNKNOWN_FIELD');
    const entry = { v: WIRE_VERSION, seq: 1, term: 1, requestId: 'r', ts: 1, result: {}, ops: [{ t: 'put', table: 'shop.users', doc: { _id: 'a' } }, { t: 'clear', database: 'shop' }] };
    expect(decodeSync(encode(entry))?.ops).toEqual(entry.ops);
    expect(decodeSync(encode({ ...entry, ops: [{ t: 'clear', database: 'Bad' }] }))).toBeUndefined();
    expect(decodeSync(encode({ ...entry, ops: [{ t: 'del', table: 'a.b.c', id: 'x' }] }))).toBeUndefined();
  });
});

describe('a clear of one database in an apply plan', () => {
  it('writes the changes before it first, empties only that database, and keeps later changes', () => {
    const doc = (id: string) => ({ _id: id });
    const steps = planApply([
      { t: 'put', table: 'shop.a', doc: doc('1'), fresh: true },
      { t: 'put', table: 'b', doc: doc('2') },
      { t: 'clear', database: 'shop' },
      { t: 'put', table: 'shop.a', doc: doc('3') },
    ]);
    expect(steps.map((s) => (s.kind === 'changes' ? s.changes.map((c) => `${c.table}/${c.id}`) : s))).toEqual([
      ['shop.a/1', 'b/2'],
      { kind: 'clear', database: 'shop' },
      ['shop.a/3'],
    ]);
  });
});

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

describe('DBAAS_API_KEYS entries', () => {
  it('parse plain, scoped and hashed forms', () => {
    const plain = parseApiKey('plain-key-0001') as ApiKey;
    expect(plain.scope).toEqual({ databases: '*', access: 'readwrite' });
    expect(plain.hash.toString('hex')).toBe(sha('plain-key-0001'));
    expect((parseApiKey('scoped-key-01:users+rides:read') as ApiKey).scope).toEqual({ databases: ['users', 'rides'], access: 'read' });
    const hashed = parseApiKey(`sha256:${sha('secret-0001')}:users:readwrite`) as ApiKey;
    expect([hashed.hash.toString('hex'), hashed.scope]).toEqual([sha('secret-0001'), { databases: ['users'], access: 'readwrite' }]);
    expect((parseApiKey('any-key-0001:*:read') as ApiKey).scope).toEqual({ databases: '*', access: 'read' });
  });

  it('refuse bad names, short secrets and bad hashes at start, naming the key by position only', () => {
    expect(parseApiKey('good-key-0001:Users:read')).toMatch(/must match/);
    expect(parseApiKey('short:users:read')).toMatch(/shorter than 8/);
    expect(parseApiKey('sha256:abc')).toMatch(/64 lower-case hex/);
    // The orchestrator refuses to start (makeGuards runs as its app is built).
    let message = '';
    try {
      makeGuards(loadOrchestratorConfig({ DBAAS_API_KEYS: 'good-key-0001,secret-key-0002:Bad:read' }));
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/DBAAS_API_KEYS: key 2: database name/);
    expect(message).not.toMatch(/secret-key-0002/);
  });

  it('allow a database and access only within scope', () => {
    const ro = { databases: ['users'], access: 'read' } as const;
    expect(scopeAllows(ro, 'users', 'read')).toBe(true);
    expect(scopeAllows(ro, 'users', 'readwrite')).toBe(false);
    expect(scopeAllows(ro, 'rides', 'read')).toBe(false);
    expect(scopeAllows({ databases: '*', access: 'readwrite' }, 'anything', 'readwrite')).toBe(true);
  });
});

describe('the scope guard', () => {
  it('lets a key reach only its databases; the admin token and unscoped keys reach all', async () => {
    const app = Fastify();
    const { requireApiKey } = makeGuards({ adminToken: 'admin-token-0001', apiKeys: ['full-key-0001', 'users-key-0001:users:read'] });
    app.setErrorHandler((err, _req, reply) => reply.code((err as DbaasError).status ?? 500).send({ code: (err as DbaasError).code }));
    app.get<{ Querystring: { db: string; access: 'read' | 'readwrite' } }>('/x', { onRequest: requireApiKey }, async (request) => {
      checkScope(request, request.query.db, request.query.access);
      return { ok: true };
    });
    const ask = async (token: string, db: string, access: string): Promise<unknown> => {
      const res = await app.inject({ url: `/x?db=${db}&access=${access}`, headers: { authorization: `Bearer ${token}` } });
      return res.statusCode === 200 ? 200 : `${res.statusCode} ${res.json<{ code: string }>().code}`;
    };
    expect(await ask('users-key-0001', 'users', 'read')).toBe(200);
    expect(await ask('users-key-0001', 'users', 'readwrite')).toBe('403 DBAAS_AUTH_SCOPE_DENIED');
    expect(await ask('users-key-0001', 'rides', 'read')).toBe('403 DBAAS_AUTH_SCOPE_DENIED');
    expect(await ask('full-key-0001', 'rides', 'readwrite')).toBe(200);
    expect(await ask('admin-token-0001', 'rides', 'readwrite')).toBe(200);
    expect(await ask('wrong-key-0001', 'users', 'read')).toBe('403 DBAAS_AUTH_INVALID');
    await app.close();
  });
});
