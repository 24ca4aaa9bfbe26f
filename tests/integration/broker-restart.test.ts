import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestCluster, type TestCluster } from './harness.js';
import { dumpAllReplicas } from './replicas.js';

const run = promisify(execFile);
// As root, the sbin wrapper switches to the rabbitmq user (and its Erlang cookie).
const rabbitmqctl = existsSync('/usr/sbin/rabbitmqctl') ? '/usr/sbin/rabbitmqctl' : 'rabbitmqctl';

let c: TestCluster;

beforeAll(async () => {
  c = await startTestCluster({ DBAAS_REQUEST_TIMEOUT_MS: '3000' });
});

afterAll(async () => {
  // Never leave the shared broker stopped for the next test file.
  await run(rabbitmqctl, ['start_app']).catch(() => undefined);
  await c?.close();
});

describe('RabbitMQ restarted while requests flow', () => {
  it('answers 503 fast during the outage, recovers, and loses no acknowledged write', async () => {
    const outcomes: Array<{ status: number; ms: number; code?: string }> = [];
    const acked = new Set<string>();
    let stop = false;
    let n = 0;
    const client = async (): Promise<void> => {
      while (!stop) {
        const i = n++;
        const isWrite = i % 2 === 0;
        const id = `k${i}`;
        const started = Date.now();
        const r =
          isWrite
            ? await c.post('/api/v1/db/write', { table: 'outage', operation: 'insert', data: { _id: id }, requestId: `req-${id}` })
            : await c.post('/api/v1/db/read', { table: 'outage', where: {}, count: true });
        outcomes.push({ status: r.status, ms: Date.now() - started, code: r.body?.error?.code });
        if (r.status === 200 && isWrite) acked.add(id);
        if (r.status !== 200) await new Promise((res) => setTimeout(res, 20));
      }
    };
    const clients = [client(), client()];
    await eventually(() => acked.size >= 10, 10_000, 'writes before the outage');

    await run(rabbitmqctl, ['stop_app']);
    await eventually(() => outcomes.some((o) => o.status === 503), 10_000, 'a 503 during the outage');
    await run(rabbitmqctl, ['start_app']);

    const ackedBefore = acked.size;
    await eventually(() => acked.size >= ackedBefore + 10, 60_000, 'writes succeeding after the broker is back');
    await eventually(async () => (await c.get('/readyz')).status === 200, 30_000, 'readiness after the outage');
    stop = true;
    await Promise.all(clients);

    // Every answer was a success or a clear 503/504 — and none hung past the request timeout.
    for (const o of outcomes) {
      expect([200, 503, 504]).toContain(o.status);
      expect(o.ms).toBeLessThan(c.config.requestTimeoutMs + 1500);
    }
    const failures = outcomes.filter((o) => o.status === 503);
    expect(failures.length).toBeGreaterThan(0);
    expect(failures.every((o) => o.code === 'DBAAS_BROKER_UNAVAILABLE')).toBe(true);

    // Every acknowledged write is on every replica exactly once.
    const dumps = await dumpAllReplicas(c.orch, 30_000);
    for (const [id, dump] of dumps) {
      const ids = ((dump.outage ?? []) as Array<{ _id: string }>).map((d) => d._id);
      expect(new Set(ids).size, `duplicates on ${id}`).toBe(ids.length);
      for (const k of acked) expect(ids, `acknowledged ${k} missing on ${id}`).toContain(k);
    }
  });
});
