/**
 * Issue 13, items 2, 3 and 5: slow and hostile clients, bounded leftovers on the
 * broker, and the smaller holes. One cluster with API keys, an admin token and
 * short HTTP timeouts, listening on loopback for the tests that need real sockets.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { clusterNames } from '../../common/names.js';
import { assertSyncQueue, removeLegacyDeadLetterQueue } from '../../common/topology.js';
import { Store } from '../../worker/store.js';
import { eventually, startTestCluster, type TestCluster } from './harness.js';

const KEY = 'edge-service-key-0123456789';
const ADMIN = 'edge-admin-token-0123456789';
const HEADERS_TIMEOUT_MS = 2000;
const REQUEST_TIMEOUT_MS = 4000;
const KEEP_ALIVE_TIMEOUT_MS = 1000;
const DEAD_LETTER_MAX_BYTES = 64 * 1024;
const DEAD_LETTER_TTL_MS = 8000;
const RPC_TIMEOUT_MS = 1500;

let c: TestCluster;
let port: number;
let conn: amqp.ChannelModel;

beforeAll(async () => {
  c = await startTestCluster(
    {
      DBAAS_API_KEYS: KEY,
      DBAAS_ADMIN_TOKEN: ADMIN,
      DBAAS_HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
      DBAAS_HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
      DBAAS_HTTP_KEEP_ALIVE_TIMEOUT_MS: String(KEEP_ALIVE_TIMEOUT_MS),
      DBAAS_DEAD_LETTER_MAX_BYTES: String(DEAD_LETTER_MAX_BYTES),
      DBAAS_DEAD_LETTER_TTL_MS: String(DEAD_LETTER_TTL_MS),
      DBAAS_REQUEST_TIMEOUT_MS: String(RPC_TIMEOUT_MS),
      // A master frozen for a few seconds (the 504 test) must not look dead.
      DBAAS_ZK_SESSION_TIMEOUT_MS: '15000',
      DBAAS_SCALE_INTERVAL_MS: '3600000',
    },
    { listen: true },
  );
  port = Number(new URL(c.url).port);
  conn = await amqp.connect('amqp://guest:guest@127.0.0.1:5672');
});

afterAll(async () => {
  await conn?.close().catch(() => undefined);
  await c?.close();
});

const auth = { authorization: `Bearer ${KEY}` };

async function call(method: 'GET' | 'POST', url: string, opts: { headers?: Record<string, string>; body?: unknown; payload?: string } = {}) {
  const res = await c.orch.app.inject({
    method,
    url,
    headers: { 'content-type': 'application/json', ...opts.headers },
    ...(opts.payload !== undefined ? { payload: opts.payload } : opts.body !== undefined ? { payload: JSON.stringify(opts.body) } : {}),
  });
  let body: any;
  try {
    body = res.json();
  } catch {
    body = res.body;
  }
  return { status: res.statusCode, body, headers: res.headers };
}

interface Probe {
  kind: 'headers' | 'body';
  closedAfterMs?: number;
  statusLine?: string;
}

/** A socket that sends a request it never finishes; resolves its record when the server closes it. */
function halfOpen(kind: Probe['kind'], started: number): { probe: Probe; connected: Promise<void>; closed: Promise<void> } {
  const probe: Probe = { kind };
  const socket = net.connect(port, '127.0.0.1');
  let received = '';
  const connected = new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.once('connect', () => {
    socket.write(
      kind === 'headers'
        ? 'POST /api/v1/db/read HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n'
        : `POST /api/v1/db/read HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"table":`,
    );
  });
  socket.on('data', (d) => (received += d.toString()));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      probe.closedAfterMs = Date.now() - started;
      probe.statusLine = received.split('\r\n')[0];
      resolve();
    }),
  );
  return { probe, connected, closed };
}

