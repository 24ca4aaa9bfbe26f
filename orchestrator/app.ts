/**
 * The HTTP API. `buildApp()` is separate from listening so tests use `inject()`.
 *
 * The routes only validate, publish and await: every request either gets the
 * worker's answer, a 4xx for bad input (nothing queued), a 503 when there is no
 * master/slave/broker, or a 504 when the worker is too slow. Never a stack trace.
 */
import { randomUUID } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { OrchestratorConfig } from '../common/config.js';
import { DbaasError, httpErrorBody } from '../common/errors.js';
import { clientMessage } from '../common/client-message.js';
import { describeJsonErrorAt, invalidUtf8Offset } from '../common/json-position.js';
import type { Logger } from '../common/logger.js';
import type { ReadEnvelope, WriteEnvelope } from '../common/messages.js';
import { MAX_REQUEST_AGE_MS, REQUEST_AGE_HEADER, timedRequestId } from '../common/request-time.js';
import { WIRE_VERSION } from '../common/messages.js';
import type { ClusterNames } from '../common/names.js';
import type { TableInfo, WriteRequest } from '../common/commands.js';
import { HINT_HEADER } from '../common/hints.js';
import { registerIndexRoutes, tablesMessage } from './index-routes.js';
import { parseClearBody, parseReadBody, parseWriteBody } from '../common/validation.js';
import { CRASH_BODY, EVENTS_QUERY, SWITCHOVER_BODY, scaleBody } from './admin-bodies.js';
import type { AuditLog } from './audit-log.js';
import type { Metrics } from './metrics.js';
import { operabilityPlugin } from './operability.js';
import { makeGuards } from './auth.js';
import type { Autoscaler } from './autoscaler.js';
import type { ClusterManager } from './cluster.js';
import type { RequestRouter } from './request-router.js';
import type { ClusterView } from '../coordination/cluster-view.js';
import { RawJson, type RpcClient } from './rpc-client.js';
import type { Verifier } from './verify.js';
import type { LeaderElection } from '../coordination/leader-election.js';
import { forwardTimeoutMs, leaderOnly, registerOrchestratorRoutes } from './leader-routes.js';
import type { SharedAudit } from './shared-audit.js';
import type { DatabaseStore } from '../coordination/database-store.js';
import { admit, databaseOf, registerDatabaseRoutes } from './database-routes.js';
import { registerBackupRoute } from './backup-route.js';
import { splitTable } from '../common/databases.js';
import type { PlatformStore } from '../coordination/platform-store.js';
import { registerPlatformRoute } from './platform-route.js';

export interface AppDeps {
  config: OrchestratorConfig;
  names: ClusterNames;
  rpc: RpcClient;
  cluster: ClusterManager;
  /** Where requests go: the master (waited for through a failover) or the slaves (cluster.ts's router). */
  router: Pick<RequestRouter, 'requireMaster' | 'readRoute' | 'readFrom' | 'ready'>;
  view: ClusterView;
  audit: AuditLog;
  /** Counts `db/read` requests; nothing else counts. */
  autoscaler: Autoscaler;
  metrics: Metrics;
  verifier: Verifier;
  /** Several orchestrators: admin actions only the leader carries out are forwarded to it. */
  election?: LeaderElection;
  /** The namespace's audit log in ZooKeeper, shared by its orchestrators and kept across restarts. */
  sharedAudit?: SharedAudit;
  /** The namespace's databases (issue 20); absent: only `default` exists. */
  databases?: DatabaseStore;
  /** What the lifecycle manager publishes about the platform (GET /api/v1/platform). */
  platform?: PlatformStore;
  /** True while the orchestrator still starts (listen-early: it serves during its election and cluster start); /readyz is then 503. */
  starting?: () => boolean;
  logger: Logger;
}

/** Maps fastify's own errors onto the catalogue. */
function fromFastifyError(err: FastifyError): DbaasError {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new DbaasError('DBAAS_REQ_BODY_TOO_LARGE');
    default:
      if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
        return new DbaasError('DBAAS_REQ_INVALID', err.message);
      }
      return new DbaasError('DBAAS_SERVER_INTERNAL');
  }
}

