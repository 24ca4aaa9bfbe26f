/**
 * The HTTP side of several orchestrators: admin actions that only the leader
 * may carry out are forwarded to it by a follower, and every orchestrator
 * lists the others.
 *
 * A follower forwards the request as it came (method, path, body, the
 * Authorization header) to the URL the leader registered and answers with the
 * leader's answer, so a client sees the same result whichever orchestrator it
 * asked. A forwarded request is marked; one that reaches a non-leader again
 * (the leadership moved meanwhile) gets 503 DBAAS_CLUSTER_NO_LEADER instead of
 * bouncing, and so does a request while no orchestrator leads.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DbaasError } from '../common/errors.js';
import type { Guard } from './auth.js';
import type { LeaderElection } from '../coordination/leader-election.js';

const FORWARDED_HEADER = 'x-dbaas-forwarded-by';
const FORWARD_TIMEOUT_MS = 60_000;

/** A preHandler: lets the leader go on, forwards a follower's request to the leader and sends its answer. */
export function leaderOnly(election: LeaderElection): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  return async (request, reply) => {
    if (election.isLeader) return;
    if (request.headers[FORWARDED_HEADER] !== undefined) {
      throw new DbaasError('DBAAS_CLUSTER_NO_LEADER', 'the orchestrator this request was forwarded to no longer leads; retry');
    }
    const leader = await election.leader().catch(() => undefined);
    if (!leader?.url || leader.token === election.me.token) throw new DbaasError('DBAAS_CLUSTER_NO_LEADER', 'no orchestrator leads right now (an election is under way); retry');
    const headers: Record<string, string> = { [FORWARDED_HEADER]: election.me.url || String(election.me.pid) };
    if (typeof request.headers.authorization === 'string') headers.authorization = request.headers.authorization;
    const hasBody = request.method !== 'GET' && request.body !== undefined;
    if (hasBody) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(new URL(request.url, leader.url), {
        method: request.method,
        headers,
        ...(hasBody ? { body: JSON.stringify(request.body) } : {}),
        signal: AbortSignal.timeout(FORWARD_TIMEOUT_MS),
      });
    } catch (err) {
      throw new DbaasError('DBAAS_CLUSTER_NO_LEADER', `the leader at ${leader.url} did not answer (${(err as Error).message}); retry`);
    }
    const text = await res.text();
    reply.code(res.status).header('content-type', res.headers.get('content-type') ?? 'application/json');
    const retryAfter = res.headers.get('retry-after');
    if (retryAfter) reply.header('retry-after', retryAfter);
    reply.header('x-dbaas-leader', leader.url);
    await reply.send(text);
  };
}

/** `GET /api/v1/orchestrators`: every orchestrator of the namespace, which one leads, and its epoch. */
export function registerOrchestratorRoutes(app: FastifyInstance, election: LeaderElection, guard: Guard): void {
  app.get('/api/v1/orchestrators', { onRequest: guard }, async () => {
    const [members, leader] = await Promise.all([election.members(), election.leader()]).catch((err: unknown) => {
      throw new DbaasError('DBAAS_COORDINATION_UNAVAILABLE', `the orchestrators could not be listed: ${(err as Error).message}`);
    });
    return {
      leader: leader ? { url: leader.url, pid: leader.pid, host: leader.host, epoch: leader.epoch } : null,
      orchestrators: members.map((m) => ({
        url: m.url,
        host: m.host,
        pid: m.pid,
        port: m.port,
        startedAt: m.startedAt,
        leader: leader !== undefined && m.token === leader.token,
        self: m.token === election.me.token,
      })),
    };
  });
}
