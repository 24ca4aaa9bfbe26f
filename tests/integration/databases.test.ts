/**
 * Databases and scoped keys end to end (issue 20): each database is its own
 * table space on every replica; writes to two databases under a master crash
 * lose, undo or double nothing and leave every replica equal per database
 * (a new slave copying all of them); verify's checksum covers every database;
 * a drop empties one database everywhere; and an API key reaches only its
 * databases, read-only or read-write, on every data route.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VerifyReport } from '../../orchestrator/verify.js';
import { eventually, startTestCluster, type TestCluster } from './harness.js';
import { dumpAllReplicas } from './replicas.js';

const ADMIN = 'databases-admin-token';
const FULL = 'full-key-00000001';
const USERS_RW = 'users-key-00000002';
const RIDES_RW = 'rides-key-00000003';
const USERS_RO = 'users-ro-key-00000004';
const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

let c: TestCluster;

type Res = { status: number; body: any };

async function call(method: 'GET' | 'POST' | 'DELETE', url: string, token: string | undefined, body?: unknown): Promise<Res> {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await c.orch.app.inject({ method, url, headers, ...(body === undefined ? {} : { payload: JSON.stringify(body) }) });
  let parsed: unknown;
  try {
    parsed = res.json();
  } catch {
    parsed = res.body;
  }
  return { status: res.statusCode, body: parsed };
}

/** A write with a requestId, retried with the same id on 503/504 until it is answered. */
async function ackWrite(body: Record<string, unknown>, deadlineMs = 60_000): Promise<Res> {
  const started = Date.now();
  for (;;) {
    const r = await call('POST', '/api/v1/db/write', FULL, body);
    if ((r.status !== 503 && r.status !== 504) || Date.now() - started > deadlineMs) return r;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

beforeAll(async () => {
  c = await startTestCluster({
    DBAAS_INITIAL_SLAVES: '2',
    DBAAS_VERIFY_INTERVAL_MS: '0',
    DBAAS_ADMIN_TOKEN: ADMIN,
    // A key in clear, scoped keys, and one held only as its hash.
    DBAAS_API_KEYS: [FULL, `${USERS_RW}:users:readwrite`, `sha256:${sha(RIDES_RW)}:rides:readwrite`, `${USERS_RO}:users:read`].join(','),
  });
});

afterAll(async () => {
  await c?.close();
});

describe('databases', () => {
  it('are created and listed by the admin; default always exists and cannot be created or dropped', async () => {
    expect((await call('POST', '/api/v1/db/databases', FULL, { name: 'users' })).status).toBe(403);
    for (const name of ['users', 'rides']) {
      const r = await call('POST', '/api/v1/db/databases', ADMIN, { name });
      expect(r.status).toBe(201);
      expect(r.body.name).toBe(name);
    }
    const again = await call('POST', '/api/v1/db/databases', ADMIN, { name: 'users' });
    expect([again.status, again.body.error.code]).toEqual([409, 'DBAAS_DATABASE_EXISTS']);
    const def = await call('POST', '/api/v1/db/databases', ADMIN, { name: 'default' });
    expect([def.status, def.body.error.code]).toEqual([409, 'DBAAS_DATABASE_PROTECTED']);
    const bad = await call('POST', '/api/v1/db/databases', ADMIN, { name: 'Bad-Name' });
    expect([bad.status, bad.body.error.code]).toEqual([400, 'DBAAS_REQ_BAD_DATABASE']);
    const list = await call('GET', '/api/v1/db/databases', FULL);
    expect(list.body.databases.map((d: { name: string }) => d.name)).toEqual(['default', 'rides', 'users']);
  });

  it('keep the same table name apart, and refuse a database that does not exist', async () => {
    expect((await ackWrite({ table: 'people', operation: 'insert', data: { _id: 'u1', who: 'in users' }, database: 'users' })).status).toBe(200);
    expect((await ackWrite({ table: 'people', operation: 'insert', data: { _id: 'u1', who: 'in rides' }, database: 'rides' })).status).toBe(200);
    // The course API without `database` is the default database, where nothing named people exists.
    const w = await ackWrite({ table: 'people', operation: 'insert', data: { _id: 'u1', who: 'in default' } });
    expect(w.status).toBe(200);
    for (const [database, who] of [['users', 'in users'], ['rides', 'in rides'], [undefined, 'in default']] as const) {
      const r = await call('POST', '/api/v1/db/read', FULL, { table: 'people', ...(database ? { database } : {}), afterSeq: w.body.seq });
      expect(r.status).toBe(200);
      expect(r.body).toEqual([{ _id: 'u1', who }]);
    }
    const missing = await call('POST', '/api/v1/db/write', FULL, { table: 'people', operation: 'insert', data: {}, database: 'nosuch' });
    expect([missing.status, missing.body.error.code]).toEqual([404, 'DBAAS_DATABASE_NOT_FOUND']);
    const missingRead = await call('POST', '/api/v1/db/read', FULL, { table: 'people', database: 'nosuch' });
    expect([missingRead.status, missingRead.body.error.code]).toEqual([404, 'DBAAS_DATABASE_NOT_FOUND']);
  });

  it('lose nothing under a master crash: every replica equal per database, verify covering both', async () => {
    const acked = { users: new Set<string>(), rides: new Set<string>() };
    let stop = false;
    const writer = async (database: 'users' | 'rides', n: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const id = `${database}-${n}-${i}`;
        // An upsert by _id with $inc: a write applied twice would show as n: 2.
        const r = await ackWrite({ table: 'events', database, operation: 'upsert', where: { _id: id }, data: { $inc: { n: 1 } }, requestId: `rq-${id}` });
        expect(r.status).toBe(200);
        acked[database].add(id);
      }
    };
    const writers = [writer('users', 1), writer('users', 2), writer('rides', 1), writer('rides', 2)];
    await eventually(() => acked.users.size + acked.rides.size >= 40, 30_000, 'writes before the crash');
    const crash = await call('POST', '/api/v1/crash/master', ADMIN);
    expect(crash.status).toBe(200);
    await eventually(() => c.orch.audit.list().some((e) => e.kind === 'promotion'), 30_000, 'a promotion');
    const before = acked.users.size + acked.rides.size;
    await eventually(() => acked.users.size + acked.rides.size >= before + 40, 30_000, 'writes after the promotion');
    stop = true;
    await Promise.all(writers);
    // The replacement slave copied every database from the new master.
    await eventually(async () => (await call('GET', '/api/v1/workers', FULL)).body.filter((w: { state: string }) => w.state === 'slave').length >= 2, 60_000, 'two serving slaves');

    const dumps = await dumpAllReplicas(c.orch, 60_000, 3);
    expect(dumps.size).toBe(3);
    for (const [id, dump] of dumps) {
      for (const database of ['users', 'rides'] as const) {
        const docs = (dump[`${database}.events`] ?? []) as unknown as Array<{ _id: string; n: number }>;
        const ids = new Set(docs.map((d) => d._id));
        for (const a of acked[database]) expect(ids.has(a), `${id}: ${database} lost ${a}`).toBe(true);
        expect(docs.filter((d) => d.n !== 1), `${id}: ${database} applied a write twice`).toEqual([]);
        // Nothing of one database in the other.
        expect(docs.every((d) => d._id.startsWith(`${database}-`))).toBe(true);
      }
    }
    const [first, ...rest] = [...dumps.values()];
    for (const other of rest) expect(other).toEqual(first);

    const verify = await call('GET', '/api/v1/verify', ADMIN);
    expect(verify.status).toBe(200);
    const report = verify.body as VerifyReport;
    expect(report.result).toBe('equal');
    expect(report.tables['users.events']?.count).toBe(acked.users.size);
    expect(report.tables['rides.events']?.count).toBe(acked.rides.size);
  });

  it('scope keys to their databases and access, on every data route', async () => {
    const denied = (r: Res): unknown[] => [r.status, r.body?.error?.code];
    const write = (token: string, database?: string): Promise<Res> =>
      call('POST', '/api/v1/db/write', token, { table: 'scoped', operation: 'insert', data: { a: 1 }, ...(database ? { database } : {}) });
    const read = (token: string, database?: string): Promise<Res> => call('POST', '/api/v1/db/read', token, { table: 'scoped', ...(database ? { database } : {}) });
    // Within scope.
    expect((await write(USERS_RW, 'users')).status).toBe(200);
    expect((await read(USERS_RW, 'users')).status).toBe(200);
    expect((await write(RIDES_RW, 'rides')).status).toBe(200);
    expect((await read(USERS_RO, 'users')).status).toBe(200);
    // Another service's database, the default database, or a write with a read-only key: 403, whatever exists.
    for (const r of [
      await write(USERS_RW, 'rides'),
      await read(USERS_RW, 'rides'),
      await write(USERS_RW),
      await read(USERS_RW),
      await write(RIDES_RW, 'users'),
      await read(RIDES_RW, 'users'),
      await write(USERS_RO, 'users'),
      await write(USERS_RW, 'nosuch'),
      await call('POST', '/api/v1/db/write', USERS_RO, { table: 'scoped', operation: 'delete', where: {}, database: 'users' }),
    ]) {
      expect(denied(r)).toEqual([403, 'DBAAS_AUTH_SCOPE_DENIED']);
    }
    // Nothing a refused write asked for happened.
    const count = await call('POST', '/api/v1/db/read', FULL, { table: 'scoped', database: 'users', count: true });
    expect(count.body).toEqual({ count: 1 });
    // The database list shows a scoped key only its own.
    expect((await call('GET', '/api/v1/db/databases', USERS_RO)).body.databases.map((d: { name: string }) => d.name)).toEqual(['users']);
    // Admin routes stay the admin token's: clear, create, drop.
    expect((await call('POST', '/api/v1/db/clear', USERS_RW, { database: 'users' })).status).toBe(403);
    expect((await call('DELETE', '/api/v1/db/databases/users', USERS_RW)).status).toBe(403);
    // A wrong key is still 403 DBAAS_AUTH_INVALID, no key 401.
    expect(denied(await read('not-a-key-at-all', 'users'))).toEqual([403, 'DBAAS_AUTH_INVALID']);
    expect((await read('', 'users')).status).toBe(401);
  });

  it('drop empties a database on every replica and refuses it afterwards; the others keep their data', async () => {
    const r = await call('DELETE', '/api/v1/db/databases/rides', ADMIN);
    expect(r.status).toBe(200);
    expect(r.body.dropped).toBe('rides');
    const after = await call('POST', '/api/v1/db/read', FULL, { table: 'events', database: 'rides' });
    expect([after.status, after.body.error.code]).toEqual([404, 'DBAAS_DATABASE_NOT_FOUND']);
    const dumps = await dumpAllReplicas(c.orch, 30_000);
    for (const dump of dumps.values()) {
      expect(Object.keys(dump).filter((t) => t.startsWith('rides.'))).toEqual([]);
      expect(dump['users.events']?.length).toBeGreaterThan(0);
    }
    // Created again, it is empty.
    expect((await call('POST', '/api/v1/db/databases', ADMIN, { name: 'rides' })).status).toBe(201);
    expect((await call('POST', '/api/v1/db/read', FULL, { table: 'events', database: 'rides', count: true })).body).toEqual({ count: 0 });
    expect((await call('DELETE', '/api/v1/db/databases/nosuch', ADMIN)).status).toBe(404);
  });
});