describe('slow clients (issue 13.2)', () => {
  it('closes 300 half-open sockets (headers or body never finished) with a 408 within the configured time, while new clients are served', async () => {
    const started = Date.now();
    const opened = [...Array.from({ length: 150 }, () => halfOpen('headers', started)), ...Array.from({ length: 150 }, () => halfOpen('body', started))];
    await Promise.all(opened.map((o) => o.connected));
    const connectedMs = Date.now() - started;

    // Meanwhile, new clients: health checks and reads, each answered.
    const served: Array<{ status: number; ms: number }> = [];
    while (Date.now() - started < HEADERS_TIMEOUT_MS + 500) {
      const t0 = Date.now();
      const health = await fetch(`${c.url}/healthz`);
      served.push({ status: health.status, ms: Date.now() - t0 });
      const t1 = Date.now();
      const read = await fetch(`${c.url}/api/v1/db/read`, { method: 'POST', headers: auth, body: JSON.stringify({ table: 'edges', where: {} }) });
      served.push({ status: read.status, ms: Date.now() - t1 });
      await read.arrayBuffer();
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(served.length).toBeGreaterThanOrEqual(4);
    expect(served.filter((s) => s.status !== 200)).toEqual([]);

    await Promise.race([Promise.all(opened.map((o) => o.closed)), new Promise((r) => setTimeout(r, REQUEST_TIMEOUT_MS + 15_000))]);
    const probes = opened.map((o) => o.probe);
    const open = probes.filter((p) => p.closedAfterMs === undefined);
    expect(open).toHaveLength(0);
    const worst = (kind: Probe['kind']): number => Math.max(...probes.filter((p) => p.kind === kind).map((p) => p.closedAfterMs ?? Infinity));
    const first = (kind: Probe['kind']): number => Math.min(...probes.filter((p) => p.kind === kind).map((p) => p.closedAfterMs ?? Infinity));
    // Node checks the deadlines every 500 ms here (a quarter of the headers timeout, at most 1 s); the rest is load.
    expect(first('headers')).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 200);
    expect(worst('headers')).toBeLessThan(HEADERS_TIMEOUT_MS + 5000);
    expect(first('body')).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 200);
    expect(worst('body')).toBeLessThan(REQUEST_TIMEOUT_MS + 5000);
    const statusLines = new Set(probes.map((p) => p.statusLine));
    expect([...statusLines]).toEqual(['HTTP/1.1 408 Request Timeout']);
    console.log(
      `[edges] 300 half-open sockets connected in ${connectedMs} ms; headers-unfinished closed after ${first('headers')}–${worst('headers')} ms, ` +
        `body-unfinished after ${first('body')}–${worst('body')} ms (all 408); meanwhile ${served.length} new requests, all 200, slowest ${Math.max(...served.map((s) => s.ms))} ms`,
    );
  });

  it('closes an idle keep-alive connection after the keep-alive timeout', async () => {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    let received = '';
    socket.on('data', (d) => (received += d.toString()));
    const t0 = Date.now();
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - t0)));
    socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n');
    const after = await closed;
    expect(received).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(received).toMatch(/keep-alive/i);
    expect(after).toBeGreaterThanOrEqual(KEEP_ALIVE_TIMEOUT_MS - 100);
    expect(after).toBeLessThan(REQUEST_TIMEOUT_MS + 3000);
    console.log(`[edges] idle keep-alive connection closed ${after} ms after its request (keep-alive timeout ${KEEP_ALIVE_TIMEOUT_MS} ms)`);
  });
});

