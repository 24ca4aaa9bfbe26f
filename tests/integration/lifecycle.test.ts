/**
 * The lifecycle manager (orchestrator/lifecycle/main.js, what `npm start` runs) as
 * a real process on the single platform: it starts an orchestrator and lists it
 * and the platform services at GET /api/v1/platform; a SIGKILLed orchestrator is
 * started again, a SIGSTOPped one is found wedged by its /healthz probe, killed
 * and started again, each restart audited and listed, and the workers adopted
 * (same pids). A manager SIGKILLed and started again adopts the orchestrator
 * still running. The shared single-platform services are only watched here
 * (this manager did not start them); their restarts are tested on the HA
 * platform (platform-ha.test.ts, opt-in). About 30 s.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DbaasClient, type PlatformService } from '../../client/index.js';
import { dropWorkerDatabases } from '../../orchestrator/runtimes/postgresql-databases.js';
import { purgeNamespace, runProcesses, workerDirs } from '../../tools/nemesis/infra.js';
import { eventually } from './harness.js';
import { alive, freePort } from './infra.js';

const root = path.resolve(import.meta.dirname, '../..');
const namespace = `t-lc-${process.pid}-${Date.now().toString(36)}`;
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'dbaas-lc-'));
const logs: string[] = [];
let port = 0;
let client: DbaasClient;
const managers: ChildProcess[] = [];

function startManager(): ChildProcess {
  const child = spawn(process.execPath, [path.join(root, 'dist/orchestrator/lifecycle/main.js')], {
    cwd: root,
    env: {
      ...process.env,
      DBAAS_PORT: String(port),
      DBAAS_HOST: '127.0.0.1',
      DBAAS_NAMESPACE: namespace,
      DBAAS_DATA_DIR: dataDir,
      DBAAS_INITIAL_SLAVES: '1',
      DBAAS_LOG_FORMAT: 'json',
      DBAAS_LOG_LEVEL: 'warn',
      DBAAS_LIFECYCLE_MANAGED: '',
      DBAAS_LIFECYCLE_PROBE_INTERVAL_MS: '300',
      DBAAS_LIFECYCLE_PROBE_TIMEOUT_MS: '1000',
      DBAAS_LIFECYCLE_WEDGED_AFTER: '2',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => logs.push(d.toString()));
  child.stderr!.on('data', (d: Buffer) => logs.push(d.toString()));
  managers.push(child);
  return child;
}

async function orchestratorEntry(): Promise<PlatformService | undefined> {
  const view = await client.platform().catch(() => undefined);
  return view?.services.find((s) => s.kind === 'orchestrator');
}

/** Waits until the listed orchestrator runs with a pid other than `old` and `restarts` restarts; answers it. */
async function restartedFrom(old: number, restarts: number, timeoutMs = 60_000): Promise<PlatformService> {
  let entry: PlatformService | undefined;
  await eventually(
    async () => {
      entry = await orchestratorEntry();
      return entry?.state === 'running' && entry.pid !== undefined && entry.pid !== old && entry.restarts === restarts;
    },
    timeoutMs,
    `the orchestrator restarted (restart ${restarts}, not pid ${old})`,
  );
  return entry!;
}

async function platformEvents(): Promise<string[]> {
  return (await client.events()).filter((e) => e.kind === 'platform').map((e) => e.reason);
}

afterAll(async () => {
  for (const m of managers) if (m.exitCode === null && m.signalCode === null) m.kill('SIGKILL');
  for (const pid of runProcesses(namespace, dataDir)) process.kill(pid, 'SIGKILL');
  await purgeNamespace(namespace, workerDirs(dataDir, namespace)).catch(() => undefined);
  await dropWorkerDatabases(path.join(dataDir, namespace)).catch(() => undefined);
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(path.join(root, `.dbaas/lifecycle/orchestrator-${port}.pid`), { force: true });
}, 60_000);

