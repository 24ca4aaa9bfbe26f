import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCluster, type TestCluster } from './harness.js';

const ADMIN = 'admin-token-0123456789';
const KEY = 'service-key-abcdefghij';
let c: TestCluster;
const logs: string[] = [];

beforeAll(async () => {
  c = await startTestCluster(
    { DBAAS_ADMIN_TOKEN: ADMIN, DBAAS_API_KEYS: `${KEY},other-key-0000000000`, DBAAS_LOG_LEVEL: 'debug' },
    { logSink: (line) => logs.push(line) },
  );
});

afterAll(async () => {
  await c?.close();
});

async function call(method: 'GET' | 'POST', url: string, token?: string, body?: unknown) {
  const res = await c.orch.app.inject({
    method,
    url,
    headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
  });
  return { status: res.statusCode, body: res.json() as any };
}

const write = { table: 'sec', operation: 'insert', data: { v: 1 } };
const read = { table: 'sec', where: {} };

describe('authentication', () => {
  it.each([
    ['POST', '/api/v1/db/write', write],
    ['POST', '/api/v1/db/read', read],
    ['GET', '/api/v1/workers/list', undefined],
    ['GET', '/api/v1/workers', undefined],
    ['GET', '/api/v1/events', undefined],
  ] as const)('%s %s needs an API key: 401 without, 403 wrong, 200 with a key or the admin token', async (method, url, body) => {
    const none = await call(method, url, undefined, body);
    expect(none.status).toBe(401);
    expect(none.body.error.code).toBe('DBAAS_AUTH_MISSING');
    const wrong = await call(method, url, 'not-a-valid-key-at-all', body);
    expect(wrong.status).toBe(403);
    expect(wrong.body.error.code).toBe('DBAAS_AUTH_INVALID');
    expect((await call(method, url, KEY, body)).status).toBe(200);
    expect((await call(method, url, ADMIN, body)).status).toBe(200);
  });

  it.each([
    ['/api/v1/db/clear', undefined],
    ['/api/v1/scale', { slaves: 1 }],
    ['/api/v1/crash/slave', undefined],
  ] as const)('admin endpoint %s refuses API keys (403) and missing tokens (401)', async (url, body) => {
    expect((await call('POST', url, undefined, body)).status).toBe(401);
    const withKey = await call('POST', url, KEY, body);
    expect(withKey.status).toBe(403);
    expect(withKey.body.error.code).toBe('DBAAS_AUTH_INVALID');
  });

  it('lets the admin clear and rescale', async () => {
    expect((await call('POST', '/api/v1/db/clear', ADMIN)).status).toBe(200);
    expect((await call('POST', '/api/v1/scale', ADMIN, { slaves: 1 })).status).toBe(200);
  });

  it('leaves health endpoints open for load balancers', async () => {
    expect((await call('GET', '/healthz')).status).toBe(200);
    expect((await call('GET', '/readyz')).status).toBe(200);
  });

  it('rejected requests change nothing', async () => {
    // Both counts read at a seq of our own: a read without one may come from a slave still applying an earlier test's clear.
    const w0 = await call('POST', '/api/v1/db/write', KEY, { table: 'probe', operation: 'insert', data: { p: 0 } });
    const before = await call('POST', '/api/v1/db/read', KEY, { table: 'sec', where: {}, count: true, afterSeq: w0.body.seq });
    await call('POST', '/api/v1/db/write', undefined, write);
    await call('POST', '/api/v1/db/write', 'wrong-token-zzzzzzzz', write);
    const w = await call('POST', '/api/v1/db/write', KEY, { table: 'probe', operation: 'insert', data: { p: 1 } });
    const after = await call('POST', '/api/v1/db/read', KEY, { table: 'sec', where: {}, count: true, afterSeq: w.body.seq });
    expect(after.body).toEqual(before.body);
  });

  it('never logs a token', () => {
    expect(logs.length).toBeGreaterThan(10);
    const all = logs.join('\n');
    expect(all).not.toContain(ADMIN);
    expect(all).not.toContain(KEY);
    expect(all).not.toContain('not-a-valid-key-at-all');
  });
});
