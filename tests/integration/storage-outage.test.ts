/**
 * A worker's PostgreSQL out of reach (found by fault testing, session 6). Under
 * a PostgreSQL crash, an insert into a table with a unique index was answered
 * 400 DBAAS_QUERY_INVALID ("the database refused the filter: … unexpected
 * EOF"): the master reads before it builds such a write (and every update,
 * upsert and delete), and took FerretDB's failure to reach its storage for a
 * refusal of the filter. A slave's read did the same. A valid request must not
 * get a final 4xx because the storage is down for a moment: it is a 503 to
 * retry, and once the storage is back the retries are applied exactly once.
 *
 * The outage here is one worker's database refusing connections (ALTER DATABASE
 * … ALLOW_CONNECTIONS false, its sessions ended), on the PostgreSQL server every
 * test shares, whose other databases go on.
 */
import path from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { readMarker } from '../../orchestrator/runtimes/postgresql-databases.js';
import { eventually, startTestCluster, type TestCluster } from './harness.js';
import { dumpAllReplicas } from './replicas.js';

const pgUrl = process.env.DBAAS_PG_URL;
const dbBin = process.env.DBAAS_DB_BIN ?? '';

let c: TestCluster | undefined;
const shut: string[] = [];

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** The worker's database refuses new connections and loses the ones it had. */
async function cutOff(database: string): Promise<void> {
  shut.push(database);
  await admin(async (client) => {
    await client.query(`ALTER DATABASE "${database}" WITH ALLOW_CONNECTIONS false`);
    await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [database]);
  });
}

async function reopen(): Promise<void> {
  const names = shut.splice(0);
  await admin(async (client) => {
    for (const name of names) await client.query(`ALTER DATABASE "${name}" WITH ALLOW_CONNECTIONS true`).catch(() => undefined);
  });
}

afterEach(async () => {
  await reopen();
  await c?.close();
  c = undefined;
});

describe.skipIf(!pgUrl || !path.basename(dbBin).startsWith('ferretdb'))("a worker's PostgreSQL out of reach", () => {
  it('writes that read first and reads get 503 (not 400) while it lasts, and are applied once when retried', async () => {
    c = await startTestCluster({ DBAAS_VERIFY_INTERVAL_MS: '0' });
    const cl = c;
    const databaseOf = (id: string): string => {
      const marker = readMarker(path.join(cl.dataDir, cl.namespace, id, 'db'));
      if (!marker) throw new Error(`no PostgreSQL marker for ${id}`);
      return marker.database;
    };
    expect((await cl.post('/api/v1/db/indexes', { table: 'acct', keys: 'email', unique: true })).status).toBe(200);
    let seq = 0;
    for (const email of ['a@x', 'b@x']) {
      const r = await cl.post('/api/v1/db/write', { table: 'acct', operation: 'insert', data: { _id: email, email, n: 0 } });
      expect(r.status).toBe(200);
      seq = r.body.seq;
    }
    const master = cl.orch.view.master;
    const slave = [...cl.orch.view.workers.values()].find((w) => w.id !== master?.id);
    if (!master || !slave) throw new Error('no master and slave');
    await eventually(async () => (await cl.post(`/api/v1/workers/${slave.id}/read`, { table: 'acct', where: {}, count: true, afterSeq: seq })).status === 200, 10_000, 'the slave at the last write');

    // Every kind of write the master builds from a read first, each with its own requestId.
    const writes = [
      { table: 'acct', operation: 'insert', data: { _id: 'c@x', email: 'c@x', n: 0 }, requestId: 'so-insert' },
      { table: 'acct', operation: 'update', where: { email: 'a@x' }, data: { $inc: { n: 1 } }, requestId: 'so-update' },
      { table: 'acct', operation: 'upsert', where: { email: 'd@x' }, data: { $inc: { n: 1 } }, requestId: 'so-upsert' },
      { table: 'acct', operation: 'delete', where: { email: 'b@x' }, requestId: 'so-delete' },
    ];
    const databases = [databaseOf(master.id), databaseOf(slave.id)];
    await cutOff(databaseOf(master.id));
    const during = await Promise.all(writes.map((w) => cl.post('/api/v1/db/write', w)));
    await cutOff(databaseOf(slave.id));
    const read = await cl.post(`/api/v1/workers/${slave.id}/read`, { table: 'acct', where: { email: { $gt: '' } } });
    await reopen();

    // While the storage was out of reach: applied (200), or a 503/504 to retry; never a final refusal.
    const answers = [...during.map((r, i) => ({ what: writes[i]?.requestId, r })), { what: "the slave's read", r: read }];
    expect(answers.filter(({ r }) => ![200, 503, 504].includes(r.status)).map(({ what, r }) => `${what}: ${r.status} ${JSON.stringify(r.body)}`)).toEqual([]);
    // A 503 says the cause in words ("failed to connect to the database: … not currently accepting connections"): no internal
    // address, PostgreSQL user or internal database name, which the log keeps (common/client-message.ts).
    const internals = ['127.0.0.1:', `:${new URL(pgUrl ?? '').port || '5432'}`, 'user=', ...databases];
    expect(answers.flatMap(({ what, r }) => internals.filter((s) => JSON.stringify(r.body).includes(s)).map((s) => `${what} says ${s}: ${JSON.stringify(r.body)}`))).toEqual([]);

    // The same requests again until answered: each applied exactly once.
    for (const w of writes) {
      let r: { status: number } = { status: 0 };
      await eventually(async () => (r = await cl.post('/api/v1/db/write', w)).status === 200, 60_000, `${w.requestId} answered 200 (last ${r.status})`);
    }
    // A slave whose database refused it may have exited and been replaced meanwhile: wait for the pair.
    const dumps = await dumpAllReplicas(cl.orch, 60_000, 2);
    expect(dumps.size).toBe(2);
    for (const [id, dump] of dumps) {
      const docs = ((dump.acct ?? []) as Array<{ email: string; n: number }>).map((d) => `${d.email}:${d.n}`).sort();
      expect(docs, `acct on ${id}`).toEqual(['a@x:1', 'c@x:0', 'd@x:1']);
    }
  }, 180_000);
});