/**
 * Every answer to a write names the write's `requestId` (the client's, or the one
 * generated for it) in this header, and an error answer also in its body, so a
 * plain HTTP client can retry a 503 or 504 safely with the same id.
 */
export const WRITE_REQUEST_ID_HEADER = 'x-write-request-id';

/**
 * On `GET /api/v1/workers/list` and `GET /api/v1/workers`, while the last worker start failed:
 * when, the role, the worker id and why (its storage's own words when it could not start).
 */
export const START_FAILURE_HEADER = 'x-dbaas-start-failure';

/** `text` as a header value: printable ASCII only, at most 2,000 characters. */
function headerText(text: string): string {
  const ascii = text.replace(/[^\x20-\x7e]/g, '?');
  return ascii.length > 2000 ? `${ascii.slice(0, 2000)}...` : ascii;
}

const WRITE_ROUTES = new Set(['/api/v1/db/write', '/api/v1/db/clear', '/api/v1/db/indexes']);

/** The client's `x-dbaas-request-age-ms` (see common/request-time.ts), or undefined when absent; 400 when malformed. */
function requestAge(raw: string | string[] | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const age = typeof raw === 'string' && /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
  if (!(age <= MAX_REQUEST_AGE_MS)) throw new DbaasError('DBAAS_REQ_INVALID', `${REQUEST_AGE_HEADER} must be an integer from 0 to ${MAX_REQUEST_AGE_MS} (ms since the first attempt)`);
  return age;
}

const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;

/** The most of an unread body drained after an early refusal (drainRest); Node's whole-request timeout bounds the time. */
export const DRAIN_LIMIT_BYTES = 128 * 1_048_576;

/**
 * A refusal sent before the body was read (413 on its Content-Length, 401 before the body): the client is still
 * sending. Closing now (fastify's `Connection: close` on a 413) made the kernel answer its next bytes with a reset,
 * so it saw EPIPE or ECONNRESET instead of the answer. As Node does for an unread body, and nginx's lingering close,
 * the rest is read and dropped (at most DRAIN_LIMIT_BYTES, within DBAAS_HTTP_REQUEST_TIMEOUT_MS); the connection
 * stays usable once the body has ended, or closes then if the client asked to close.
 */
function drainRest(reply: FastifyReply): void {
  const raw = reply.request.raw;
  if (raw.complete) return;
  reply.removeHeader('connection');
  const socket = raw.socket;
  let dropped = 0;
  raw.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > DRAIN_LIMIT_BYTES) socket.destroy();
  });
  // A client that asked to close (Connection: close): Node ends the socket after the answer and destroys it as soon
  // as that is flushed, which resets the rest of the body; the destroy waits for the body's end instead.
  reply.raw.once('finish', () => {
    if (raw.complete || !socket.writableEnded) return;
    socket.removeListener('finish', socket.destroy);
    raw.once('end', () => socket.destroy());
  });
}

function sendError(reply: FastifyReply, err: DbaasError): FastifyReply {
  drainRest(reply);
  if (err.status === 503) reply.header('Retry-After', '1');
  const requestId = reply.getHeader(WRITE_REQUEST_ID_HEADER);
  return reply.code(err.status).send(httpErrorBody(err, typeof requestId === 'string' ? { requestId } : undefined));
}

/**
 * A request that never became one (not HTTP, headers over Node's limit, not finished in time) is
 * answered on the socket, then closed, with the dbaas error shape like every other refusal.
 */
function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const refusal =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? new DbaasError('DBAAS_REQ_TIMEOUT')
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? new DbaasError('DBAAS_REQ_HEADERS_TOO_LARGE')
        : new DbaasError('DBAAS_REQ_INVALID', `the request is not valid HTTP/1.1 (${err.code ?? 'parse error'})`);
  const body = JSON.stringify(httpErrorBody(refusal));
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status] ?? ''}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy();
}

