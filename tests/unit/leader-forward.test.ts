import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { DbaasError, httpErrorBody } from '../../common/errors.js';
import type { LeaderElection } from '../../coordination/leader-election.js';
import { forwardTimeoutMs, leaderOnly } from '../../orchestrator/leader-routes.js';

// A follower's forward of a leader-only action to the leader (orchestrator/leader-routes.ts), over real sockets:
// the leader is a plain HTTP server that answers late, at once, or not at all.
const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

async function leaderServer(delayMs: number): Promise<string> {
  const server = http.createServer((req, res) => {
    const timer = setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'), delayMs);
    res.on('close', () => clearTimeout(timer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise((resolve) => server.close(resolve).closeAllConnections()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function follower(leaderUrl: string, timeoutMs: number): Promise<FastifyInstance> {
  const election = {
    isLeader: false,
    me: { token: 'me', url: 'http://127.0.0.1:1', pid: process.pid },
    leader: async () => ({ token: 'other', url: leaderUrl }),
  } as unknown as LeaderElection;
  const app = Fastify();
  app.setErrorHandler((err, _request, reply) => {
    if (err instanceof DbaasError) return reply.code(err.status).send(httpErrorBody(err));
    return reply.code(500).send({ error: { code: 'DBAAS_SERVER_INTERNAL' } });
  });
  app.get('/api/v1/verify', { preHandler: leaderOnly(election, timeoutMs) }, async () => ({ here: true }));
  closers.push(() => app.close());
  return app;
}

describe("a follower's forward to the leader", () => {
  it('waits past the longest verify wait', () => {
    expect(forwardTimeoutMs(60_000)).toBeGreaterThan(60_000);
    expect(forwardTimeoutMs(600_000)).toBeGreaterThan(600_000);
  });

  it("answers with the leader's answer", async () => {
    const app = await follower(await leaderServer(0), 2_000);
    const res = await app.inject({ method: 'GET', url: '/api/v1/verify' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ ok: true });
    expect(res.headers['x-dbaas-leader']).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('is a 504 DBAAS_LEADER_TIMEOUT when the leader takes the request and answers too late, not a 503 "no leader"', async () => {
    const app = await follower(await leaderServer(5_000), 300);
    const res = await app.inject({ method: 'GET', url: '/api/v1/verify' });
    expect(res.statusCode).toBe(504);
    expect(res.json().error.code).toBe('DBAAS_LEADER_TIMEOUT');
  });

  it('is a 503 DBAAS_CLUSTER_NO_LEADER when the leader cannot be reached', async () => {
    const url = await leaderServer(0);
    await closers.pop()?.();
    const app = await follower(url, 2_000);
    const res = await app.inject({ method: 'GET', url: '/api/v1/verify' });
    expect(res.statusCode).toBe(503);
    expect(res.json().error.code).toBe('DBAAS_CLUSTER_NO_LEADER');
  });
});
