/**
 * Every answer to a write names its requestId (issue 13.5): a 503 before the
 * write is queued (no master) and a 504 after it (no answer in time) carry it in
 * the body and in x-write-request-id, the client's own or the generated one.
 * The app is built with stand-ins for the cluster and the broker.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrchestratorConfig } from '../../common/config.js';
import { DbaasError } from '../../common/errors.js';
import { createLogger } from '../../common/logger.js';
import { clusterNames } from '../../common/names.js';
import { buildApp, WRITE_REQUEST_ID_HEADER, type AppDeps } from '../../orchestrator/app.js';

let app: FastifyInstance;
let failWith: DbaasError;
let queued = 0;

beforeAll(async () => {
  const config = loadOrchestratorConfig({});
  const stub = <T>(o: object): T => o as T;
  const deps: AppDeps = {
    config,
    names: clusterNames('unit'),
    rpc: stub({
      connected: true,
      call: async () => {
        queued += 1;
        throw failWith;
      },
    }),
    cluster: stub({}),
    router: stub({
      requireMaster: async () => {
        if (failWith.status === 503) throw failWith;
      },
    }),
    view: stub({ master: undefined, servingSlaves: () => [] }),
    audit: stub({ list: () => [], record: () => undefined }),
    autoscaler: stub({ onRead: () => undefined, status: () => ({}) }),
    metrics: stub({ observeRequest: () => undefined, render: async () => ({ contentType: 'text/plain', body: '' }), rateSeries: () => ({}) }),
    verifier: stub({}),
    logger: createLogger('unit-app', 'silent'),
  };
  app = await buildApp(deps);
  await app.ready();
});
afterAll(async () => app?.close());

const write = (body: object) =>
  app.inject({ method: 'POST', url: '/api/v1/db/write', payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

describe('a failed write names its requestId', () => {
  it.each([
    ['DBAAS_CLUSTER_NO_MASTER', 503],
    ['DBAAS_BROKER_UNAVAILABLE', 503],
    ['DBAAS_RPC_TIMEOUT', 504],
  ] as const)('%s (%i): the client’s id, and a generated one, in the body and the header', async (code, status) => {
    failWith = new DbaasError(code);
    const mine = await write({ table: 't', operation: 'insert', data: { a: 1 }, requestId: 'unit-id-1' });
    expect(mine.statusCode).toBe(status);
    expect(mine.json().error).toMatchObject({ code, requestId: 'unit-id-1' });
    expect(mine.headers[WRITE_REQUEST_ID_HEADER]).toBe('unit-id-1');
    if (status === 503) expect(mine.headers['retry-after']).toBe('1');

    const generated = await write({ table: 't', operation: 'insert', data: { a: 1 } });
    expect(generated.statusCode).toBe(status);
    const id = generated.headers[WRITE_REQUEST_ID_HEADER] as string;
    // A generated requestId tells its time (common/request-time.ts), so a late retry of it is refused, not applied again.
    expect(id).toMatch(/^rq1-\d{13}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(generated.json().error.requestId).toBe(id);
  });

  it('a write refused for its shape has no id to name (nothing was queued)', async () => {
    failWith = new DbaasError('DBAAS_RPC_TIMEOUT');
    const before = queued;
    const res = await write({ table: 't' });
    expect(res.statusCode).toBe(400);
    expect(res.headers[WRITE_REQUEST_ID_HEADER]).toBeUndefined();
    expect(res.json().error.requestId).toBeUndefined();
    expect(queued).toBe(before);
  });
});
