/** The `dbaas` CLI against a scripted orchestrator: output, --json, exit codes. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { EXIT, runCli, type CliIo } from '../../client/cli/cli.js';
import { formatDocuments, formatPairs, formatTable } from '../../client/cli/table.js';
import { packageVersion } from '../../common/package-version.js';

type Route = (body: any, headers: Record<string, string>) => { status: number; body?: unknown };

function fakeOrchestrator(routes: Record<string, Route>) {
  const seen: Array<{ key: string; body: any; headers: Record<string, string> }> = [];
  const fetch = (async (url: string, init: RequestInit) => {
    const key = `${init.method} ${new URL(url).pathname}${new URL(url).search}`;
    const body = init.body ? JSON.parse(init.body as string) : undefined;
    const headers = init.headers as Record<string, string>;
    seen.push({ key, body, headers });
    const route = routes[key];
    if (!route) return new Response(JSON.stringify({ error: { code: 'DBAAS_ROUTE_NOT_FOUND', message: key } }), { status: 404 });
    const res = route(body, headers);
    return new Response(res.body === undefined ? '' : JSON.stringify(res.body), { status: res.status });
  }) as unknown as typeof globalThis.fetch;
  return { fetch, seen };
}

async function run(argv: string[], routes: Record<string, Route> = {}, stdin = '') {
  const out: string[] = [];
  const err: string[] = [];
  const { fetch, seen } = fakeOrchestrator(routes);
  const io: CliIo = {
    stdout: (t) => out.push(t),
    stderr: (t) => err.push(t),
    readStdin: async () => stdin,
    defaults: { url: 'http://orch:8080', adminToken: 'env-admin-token' },
    fetch,
  };
  const code = await runCli(argv, io);
  return { code, out: out.join('\n'), err: err.join('\n'), seen };
}

const workers = [
  { id: 'wa', role: 'master', pid: 100, state: 'master', appliedSeq: 12, lag: 0, startedAt: '2026-11-21T10:00:00.000Z' },
  { id: 'wb', role: 'slave', pid: 2112, state: 'slave', appliedSeq: 11, lag: 1, startedAt: '2026-11-21T10:00:01.000Z' },
];
const scale = { started: true, readsInWindow: 5, windowOpenedAt: '2026-11-21T10:00:00.000Z', intervalMs: 120000, targetSlaves: 1 };
const cluster: Record<string, Route> = {
  'GET /readyz': () => ({ status: 200, body: { ready: true, broker: true, master: 'wa', servingSlaves: 1 } }),
  'GET /api/v1/workers': () => ({ status: 200, body: workers }),
  'GET /api/v1/scale': () => ({ status: 200, body: scale }),
};

describe('dbaas CLI', () => {
  it('prints the workers as a table, and as JSON with --json', async () => {
    const table = await run(['workers'], cluster);
    expect(table.code).toBe(EXIT.OK);
    expect(table.out.split('\n')[0]).toBe(' PID  ROLE    STATE   SEQ  LAG  ID  STARTED');
    expect(table.out).toContain('2112  slave');
    const json = await run(['--json', 'workers'], cluster);
    expect(JSON.parse(json.out)).toEqual(workers);
  });

  it('status: exit 0 when ready, 4 when not', async () => {
    const ready = await run(['status'], cluster);
    expect(ready.code).toBe(EXIT.OK);
    expect(ready.out).toMatch(/ready: +yes/);
    expect(ready.out).toMatch(/master: +pid 100/);
    const notReady = await run(['status'], { ...cluster, 'GET /readyz': () => ({ status: 503, body: { ready: false, broker: true, master: null, servingSlaves: 0 } }) });
    expect(notReady.code).toBe(EXIT.NOT_READY);
    expect(notReady.out).toMatch(/ready: +NO/);
  });

  it('writes with a requestId it prints, and reads with the options given', async () => {
    const routes: Record<string, Route> = {
      'POST /api/v1/db/write': (body) => ({ status: 200, body: { ok: true, seq: 3, inserted: 1, ids: [body.data._id], matched: 0, modified: 0, deleted: 0 } }),
      'POST /api/v1/db/read': (body) => ({ status: 200, body: body.count ? { count: 1 } : [{ _id: 'r1', source: 1, users: ['a'] }] }),
    };
    const w = await run(['write', 'rides', 'insert', '--data', '{"_id":"r1","source":1}', '--request-id', 'req-1'], routes);
    expect(w.code).toBe(EXIT.OK);
    expect(w.seen[0]?.body).toEqual({ table: 'rides', operation: 'insert', data: { _id: 'r1', source: 1 }, requestId: 'req-1' });
    expect(w.out).toMatch(/requestId: +req-1/);
    const fromStdin = await run(['write', 'rides', 'update', '--where', '{"_id":"r1"}', '--data', '-'], routes, '{"$set":{"x":1}}');
    expect(fromStdin.seen[0]?.body).toMatchObject({ where: { _id: 'r1' }, data: { $set: { x: 1 } }, requestId: expect.any(String) });
    const r = await run(['read', 'rides', '--where', '{"source":1}', '--columns', '_id,source', '--sort', '{"source":-1}', '--limit', '5', '--after-seq', '3'], routes);
    expect(r.seen[0]?.body).toEqual({ table: 'rides', where: { source: 1 }, columns: ['_id', 'source'], sort: { source: -1 }, limit: 5, afterSeq: 3 });
    expect(r.out).toBe('_id  source  users\nr1   1       ["a"]');
    const count = await run(['--json', 'read', 'rides', '--count'], routes);
    expect(JSON.parse(count.out)).toEqual({ count: 1 });
  });

  it('sends the admin token on crash drills, from the environment or --token', async () => {
    const routes: Record<string, Route> = { 'POST /api/v1/crash/master': () => ({ status: 200, body: ['4330'] }) };
    const env = await run(['crash', 'master'], routes);
    expect(env.code).toBe(EXIT.OK);
    expect(env.out).toContain('killed master pid 4330');
    expect(env.seen[0]?.headers['authorization']).toBe('Bearer env-admin-token');
    const flag = await run(['--token', 'flag-token-1', '--json', 'crash', 'master'], routes);
    expect(flag.seen[0]?.headers['authorization']).toBe('Bearer flag-token-1');
    expect(JSON.parse(flag.out)).toEqual({ role: 'master', pid: 4330 });
  });

  it('exit 1 with the code when the orchestrator refuses, 3 when it cannot be reached, 2 on a bad command line', async () => {
    const refused = await run(['scale', '99'], { 'POST /api/v1/scale': () => ({ status: 400, body: { error: { code: 'DBAAS_REQ_INVALID', message: 'slaves must be an integer from 1 to 16' } } }) });
    expect(refused.code).toBe(EXIT.FAILED);
    expect(refused.err).toBe('dbaas: DBAAS_REQ_INVALID (HTTP 400): slaves must be an integer from 1 to 16');
    const refusedJson = await run(['--json', 'crash', 'slave'], { 'POST /api/v1/crash/slave': () => ({ status: 409, body: { error: { code: 'DBAAS_CRASH_NOTHING_TO_KILL', message: 'none' } } }) });
    expect(refusedJson.code).toBe(EXIT.FAILED);
    expect(JSON.parse(refusedJson.out)).toMatchObject({ error: { code: 'DBAAS_CRASH_NOTHING_TO_KILL', status: 409 } });

    const out: string[] = [];
    const unreachable = await runCli(['--retries', '0', 'workers'], {
      stdout: (t) => out.push(t),
      stderr: (t) => out.push(t),
      readStdin: async () => '',
      defaults: { url: 'http://127.0.0.1:1' },
    });
    expect(unreachable).toBe(EXIT.UNREACHABLE);
    expect(out.join()).toContain('DBAAS_CLIENT_UNREACHABLE');

    for (const argv of [[], ['nope'], ['crash', 'everyone'], ['scale', 'x'], ['workers', '--data', '{}'], ['read'], ['write', 't', 'insert', '--data', '{bad'], ['--bogus', 'workers'], ['--url', 'ftp://x', 'workers']]) {
      const r = await run(argv);
      expect({ argv, code: r.code }).toEqual({ argv, code: EXIT.USAGE });
      expect(r.err).toContain('dbaas --help');
    }
    const help = await run(['--help']);
    expect(help.code).toBe(EXIT.OK);
    expect(help.out).toContain('exit codes');
  });

  it('verify: prints the result and every replica, sends the admin token, exit 0 equal, 5 divergent, 6 incomplete', async () => {
    const replica = (id: string, pid: number, role: string, status: string, extra: object = {}) => ({ id, pid, role, status, documents: 3, hashMs: 1, ...extra });
    const report = (result: string, replicas: unknown[]) => ({
      result,
      seq: 42,
      master: 'wa',
      at: '2026-11-21T10:00:00.000Z',
      durationMs: 31,
      tables: { rides: { count: 3, sum: 'ab'.repeat(32) } },
      replicas,
      trigger: 'manual',
    });
    const equal = report('equal', [replica('wa', 100, 'master', 'equal'), replica('wb', 2112, 'slave', 'equal')]);
    const ok = await run(['verify'], { 'GET /api/v1/verify': () => ({ status: 200, body: equal }) });
    expect(ok.code).toBe(EXIT.OK);
    expect(ok.seen[0]?.headers['authorization']).toBe('Bearer env-admin-token');
    expect(ok.out).toContain('result:   equal');
    expect(ok.out).toContain('replicas: 2 equal');
    expect(ok.out).toContain('tables:   rides (3)');
    const divergent = report('divergent', [replica('wa', 100, 'master', 'equal'), replica('wb', 2112, 'slave', 'divergent', { tables: ['rides'] })]);
    const bad = await run(['verify'], { 'GET /api/v1/verify': () => ({ status: 200, body: divergent }) });
    expect(bad.code).toBe(EXIT.DIVERGENT);
    expect(bad.out).toContain('result:   DIVERGENT');
    expect(bad.out).toMatch(/2112 {2}slave {3}divergent .* differs in rides/);
    const partial = report('incomplete', [replica('wa', 100, 'master', 'equal'), { id: 'wc', pid: 3000, role: 'slave', status: 'not-comparable', reason: 'it is syncing, not serving' }]);
    const some = await run(['--json', 'verify'], { 'GET /api/v1/verify': () => ({ status: 200, body: partial }) });
    expect(some.code).toBe(EXIT.INCOMPLETE);
    expect(JSON.parse(some.out)).toEqual(partial);
  });

  it('lists events', async () => {
    const events = [{ seq: 4, at: '2026-11-21T10:00:00.123Z', kind: 'promotion', reason: 'promoted wb (pid 2112) to master in term 2', durationMs: 812 }];
    const r = await run(['events', '--after', '3'], { 'GET /api/v1/events?after=3': () => ({ status: 200, body: events }) });
    expect(r.code).toBe(EXIT.OK);
    expect(r.out).toContain('promotion  812  promoted wb (pid 2112) to master in term 2');
  });
});

describe('tables', () => {
  it('aligns columns, right-aligns numbers, and leaves no trailing spaces', () => {
    expect(formatTable(['N', 'NAME'], [[1, 'a'], [100, 'long name']], new Set(['N']))).toBe('  N  NAME\n  1  a\n100  long name');
    expect(formatDocuments([{ b: 1, _id: 'x' }, { _id: 'y', c: { d: null } }])).toBe('_id  b  c\nx    1\ny       {"d":null}');
    expect(formatDocuments([])).toBe('(no documents)');
    expect(formatPairs([['a', 1], ['long', null]])).toBe('a:    1\nlong: -');
  });
});

describe('dbaas --version', () => {
  it('prints the version of the package.json above the CLI, with no command and no orchestrator', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    const version = packageVersion(new URL('../../client/cli/main.ts', import.meta.url).href);
    expect(version).toBe(pkg.version);
    for (const argv of [['--version'], ['-V'], ['version']]) {
      const out: string[] = [];
      const code = await runCli(argv, { stdout: (t) => out.push(t), stderr: () => undefined, readStdin: async () => '', defaults: { url: 'http://127.0.0.1:1' }, version });
      expect({ argv, code, out }).toEqual({ argv, code: EXIT.OK, out: [`dbaas ${pkg.version}`] });
    }
    expect(packageVersion('file:///no-such-dir/x.js')).toBeUndefined();
  });
});
