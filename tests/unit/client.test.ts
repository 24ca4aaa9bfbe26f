/**
 * The typed client against a scripted fetch: which failures it retries (and
 * with the same requestId), which it throws at once, and read-your-writes.
 */
import { describe, expect, it } from 'vitest';
import { DbaasClient, DbaasClientError, type Update } from '../../client/index.js';
import { isRetryable, parseRetryAfter, retryDelayMs } from '../../client/retry.js';

type Answer = { status: number; body?: unknown; headers?: Record<string, string> } | Error | 'hang';

/** A fetch that answers from a script and records every request. */
function scripted(answers: Answer[]) {
  const calls: Array<{ url: string; method: string; body: any; headers: Record<string, string> }> = [];
  const fetch = (async (url: string, init: RequestInit) => {
    calls.push({ url, method: init.method ?? 'GET', body: init.body ? JSON.parse(init.body as string) : undefined, headers: init.headers as Record<string, string> });
    const answer = answers.shift() ?? { status: 500, body: { error: { code: 'DBAAS_SERVER_INTERNAL', message: 'script ran out' } } };
    if (answer === 'hang') {
      return new Promise((_resolve, reject) => init.signal?.addEventListener('abort', () => reject(init.signal?.reason)));
    }
    if (answer instanceof Error) throw answer;
    return new Response(answer.body === undefined ? '' : JSON.stringify(answer.body), { status: answer.status, headers: { 'x-request-id': `srv-${calls.length}`, ...answer.headers } });
  }) as unknown as typeof globalThis.fetch;
  return { fetch, calls };
}

const ok = (seq: number) => ({ status: 200, body: { ok: true, seq, inserted: 1, ids: ['a'], matched: 0, modified: 0, deleted: 0 } });
const err = (status: number, code: string) => ({ status, body: { error: { code, message: code } } });
const fast = { attempts: 5, baseDelayMs: 1, maxDelayMs: 2 };

describe('retries', () => {
  it('a write with a requestId made here says its age on every attempt (the server dates it by that, not by this clock); one given by the caller does not', async () => {
    const { fetch, calls } = scripted([err(503, 'DBAAS_CLUSTER_NO_MASTER'), ok(1), ok(2)]);
    const db = new DbaasClient({ url: 'http://x', fetch, retry: { attempts: 3, baseDelayMs: 20, maxDelayMs: 20 } });
    await db.insert('t', { a: 1 });
    const ages = calls.map((c) => Number(c.headers['x-dbaas-request-age-ms']));
    expect(ages[0]).toBeLessThan(20);
    expect(ages[1]).toBeGreaterThanOrEqual(ages[0] ?? 0);
    expect(ages[1]).toBeGreaterThanOrEqual(15);
    expect(calls[1]?.body.requestId).toBe(calls[0]?.body.requestId);
    await db.insert('t', { a: 2 }, { requestId: 'mine-1' });
    expect(calls[2]?.headers['x-dbaas-request-age-ms']).toBeUndefined();
  });

  it('retries a write after 503, 504 and no answer, always with the same requestId', async () => {
    const { fetch, calls } = scripted([err(503, 'DBAAS_CLUSTER_NO_MASTER'), err(504, 'DBAAS_RPC_TIMEOUT'), new TypeError('fetch failed'), ok(7)]);
    const retries: number[] = [];
    const client = new DbaasClient({ url: 'http://db/', fetch, retry: fast, onRetry: (i) => retries.push(i.attempt) });
    const result = await client.insert('t', { x: 1 });
    expect(result.seq).toBe(7);
    expect(calls).toHaveLength(4);
    expect(calls[0]?.url).toBe('http://db/api/v1/db/write');
    const ids = new Set(calls.map((c) => c.body.requestId));
    expect(ids.size).toBe(1);
    expect([...ids][0]).toMatch(/^[A-Za-z0-9_.:-]+$/);
    expect(retries).toEqual([1, 2, 3]);
  });

  it('keeps a requestId the caller gives', async () => {
    const { fetch, calls } = scripted([err(503, 'DBAAS_BROKER_UNAVAILABLE'), ok(1)]);
    const client = new DbaasClient({ url: 'http://db', fetch, retry: fast });
    await client.write({ table: 't', operation: 'delete', where: {} }, { requestId: 'mine-1' });
    expect(calls.map((c) => c.body.requestId)).toEqual(['mine-1', 'mine-1']);
  });

  it('retries a try that times out', async () => {
    const { fetch, calls } = scripted(['hang', ok(3)]);
    const client = new DbaasClient({ url: 'http://db', fetch, retry: fast, timeoutMs: 30 });
    expect((await client.insert('t', {})).seq).toBe(3);
    expect(calls[0]?.body.requestId).toBe(calls[1]?.body.requestId);
  });

  it('throws refusals at once, with the code, status and server request id', async () => {
    const { fetch, calls } = scripted([err(400, 'DBAAS_REQ_BAD_TABLE')]);
    const client = new DbaasClient({ url: 'http://db', fetch, retry: fast });
    const e = await client.read('1x').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DbaasClientError);
    expect(e).toMatchObject({ code: 'DBAAS_REQ_BAD_TABLE', status: 400, retryable: false, serverRequestId: 'srv-1' });
    expect(calls).toHaveLength(1);
  });

  it('gives up after the policy, with the last error', async () => {
    const { fetch, calls } = scripted(Array.from({ length: 5 }, () => err(503, 'DBAAS_CLUSTER_NO_SLAVE')));
    const client = new DbaasClient({ url: 'http://db', fetch, retry: { ...fast, attempts: 3 } });
    await expect(client.read('t')).rejects.toMatchObject({ code: 'DBAAS_CLUSTER_NO_SLAVE', retryable: true });
    expect(calls).toHaveLength(3);
  });

  it('never retries a crash drill', async () => {
    const { fetch, calls } = scripted([err(503, 'DBAAS_BROKER_UNAVAILABLE')]);
    const client = new DbaasClient({ url: 'http://db', fetch, retry: fast, adminToken: 'admin-token' });
    await expect(client.crash('master')).rejects.toMatchObject({ code: 'DBAAS_BROKER_UNAVAILABLE' });
    expect(calls).toHaveLength(1);
    expect(calls[0]?.headers['authorization']).toBe('Bearer admin-token');
  });

  it('reports an unreachable orchestrator as DBAAS_CLIENT_UNREACHABLE', async () => {
    const refused = Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    const { fetch } = scripted([refused, refused]);
    const client = new DbaasClient({ url: 'http://db', fetch, retry: { ...fast, attempts: 2 } });
    await expect(client.workers()).rejects.toMatchObject({ code: 'DBAAS_CLIENT_UNREACHABLE', status: 0, message: expect.stringContaining('ECONNREFUSED') });
  });
});

