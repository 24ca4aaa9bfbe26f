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
 * bouncing, and so does a request while no orchestrator leads or whose leader
 * cannot be reached. A leader that takes the request but does not answer in
 * time is slow, not gone: 504 DBAAS_LEADER_TIMEOUT. The time allowed covers the
 * longest the leader itself may take (a verify waits up to DBAAS_VERIFY_WAIT_MS
 * for the replicas, then hashes): a forward that gave up first answered 503
 * while the leader's verify was about to answer 200 (session 9's fault runs).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DbaasError } from '../common/errors.js';
import type { Guard } from './auth.js';
import type { LeaderElection } from '../coordination/leader-election.js';

const FORWARDED_HEADER = 'x-dbaas-forwarded-by';
/** Beyond the longest wait of a forwarded action (a verify's DBAAS_VERIFY_WAIT_MS): its own work, e.g. the hashing. */
const FORWARD_MARGIN_MS = 60_000;

/** How long a follower waits for the leader's answer to a forwarded request. */
export function forwardTimeoutMs(verifyWaitMs: number): number {
  return verifyWaitMs + FORWARD_MARGIN_MS;
}

/** A preHandler: lets the leader go on, forwards a follower's request to the leader and sends its answer. */
export function leaderOnly(election: LeaderElection, timeoutMs: number): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
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
    let text: string;
    try {
      res = await fetch(new URL(request.url, leader.url), {
        method: request.method,
        headers,
        ...(hasBody ? { body: JSON.stringify(request.body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = await res.text();
    } catch (err) {
      if ((err as Error).name === 'TimeoutError') throw new DbaasError('DBAAS_LEADER_TIMEOUT', `the leader did not answer within ${timeoutMs} ms`);
      throw new DbaasError('DBAAS_CLUSTER_NO_LEADER', `the leader at ${leader.url} did not answer (${(err as Error).message}); retry`);
    }
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
