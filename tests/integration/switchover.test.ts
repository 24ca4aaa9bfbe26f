import { afterEach, describe, expect, it } from 'vitest';
import { eventually, startTestCluster, type TestCluster } from './harness.js';
import { alive } from './infra.js';
import { dumpAllReplicas } from './replicas.js';

let clusters: TestCluster[] = [];

afterEach(async () => {
  for (const c of clusters) await c.close().catch(() => undefined);
  clusters = [];
});

describe('planned switchover', () => {
  it('hands the master role to the chosen slave under write load: no write fails, none is lost or doubled', async () => {
    const c = await startTestCluster({ DBAAS_INITIAL_SLAVES: '2' });
    clusters.push(c);
    const before = (await c.get('/api/v1/workers')).body as Array<{ id: string; role: string; pid: number }>;
    const oldMaster = before.find((w) => w.role === 'master');
    const target = before.filter((w) => w.role === 'slave').sort((a, b) => b.pid - a.pid)[0];
    expect(oldMaster && target).toBeTruthy();

    let stop = false;
    const acked: string[] = [];
    const failures: number[] = [];
    const latencies: Array<{ start: number; ms: number }> = [];
    const writer = async (w: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const start = Date.now();
        for (;;) {
          const r = await c.post('/api/v1/db/write', { table: 'so', operation: 'insert', data: { _id: `${w}-${i}` }, requestId: `so-${w}-${i}` });
          if (r.status === 200) {
            acked.push(`${w}-${i}`);
            break;
          }
          failures.push(r.status);
          if (r.status !== 503 && r.status !== 504) break;
          await new Promise((res) => setTimeout(res, 25));
        }
        latencies.push({ start, ms: Date.now() - start });
      }
    };
    const running = [0, 1, 2, 3].map((w) => writer(w));
    await new Promise((r) => setTimeout(r, 500));
    const asked = Date.now();
    const res = await c.post('/api/v1/switchover', { target: target?.id });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ from: oldMaster?.id, to: target?.id });
    await eventually(() => c.orch.view.master?.id === target?.id && c.orch.view.servingSlaves().length === 2, 45_000, 'the new master and two serving slaves');
    await new Promise((r) => setTimeout(r, 500));
    stop = true;
    await Promise.all(running);

    // Retryable refusals only (a write waits in the queue for the new master, or is retried with its requestId).
    expect(failures.filter((s) => s !== 503 && s !== 504)).toEqual([]);
    expect(alive(oldMaster?.pid ?? 0)).toBe(false);
    const pause = Math.max(...latencies.filter((l) => l.start >= asked - 200).map((l) => l.ms));
    for (const [id, dump] of await dumpAllReplicas(c.orch, 30_000)) {
      const ids = ((dump.so ?? []) as Array<{ _id: string }>).map((d) => d._id);
      expect(new Set(ids).size, `a write applied twice on ${id}`).toBe(ids.length);
      for (const k of acked) expect(ids, `acknowledged ${k} missing on ${id}`).toContain(k);
    }
    expect(c.orch.audit.list().some((e) => e.kind === 'switchover')).toBe(true);
    console.log(`switchover: ${res.body.durationMs} ms; longest write (with retries) around it ${pause} ms; ${failures.length} retried refusals; ${acked.length} writes`);
  }, 120_000);

  it('refuses a target that is not a caught-up slave, and changes nothing', async () => {
    const c = await startTestCluster();
    clusters.push(c);
    const master = c.orch.view.master?.id;
    const r = await c.post('/api/v1/switchover', { target: 'no-such-worker' });
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe('DBAAS_SWITCHOVER_NO_TARGET');
    expect((await c.post('/api/v1/switchover', { target: 'x', extra: 1 })).body.error.code).toBe('DBAAS_REQ_UNKNOWN_FIELD');
    expect(c.orch.view.master?.id).toBe(master);
  });
});
