/**
 * The dashboard at `GET /`: static HTML, JavaScript and CSS shipped in
 * `orchestrator/dashboard/` (copied next to the compiled code by `npm run
 * build`), plus `GET /api/v1/stats`, the read/write rate history it charts.
 * The page itself only calls the public API; nothing is built at run time.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Logger } from '../common/logger.js';
import type { Guard } from './auth.js';
import { API_KEY, HIDDEN, type RouteDoc } from './api-docs.js';
import type { Metrics } from './metrics.js';

export interface DashboardOptions {
  metrics: Metrics;
  logger: Logger;
  /** Guards the rate history like the other cluster-information endpoints. */
  guard: Guard;
  /** Guards the page and its script and style (API keys, unless DBAAS_PUBLIC_DOCS=1). */
  pageGuard: Guard;
}

const ASSETS = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
} as const;
type AssetName = keyof typeof ASSETS;

/** The page talks only to its own origin and runs only its own script. */
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/** Next to this module (source tree, or dist after `npm run build`), else the source tree seen from dist. */
export function findAssetDir(): string | undefined {
  const here = import.meta.dirname;
  const candidates = [path.join(here, 'dashboard'), path.resolve(here, '../../orchestrator/dashboard')];
  return candidates.find((dir) => existsSync(path.join(dir, 'index.html')));
}

const STATS_DOC: RouteDoc = {
  tags: ['ops'],
  security: API_KEY,
  summary: "Reads, writes and server errors per 5-second bucket over the last 10 minutes (the dashboard's chart)",
  response: {
    200: {
      type: 'object',
      properties: {
        rates: {
          type: 'object',
          properties: {
            bucketMs: { type: 'integer' },
            points: {
              type: 'array',
              description: 'Oldest first; the last bucket is the current, partial one (spanMs tells how much of it has passed)',
              items: {
                type: 'object',
                properties: {
                  t: { type: 'integer', description: 'Bucket start, ms since the epoch' },
                  spanMs: { type: 'integer' },
                  reads: { type: 'integer' },
                  writes: { type: 'integer' },
                  errors: { type: 'integer' },
                },
              },
            },
          },
        },
      },
    },
  },
};

export async function dashboardRoutes(app: FastifyInstance, opts: DashboardOptions): Promise<void> {
  const dir = findAssetDir();
  const assets = new Map<AssetName, Buffer>();
  if (dir) {
    for (const name of Object.keys(ASSETS) as AssetName[]) assets.set(name, readFileSync(path.join(dir, name)));
  } else {
    opts.logger.error('dashboard assets not found (orchestrator/dashboard/); GET / will answer 404 — rebuild with npm run build');
  }

  const serve = (name: AssetName) => async (_request: unknown, reply: FastifyReply) => {
    const body = assets.get(name);
    if (!body) return reply.code(404).type('text/plain').send('the dashboard is not installed: rebuild with npm run build');
    return reply.type(ASSETS[name]).header('content-security-policy', CSP).header('x-content-type-options', 'nosniff').header('cache-control', 'no-cache').send(body);
  };
  app.get('/', { schema: HIDDEN, onRequest: opts.pageGuard }, serve('index.html'));
  app.get('/dashboard/app.js', { schema: HIDDEN, onRequest: opts.pageGuard }, serve('app.js'));
  app.get('/dashboard/style.css', { schema: HIDDEN, onRequest: opts.pageGuard }, serve('style.css'));

  app.get('/api/v1/stats', { schema: STATS_DOC, onRequest: opts.guard }, async () => ({ rates: opts.metrics.rateSeries() }));
}
