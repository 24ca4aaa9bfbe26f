/**
 * The typed client and the `dbaas` CLI against a live cluster (real HTTP):
 * reads and writes, read-your-writes across slaves, a retry after a lost answer
 * applied once, writes that keep succeeding through a master crash, and the CLI's
 * commands and exit codes (in process, and once as the built `dbaas` binary).
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT, runCli } from '../../client/cli/cli.js';
import { DbaasClient, DbaasClientError } from '../../client/index.js';
import { eventually, startTestCluster, type TestCluster } from './harness.js';

const ADMIN = 'client-test-admin-token';
let c: TestCluster;
let db: DbaasClient;

beforeAll(async () => {
  c = await startTestCluster({ DBAAS_ADMIN_TOKEN: ADMIN, DBAAS_INITIAL_SLAVES: '2' }, { listen: true });
  db = new DbaasClient({ url: c.url, adminToken: ADMIN });
});

afterAll(async () => {
  await c?.close();
});

describe('typed client', () => {
  it('writes, reads its own writes on any slave, counts, updates, deletes', async () => {
    const ins = await db.insert('people', [{ _id: 'p1', name: 'ana', age: 30 }, { _id: 'p2', name: 'bo', age: 25 }]);
    expect(ins).toMatchObject({ ok: true, inserted: 2, ids: ['p1', 'p2'] });
    expect(db.lastSeq).toBe(ins.seq);
    // Two slaves answer reads round robin; each read must already see the write.
    for (let i = 0; i < 6; i++) expect(await db.count('people')).toBe(2);
    const up = await db.update('people', { _id: 'p1' }, { $inc: { age: 1 } });
    expect(up).toMatchObject({ matched: 1, modified: 1 });
    for (let i = 0; i < 4; i++) expect((await db.read<{ age: number }>('people', { where: { _id: 'p1' } }))[0]?.age).toBe(31);
    expect(await db.read('people', { where: { age: { $lt: 30 } }, columns: ['name'] })).toEqual([{ name: 'bo' }]);
    await db.upsert('people', { _id: 'p3' }, { $set: { name: 'cy' } });
    expect(await db.read('people', { sort: { _id: 1 }, columns: ['_id'] })).toEqual([{ _id: 'p1' }, { _id: 'p2' }, { _id: 'p3' }]);
    expect((await db.delete('people', { age: { $gte: 0 } })).deleted).toBe(2);
    expect(await db.count('people')).toBe(1);
  });

  it('throws refusals with their code', async () => {
    const e = await db.insert('people', { _id: 'dup' }).then(() => db.insert('people', { _id: 'dup' })).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DbaasClientError);
    expect(e).toMatchObject({ code: 'DBAAS_WRITE_DUPLICATE_ID', status: 409, retryable: false });
    await expect(db.read('9bad')).rejects.toMatchObject({ code: 'DBAAS_REQ_BAD_TABLE', status: 400 });
    await expect(new DbaasClient({ url: c.url }).clear()).rejects.toMatchObject({ code: 'DBAAS_AUTH_MISSING', status: 401 });
  });

  it('retries a write whose answer was lost with the same requestId: it is applied once', async () => {
    let lost = 0;
    const losingFetch = (async (url: string, init: RequestInit) => {
      const res = await fetch(url, init);
      if (url.endsWith('/db/write') && lost === 0) {
        lost += 1;
        await res.text();
        throw new TypeError('fetch failed (the answer was lost)');
      }
      return res;
    }) as typeof fetch;
    const client = new DbaasClient({ url: c.url, fetch: losingFetch, retry: { baseDelayMs: 10 } });
    const result = await client.insert('once', { v: 1 });
    expect(lost).toBe(1);
    expect(await client.count('once')).toBe(1);
    // Asking again with that requestId answers the first result.
    const again = await client.write({ table: 'once', operation: 'insert', data: { v: 1 } }, { requestId: 'same-id-1' });
    const replay = await client.write({ table: 'once', operation: 'insert', data: { v: 1 } }, { requestId: 'same-id-1' });
    expect(replay).toEqual(again);
    // The same id for another write is refused, not answered with the first write's result.
    await expect(client.write({ table: 'once', operation: 'insert', data: { v: 2 } }, { requestId: 'same-id-1' })).rejects.toMatchObject({
      code: 'DBAAS_WRITE_REQUEST_ID_REUSED',
      status: 422,
      retryable: false,
    });
    expect(await client.count('once')).toBe(2);
    expect(result.inserted).toBe(1);
  });

  it('keeps writing through a master crash: every write acknowledged, each applied exactly once', async () => {
    const writers = 3;
    const perWriter = 40;
    const before = await db.workers();
    const oldMaster = before.find((w) => w.role === 'master');
    const retries: string[] = [];
    const client = new DbaasClient({ url: c.url, adminToken: ADMIN, onRetry: (i) => retries.push(i.error.code) });
    let crashed = false;
    const write = async (w: number): Promise<void> => {
      for (let i = 0; i < perWriter; i++) {
        await client.insert('failover', { w, i });
        if (w === 0 && i === 10 && !crashed) {
          crashed = true;
          expect(await client.crash('master')).toBe(oldMaster?.pid);
        }
      }
    };
    await Promise.all(Array.from({ length: writers }, (_, w) => write(w)));
    expect(await client.count('failover')).toBe(writers * perWriter);
    const docs = await client.read<{ w: number; i: number }>('failover', { columns: ['w', 'i'] });
    expect(new Set(docs.map((d) => `${d.w}/${d.i}`)).size).toBe(writers * perWriter);
    await eventually(async () => (await db.workers()).some((w) => w.role === 'master' && w.id !== oldMaster?.id), 20_000, 'a new master');
  });
});

describe('dbaas CLI', () => {
  const cli = async (...argv: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(argv, { stdout: (t) => out.push(t), stderr: (t) => err.push(t), readStdin: async () => '', defaults: { url: c.url, adminToken: ADMIN } });
    return { code, out: out.join('\n'), err: err.join('\n') };
  };

  it('scripts the cluster', async () => {
    await eventually(async () => (await cli('status')).code === EXIT.OK, 30_000, 'a ready cluster');
    const status = await cli('status');
    expect(status.out).toMatch(/ready: +yes/);

    const workers = await cli('--json', 'workers');
    const pids = (JSON.parse(workers.out) as Array<{ pid: number }>).map((w) => w.pid);
    expect(pids.length).toBeGreaterThanOrEqual(2);
    const table = await cli('workers');
    for (const pid of pids) expect(table.out).toContain(String(pid));

    const w = await cli('--json', 'write', 'cli', 'insert', '--data', '{"_id":"c1","n":1}');
    expect(w.code).toBe(EXIT.OK);
    const seq = JSON.parse(w.out).seq as number;
    const r = await cli('read', 'cli', '--where', '{"_id":"c1"}', '--after-seq', String(seq));
    expect(r.out).toBe('_id  n\nc1   1');

    const scale = await cli('scale', '2');
    expect(scale.out).toBe('slave target: 2');
    const events = await cli('events');
    expect(events.out).toContain('manual override');

    const bad = await cli('read', '9table');
    expect(bad.code).toBe(EXIT.FAILED);
    expect(bad.err).toContain('DBAAS_REQ_BAD_TABLE');
    const noToken = await runCli(['crash', 'slave'], { stdout: () => undefined, stderr: () => undefined, readStdin: async () => '', defaults: { url: c.url } });
    expect(noToken).toBe(EXIT.FAILED);
  });

  it('crash --wait returns once the cluster serves again; events --follow shows only events from now on', async () => {
    const before = JSON.parse((await cli('--json', 'events')).out) as Array<{ seq: number }>;
    const lastSeq = Math.max(0, ...before.map((e) => e.seq));
    const followed: string[] = [];
    const stop = new AbortController();
    const following = runCli(['--json', 'events', '--follow'], {
      stdout: (t) => followed.push(t),
      stderr: () => undefined,
      readStdin: async () => '',
      defaults: { url: c.url, adminToken: ADMIN },
      signal: stop.signal,
    });
    const slavesBefore = (await db.workers()).filter((w) => w.role === 'slave').length;

    const crash = await cli('--json', 'crash', 'slave', '--wait');
    expect(crash.code, crash.err).toBe(EXIT.OK);
    const report = JSON.parse(crash.out) as { pid: number; recoveredMs: number; workers: Array<{ pid: number; role: string; state: string }> };
    expect(report.workers.map((w) => w.pid)).not.toContain(report.pid);
    expect(report.workers.filter((w) => w.role === 'slave' && w.state === 'slave').length).toBeGreaterThanOrEqual(slavesBefore);
    // What --wait promised holds when asked afresh.
    const now = await db.workers();
    expect(now.map((w) => w.pid)).not.toContain(report.pid);
    expect(now.filter((w) => w.role === 'slave' && w.state === 'slave').length).toBeGreaterThanOrEqual(slavesBefore);

    await eventually(async () => followed.some((line) => line.includes(String(report.pid))), 10_000, 'the drill in the followed log');
    stop.abort();
    await following;
    const seqs = followed.map((line) => (JSON.parse(line) as { seq: number }).seq);
    expect(Math.min(...seqs)).toBeGreaterThan(lastSeq);
  });

  it('runs as the built binary (bin "dbaas"), with the URL and token from the environment', async () => {
    const bin = path.resolve(import.meta.dirname, '../../dist/client/cli/main.js');
    const env = { ...process.env, DBAAS_URL: c.url, DBAAS_ADMIN_TOKEN: ADMIN };
    const { stdout } = await promisify(execFile)(process.execPath, [bin, '--json', 'workers'], { env });
    expect((JSON.parse(stdout) as unknown[]).length).toBeGreaterThanOrEqual(2);
    const failed = await promisify(execFile)(process.execPath, [bin, 'crash', 'nobody'], { env }).catch((e: { code: number; stderr: string }) => e);
    expect(failed).toMatchObject({ code: EXIT.USAGE, stderr: expect.stringContaining('usage: dbaas crash master|slave') });
  });
});
