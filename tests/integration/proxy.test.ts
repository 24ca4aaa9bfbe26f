/**
 * One address for clients (issue 15.7): HAProxy, started by `scripts/proxy.sh`
 * as a user starts it, in front of two orchestrator processes of one
 * namespace. Both are healthy backends (every orchestrator serves the whole
 * API, and /readyz answers 200 on the follower as on the leader); writes
 * through the proxy keep succeeding, with the typed client's retries, while
 * the leader is SIGKILLed, and the proxy takes a restarted orchestrator back.
 *
 * HAProxy comes from Debian's package (`scripts/proxy.sh install`, run by
 * `npm test`). Without it the test is skipped with a loud warning, except in CI
 * (`CI=true` or `DBAAS_REQUIRE_PROXY=1`, which `.ci/run` sets), where it fails.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { DbaasClient } from '../../client/dbaas-client.js';
import { purgeNamespace, runProcesses, workerDirs } from '../../tools/nemesis/infra.js';
import { OrchestratorProcess } from '../../tools/nemesis/orchestrator-process.js';
import { eventually } from './harness.js';
import { freePort } from './infra.js';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const HAPROXY = ['/usr/sbin/haproxy', '/usr/local/sbin/haproxy', '/usr/bin/haproxy'].find((p) => existsSync(p));
const REQUIRED = process.env.DBAAS_REQUIRE_PROXY === '1' || process.env.CI === 'true';
if (!HAPROXY) {
  const message = 'no haproxy binary: the one-address (HAProxy) test is SKIPPED (run scripts/proxy.sh install, or apt-get install haproxy)';
  if (REQUIRED) throw new Error(`${message}; CI=true / DBAAS_REQUIRE_PROXY=1 make this a failure`);
  const bar = '!'.repeat(100);
  console.warn(`\n${bar}\n!! ${message}\n${bar}\n`);
}

interface ServerState {
  backend: string;
  server: string;
  addr: string;
  status: string;
}

const stateDir = mkdtempSync(path.join(os.tmpdir(), 'dbaas-proxy-'));
const cleanUps: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const f of cleanUps.reverse()) await f().catch((err: unknown) => console.warn(`proxy test clean-up: ${(err as Error).message}`));
  rmSync(stateDir, { recursive: true, force: true });
});

/** `scripts/proxy.sh ARGS…` with this test's own state directory; its output, and its exit code. */
async function proxySh(...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run('bash', [path.join(ROOT, 'scripts/proxy.sh'), ...args], {
      env: { ...process.env, DBAAS_PROXY_STATE_DIR: stateDir },
      timeout: 60_000,
    });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** Each server of the proxy as `scripts/proxy.sh status` prints it (backend "ready": /readyz checks; "live": /healthz). */
async function servers(port: number): Promise<ServerState[]> {
  const { code, out } = await proxySh('status', '--port', String(port));
  if (code !== 0) throw new Error(`proxy.sh status exited ${code}: ${out}`);
  return out
    .split('\n')
    .map((line) => /^(ready|live)\s+(o\d+)\s+(\S+)\s+(\S+)/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ backend: m[1] ?? '', server: m[2] ?? '', addr: m[3] ?? '', status: m[4] ?? '' }));
}

const readyStatus = async (proxyPort: number, orchestratorPort: number): Promise<string | undefined> =>
  (await servers(proxyPort)).find((s) => s.backend === 'ready' && s.addr === `127.0.0.1:${orchestratorPort}`)?.status;