describe('authentication comes before the body (issue 13.5)', () => {
  it('answers an anonymous 900 kB body with 401 without parsing it', async () => {
    const payload = `{"table":"edges","operation":"insert","data":{"pad":"${'x'.repeat(900_000)}"`; // not even valid JSON
    const parse = vi.spyOn(JSON, 'parse');
    try {
      const anonymous = await call('POST', '/api/v1/db/write', { payload });
      expect(anonymous.status).toBe(401);
      expect(anonymous.body.error.code).toBe('DBAAS_AUTH_MISSING');
      const wrong = await call('POST', '/api/v1/db/write', { payload, headers: { authorization: 'Bearer not-the-right-key-at-all' } });
      expect(wrong.status).toBe(403);
      expect(parse.mock.calls.filter(([text]) => typeof text === 'string' && text.length >= 900_000)).toHaveLength(0);
      // With a key, the body is read and parsed: the broken JSON is a 400.
      const keyed = await call('POST', '/api/v1/db/write', { payload, headers: auth });
      expect(keyed.status).toBe(400);
      expect(keyed.body.error.code).toBe('DBAAS_REQ_INVALID_JSON');
      expect(parse.mock.calls.filter(([text]) => typeof text === 'string' && text.length >= 900_000)).toHaveLength(1);
    } finally {
      parse.mockRestore();
    }
  });

  it('answers an anonymous body over the size limit with 401, not 413', async () => {
    const res = await fetch(`${c.url}/api/v1/db/write`, { method: 'POST', body: 'x'.repeat(2 * 1_048_576) });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('DBAAS_AUTH_MISSING');
  });
});

describe('docs and dashboard follow the API keys (issue 13.5)', () => {
  const pages = ['/docs', '/docs/json', '/', '/dashboard/app.js', '/dashboard/style.css'];
  it.each(pages)('%s: 401 with a Basic challenge without a key, 403 with a wrong one, served with a key (Bearer or Basic)', async (url) => {
    const none = await call('GET', url);
    expect(none.status).toBe(401);
    expect(none.body.error.code).toBe('DBAAS_AUTH_MISSING');
    expect(none.headers['www-authenticate']).toMatch(/^Basic realm="dbaas"/);
    expect((await call('GET', url, { headers: { authorization: 'Bearer wrong-key-0000000000' } })).status).toBe(403);
    const bearer = await call('GET', url, { headers: auth });
    expect([200, 302]).toContain(bearer.status);
    const basic = await call('GET', url, { headers: { authorization: `Basic ${Buffer.from(`anyone:${KEY}`).toString('base64')}` } });
    expect([200, 302]).toContain(basic.status);
  });

  it('the dashboard page calls the API with the Basic credentials a browser keeps, and /healthz stays open', async () => {
    const basic = { authorization: `Basic ${Buffer.from(`ops:${KEY}`).toString('base64')}` };
    expect((await call('GET', '/api/v1/workers', { headers: basic })).status).toBe(200);
    expect((await call('GET', '/api/v1/stats', { headers: basic })).status).toBe(200);
    expect((await call('GET', '/api/v1/stats')).status).toBe(401);
    expect((await call('GET', '/metrics')).status).toBe(401);
    expect((await call('GET', '/healthz')).status).toBe(200);
  });
});

describe('bad query strings (issue 13.5)', () => {
  it.each(['abc', '-1', '1.5', '', '1e3', '0x10', '99999999999999999999'])('GET /api/v1/events?after=%s answers 400', async (after) => {
    const res = await call('GET', `/api/v1/events?after=${encodeURIComponent(after)}`, { headers: auth });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('DBAAS_REQ_INVALID');
  });

  it('a repeated after is a 400; a number is a 200 with only newer events', async () => {
    expect((await call('GET', '/api/v1/events?after=1&after=2', { headers: auth })).status).toBe(400);
    const all = await call('GET', '/api/v1/events?after=0', { headers: auth });
    expect(all.status).toBe(200);
    expect(all.body.length).toBeGreaterThan(0);
    const newer = await call('GET', `/api/v1/events?after=${all.body[0].seq}`, { headers: auth });
    expect(newer.status).toBe(200);
    expect(newer.body.every((e: { seq: number }) => e.seq > all.body[0].seq)).toBe(true);
  });
});

