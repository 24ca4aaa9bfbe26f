/**
 * A backup whose slave fails before the archive starts (E's fault run against
 * `npm start`, session 7): the slave's PostgreSQL was down, its backup failed
 * at once, and the orchestrator died of an unhandled 'error' event on the
 * archive's gzip stream, which no one listened to before the answer began.
 * A slave that sends nothing at all (stopped) took the same path. Now the
 * answer is a JSON error and the orchestrator goes on: the next backup works.
 * In the same run `dbaas backup --url a,b` failed at once while `a` was down:
 * a refused connection now moves on to the next orchestrator.
 */
import { createServer } from 'node:net';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DbaasClient } from '../../client/index.js';
import { OPLOG } from '../../worker/oplog.js';
import { startTestCluster, type TestCluster } from './harness.js';

const ADMIN = 'backup-faults-admin';
let c: TestCluster;
let admin: DbaasClient;

beforeAll(async () => {
  c = await startTestCluster({ DBAAS_INITIAL_SLAVES: '1', DBAAS_VERIFY_INTERVAL_MS: '0', DBAAS_VERIFY_WAIT_MS: '1500', DBAAS_ADMIN_TOKEN: ADMIN }, { listen: true });
  admin = new DbaasClient({ url: c.url, adminToken: ADMIN, timeoutMs: 30_000, retry: { attempts: 1 } });
});

afterAll(async () => {
  await c?.close();
});

async function archiveLines(body: ReadableStream<Uint8Array>): Promise<Array<Record<string, any>>> {
  const chunks: Buffer[] = [];
  for await (const chunk of Readable.fromWeb(body as import('node:stream/web').ReadableStream<Uint8Array>)) chunks.push(chunk as Buffer);
  return gunzipSync(Buffer.concat(chunks)).toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
}

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

async function post(path: string, body: unknown = {}): Promise<{ status: number; body: any }> {
  const r = await fetch(`${c.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, body: r.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
}

describe('backup under faults', () => {
  it('whose slave sends nothing is answered with a JSON error, and the orchestrator takes the next backup', async () => {
    const w = await admin.write({ table: 'bf', operation: 'insert', data: { _id: 'one' } });
    const slave = (await admin.workers()).find((x) => x.role === 'slave');
    expect(slave).toBeDefined();
    process.kill(slave!.pid, 'SIGSTOP');
    let failed;
    try {
      failed = await post('/api/v1/backup');
    } finally {
      try {
        process.kill(slave!.pid, 'SIGCONT');
      } catch {
        // replaced meanwhile: nothing to continue
      }
    }
    expect(failed.status).toBe(504);
    expect(failed.body.error.code).toBe('DBAAS_RPC_TIMEOUT');
    expect(failed.body.error.message).toMatch(/no part from slave/);

    // The orchestrator lives on: a backup once a slave serves again has the write and a manifest.
    let taken;
    for (let i = 0; ; i++) {
      try {
        taken = await admin.backup();
        break;
      } catch (err) {
        if (i >= 60) throw err;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    expect(taken.seq).toBeGreaterThanOrEqual(w.seq);
    const lines = await archiveLines(taken.body);
    expect(lines.some((l) => l.t === 'bf' && l.d?._id === 'one')).toBe(true);
    expect(lines.at(-1)?.manifest?.seq).toBe(taken.seq);
  });

  it('is taken through the next orchestrator when the first one refuses the connection', async () => {
    const w = await admin.write({ table: 'bf', operation: 'insert', data: { _id: 'two' } });
    const twoUrls = new DbaasClient({ url: `http://127.0.0.1:${await closedPort()},${c.url}`, adminToken: ADMIN, timeoutMs: 30_000, retry: { attempts: 1 } });
    const taken = await twoUrls.backup();
    expect(taken.seq).toBeGreaterThanOrEqual(w.seq);
    const lines = await archiveLines(taken.body);
    expect(lines.some((l) => l.t === 'bf' && l.d?._id === 'two')).toBe(true);
    expect(lines.at(-1)?.manifest?.seq).toBe(taken.seq);
  });

  it('past the oplog horizon is refused 409 DBAAS_BACKUP_OPLOG_TRIMMED before the archive starts (not a retryable 504); within it, it holds the entries', async () => {
    const writes = await Promise.all(Array.from({ length: 10 }, (_, i) => admin.write({ table: 'bh', operation: 'insert', data: { _id: `h${i}` } })));
    const last = Math.max(...writes.map((w) => w.seq));
    // The slave's oplog trimmed up to seq 3, as its trim (oplog-trim.ts, every 60 s) would: the entries deleted in its database.
    const slave = c.orch.view.servingSlaves();
    expect(slave.length).toBe(1);
    const db = new MongoClient(slave[0]!.dbUrl, { serverSelectionTimeoutMS: 5000 });
    try {
      const oplog = db.db('dbaas').collection<{ _id: number }>(OPLOG);
      await oplog.deleteMany({ _id: { $lte: 3 } });
      expect((await oplog.find({}).sort({ _id: 1 }).limit(1).toArray())[0]?._id).toBeGreaterThan(3);
    } finally {
      await db.close();
    }
    const refused = await post('/api/v1/backup', { oplogAfter: 0 });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('DBAAS_BACKUP_OPLOG_TRIMMED');
    expect(refused.body.error.message).toMatch(/the slave failed: the oplog here starts at seq \d+, after 1: outside the oplog horizon/);
    // The typed client does not retry it, and says what it is.
    await expect(new DbaasClient({ url: c.url, adminToken: ADMIN, timeoutMs: 30_000 }).backup({ oplogAfter: 0 })).rejects.toMatchObject({ code: 'DBAAS_BACKUP_OPLOG_TRIMMED', retryable: false, status: 409 });
    // Within the horizon: the archive holds every entry after oplogAfter, up to its seq.
    const taken = await admin.backup({ oplogAfter: last - 10 });
    const entries = (await archiveLines(taken.body)).filter((l) => l.e !== undefined).map((l) => l.e.seq as number);
    expect(entries).toEqual(Array.from({ length: taken.seq - (last - 10) }, (_, i) => last - 10 + 1 + i));
  });
});
