/**
 * A worker that cannot use its database says why, promptly. The real case of
 * session 6: a worker's PostgreSQL database with the encoding SQL_ASCII. FerretDB
 * listens, and answers every command with `"client_encoding" is "SQL_ASCII";
 * supported value is "UTF8"`; the orchestrator said only "did not reach state
 * master: no progress for 30020 ms", after 30 s, and the cause was in db.log.
 *
 * The bad database is handed to a worker the way a spare database is (a
 * `spare-<slot>.json` in the namespace's directory, which the process runtime's
 * next worker takes: orchestrator/runtimes/spare-databases.ts).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { databaseUrl, dropWorkerDatabases, readSpare } from '../../orchestrator/runtimes/postgresql-databases.js';
import { eventually, startTestCluster, type TestCluster } from './harness.js';
import { freePort, purgeNamespace } from './infra.js';

const adminUrl = process.env.DBAAS_PG_URL;
/** FerretDB's words for the case. */
const ENCODING_REFUSED = /"client_encoding" is "SQL_ASCII"; supported value is "UTF8"/;
/** Well under DBAAS_WORKER_START_TIMEOUT_MS (30 s), which was the only end of such a start. */
const PROMPT_MS = 15_000;

const made: string[] = [];

/** A database FerretDB cannot use: SQL_ASCII. Dropped after the file's tests (if its worker's removal did not). */
async function sqlAsciiDatabase(): Promise<{ database: string; url: string }> {
  const database = `c7_ascii_${randomBytes(4).toString('hex')}`;
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE "${database}" ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`);
  } finally {
    await client.end();
  }
  made.push(database);
  return { database, url: databaseUrl(adminUrl ?? '', database) };
}

afterAll(async () => {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    for (const database of made) await client.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
  } finally {
    await client.end();
  }
});

describe.skipIf(!adminUrl || process.env.DBAAS_DB_BACKEND === 'sqlite')('a worker whose database cannot be used', () => {
  it('at the cluster start: the master fails at once, and the error names the database refusing and why', async () => {
    const namespace = `t-${randomBytes(4).toString('hex')}`;
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'dbaas-test-'));
    const nsDir = path.join(dataDir, namespace);
    mkdirSync(nsDir, { recursive: true });
    writeFileSync(path.join(nsDir, 'spare-0.json'), JSON.stringify(await sqlAsciiDatabase()));
    const started = Date.now();
    try {
      const error = await startTestCluster({ DBAAS_SPARE_DATABASES: '1' }, { namespace, dataDir }).then(
        async (c) => {
          await c.close();
          return new Error('the cluster started on a SQL_ASCII database');
        },
        (err: unknown) => err as Error,
      );
      const took = Date.now() - started;
      // Before: "worker … did not reach state master: no progress for 30020 ms", after 30 s.
      expect(error.message).toMatch(/^worker \S+ exited while starting \(code 1, signal null\); worker\.log: worker failed to start: the database at \S+ refuses to work: /);
      expect(error.message).toMatch(ENCODING_REFUSED);
      expect(error.message).toMatch(/db\.log: .*SQL_ASCII/);
      expect(error.message).not.toMatch(/\.go:\d/); // FerretDB's call chain left out
      expect(took).toBeLessThan(PROMPT_MS);
    } finally {
      await purgeNamespace(namespace, existsSync(nsDir) ? readdirSync(nsDir) : []);
      await dropWorkerDatabases(nsDir);
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('a database whose PostgreSQL cannot be reached is waited for, and the start that gives up names what FerretDB said', async () => {
    const namespace = `t-${randomBytes(4).toString('hex')}`;
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'dbaas-test-'));
    const nsDir = path.join(dataDir, namespace);
    mkdirSync(nsDir, { recursive: true });
    // PostgreSQL restarting looks like this: FerretDB listens, its connections are refused. Not a refusal: waited for.
    const url = new URL(adminUrl ?? '');
    url.port = String(await freePort());
    url.pathname = '/c7_unreachable';
    writeFileSync(path.join(nsDir, 'spare-0.json'), JSON.stringify({ database: 'c7_unreachable', url: url.toString() }));
    try {
      const error = await startTestCluster({ DBAAS_SPARE_DATABASES: '1', DBAAS_WORKER_START_TIMEOUT_MS: '4000' }, { namespace, dataDir }).then(
        async (c) => {
          await c.close();
          return new Error('the cluster started without its PostgreSQL');
        },
        (err: unknown) => err as Error,
      );
      expect(error.message).toMatch(/^worker \S+ did not reach state master: no progress for \d+ ms; .*db\.log: .*connect: connection refused/);
    } finally {
      await purgeNamespace(namespace, existsSync(nsDir) ? readdirSync(nsDir) : []);
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  describe('on a running cluster', () => {
    let c: TestCluster;
    afterAll(async () => {
      await c?.close();
    });

    it('a new slave fails at once; GET /api/v1/workers/list and the audit name why', async () => {
      c = await startTestCluster({ DBAAS_SPARE_DATABASES: '1' });
      // The spare the pool makes once the start is over; then the next slave takes the SQL_ASCII database instead.
      const slot = path.join(c.dataDir, c.namespace, 'spare-0.json');
      await eventually(() => readSpare(slot) !== undefined && readSpare(slot)?.making !== true, 20_000, 'the spare database');
      made.push(readSpare(slot)?.database ?? '');
      writeFileSync(slot, JSON.stringify(await sqlAsciiDatabase()));
      const asked = Date.now();
      expect((await c.post('/api/v1/scale', { slaves: 2 })).status).toBe(200);
      let header = '';
      await eventually(
        async () => {
          const res = await c.orch.app.inject({ method: 'GET', url: '/api/v1/workers/list' });
          header = String(res.headers['x-dbaas-start-failure'] ?? '');
          return header !== '';
        },
        PROMPT_MS,
        'a start failure on GET /api/v1/workers/list',
      );
      expect(Date.now() - asked).toBeLessThan(PROMPT_MS);
      expect(header).toMatch(/^\d{4}-\d\d-\d\dT\S+Z slave \S+: worker \S+ exited while starting/);
      expect(header).toMatch(ENCODING_REFUSED);
      // The storage's words as a client may see them (clientMessage, as in error bodies): no address, role or database name, no call chain.
      expect(header).not.toMatch(/\d+\.\d+\.\d+\.\d+:\d+|\buser=|\bdatabase=|database "|\.go:\d+|c7_ascii_/);
      const events = (await c.get('/api/v1/events')).body as Array<{ kind: string; reason: string }>;
      expect(events.filter((e) => e.kind === 'error' && /^starting slave \S+ failed \(/.test(e.reason) && ENCODING_REFUSED.test(e.reason))).not.toEqual([]);
      // The body is still the course's sorted list of pids.
      const pids = (await c.get('/api/v1/workers/list')).body as number[];
      expect(pids).toEqual([...pids].sort((a, b) => a - b));
    });
  });
});
