import { afterEach, describe, expect, it } from 'vitest';
import { eventually, startTestCluster, type TestCluster } from './harness.js';
import { alive, dbPidOf, pauseZooKeeper, restartZooKeeper } from './infra.js';
import { startLoad, type LoadResult } from './load.js';
import { dumpAllReplicas } from './replicas.js';

let clusters: TestCluster[] = [];

afterEach(async () => {
  for (const c of clusters) await c.close().catch(() => undefined);
  clusters = [];
});

async function cluster(env: Record<string, string> = {}): Promise<TestCluster> {
  const c = await startTestCluster({ DBAAS_REQUEST_TIMEOUT_MS: '3000', ...env });
  clusters.push(c);
  return c;
}

/** No request hung; every failure was a clear 503/504; every acknowledged write is on every replica exactly once. */
async function expectCleanOutcome(c: TestCluster, table: string, load: LoadResult): Promise<void> {
  expect(load.acked.size).toBeGreaterThan(5);
  for (const o of load.outcomes) {
    expect([200, 503, 504]).toContain(o.status);
    expect(o.ms).toBeLessThan(c.config.requestTimeoutMs + c.config.masterWaitMs + 2000);
  }
  const dumps = await dumpAllReplicas(c.orch, 30_000);
  for (const [id, dump] of dumps) {
    const keys = ((dump[table] ?? []) as Array<{ key: string }>).map((d) => d.key);
    expect(new Set(keys).size, `a write applied twice on ${id}`).toBe(keys.length);
    for (const k of load.acked) expect(keys, `acknowledged ${k} missing on ${id}`).toContain(k);
  }
}

