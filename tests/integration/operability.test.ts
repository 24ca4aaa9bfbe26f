/**
 * Operability on one real cluster: Prometheus metrics, the OpenAPI document at
 * /docs (documentation only: it must not change what is accepted or returned),
 * the dashboard's assets, and request ids carried from the orchestrator's log
 * line into the worker's.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestCluster, type TestCluster } from './harness.js';

let c: TestCluster;
const orchestratorLog: string[] = [];

beforeAll(async () => {
  c = await startTestCluster({ DBAAS_LOG_LEVEL: 'debug' }, { logSink: (line) => orchestratorLog.push(line) });
});

afterAll(async () => {
  await c?.close();
});

/** The value of one sample of the exposition text, or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[4]);
  }
  return undefined;
}

async function metricsText(): Promise<string> {
  const res = await c.orch.app.inject({ method: 'GET', url: '/metrics' });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain/);
  return res.body;
}

describe('GET /metrics', () => {
  it('counts requests, RPC round trips, workers, lag, queues and the autoscaler target', async () => {
    const w = await c.post('/api/v1/db/write', { table: 'm', operation: 'insert', data: { x: 1 } });
    expect(w.status).toBe(200);
    const r = await c.post('/api/v1/db/read', { table: 'm', where: {}, afterSeq: w.body.seq });
    expect(r.status).toBe(200);
    const bad = await c.post('/api/v1/db/read', { table: '1bad' });
    expect(bad.status).toBe(400);

    const text = await metricsText();
    expect(sample(text, 'dbaas_http_requests_total', { method: 'POST', route: '/api/v1/db/write', status: '200' })).toBe(1);
    expect(sample(text, 'dbaas_http_requests_total', { method: 'POST', route: '/api/v1/db/read', status: '400' })).toBe(1);
    expect(sample(text, 'dbaas_http_request_duration_seconds_count', { method: 'POST', route: '/api/v1/db/read' })).toBe(2);
    expect(sample(text, 'dbaas_rpc_duration_seconds_count', { queue: 'write', outcome: 'ok' })).toBe(1);
    expect(sample(text, 'dbaas_rpc_duration_seconds_count', { queue: 'read', outcome: 'ok' })).toBe(1);
    expect(sample(text, 'dbaas_workers', { role: 'master', state: 'master' })).toBe(1);
    expect(sample(text, 'dbaas_workers', { role: 'slave', state: 'slave' })).toBe(1);
    expect(sample(text, 'dbaas_replication_lag_max_entries')).toBeGreaterThanOrEqual(0);
    // Workers publish their applied seq to ZooKeeper periodically.
    const master = c.orch.cluster.workersDetail().find((x) => x.role === 'master');
    await eventually(async () => (sample(await metricsText(), 'dbaas_worker_applied_seq', { worker: master?.id ?? '?', role: 'master' }) ?? 0) >= w.body.seq, 5000, 'applied seq');
    expect(sample(text, 'dbaas_queue_messages', { queue: `${c.namespace}.writeQ` })).toBe(0);
    expect(sample(text, 'dbaas_queue_consumers', { queue: `${c.namespace}.writeQ` })).toBe(1);
    expect(sample(text, 'dbaas_queue_consumers', { queue: `${c.namespace}.readQ` })).toBe(1);
    expect(sample(text, 'dbaas_autoscaler_target_slaves')).toBe(1);
    expect(sample(text, 'dbaas_ready')).toBe(1);
    expect(sample(text, 'dbaas_amqp_connected')).toBe(1);
    expect(sample(text, 'dbaas_amqp_reconnects_total')).toBe(0);
    expect(sample(text, 'dbaas_failovers_total')).toBe(0);
    expect(sample(text, 'process_resident_memory_bytes')).toBeGreaterThan(0);
  });

  it('counts scaling decisions from the audit log', async () => {
    const res = await c.post('/api/v1/scale', { slaves: 1 });
    expect(res.status).toBe(200);
    const text = await metricsText();
    expect(sample(text, 'dbaas_scaling_decisions_total', { trigger: 'manual', direction: 'keep' })).toBe(1);
    expect(sample(text, 'dbaas_audit_events_total', { kind: 'scaling' })).toBeGreaterThanOrEqual(1);
  });

  it('feeds the dashboard rate history', async () => {
    const stats = await c.get('/api/v1/stats');
    expect(stats.status).toBe(200);
    const points = stats.body.rates.points as Array<{ reads: number; writes: number }>;
    expect(points).toHaveLength(120);
    expect(points.reduce((n, p) => n + p.writes, 0)).toBeGreaterThanOrEqual(1);
    expect(points.reduce((n, p) => n + p.reads, 0)).toBeGreaterThanOrEqual(2);
  });
});

describe('OpenAPI at /docs', () => {
  let doc: any;
  beforeAll(async () => {
    const res = await c.get('/docs/json');
    expect(res.status).toBe(200);
    doc = res.body;
  });

  it('serves the UI', async () => {
    const res = await c.orch.app.inject({ method: 'GET', url: '/docs' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/html/);
  });

  it('describes the whole API', () => {
    expect(doc.openapi).toBe('3.0.3');
    for (const p of ['/api/v1/db/write', '/api/v1/db/read', '/api/v1/db/clear', '/api/v1/crash/master', '/api/v1/crash/slave', '/api/v1/workers/list', '/api/v1/worker/list', '/api/v1/workers', '/api/v1/events', '/api/v1/scale', '/api/v1/workers/{id}/read', '/healthz', '/readyz', '/metrics', '/api/v1/stats']) {
      expect(Object.keys(doc.paths), p).toContain(p);
    }
    const write = doc.paths['/api/v1/db/write'].post;
    expect(write.requestBody.content['application/json'].schema.properties.operation.enum).toEqual(['insert', 'update', 'upsert', 'delete']);
    expect(write.responses['503'].content['application/json'].schema.properties.error.properties.code.enum).toContain('DBAAS_CLUSTER_NO_MASTER');
    expect(doc.paths['/api/v1/crash/master'].post.security).toEqual([{ adminToken: [] }]);
    expect(doc.paths['/']).toBeUndefined();
  });

  it('documents every route (a new route needs an entry in orchestrator/api-docs.ts)', () => {
    const undocumented: string[] = [];
    for (const [p, ops] of Object.entries(doc.paths as Record<string, Record<string, { summary?: string }>>)) {
      for (const [method, op] of Object.entries(ops)) if (!op.summary) undocumented.push(`${method.toUpperCase()} ${p}`);
    }
    expect(undocumented).toEqual([]);
  });

  it('does not validate: our own validation answers with its DBAAS_* codes', async () => {
    const cases: Array<[string, unknown, string]> = [
      ['/api/v1/db/read', { table: 5 }, 'DBAAS_REQ_BAD_TABLE'],
      ['/api/v1/db/read', { table: 't', limit: 'x' }, 'DBAAS_REQ_INVALID'],
      ['/api/v1/db/write', { table: 't', operation: 'insert', data: { a: 1 }, extra: 1 }, 'DBAAS_REQ_UNKNOWN_FIELD'],
      ['/api/v1/db/write', { table: 't' }, 'DBAAS_REQ_BAD_OPERATION'],
      ['/api/v1/scale', { slaves: 'many' }, 'DBAAS_REQ_INVALID'],
    ];
    for (const [url, body, code] of cases) {
      const res = await c.post(url, body);
      expect({ url, status: res.status, body: res.body }).toEqual({ url, status: 400, body: { error: { code, message: expect.any(String) } } });
    }
  });

  it('does not filter responses: a read returns whole documents', async () => {
    const doc1 = { _id: 'full-1', name: 'ana', nested: { deep: { list: [1, { x: 'y' }] }, empty: {} }, flag: false, nothing: null, n: 1.5 };
    const w = await c.post('/api/v1/db/write', { table: 'full', operation: 'insert', data: doc1 });
    expect(w.status).toBe(200);
    expect(Object.keys(w.body).sort()).toEqual(['deleted', 'ids', 'inserted', 'matched', 'modified', 'ok', 'seq']);
    const r = await c.post('/api/v1/db/read', { table: 'full', where: { _id: 'full-1' }, afterSeq: w.body.seq });
    expect(r.body).toEqual([doc1]);
    const count = await c.post('/api/v1/db/read', { table: 'full', count: true, afterSeq: w.body.seq });
    expect(count.body).toEqual({ count: 1 });
    const workers = await c.get('/api/v1/workers');
    expect(Object.keys(workers.body[0]).sort()).toEqual(['appliedSeq', 'id', 'lag', 'pid', 'poisonMessages', 'role', 'startedAt', 'state']);
  });
});

describe('the dashboard', () => {
  it('serves its page and assets with a strict content security policy', async () => {
    const page = await c.orch.app.inject({ method: 'GET', url: '/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.body).toContain('/dashboard/app.js');
    for (const [url, type] of [['/dashboard/app.js', /javascript/], ['/dashboard/style.css', /text\/css/]] as const) {
      const res = await c.orch.app.inject({ method: 'GET', url });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(type);
    }
  });
});

describe('request ids in the logs', () => {
  const lines = (text: string[]): Array<Record<string, unknown>> =>
    text.flatMap((chunk) => chunk.split('\n')).filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
  const workerLog = (id: string): string[] => [readFileSync(path.join(c.dataDir, c.namespace, id, 'worker.log'), 'utf8')];

  it('carries the request id of a write and of a read into the worker that served it', async () => {
    const w = await c.orch.app.inject({ method: 'POST', url: '/api/v1/db/write', payload: { table: 'logs', operation: 'insert', data: { a: 1 } } });
    expect(w.statusCode).toBe(200);
    const writeId = w.headers['x-request-id'] as string;
    expect(writeId).toMatch(/^[0-9a-f-]{36}$/);
    const seq = (w.json() as { seq: number }).seq;
    const r = await c.orch.app.inject({ method: 'POST', url: '/api/v1/db/read', payload: { table: 'logs', afterSeq: seq } });
    expect(r.statusCode).toBe(200);
    const readId = r.headers['x-request-id'] as string;

    await eventually(() => lines(orchestratorLog).some((l) => l.reqId === readId && l.msg === 'request'), 5000, 'the orchestrator request line');
    const orchLine = lines(orchestratorLog).find((l) => l.reqId === writeId && l.msg === 'request');
    expect(orchLine).toMatchObject({ method: 'POST', url: '/api/v1/db/write', status: 200 });

    const workers = c.orch.cluster.workersDetail();
    const master = workers.find((x) => x.role === 'master');
    const slave = workers.find((x) => x.role === 'slave');
    await eventually(() => lines(workerLog(master!.id)).some((l) => l.reqId === writeId), 5000, "the master's line");
    expect(lines(workerLog(master!.id)).find((l) => l.reqId === writeId)).toMatchObject({ msg: 'write applied', seq });
    await eventually(() => lines(workerLog(slave!.id)).some((l) => l.reqId === readId), 5000, "the slave's line");
    expect(lines(workerLog(slave!.id)).find((l) => l.reqId === readId)).toMatchObject({ msg: 'read answered', table: 'logs' });
  });
});