describe('autoscaling counts only valid reads (issue 13.5)', () => {
  it('80 refused reads leave the window count alone; valid ones add to it', async () => {
    const before = (await call('GET', '/api/v1/scale', { headers: auth })).body.readsInWindow as number;
    const bad = [{ table: '1bad' }, { table: 'edges', where: { $where: 'sleep(1)' } }, { table: 'edges', limit: -1 }, { table: 'edges', bogus: 1 }];
    let refused = 0;
    for (let i = 0; i < 80; i++) {
      const res = await call('POST', '/api/v1/db/read', { headers: auth, body: bad[i % bad.length] });
      if (res.status === 400) refused += 1;
    }
    expect(refused).toBe(80);
    expect((await call('GET', '/api/v1/scale', { headers: auth })).body.readsInWindow).toBe(before);
    for (let i = 0; i < 3; i++) expect((await call('POST', '/api/v1/db/read', { headers: auth, body: { table: 'edges', where: {} } })).status).toBe(200);
    expect((await call('GET', '/api/v1/scale', { headers: auth })).body.readsInWindow).toBe(before + 3);
  });
});

describe('a 504 on a write names its requestId (issue 13.5)', () => {
  it('in the body and a header, the client’s or the generated one, and a retry with it applies the write once', async () => {
    const masterId = c.orch.view.master?.id as string;
    const pid = c.orch.view.workers.get(masterId)?.pid as number;
    expect(pid).toBeGreaterThan(0);
    const ok = await call('POST', '/api/v1/db/write', { headers: auth, body: { table: 'rid', operation: 'insert', data: { n: 0 } } });
    expect(ok.status).toBe(200);
    expect(ok.headers['x-write-request-id']).toMatch(/^rq1-\d+-[0-9a-f-]{36}$/);

    const mine = { table: 'rid', operation: 'insert', data: { n: 1 }, requestId: 'edge-client-id-1' };
    const generated = { table: 'rid', operation: 'insert', data: { n: 2 } };
    process.kill(pid, 'SIGSTOP');
    let r1, r2;
    try {
      r1 = await call('POST', '/api/v1/db/write', { headers: auth, body: mine });
      r2 = await call('POST', '/api/v1/db/write', { headers: auth, body: generated });
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    expect(r1.status).toBe(504);
    expect(r1.body.error.requestId).toBe('edge-client-id-1');
    expect(r1.headers['x-write-request-id']).toBe('edge-client-id-1');
    expect(r2.status).toBe(504);
    const id = r2.headers['x-write-request-id'] as string;
    expect(id).toMatch(/^rq1-\d+-[0-9a-f-]{36}$/);
    expect(r2.body.error.requestId).toBe(id);

    // A plain HTTP client retries with the id it was given: applied once.
    let retried;
    await eventually(async () => {
      retried = await call('POST', '/api/v1/db/write', { headers: auth, body: { ...generated, requestId: id } });
      return retried.status === 200;
    }, 20_000, 'the retry to succeed');
    const again = await call('POST', '/api/v1/db/write', { headers: auth, body: mine });
    expect(again.status).toBe(200);
    const seq = Math.max((retried as unknown as { body: { seq: number } }).body.seq, again.body.seq);
    const count = await call('POST', '/api/v1/db/read', { headers: auth, body: { table: 'rid', where: { n: 2 }, count: true, afterSeq: seq } });
    expect(count.body).toEqual({ count: 1 });
  });
});

/** The queue names on the local broker, without touching any queue. */
async function brokerQueues(): Promise<string[]> {
  const { stdout } = await promisify(execFile)('rabbitmqctl', ['list_queues', '-q', '--no-table-headers', 'name'], { timeout: 60_000 });
  return stdout.split('\n').map((l) => l.trim());
}

describe('bounded leftovers on the broker (issue 13.3)', () => {
  const names = () => clusterNames(c.namespace);

  it('keeps a rejected message (poison), drops an expired one, and bounds the poison queue in bytes and age', async () => {
    const ch = await conn.createChannel();
    const probeQueue = `${c.namespace}.edge-probe`;
    await ch.assertQueue(probeQueue, { durable: false, arguments: { 'x-dead-letter-exchange': names().deadLetterExchange } });
    try {
      await ch.purgeQueue(names().deadLetterQueue);
      ch.sendToQueue(probeQueue, Buffer.from('expired'), { expiration: '1' });
      await new Promise((r) => setTimeout(r, 300));
      // 10 poison messages of 20 kB: the queue holds what fits in 64 kB, the newest.
      for (let i = 0; i < 10; i++) ch.sendToQueue(probeQueue, Buffer.concat([Buffer.from(`poison-${i}:`), Buffer.alloc(20_000, 120)]));
      let rejected = 0;
      for (;;) {
        const msg = await ch.get(probeQueue, { noAck: false });
        if (!msg) break;
        ch.nack(msg, false, false);
        rejected += 1;
      }
      expect(rejected).toBe(10);
      await eventually(async () => (await ch.checkQueue(names().deadLetterQueue)).messageCount === 3, 5000, 'the poison queue to settle at 3');
      const kept: string[] = [];
      // Unsettled messages are not handed out again: each get returns the next one.
      for (let i = 0; i < 3; i++) {
        const msg = await ch.get(names().deadLetterQueue, { noAck: false });
        if (!msg) break;
        kept.push(msg.content.subarray(0, 9).toString());
        expect(msg.properties.headers?.['x-first-death-reason']).toBe('rejected');
      }
      ch.nackAll(true);
      // drop-head: the oldest went first; the expired message never arrived.
      expect(kept).toEqual(['poison-7:', 'poison-8:', 'poison-9:']);
      // The age bound: all gone once DBAAS_DEAD_LETTER_TTL_MS has passed.
      await eventually(async () => (await ch.checkQueue(names().deadLetterQueue)).messageCount === 0, DEAD_LETTER_TTL_MS + 10_000, 'the poison to expire');
    } finally {
      await ch.deleteQueue(probeQueue).catch(() => undefined);
      await ch.close().catch(() => undefined);
    }
  }, 40_000);

  it('a sync queue nobody consumes expires; one declared by an older version (no expiry) is kept, not refused', async () => {
    const settings = { syncQueueExpiresMs: 1500, deadLetterMaxBytes: DEAD_LETTER_MAX_BYTES, deadLetterTtlMs: DEAD_LETTER_TTL_MS };
    const ghost = await assertSyncQueue(conn, names(), 'ghost-worker', settings);
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    try {
      // There, checked passively (rabbitmqctl can take longer than the 1.5 s lease on a loaded machine; the check renews it).
      expect((await ch.checkQueue(ghost)).queue).toBe(ghost);
      // Gone once unused for 1.5 s. Looked for with rabbitmqctl: a passive declare would count as a use and renew the lease.
      await eventually(async () => !(await brokerQueues()).includes(ghost), 30_000, 'the unused sync queue to expire');
      // An older version's queue: same name, no x-expires. The declaration falls back to a passive check.
      const old = names().syncQueue('old-worker');
      await ch.assertQueue(old, { durable: true, arguments: { 'x-dead-letter-exchange': names().deadLetterExchange } });
      const kept: string[] = [];
      expect(await assertSyncQueue(conn, names(), 'old-worker', settings, (q) => kept.push(q))).toBe(old);
      expect(kept).toEqual([old]);
      // Still bound to the stream.
      ch.publish(names().syncExchange, '', Buffer.from('{}'));
      await eventually(async () => (await ch.checkQueue(old)).messageCount >= 1, 5000, 'the kept queue to receive the stream');
      await ch.deleteQueue(old);
    } finally {
      await ch.close().catch(() => undefined);
    }
  }, 60_000);

  it('the dead-letter queue of older versions is removed', async () => {
    const ch = await conn.createChannel();
    try {
      await ch.assertQueue(names().legacyDeadLetterQueue, { durable: true, arguments: { 'x-max-length': 10000, 'x-overflow': 'drop-head' } });
      ch.sendToQueue(names().legacyDeadLetterQueue, Buffer.from('old'));
      await new Promise((r) => setTimeout(r, 200));
      expect(await removeLegacyDeadLetterQueue(conn, names())).toBe(1);
      await expect(
        (async () => {
          const probe = await conn.createChannel();
          probe.on('error', () => undefined);
          await probe.checkQueue(names().legacyDeadLetterQueue);
        })(),
      ).rejects.toThrow(/NOT_FOUND/);
    } finally {
      await ch.close().catch(() => undefined);
    }
  });
});

describe('bounded prefetch on every consuming channel (issue 13.5)', () => {
  it('every consumer of the namespace that acknowledges has a prefetch', async () => {
    const { stdout } = await promisify(execFile)('rabbitmqctl', ['list_consumers', '-q', '--no-table-headers', 'queue_name', 'ack_required', 'prefetch_count'], { timeout: 60_000 });
    const rows = stdout
      .trim()
      .split('\n')
      .map((line) => line.split('\t'))
      .filter(([queue]) => queue?.startsWith(`${c.namespace}.`));
    const acking = rows.filter(([, ack]) => ack === 'true');
    // Every worker's control queue, the slave's read and sync queues, the master's write queue.
    expect(acking.filter(([q]) => q?.includes('.ctl.')).length).toBeGreaterThanOrEqual(2);
    expect(acking.some(([q]) => q === `${c.namespace}.writeQ`)).toBe(true);
    expect(acking.some(([q]) => q === `${c.namespace}.readQ`)).toBe(true);
    expect(acking.filter(([, , prefetch]) => Number(prefetch) <= 0)).toEqual([]);
    console.log(`[edges] ${acking.length} acknowledging consumers, prefetch ${acking.map(([q, , p]) => `${q?.slice(c.namespace.length + 1)}=${p}`).join(', ')}`);
  });
});

describe('reads carry maxTimeMS (issue 13.5)', () => {
  it('a read query stops on the database after maxTimeMS', async () => {
    const docs = Array.from({ length: 1000 }, (_, i) => ({ n: i, text: `row ${i} ${'y'.repeat(200)}` }));
    let seq = 0;
    for (let b = 0; b < 10; b++) {
      const w = await call('POST', '/api/v1/db/write', { headers: auth, body: { table: 'heavy', operation: 'insert', data: docs } });
      expect(w.status).toBe(200);
      seq = w.body.seq;
    }
    const slave = c.orch.view.servingSlaves()[0];
    expect(slave).toBeDefined();
    const unit = JSON.parse(readFileSync(path.join(c.dataDir, c.namespace, slave?.id as string, 'unit.json'), 'utf8')) as { port: number };
    const store = await Store.connect(`mongodb://127.0.0.1:${unit.port}/`, c.config.dbName, 10_000);
    try {
      await eventually(async () => ((await store.read({ table: 'heavy', where: {}, count: true }, 60_000)) as { count: number }).count === 10_000, 30_000, `seq ${seq} applied`);
      const heavy = { table: 'heavy', where: { text: { $regex: 'z$' } }, count: true } as const;
      const t0 = Date.now();
      const err = await store.read(heavy, 1).then(
        () => undefined,
        (e: unknown) => e as { code?: number; codeName?: string },
      );
      const ms = Date.now() - t0;
      console.log(`[edges] count over 10,000 documents with maxTimeMS 1: ${err ? `stopped with code ${err.code} (${err.codeName}) after ${ms} ms` : `finished in ${ms} ms`}`);
      expect(err?.code).toBe(50);
      // Without the bound the same query finishes.
      expect(await store.read(heavy, 60_000)).toEqual({ count: 0 });
    } finally {
      await store.close();
    }
  }, 90_000);
});