describe('dependency outages under load', () => {
  it('ZooKeeper restarted: requests succeed or fail fast, then the cluster is whole again', async () => {
    const c = await cluster();
    const load = startLoad(c, 'zk_outage');
    await eventually(() => c.orch.view.ready, 5000, 'view');
    await new Promise((r) => setTimeout(r, 500));
    await restartZooKeeper(3000);
    await eventually(() => c.orch.cluster.ready() && c.orch.view.workers.size === 2, 60_000, 'a whole cluster after the ZooKeeper restart');
    await new Promise((r) => setTimeout(r, 500));
    const result = await load.stop();
    await expectCleanOutcome(c, 'zk_outage', result);
  });

  it('ZooKeeper down 15 s under load: reads never fail, writes resume within 1 s of its return, no failover, nothing lost', async () => {
    const c = await cluster({ DBAAS_INITIAL_SLAVES: '2' });
    const pidsBefore = ((await c.get('/api/v1/workers/list')).body as number[]).slice().sort();
    const eventsBefore = c.orch.audit.list().length;
    interface Try {
      kind: 'read' | 'write';
      start: number;
      end: number;
      status: number;
    }
    const tries: Try[] = [];
    const acked = new Set<string>();
    let stop = false;
    const writer = async (w: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const key = `${w}-${i}`;
        for (;;) {
          const start = Date.now();
          const r = await c.post('/api/v1/db/write', { table: 'zk_down', operation: 'insert', data: { key }, requestId: `zk-down-${key}` });
          tries.push({ kind: 'write', start, end: Date.now(), status: r.status });
          if (r.status === 200) {
            acked.add(key);
            break;
          }
          if (stop) break;
          await new Promise((res) => setTimeout(res, 50));
        }
      }
    };
    const reader = async (): Promise<void> => {
      while (!stop) {
        const start = Date.now();
        const r = await c.post('/api/v1/db/read', { table: 'zk_down', where: {}, count: true });
        tries.push({ kind: 'read', start, end: Date.now(), status: r.status });
        await new Promise((res) => setTimeout(res, 20));
      }
    };
    const running = [writer(0), writer(1), reader(), reader()];
    await new Promise((r) => setTimeout(r, 1000));
    const downAt = Date.now();
    await restartZooKeeper(15_000);
    const upAt = Date.now();
    await eventually(() => c.orch.view.ready && c.orch.cluster.ready(), 30_000, 'the view to be whole again');
    await new Promise((r) => setTimeout(r, 2000));
    stop = true;
    await Promise.all(running);

    const during = tries.filter((t) => t.end > downAt && t.start < upAt);
    expect(during.filter((t) => t.kind === 'read').length).toBeGreaterThan(20);
    expect(during.filter((t) => t.kind === 'write').length).toBeGreaterThan(20);
    expect(tries.filter((t) => t.kind === 'read' && t.status !== 200)).toEqual([]);
    // Writes resume within a second of ZooKeeper's return (in practice they never stop).
    expect(tries.filter((t) => t.kind === 'write' && t.status !== 200 && t.start > upAt + 1000)).toEqual([]);
    const newEvents = c.orch.audit.list().slice(eventsBefore);
    expect(newEvents.filter((e) => ['promotion', 'restart', 'replacement', 'detection'].includes(e.kind))).toEqual([]);
    // The same workers (no failover, no replacement), every one registered again: a worker whose session expired
    // during the outage registers anew once ZooKeeper is back, which may take a few seconds after the view is whole.
    let listed: number[] = [];
    await eventually(
      async () => (listed = ((await c.get('/api/v1/workers/list')).body as number[]).slice().sort()).join() === pidsBefore.join(),
      15_000,
      'the same workers listed again',
    ).catch(() => undefined);
    expect(listed).toEqual(pidsBefore);
    const relistedMs = Date.now() - upAt;
    const dumps = await dumpAllReplicas(c.orch, 30_000);
    for (const [id, dump] of dumps) {
      const keys = ((dump.zk_down ?? []) as Array<{ key: string }>).map((d) => d.key);
      expect(new Set(keys).size, `a write applied twice on ${id}`).toBe(keys.length);
      for (const k of acked) expect(keys, `acknowledged ${k} missing on ${id}`).toContain(k);
    }
    console.log(
      `ZooKeeper down ${upAt - downAt} ms: ${during.length} requests during the outage, ${tries.filter((t) => t.status !== 200).length} not 200 in all, ${acked.size} writes acknowledged; every worker listed again ${relistedMs} ms after its return`,
    );
  }, 120_000);

  it('ZooKeeper paused past the session timeout: no failover, no request lost, nothing lost', async () => {
    const c = await cluster({ DBAAS_INITIAL_SLAVES: '2' });
    const pidsBefore = ((await c.get('/api/v1/workers/list')).body as number[]).slice().sort();
    const masterBefore = c.orch.view.master?.id;
    const eventsBefore = c.orch.audit.list().length;
    const load = startLoad(c, 'zk_pause', 2, 1);
    await eventually(() => c.orch.view.ready, 5000, 'view');
    await new Promise((r) => setTimeout(r, 500));
    await pauseZooKeeper(6000);
    const resumedAt = Date.now();
    await eventually(() => c.orch.view.ready && c.orch.cluster.ready() && c.orch.view.workers.size === 3, 30_000, 'the cluster whole again');
    const wholeMs = Date.now() - resumedAt;
    await new Promise((r) => setTimeout(r, 1500));
    const result = await load.stop();
    expect(c.orch.view.master?.id).toBe(masterBefore);
    expect(((await c.get('/api/v1/workers/list')).body as number[]).slice().sort()).toEqual(pidsBefore);
    const newEvents = c.orch.audit.list().slice(eventsBefore);
    expect(newEvents.filter((e) => ['promotion', 'restart', 'replacement'].includes(e.kind))).toEqual([]);
    await expectCleanOutcome(c, 'zk_pause', result);
    const failed = result.outcomes.filter((o) => o.status !== 200).length;
    console.log(`ZooKeeper paused 6 s: the cluster was whole ${wholeMs} ms after it resumed; ${failed} of ${result.outcomes.length} requests got 503/504, ${result.acked.size} writes acknowledged`);
  }, 120_000);

  it("a worker's database killed: the worker is replaced or restarted in place (not left half alive), nothing acknowledged is lost", async () => {
    const c = await cluster({ DBAAS_INITIAL_SLAVES: '2' });
    const load = startLoad(c, 'db_outage');
    await new Promise((r) => setTimeout(r, 800));
    const slave = c.orch.view.servingSlaves()[0];
    const master = c.orch.view.masterStatus();
    if (!slave || !master) throw new Error('cluster not ready');
    const slaveDb = dbPidOf(c.dataDir, c.namespace, slave.id);
    process.kill(slaveDb, 'SIGKILL');
    await eventually(() => !alive(slave.pid), 10_000, 'the slave whose database died to be gone');
    // A new slave, or the same one restarted in place on its data (DBAAS_SLAVE_RESTARTS_IN_PLACE): a new process either way.
    await eventually(
      () => c.orch.view.servingSlaves().length === 2 && !c.orch.view.servingSlaves().some((s) => s.pid === slave.pid),
      20_000,
      'its replacement or restart',
    );

    const masterDb = dbPidOf(c.dataDir, c.namespace, master.id);
    process.kill(masterDb, 'SIGKILL');
    await eventually(() => !alive(master.pid), 10_000, 'the master whose database died to be gone');
    await eventually(
      () => c.orch.cluster.ready() && c.orch.view.master?.id !== master.id && c.orch.view.servingSlaves().length === 2,
      30_000,
      'a new master and two slaves',
    );
    const result = await load.stop();
    await expectCleanOutcome(c, 'db_outage', result);
  });
});