describe('requests the client cannot build', () => {
  // Before: JSON.stringify threw inside the try around fetch, so a BigInt was "DBAAS_CLIENT_UNREACHABLE", retried by the policy.
  it.each([
    ['a BigInt', { n: 10n }],
    ['a cycle', (() => {
      const o: Record<string, unknown> = {};
      o['self'] = o;
      return o;
    })()],
  ])('a body with %s is thrown at once as DBAAS_CLIENT_INVALID_REQUEST, never sent or retried', async (_what, doc) => {
    const { fetch, calls } = scripted([ok(1)]);
    const client = new DbaasClient({ url: 'http://db', fetch, retry: fast });
    const error = await client.insert('t', doc as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DbaasClientError);
    expect(error).toMatchObject({ code: 'DBAAS_CLIENT_INVALID_REQUEST', status: 0, retryable: false });
    expect((error as Error).message).toMatch(/^POST \/api\/v1\/db\/write: the body cannot be sent as JSON: /);
    expect(calls).toHaveLength(0);
  });

  // Before: 'not a url' was retried for the whole policy (5 s by default), then "cannot reach not a url: ERR_INVALID_URL".
  it.each(['not a url', 'ftp://db', 'http://a, db:8080', ''])('a url %j fails in the constructor', (url) => {
    expect(() => new DbaasClient({ url })).toThrow(expect.objectContaining({ code: 'DBAAS_CLIENT_INVALID_REQUEST' }));
  });
});

describe('read-your-writes', () => {
  it('sends the highest seq its writes got as afterSeq, unless asked not to', async () => {
    const { fetch, calls } = scripted([{ status: 200, body: [] }, ok(5), ok(4), { status: 200, body: [] }, { status: 200, body: { count: 2 } }, { status: 200, body: [] }, { status: 200, body: [] }]);
    const client = new DbaasClient({ url: 'http://db', fetch });
    await client.read('t');
    await client.insert('t', {});
    await client.insert('t', {});
    expect(client.lastSeq).toBe(5);
    await client.read('t', { where: { a: 1 } });
    expect(await client.count('t', { a: 1 })).toBe(2);
    await client.read('t', { consistency: 'eventual' });
    await client.read('t', { afterSeq: 9 });
    const reads = calls.filter((c) => c.url.endsWith('/db/read')).map((c) => c.body);
    expect(reads).toEqual([
      { table: 't' },
      { table: 't', where: { a: 1 }, afterSeq: 5 },
      { table: 't', where: { a: 1 }, count: true, afterSeq: 5 },
      { table: 't' },
      { table: 't', afterSeq: 9 },
    ]);
  });

  it('can be turned off', async () => {
    const { fetch, calls } = scripted([ok(5), { status: 200, body: [] }]);
    const client = new DbaasClient({ url: 'http://db', fetch, readYourWrites: false });
    await client.insert('t', {});
    await client.read('t');
    expect(calls[1]?.body).toEqual({ table: 't' });
  });
});

