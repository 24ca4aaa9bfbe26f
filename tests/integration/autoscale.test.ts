import { afterEach, describe, expect, it } from 'vitest';
import { eventually, startTestCluster, type TestCluster } from './harness.js';

let clusters: TestCluster[] = [];

async function cluster(env: Record<string, string>): Promise<TestCluster> {
  const c = await startTestCluster(env);
  clusters.push(c);
  return c;
}

afterEach(async () => {
  for (const c of clusters) await c.close().catch(() => undefined);
  clusters = [];
});

const WINDOW_MS = 3000;

type Event = { kind: string; reason: string; details?: { reads?: number; target?: number } };

describe('autoscaling', () => {
  it('45 reads in a window bring 3 slaves; a light reader then brings it back to 1 without a failed read', async () => {
    const c = await cluster({ DBAAS_SCALE_INTERVAL_MS: String(WINDOW_MS) });
    const w = await c.post('/api/v1/db/write', { table: 'load', operation: 'insert', data: { _id: 'x' } });
    const reads = await Promise.all(Array.from({ length: 45 }, () => c.post('/api/v1/db/read', { table: 'load', where: {}, afterSeq: w.body.seq })));
    expect(reads.every((r) => r.status === 200)).toBe(true);

    await eventually(() => c.orch.view.servingSlaves().length === 3, 2 * WINDOW_MS + 15_000, '3 serving slaves');
    const up = ((await c.get('/api/v1/events')).body as Event[]).find((e) => e.kind === 'scaling' && e.details?.target === 3);
    expect(up?.details?.reads).toBe(45);
    expect(up?.reason).toBe('45 read(s) in the last window: scaling up from 1 to 3 slave(s)');

    // A light reader (4 reads a second: 12 a window, under one slave's share of 20) brings it back to one slave.
    const failed: Array<{ status: number; body: unknown }> = [];
    let ok = 0;
    let stop = false;
    const reader = (async () => {
      while (!stop) {
        const r = await c.post('/api/v1/db/read', { table: 'load', where: { _id: 'x' } });
        if (r.status === 200 && Array.isArray(r.body) && r.body.length === 1) ok += 1;
        else failed.push({ status: r.status, body: r.body });
        await new Promise((res) => setTimeout(res, 250));
      }
    })();
    try {
      await eventually(
        () => c.orch.view.servingSlaves().length === 1 && c.orch.view.slaves().length === 1,
        3 * WINDOW_MS + 20_000,
        'back to one slave',
      );
      // Reads go on across both retirements (the time a read could fail), and at least 5 of them: a window that
      // closed just after the scale-up can bring it back to one slave within a second (3 reads were seen).
      await eventually(
        () => (c.orch.audit.list() as Event[]).filter((e) => e.kind === 'removal' && /retired slave/.test(e.reason)).length === 2 && ok >= 5,
        15_000,
        'both retirements recorded, with reads going on',
      );
    } finally {
      stop = true;
      await reader;
    }
    expect(failed).toEqual([]);
    expect(ok).toBeGreaterThanOrEqual(5);
    const events = (await c.get('/api/v1/events')).body as Event[];
    expect(events.some((e) => e.kind === 'scaling' && e.details?.target === 1 && /scaling down from 3 to 1/.test(e.reason))).toBe(true);
    await eventually(
      () => (c.orch.audit.list() as Event[]).filter((e) => e.kind === 'removal' && /retired slave/.test(e.reason)).length === 2,
      10_000,
      'both retirements recorded',
    );
  });

  it('counts only db/read: writes, list, workers and crash calls do not count; bounds hold', async () => {
    const c = await cluster({ DBAAS_SCALE_INTERVAL_MS: String(WINDOW_MS), DBAAS_MAX_SLAVES: '2' });
    // One read opens the window; everything else must not count.
    expect((await c.post('/api/v1/db/read', { table: 'n', where: {} })).status).toBe(200);
    for (let i = 0; i < 60; i++) await c.post('/api/v1/db/write', { table: 'n', operation: 'insert', data: { i } });
    for (let i = 0; i < 30; i++) {
      await c.get('/api/v1/workers/list');
      await c.get('/api/v1/workers');
    }
    expect((await c.post('/api/v1/crash/slave')).status).toBe(200);
    await c.post('/api/v1/db/clear');
    await eventually(
      () => ((c.orch.audit.list() as Event[]).some((e) => e.kind === 'scaling' && e.details?.reads !== undefined)),
      WINDOW_MS + 5000,
      'the first window to close',
    );
    const first = (c.orch.audit.list() as Event[]).find((e) => e.kind === 'scaling' && e.details?.reads !== undefined);
    expect(first?.details).toMatchObject({ reads: 1, target: 1 });

    // 100 reads with a maximum of 2 slaves: the target is 2, not 5.
    await eventually(() => c.orch.view.servingSlaves().length === 1, 15_000, 'the crashed slave replaced');
    const before = c.orch.audit.list().length;
    await Promise.all(Array.from({ length: 100 }, () => c.post('/api/v1/db/read', { table: 'n', where: {}, count: true })));
    await eventually(
      () => (c.orch.audit.list().slice(before) as Event[]).some((e) => e.kind === 'scaling' && (e.details?.reads ?? 0) >= 100),
      2 * WINDOW_MS + 5000,
      'the window with 100 reads',
    );
    const decision = (c.orch.audit.list().slice(before) as Event[]).find((e) => e.kind === 'scaling' && (e.details?.reads ?? 0) >= 100);
    expect(decision?.details?.target).toBe(2);
    await eventually(() => c.orch.view.servingSlaves().length === 2, 15_000, '2 serving slaves');
  });

  it('takes a manual override from an admin', async () => {
    const c = await cluster({ DBAAS_ADMIN_TOKEN: 'secret-token', DBAAS_MAX_SLAVES: '3' });
    const denied = await c.post('/api/v1/scale', { slaves: 2 });
    expect(denied.status).toBe(401);
    const bad = await c.orch.app.inject({ method: 'POST', url: '/api/v1/scale', payload: { slaves: 9 }, headers: { authorization: 'Bearer secret-token' } });
    expect(bad.statusCode).toBe(400);
    const wrong = await c.orch.app.inject({ method: 'POST', url: '/api/v1/scale', payload: { slaves: 2 }, headers: { authorization: 'Bearer nope' } });
    expect(wrong.statusCode).toBe(403);
    const ok = await c.orch.app.inject({ method: 'POST', url: '/api/v1/scale', payload: { slaves: 2 }, headers: { authorization: 'Bearer secret-token' } });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ targetSlaves: 2 });
    await eventually(() => c.orch.view.servingSlaves().length === 2, 15_000, 'the second slave');
  });
});
