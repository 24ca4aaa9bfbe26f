/**
 * What operators use beside the data API, registered by `buildApp()` before its
 * routes so that the OpenAPI document and the metrics cover every route:
 *   - OpenAPI at `/docs` (UI) and `/docs/json`, from route schemas (`api-docs.ts`);
 *   - Prometheus metrics at `GET /metrics` (`metrics.ts`), one observation per request;
 *   - the dashboard at `GET /` and its rate history at `GET /api/v1/stats` (`dashboard.ts`).
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Logger } from '../common/logger.js';
import { API_KEY, documentRoute, openApiOptions, type RouteDoc } from './api-docs.js';
import type { Guard } from './auth.js';
import { dashboardRoutes } from './dashboard.js';
import type { Metrics } from './metrics.js';

export interface OperabilityOptions {
  metrics: Metrics;
  logger: Logger;
  /** Guards /metrics and /api/v1/stats like the other cluster-information endpoints (API keys, when set). */
  guard: Guard;
  /** Guards the pages: /docs, /docs/json and the dashboard (API keys, unless DBAAS_PUBLIC_DOCS=1). */
  pageGuard: Guard;
}

const METRICS_DOC: RouteDoc = {
  tags: ['ops'],
  security: API_KEY,
  summary: 'Prometheus metrics (text exposition format)',
  description:
    'Requests by route and status, latency histograms, RPC round trips, queue depths, workers by role and state, replication lag, failovers, scaling decisions, broker and ZooKeeper reconnects. See docs/OPERATIONS.md.',
  produces: ['text/plain'],
  response: { 200: { type: 'string', description: 'text/plain; version=0.0.4' } },
};

async function operability(app: FastifyInstance, opts: OperabilityOptions): Promise<void> {
  // First, so that route schemas are attached (and made documentation-only) before swagger collects them.
  app.addHook('onRoute', documentRoute);
  await app.register(swagger, openApiOptions());
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { docExpansion: 'list', deepLinking: true },
    // Every route of the UI, /docs/json included: the schema tells as much about the service as the API does.
    uiHooks: { onRequest: (request, reply, done) => void opts.pageGuard(request, reply).then(() => done(), done) },
  });

  // Every answer names its request id, the key to the orchestrator's and the worker's log lines of that request.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    done();
  });
  const { metrics } = opts;
  app.addHook('onResponse', (request, reply, done) => {
    metrics.observeRequest(request.method, request.routeOptions.url, reply.statusCode, reply.elapsedTime / 1000);
    done();
  });
  app.get('/metrics', { schema: METRICS_DOC, onRequest: opts.guard }, async (_request, reply) => {
    const { contentType, body } = await metrics.render();
    return reply.type(contentType).send(body);
  });

  await app.register(dashboardRoutes, opts);
}

/** Not encapsulated: its hooks must see the routes `buildApp()` declares after it. */
export const operabilityPlugin = fp(operability, { name: 'dbaas-operability', fastify: '5.x' });
