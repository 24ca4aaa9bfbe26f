/**
 * `POST /api/v1/backup` (admin, issue 20): a consistent backup at one seq,
 * taken on a slave, streamed as the archive of common/backup-format.ts.
 *
 * 1. This orchestrator declares a queue of its own for the backup, then sends a
 *    `verify` checkpoint through the write path naming the backup, a serving
 *    slave and that queue: the checkpoint gets seq S, like any write.
 * 2. The slave, when its data is exactly S, sends every table to the queue
 *    before it applies anything newer (worker/backup.ts). The master only
 *    orders the checkpoint: its write path carries no scan, no copy.
 * 3. The parts are gzip-compressed into the HTTP answer as they come, each
 *    acked in the broker only once written out, so a slow reader holds the
 *    stream back in the broker rather than in this process.
 *
 * A failure before the first byte is an ordinary JSON error. Once the archive
 * streams, a failure (the slave died, no part within DBAAS_VERIFY_WAIT_MS)
 * ends the answer early: the archive then has no manifest line, and a restore
 * refuses it.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createGzip } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { BackupPart } from '../common/backup-format.js';
import type { WriteRequest, WriteResult } from '../common/commands.js';
import { DbaasError, isErrorCode, type ErrorCode } from '../common/errors.js';
import { fail, isPlainObject } from '../common/json-shape.js';
import type { Logger } from '../common/logger.js';
import type { ClusterView } from '../coordination/cluster-view.js';
import type { RouteDoc } from './api-docs.js';
import type { Guard } from './auth.js';
import type { RpcClient } from './rpc-client.js';

export interface BackupRouteDeps {
  namespace: string;
  rpc: Pick<RpcClient, 'openStream'>;
  view: Pick<ClusterView, 'servingSlaves'>;
  requireAdmin: Guard;
  write: (req: WriteRequest, request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
  /** How long to wait for the slave's next part (DBAAS_VERIFY_WAIT_MS). */
  waitMs: number;
  logger: Logger;
}

const DOC: RouteDoc = {
  tags: ['data', 'admin'],
  security: [{ adminToken: [] }],
  summary: 'Backup: every database at one seq, taken on a slave, as a gzip-compressed NDJSON archive with a manifest',
  description:
    'The archive (docs/API.md, "Backup and restore"): a head line {dbaasBackup: 1, id, seq, term, takenAt, from, tables}, one line {t, d} per document, and a manifest line {manifest: {seq, term, takenAt, documents, tables: {name: {count, sum}}, indexes}}. Headers: x-dbaas-backup-seq. Restore with `dbaas restore`.',
  produces: ['application/gzip'],
};

/** The body: nothing, `{}`, or `{"oplogAfter": <seq>}` (also send the oplog entries after that seq). */
function parseBackupBody(body: unknown): number | undefined {
  if (body === undefined) return undefined;
  if (!isPlainObject(body)) fail('DBAAS_REQ_INVALID', 'body', 'must be {} or {"oplogAfter": <seq>}');
  const extra = Object.keys(body).filter((k) => k !== 'oplogAfter');
  if (extra.length > 0) fail('DBAAS_REQ_UNKNOWN_FIELD', extra[0] as string, 'is not a field of this body (only oplogAfter)');
  const after = body['oplogAfter'];
  if (after === undefined) return undefined;
  if (typeof after !== 'number' || !Number.isSafeInteger(after) || after < 0) fail('DBAAS_REQ_INVALID', 'oplogAfter', 'must be a seq (an integer from 0)');
  return after;
}

export function registerBackupRoute(app: FastifyInstance, deps: BackupRouteDeps): void {
  app.post('/api/v1/backup', { schema: DOC, onRequest: deps.requireAdmin }, async (request, reply) => {
    // Bad input is a 400 whatever the cluster's state (not a 503 for want of a slave).
    const oplogAfter = parseBackupBody(request.body);
    const slave = deps.view.servingSlaves()[0];
    if (!slave) throw new DbaasError('DBAAS_CLUSTER_NO_SLAVE', 'a backup is taken on a serving slave, and there is none');
    const id = `b${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
    const queue = `${deps.namespace}.backup.${id}`;
    const gz = createGzip();
    // fail() destroys gz with the reason (already logged): before the answer starts, no one else listens, and an
    // 'error' event with no listener would end the process (E's fault run: the slave's PostgreSQL was down).
    gz.on('error', () => undefined);
    let next = 0;
    let idle: NodeJS.Timeout | undefined;
    let firstPart: (() => void) | undefined;
    let failFirst: ((err: Error) => void) | undefined;
    const started = new Promise<void>((resolve, reject) => {
      firstPart = resolve;
      failFirst = reject;
    });
    started.catch(() => undefined);
    /** Ends the backup: before the first part, as the answer (`code`); after it, by cutting the archive short. */
    const fail = (why: string, code: ErrorCode = 'DBAAS_RPC_TIMEOUT'): void => {
      deps.logger.warn({ backup: id, why, code }, 'backup stream ended early');
      failFirst?.(new DbaasError(code, `backup ${id}: ${why}`));
      gz.destroy(new Error(why));
      void stream.close();
    };
    const armIdle = (): void => {
      clearTimeout(idle);
      idle = setTimeout(() => fail(`no part from slave ${slave.id} within ${deps.waitMs} ms`), deps.waitMs);
    };
    const stream = await deps.rpc.openStream(queue, deps.waitMs * 4, async (content) => {
      const part = JSON.parse(content.toString('utf8')) as BackupPart;
      if (part.id !== id || part.part !== next) return fail(`part ${part.part} of ${part.id} out of order (expected ${next})`, 'DBAAS_BACKUP_FAILED');
      next += 1;
      // What the slave refused or failed at comes back as such (a retryable 504 before).
      if (part.error !== undefined) return fail(`the slave failed: ${part.error}`, part.code !== undefined && isErrorCode(part.code) ? part.code : 'DBAAS_BACKUP_FAILED');
      armIdle();
      firstPart?.();
      for (const line of part.lines) if (!gz.write(`${JSON.stringify(line)}\n`)) await once(gz, 'drain');
      if (part.last) {
        clearTimeout(idle);
        gz.end();
        await stream.close();
      }
    });
    gz.on('close', () => {
      clearTimeout(idle);
      void stream.close();
    });
    let result: WriteResult;
    try {
      const backup = { id, worker: slave.id, queue, ...(oplogAfter === undefined ? {} : { oplogAfter }) };
      result = (await deps.write({ command: { kind: 'verify', backup } }, request, reply)) as WriteResult;
      armIdle();
      await started;
    } catch (err) {
      clearTimeout(idle);
      await stream.close();
      throw err;
    }
    return reply
      .header('content-type', 'application/gzip')
      .header('content-disposition', `attachment; filename="dbaas-backup-${result.seq}.ndjson.gz"`)
      .header('x-dbaas-backup-seq', String(result.seq))
      .send(gz);
  });
}