/** How often Node looks for requests past their header or whole-request deadline (its default, 30 s, would let them overrun by that much). */
export function connectionsCheckingIntervalMs(headersTimeoutMs: number): number {
  return Math.min(1000, Math.max(100, Math.floor(headersTimeoutMs / 4)));
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { config, names, rpc, cluster, router, view, audit } = deps;
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: config.bodyLimitBytes,
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => randomUUID(),
    // A route's trailing slash should not be a 404.
    routerOptions: { ignoreTrailingSlash: true },
    // While closing, answer with our own 503 (code and Retry-After), not fastify's.
    return503OnClosing: false,
    // Slow clients: headers, then the whole request, must arrive in time, else Node answers 408 and closes
    // the connection; an idle keep-alive connection is closed. Without these a client that never finishes
    // its request holds a socket (and a file descriptor) forever.
    requestTimeout: config.httpRequestTimeoutMs,
    keepAliveTimeout: config.httpKeepAliveTimeoutMs,
    maxRequestsPerSocket: config.httpMaxRequestsPerSocket,
    // What never reaches a route gets the dbaas error shape too: a request that is not HTTP, too large
    // headers, one unfinished in time (answerClientError), a URL with a bad percent-escape.
    clientErrorHandler: answerClientError,
    frameworkErrors: (err, _request, reply) => {
      void sendError(reply, new DbaasError('DBAAS_REQ_INVALID', `the URL is not valid (${err.code}): ${err.message.slice(0, 200)}`));
    },
    http: {
      headersTimeout: config.httpHeadersTimeoutMs,
      requestTimeout: config.httpRequestTimeoutMs,
      connectionsCheckingInterval: connectionsCheckingIntervalMs(config.httpHeadersTimeoutMs),
    },
  });

  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (request) => {
    // A write says so itself, once it knows its requestId (a 503 on a write always names it).
    if (closing && !request.url.startsWith('/healthz') && !WRITE_ROUTES.has(request.routeOptions.url ?? '')) throw new DbaasError('DBAAS_SHUTTING_DOWN');
  });

  // Bodies are JSON whatever the content type says (curl -d sends form encoding), and may be empty.
  app.removeAllContentTypeParsers();
  // The bytes must be UTF-8 (JSON's encoding): decoded anyway, a bad byte would be stored as U+FFFD, not refused.
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => {
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    if (!isUtf8(bytes)) {
      const at = invalidUtf8Offset(bytes) ?? 0;
      done(new DbaasError('DBAAS_REQ_INVALID_JSON', `the request body is not valid UTF-8: byte 0x${(bytes[at] ?? 0).toString(16)} at offset ${at}`) as unknown as FastifyError, undefined);
      return;
    }
    const text = bytes.toString('utf8');
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    try {
      done(null, JSON.parse(text));
    } catch {
      done(new DbaasError('DBAAS_REQ_INVALID_JSON', `the request body is not valid JSON${describeJsonErrorAt(text)}`) as unknown as FastifyError, undefined);
    }
  });

  // One line per request: successes at debug (they are the bulk), failures at info.
  app.addHook('onResponse', async (request, reply) => {
    // request.log already carries reqId (fastify's child logger): not repeated here.
    const line = { method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) };
    if (reply.statusCode >= 400) request.log.info(line, 'request');
    else request.log.debug(line, 'request');
  });

  app.setErrorHandler((err: FastifyError | DbaasError, request, reply) => {
    const dbaasErr = err instanceof DbaasError ? err : fromFastifyError(err);
    // The log keeps the full text of what the client is told in words only (clientMessage: a storage's refusal too).
    if (dbaasErr.status >= 500 || clientMessage(dbaasErr.message) !== dbaasErr.message) request.log.warn({ err: err.message, code: dbaasErr.code }, 'request failed');
    return sendError(reply, dbaasErr);
  });

  // A known path with another method is a 405 naming the methods it takes (Allow), not a 404.
  app.setNotFoundHandler((request, reply) => {
    const path = (request.url.split('?', 1)[0] ?? request.url).replace(/(.)\/+$/, '$1');
    // findRoute matches a concrete path against parametric routes too (/db/databases/:name); hasRoute does not.
    const allow = HTTP_METHODS.filter((method) => app.findRoute({ method, url: path }) !== null);
    if (allow.length === 0) return sendError(reply, new DbaasError('DBAAS_ROUTE_NOT_FOUND', `no route ${request.method} ${request.url}`));
    reply.header('Allow', allow.join(', '));
    return sendError(reply, new DbaasError('DBAAS_ROUTE_METHOD_NOT_ALLOWED', `${path} takes ${allow.join(', ')}, not ${request.method}`));
  });

  // Guards run as onRequest hooks: before the body is read and parsed (an anonymous 900 kB body costs no parse).
  const { requireAdmin, requireApiKey, requirePageKey } = makeGuards(config);
  // OpenAPI (/docs), metrics (/metrics) and the dashboard (/): before the routes, so that docs and metrics cover them all.
  await app.register(operabilityPlugin, { metrics: deps.metrics, logger: deps.logger, guard: requireApiKey, pageGuard: requirePageKey });

  const write = async (req: WriteRequest, request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    // A requestId made here tells its time, and the envelope says when this attempt came (common/request-time.ts).
    const requestId = req.requestId ?? timedRequestId();
    reply.header(WRITE_REQUEST_ID_HEADER, requestId);
    if (closing) throw new DbaasError('DBAAS_SHUTTING_DOWN');
    const at = Date.now();
    const age = requestAge(request.headers[REQUEST_AGE_HEADER]);
    const envelope: WriteEnvelope = { v: WIRE_VERSION, requestId, command: req.command, at, ...(age === undefined ? {} : { askedAt: at - age }) };
    await router.requireMaster();
    return rpc.call(names.writeQueue, envelope, { timeoutMs: config.requestTimeoutMs, persistent: true, reqId: request.id });
  };

  // Each data request is for one database: its key must reach it, and it must exist (database-routes.ts).
  app.post('/api/v1/db/write', { onRequest: requireApiKey }, async (request, reply) => {
    const req = parseWriteBody(request.body);
    await admit(deps.databases, request, databaseOf(req.command) ?? '', 'readwrite');
    return write(req, request, reply);
  });
  app.post('/api/v1/db/clear', { onRequest: requireAdmin }, async (request, reply) => {
    const req = parseClearBody(request.body);
    const database = databaseOf(req.command);
    if (database !== undefined) await admit(deps.databases, request, database, 'readwrite');
    return write(req, request, reply);
  });
  registerDatabaseRoutes(app, { store: deps.databases, requireAdmin, requireApiKey, write, maxDatabases: config.maxDatabases });
  registerBackupRoute(app, { namespace: config.namespace, rpc, view, requireAdmin, write, waitMs: config.verifyWaitMs, logger: deps.logger });

  // Fault drills: the answer is the killed worker's pid; recovery runs on its own.
  // Only the leader acts on workers: a follower forwards these to it (orchestrator/leader-routes.ts).
  const toLeader = deps.election ? leaderOnly(deps.election, forwardTimeoutMs(config.verifyWaitMs)) : async (): Promise<void> => undefined;
  if (deps.election) registerOrchestratorRoutes(app, deps.election, requireApiKey);
  if (deps.platform) registerPlatformRoute(app, deps.platform, config, requireApiKey);
  for (const role of ['master', 'slave'] as const) {
    app.post(`/api/v1/crash/${role}`, { onRequest: requireAdmin, preHandler: toLeader }, async (request) => {
      CRASH_BODY.parse(request.body);
      return [String(await cluster.crash(role))];
    });
  }

  // Manual override of the slave target; the next autoscaling window decides again.
  // The body validates and documents itself (admin-bodies.ts), with this orchestrator's bounds.
  const scale = scaleBody(config.minSlaves, config.maxSlaves);
  app.post('/api/v1/scale', { schema: { body: scale.schema }, onRequest: requireAdmin, preHandler: toLeader }, async (request) => {
    const slaves = scale.parse(request.body);
    const before = cluster.targetSlaves;
    const target = cluster.scaleTo(slaves, 'manual override');
    audit.record('scaling', `manual override: slave target ${before} → ${target}`, { details: { previous: before, target, manual: true } });
    return { targetSlaves: target };
  });
  app.get('/api/v1/scale', { onRequest: requireApiKey }, async () => deps.autoscaler.status());

  // Planned switchover: the master hands over to a caught-up slave (optional `target`: worker id or pid).
  app.post('/api/v1/switchover', { onRequest: requireAdmin, preHandler: toLeader }, async (request) => cluster.switchover(SWITCHOVER_BODY.parse(request.body)));

  app.get('/api/v1/events', { onRequest: requireApiKey }, async (request) => {
    const after = EVENTS_QUERY.parse(request.query);
    return deps.sharedAudit ? deps.sharedAudit.list(after) : audit.list(after);
  });

  // Replica checksums at one seq; divergent slaves are marked for replacement (verify.ts).
  app.get('/api/v1/verify', { onRequest: requireAdmin, preHandler: toLeader }, async (request) => deps.verifier.run('manual', request.id));

  // Reads one named replica (master or slave) directly, to check replicas against each other.
  app.post<{ Params: { id: string } }>('/api/v1/workers/:id/read', { onRequest: requireAdmin }, async (request) => {
    const command = parseReadBody(request.body);
    return router.readFrom(request.params.id, command, request.id);
  });

  app.post('/api/v1/db/read', { onRequest: requireApiKey }, async (request, reply) => {
    const command = parseReadBody(request.body);
    await admit(deps.databases, request, splitTable(command.table).database, 'read');
    // Only a valid read counts toward autoscaling: refused ones must not buy slaves.
    deps.autoscaler.onRead();
    const route = router.readRoute();
    if (route.to === 'master') return router.readFrom(route.id, command, request.id);
    const envelope: ReadEnvelope = { v: WIRE_VERSION, command };
    const result = await rpc.call(names.readQueue, envelope, {
      reqId: request.id,
      timeoutMs: config.requestTimeoutMs,
      timeoutCode: command.afterSeq !== undefined ? 'DBAAS_READ_SEQ_TIMEOUT' : 'DBAAS_RPC_TIMEOUT',
      raw: true,
    });
    // The slave's JSON text goes out as it came: no parse and re-encode of a large result.
    if (result instanceof RawJson) {
      // A read of a table that does not exist still answers [] (issue 17): the hint says why.
      if (result.hint !== undefined) reply.header(HINT_HEADER, result.hint);
      return reply.type('application/json; charset=utf-8').send(result.json);
    }
    return result;
  });

  // A follower first reads the host pids of workers registered since it last looked (workers in containers say pid 1).
  const listPids = async (_request: FastifyRequest, reply: FastifyReply): Promise<number[]> => {
    await cluster.refreshPids();
    startFailureHeader(reply);
    return cluster.pids();
  };
  /** The body stays the course's list of pids: a worker whose start failed, and why (in words a client may see, as error bodies say it), goes in a header. */
  const startFailureHeader = (reply: FastifyReply): void => {
    const failure = cluster.startFailure();
    if (failure) reply.header(START_FAILURE_HEADER, headerText(`${failure.at} ${failure.role} ${failure.id}: ${clientMessage(failure.message)}`));
  };
  app.get('/api/v1/workers/list', { onRequest: requireApiKey }, listPids);
  app.get('/api/v1/worker/list', { onRequest: requireApiKey }, listPids);

  // Indexes through the write path, and the tables view from the master (issue 17).
  registerIndexRoutes(app, {
    requireApiKey,
    write,
    admit: (request, database, access) => admit(deps.databases, request, database, access),
    tables: async (table, reqId) => {
      const master = await router.requireMaster();
      return (await rpc.call(names.controlQueue(master.id), tablesMessage(table), { timeoutMs: config.requestTimeoutMs, reqId })) as TableInfo[];
    },
  });
  app.get('/api/v1/workers', { onRequest: requireApiKey }, async (_request, reply) => {
    await cluster.refreshPids();
    startFailureHeader(reply);
    return cluster.workersDetail(); // id, role, pid, state, appliedSeq, lag
  });

  // listen-early: 503 while the orchestrator is still starting, as the refused connection it replaces was: the
  // lifecycle manager counts an orchestrator that exits before its /healthz ever answered 200 as one that could not start.
  app.get('/healthz', async (_request, reply) => (deps.starting?.() === true ? reply.code(503).send({ ok: false, starting: true }) : { ok: true }));
  app.get('/readyz', async (_request, reply) => {
    // listen-early: the data path may already answer, but an orchestrator still starting is not ready.
    const starting = deps.starting?.() === true;
    const body = {
      ready: !starting && router.ready(),
      ...(starting ? { starting: true } : {}),
      broker: rpc.connected,
      master: view.master?.id ?? null,
      servingSlaves: view.servingSlaves().length,
    };
    return reply.code(body.ready ? 200 : 503).send(body);
  });

  return app;
}
