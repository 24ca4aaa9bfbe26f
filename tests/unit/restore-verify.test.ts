/**
 * `dbaas restore`'s closing verify while some replica cannot be compared (E's fault runs against npm start: a
 * restore during a failover wrote every document, the master's tables equalled the manifest, and it exited 5,
 * "a replica differs", because a new slave was still catching up). An incomplete verify is asked again; still
 * incomplete, the restore exits 6 (not compared), as `dbaas verify` does; a real difference stays exit 5. The
 * target database's create and the verify's wait are as patient as a failover needs.
 */
import { Readable, Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { restore } from '../../client/archive.js';
import { EXIT, runCli, type CliIo } from '../../client/cli/cli.js';
import { DbaasClient } from '../../client/dbaas-client.js';
import type { VerifyReport } from '../../client/types.js';
import { TableHasher } from '../../common/doc-hash.js';

const DOC = { _id: 'a', n: 1 };
const hasher = new TableHasher();
hasher.add(DOC);
const SUM = hasher.result();
const takenAt = '2026-12-01T04:00:00.000Z';
const ARCHIVE = gzipSync(
  [
    { dbaasBackup: 1, id: 'btest', seq: 5, term: 1, takenAt, from: 'w1', tables: ['t'] },
    { t: 't', d: DOC },
    { manifest: { seq: 5, term: 1, takenAt, documents: 1, tables: { t: SUM }, indexes: [] } },
  ]
    .map((l) => JSON.stringify(l))
    .join('\n') + '\n',
);

function report(result: VerifyReport['result'], sum = SUM, seq = 7): VerifyReport {
  const slave = result === 'incomplete' ? { status: 'not-comparable' as const, reason: 'catching up' } : { status: result };
  return {
    result,
    seq,
    master: 'w1',
    at: takenAt,
    durationMs: 1,
    tables: { 'r.t': sum },
    replicas: [
      { id: 'w1', role: 'master', pid: 1, status: 'equal' },
      { id: 'w2', role: 'slave', pid: 2, ...slave },
    ],
    trigger: 'manual',
  };
}

/**
 * A cluster that takes the writes and answers the verifies in turn (the last one from then on), each after `verifyMs`;
 * the first `slowCreates` creates of a database answer 504 (a slow master).
 */
function fakeCluster(verifies: VerifyReport[], verifyMs = 0, slowCreates = 0): { fetch: typeof fetch; asked: () => number; creates: () => number } {
  let asked = 0;
  let creates = 0;
  const json = (body: unknown, status = 200): Response => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  const fetch = (async (url: string, init?: RequestInit) => {
    const path = new URL(url).pathname;
    const method = init?.method ?? 'GET';
    if (path === '/api/v1/db/databases' && method === 'GET') return json({ databases: [] });
    if (path === '/api/v1/db/databases') {
      if (creates++ < slowCreates) return json({ error: { code: 'DBAAS_RPC_TIMEOUT', message: 'no answer from writeQ within 5000 ms' } }, 504);
      return json({ name: 'r' }, 201);
    }
    if (path === '/api/v1/db/read') return json({ count: 0 });
    if (path === '/api/v1/db/write') return json({ ok: true, seq: 6, inserted: 1 });
    if (path === '/api/v1/verify') {
      const answer = verifies[Math.min(asked++, verifies.length - 1)];
      await new Promise((r) => setTimeout(r, verifyMs));
      if (init?.signal?.aborted) throw init.signal.reason;
      return json(answer);
    }
    return json({ error: { code: 'DBAAS_ROUTE_NOT_FOUND', message: path } }, 404);
  }) as unknown as typeof globalThis.fetch;
  return { fetch, asked: () => asked, creates: () => creates };
}

function cliIo(fetch: typeof globalThis.fetch, out: string[]): CliIo {
  return {
    stdout: (t) => out.push(t),
    stderr: (t) => out.push(t),
    readStdin: async () => '',
    input: () => Readable.from([ARCHIVE]),
    output: () => new Writable({ write: (_c, _e, cb) => cb() }),
    defaults: { url: 'http://orch:8080', adminToken: 'env-admin-token' },
    fetch,
  };
}

describe('restore under faults: the create of its target and its closing verify', () => {
  it('asks again while a replica is not compared, and is verified once every replica is', async () => {
    const cluster = fakeCluster([report('incomplete'), report('incomplete'), report('equal')]);
    const client = new DbaasClient({ url: 'http://orch:8080', adminToken: 'env-admin-token', fetch: cluster.fetch });
    const r = await restore(client, Readable.from([ARCHIVE]), { database: 'r', verifyTries: 4, verifyPauseMs: 0 });
    expect(cluster.asked()).toBe(3);
    expect(r).toMatchObject({ verified: true, replicas: 'equal', mismatches: [], documents: 1 });
  });

  it('still incomplete: exit 6 (not compared) naming the replica, not 5', async () => {
    const cluster = fakeCluster([report('incomplete')]);
    const out: string[] = [];
    const code = await runCli(['restore', '--db', 'r', '--retries', '0'], cliIo(cluster.fetch, out));
    expect(cluster.asked()).toBe(1);
    expect(out.join('\n')).toMatch(/NOT verified: verify: the replicas are incomplete: slave w2 not-comparable \(catching up\)/);
    expect(code).toBe(EXIT.INCOMPLETE);
  });

  it('a restored table unlike the manifest is exit 5 also when the verify is incomplete', async () => {
    const other = new TableHasher();
    other.add({ _id: 'a', n: 2 });
    const cluster = fakeCluster([report('incomplete', other.result())]);
    const out: string[] = [];
    const code = await runCli(['restore', '--db', 'r', '--retries', '0'], cliIo(cluster.fetch, out));
    expect(out.join('\n')).toMatch(/r\.t \(from t\): 1 documents, manifest 1/);
    expect(code).toBe(EXIT.DIVERGENT);
  });

  it("waits for the verify as long as dbaas verify does, not the client's per-request timeout", async () => {
    // E's fault run r2 against npm start: with the CLI's 10 s a restore that had written everything gave up on its
    // verify under load (DBAAS_CLIENT_TIMEOUT, exit 3), twice. Here a client with 300 ms tries and a verify of 1 s.
    const cluster = fakeCluster([report('equal')], 1000);
    const client = new DbaasClient({ url: 'http://orch:8080', adminToken: 'env-admin-token', fetch: cluster.fetch, timeoutMs: 300, retry: { attempts: 1 } });
    const r = await restore(client, Readable.from([ARCHIVE]), { database: 'r', verifyPauseMs: 0 });
    expect(r).toMatchObject({ verified: true, replicas: 'equal' });
    expect(cluster.asked()).toBe(1);
  });

  it('a verify whose checkpoint comes before the last restored write (one already in flight, joined) is asked again', async () => {
    // E's fault run r4 against npm start: two restores at once; the second's verify joined the first's, whose seq came
    // before the second's writes, so its tables looked short and it exited 5 though every replica was equal.
    const empty = new TableHasher();
    const cluster = fakeCluster([report('equal', empty.result(), 3), report('equal')]);
    const client = new DbaasClient({ url: 'http://orch:8080', adminToken: 'env-admin-token', fetch: cluster.fetch });
    const r = await restore(client, Readable.from([ARCHIVE]), { database: 'r', verifyPauseMs: 0 });
    expect(cluster.asked()).toBe(2);
    expect(r).toMatchObject({ verified: true, replicas: 'equal', mismatches: [] });
  });

  it('a create of the target database answered 504 (a slow master) is tried again, not the end of the restore', async () => {
    // E's fault run r5 against npm start: a restore started while the master's PostgreSQL was paused ended at once,
    // exit 1, on the create's 504 DBAAS_RPC_TIMEOUT (a create is not retried by the client); --resume then passed.
    const cluster = fakeCluster([report('equal')], 0, 2);
    const client = new DbaasClient({ url: 'http://orch:8080', adminToken: 'env-admin-token', fetch: cluster.fetch });
    const r = await restore(client, Readable.from([ARCHIVE]), { database: 'r', verifyPauseMs: 0 });
    expect(cluster.creates()).toBe(3);
    expect(r).toMatchObject({ verified: true, documents: 1 });
  });
});