describe.skipIf(!HAPROXY)('one address: HAProxy in front of two orchestrators', () => {
  it('balances over leader and follower, and writes through it keep succeeding while the leader is SIGKILLed', async () => {
    const [portA, portB, proxyPort] = [await freePort(), await freePort(), await freePort()];
    const namespace = `t-proxy-${process.pid}-${Date.now().toString(36)}`;
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'dbaas-proxy-data-'));
    const entry = path.join(ROOT, 'dist/orchestrator/main.js');
    const env = { DBAAS_LOG_LEVEL: 'warn', DBAAS_INITIAL_SLAVES: '1', DBAAS_MIN_SLAVES: '1', DBAAS_MAX_SLAVES: '1' };
    const mk = (port: number): OrchestratorProcess =>
      new OrchestratorProcess({ entry, port, namespace, dataDir, logFile: path.join(dataDir, `orch-${port}.log`), env });
    const a = mk(portA);
    const b = mk(portB);
    cleanUps.push(async () => {
      for (const o of [b, a]) {
        o.signal('SIGINT');
        await o.waitExit(20_000);
      }
      for (const pid of runProcesses(namespace, dataDir)) process.kill(pid, 'SIGKILL');
      await purgeNamespace(namespace, workerDirs(dataDir, namespace)).catch(() => undefined);
      rmSync(dataDir, { recursive: true, force: true });
    });
    await a.start(60_000);
    await b.start(60_000);

    // Readiness is the cluster's: the follower answers 200 like the leader, about the same master.
    const readyA = (await (await fetch(`${a.url}/readyz`)).json()) as any;
    const readyB = (await (await fetch(`${b.url}/readyz`)).json()) as any;
    expect(readyA).toMatchObject({ ready: true, broker: true });
    expect(readyB).toMatchObject({ ready: true, broker: true, master: readyA.master });

    // The proxy, as a user starts it; a second start is a no-op.
    const started = await proxySh('start', '--port', String(proxyPort), '--host', '127.0.0.1', '--backends', `${portA},127.0.0.1:${portB}`);
    expect(started.code, started.out).toBe(0);
    cleanUps.push(async () => {
      const pid = readFileSync(path.join(stateDir, String(proxyPort), 'haproxy.pid'), 'utf8').trim();
      await proxySh('stop', '--port', String(proxyPort));
      expect(existsSync(`/proc/${pid}`), 'haproxy still runs after proxy.sh stop').toBe(false);
    });
    const again = await proxySh('start', '--port', String(proxyPort), '--host', '127.0.0.1', '--backends', `${portA},127.0.0.1:${portB}`);
    expect(again.out).toMatch(/already runs/);

    // Both orchestrators are healthy backends: leader and follower each pass /readyz (and /healthz).
    await eventually(async () => (await servers(proxyPort)).filter((s) => s.status === 'UP').length === 4, 15_000, 'all four proxy servers UP');
    const P = `http://127.0.0.1:${proxyPort}`;
    const list = (await (await fetch(`${P}/api/v1/orchestrators`)).json()) as any;
    expect(list.orchestrators.map((o: { url: string }) => o.url).sort()).toEqual([a.url, b.url].sort());
    // Round robin: requests through the one address reach both (each answers `self` for itself).
    const selves = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const r = (await (await fetch(`${P}/api/v1/orchestrators`)).json()) as any;
      selves.add(r.orchestrators.find((o: { self: boolean }) => o.self).url);
    }
    expect([...selves].sort()).toEqual([a.url, b.url].sort());

    // Writers through the proxy with the typed client's retries; the leader (a) is SIGKILLed meanwhile.
    const acked: Array<{ id: string; at: number }> = [];
    const failed: string[] = [];
    let retries = 0;
    let maxSeq = 0;
    let stop = false;
    const writer = async (w: number): Promise<void> => {
      const client = new DbaasClient({ url: P, timeoutMs: 10_000, retry: { attempts: 30, maxDelayMs: 500 }, onRetry: () => void retries++ });
      for (let i = 0; !stop; i++) {
        const id = `${w}-${i}`;
        try {
          const result = await client.insert('px', { _id: id, w, i });
          maxSeq = Math.max(maxSeq, result.seq);
          acked.push({ id, at: Date.now() });
        } catch (err) {
          failed.push(`${id}: ${(err as Error).message}`);
        }
      }
    };
    const running = [0, 1, 2].map((w) => writer(w));
    await new Promise((r) => setTimeout(r, 1500));
    const killedAt = Date.now();
    a.signal('SIGKILL');
    await a.waitExit(10_000);
    await eventually(async () => (await readyStatus(proxyPort, portA)) === 'DOWN', 15_000, 'the proxy to mark the killed orchestrator DOWN');
    const downAfterMs = Date.now() - killedAt;
    await new Promise((r) => setTimeout(r, 2000));
    stop = true;
    await Promise.all(running);
    expect(failed).toEqual([]);
    expect(acked.filter((x) => x.at < killedAt).length).toBeGreaterThan(5);
    expect(acked.filter((x) => x.at > killedAt + downAfterMs).length).toBeGreaterThan(5);

    // Every acknowledged write is there exactly once (read through the proxy: the survivor answers).
    const reader = new DbaasClient({ url: P, retry: { attempts: 30, maxDelayMs: 500 } });
    const docs = await reader.read<{ _id: string }>('px', { columns: ['_id'], limit: 100_000, afterSeq: maxSeq });
    const ids = docs.map((d) => d._id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.sort()).toEqual(acked.map((x) => x.id).sort());

    // The killed orchestrator, started again on its port, rejoins as a follower and the proxy takes it back.
    await a.start(60_000);
    await eventually(async () => (await readyStatus(proxyPort, portA)) === 'UP', 15_000, 'the proxy to take the restarted orchestrator back');
    console.log(
      `proxy: ${acked.length} writes through one address, none failed (${retries} client retries); the killed leader was DOWN in the proxy after ${downAfterMs} ms`,
    );
  }, 240_000);

  it("accepts the compose file's HAProxy configuration (docker/haproxy.cfg)", async () => {
    // The names it balances over (orchestrator-1, orchestrator-2) resolve only on the compose network: init-addr none.
    const { stdout, stderr } = await run(HAPROXY ?? 'haproxy', ['-c', '-f', path.join(ROOT, 'docker/haproxy.cfg')]);
    expect(`${stdout}${stderr}`).toMatch(/Configuration file is valid/);
  });
});