describe('tokens and cluster calls', () => {
  it('sends the API key on data endpoints and the admin token on admin endpoints', async () => {
    const { fetch, calls } = scripted([{ status: 200, body: [] }, { status: 200, body: { ok: true, seq: 1 } }, { status: 200, body: { targetSlaves: 2 } }]);
    const client = new DbaasClient({ url: 'http://db', fetch, apiKey: 'data-key-1', adminToken: 'admin-token' });
    await client.read('t');
    await client.clear();
    expect(await client.scale(2)).toBe(2);
    expect(calls.map((c) => c.headers['authorization'])).toEqual(['Bearer data-key-1', 'Bearer admin-token', 'Bearer admin-token']);
    expect(calls[1]?.body.requestId).toEqual(expect.any(String));
  });

  it('answers readiness also when the cluster is not ready (503)', async () => {
    const body = { ready: false, broker: true, master: null, servingSlaves: 0 };
    const { fetch } = scripted([{ status: 503, body }]);
    const client = new DbaasClient({ url: 'http://db', fetch });
    expect(await client.readiness()).toEqual(body);
  });
});

describe('the retry policy', () => {
  it('retries only what may go away by itself', () => {
    expect(isRetryable('DBAAS_CLUSTER_NO_MASTER', 503)).toBe(true);
    expect(isRetryable('DBAAS_READ_SEQ_TIMEOUT', 504)).toBe(true);
    expect(isRetryable('DBAAS_CLIENT_TIMEOUT', 0)).toBe(true);
    expect(isRetryable('DBAAS_REQ_INVALID', 400)).toBe(false);
    expect(isRetryable('DBAAS_SERVER_INTERNAL', 500)).toBe(false);
    expect(isRetryable('HTTP_502', 502)).toBe(true);
    expect(isRetryable('HTTP_404', 404)).toBe(false);
  });

  it('backs off exponentially with jitter, capped, and respects Retry-After', () => {
    const p = { attempts: 10, baseDelayMs: 100, maxDelayMs: 1000 };
    expect(retryDelayMs(1, p, 0, () => 0)).toBe(50);
    expect(retryDelayMs(1, p, 0, () => 1)).toBe(100);
    expect(retryDelayMs(3, p, 0, () => 1)).toBe(400);
    expect(retryDelayMs(9, p, 0, () => 1)).toBe(1000);
    expect(retryDelayMs(1, p, 700, () => 0)).toBe(700);
    expect(retryDelayMs(1, p, 60_000, () => 0)).toBe(1000);
    expect(parseRetryAfter('1')).toBe(1000);
    expect(parseRetryAfter(null)).toBe(0);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 8_000)).toBe(2000);
  });
});

describe('several orchestrators', () => {
  it('moves to the next URL when one cannot be reached or is shutting down, keeping the requestId', async () => {
    const { fetch, calls } = scripted([new TypeError('fetch failed'), err(503, 'DBAAS_SHUTTING_DOWN'), ok(9)]);
    const client = new DbaasClient({ url: 'http://a:1, http://b:2/ ,http://c:3', fetch, retry: fast });
    const result = await client.write({ table: 't', operation: 'insert', data: { x: 1 } }, { requestId: 'r-1' });
    expect(result.seq).toBe(9);
    expect(calls.map((c) => new URL(c.url).host)).toEqual(['a:1', 'b:2', 'c:3']);
    expect(calls.map((c) => c.body.requestId)).toEqual(['r-1', 'r-1', 'r-1']);
    // It stays with the one that answered.
    await client.write({ table: 't', operation: 'insert', data: { x: 2 } }, { requestId: 'r-2' }).catch(() => undefined);
    expect(new URL(calls[3]?.url ?? '').host).toBe('c:3');
  });
});

describe('types', () => {
  it('an Update is the operators the server takes, or a plain $set object without $ keys (npm run typecheck checks the directive)', () => {
    // @ts-expect-error $rename is not an update operator dbaas takes (the server answers 400 DBAAS_UPDATE_INVALID)
    const refused: Update = { $rename: { a: 'b' } };
    const plain: Update = { name: 'x', 'profile.age': 3 };
    const operators: Update = { $inc: { n: 1 }, $set: { a: 1 } };
    expect([refused, plain, operators].map((u) => Object.keys(u)[0])).toEqual(['$rename', 'name', '$inc']);
  });
});