describe('the lifecycle manager', () => {
  it('restarts a SIGKILLed and a SIGSTOPped orchestrator, audits and lists it; a new manager adopts the running one', async () => {
    port = await freePort();
    client = new DbaasClient({ url: `http://127.0.0.1:${port}`, timeoutMs: 3000, retry: { attempts: 1 } });
    const first = startManager();

    // Listed: the orchestrator it started, and the platform services it watches but did not start.
    let entry: PlatformService | undefined;
    await eventually(async () => (entry = await orchestratorEntry())?.state === 'running', 60_000, 'the orchestrator running in the platform view');
    const view = await client.platform();
    expect(view.platform).toBe('single');
    const platform = view.services.filter((s) => s.kind !== 'orchestrator');
    expect(platform.map((s) => [s.name, s.kind, s.state, s.managed])).toEqual([
      ['rabbitmq', 'rabbitmq', 'running', false],
      ['zookeeper', 'zookeeper', 'running', false],
    ]);
    // A pid where this checkout started the service (a fresh machine, CI); services another checkout started are listed by their probe alone.
    for (const s of platform) if (s.pid !== undefined) expect(alive(s.pid), `${s.name} pid ${s.pid}`).toBe(true);
    expect(entry).toMatchObject({ name: `orchestrator-${port}`, address: `http://127.0.0.1:${port}`, managed: true, restarts: 0, stale: false });
    await eventually(async () => ((await client.workers().catch(() => [])) as unknown[]).length === 2, 60_000, 'a master and a slave');
    const workers = (await client.workers()).map((w) => w.pid).sort();

    // kill -9: noticed by its exit, started again, audited, listed; the workers are adopted, not replaced.
    const p1 = entry!.pid!;
    process.kill(p1, 'SIGKILL');
    const afterKill = await restartedFrom(p1, 1);
    expect(afterKill.lastFailure?.reason).toBe('has no process (it exited or was killed)');
    await eventually(async () => (await client.workers().catch(() => [])).length === 2, 30_000, 'the workers listed again');
    expect((await client.workers()).map((w) => w.pid).sort()).toEqual(workers);
    const events = await platformEvents();
    expect(events).toContain(`orchestrator-${port} has no process (it exited or was killed); restarting it (restart 1 within 600 s, 1 in all)`);
    expect(events.some((r) => r.startsWith(`orchestrator-${port} (pid ${afterKill.pid}) is back after restart 1`))).toBe(true);

    // SIGSTOP: the process is there, its /healthz does not answer: wedged, killed, started again.
    const p2 = afterKill.pid!;
    process.kill(p2, 'SIGSTOP');
    const afterStop = await restartedFrom(p2, 2);
    expect(afterStop.lastFailure?.reason).toMatch(/^is alive but failed 2 probes in a row \(http:\/\/127\.0\.0\.1:\d+\/healthz: no answer within 1000 ms\)$/);
    expect(alive(p2)).toBe(false);
    expect(await platformEvents()).toContainEqual(expect.stringMatching(new RegExp(`^orchestrator-${port} \\(pid ${p2}\\) is alive but failed 2 probes in a row .*; killing and restarting it`)));

    // The manager itself SIGKILLed (scripts/start.sh starts it again): the new one adopts the orchestrator still running.
    first.kill('SIGKILL');
    await eventually(() => first.exitCode !== null || first.signalCode !== null, 10_000, 'the first manager gone');
    const second = startManager();
    await eventually(async () => (await platformEvents()).some((r) => r === `orchestrator-${port} (pid ${afterStop.pid}) is already running: adopted`), 30_000, 'the adoption audited');
    const adopted = await orchestratorEntry();
    expect(adopted?.pid).toBe(afterStop.pid);

    // Ctrl-C (SIGINT) to the manager stops the orchestrator and the manager; the view says stopped.
    second.kill('SIGINT');
    await eventually(() => second.exitCode !== null, 60_000, 'the manager to exit');
    expect(second.exitCode).toBe(0);
    expect(alive(afterStop.pid!)).toBe(false);
  }, 240_000);
});
