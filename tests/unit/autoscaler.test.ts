import { describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { AuditLog } from '../../orchestrator/audit-log.js';
import { Autoscaler, slaveTarget, type Scalable } from '../../orchestrator/autoscaler.js';

describe('slaveTarget', () => {
  it('follows the course rule with the defaults: 0-20 → 1, 21-40 → 2, 41-60 → 3', () => {
    expect([0, 1, 20, 21, 40, 41, 45, 60, 61].map((r) => slaveTarget(r, 20, 1, 16))).toEqual([1, 1, 1, 2, 2, 3, 3, 3, 4]);
  });

  it('respects the bounds and never goes below one', () => {
    expect(slaveTarget(1000, 20, 1, 4)).toBe(4);
    expect(slaveTarget(0, 20, 2, 4)).toBe(2);
    expect(slaveTarget(0, 20, 0, 4)).toBe(1);
  });
});

class FakeCluster implements Scalable {
  targetSlaves = 1;
  promoting = false;
  calls: Array<{ slaves: number; reason: string }> = [];
  scaleTo(slaves: number, reason: string): number {
    this.calls.push({ slaves, reason });
    this.targetSlaves = slaves;
    return slaves;
  }
  busy(): boolean {
    return this.promoting;
  }
}

function setup(intervalMs = 10_000) {
  let now = 1_000_000;
  const cluster = new FakeCluster();
  const audit = new AuditLog(createLogger('test', 'silent'));
  const scaler = new Autoscaler({ scaleIntervalMs: intervalMs, readsPerSlave: 20, minSlaves: 1, maxSlaves: 16 }, cluster, audit, () => now);
  return { cluster, audit, scaler, advance: (ms: number) => (now += ms) };
}

describe('Autoscaler', () => {
  it('does nothing before the first read, then decides once per window and resets the count', async () => {
    const { cluster, audit, scaler, advance } = setup();
    advance(60_000);
    scaler.tick();
    expect(cluster.calls).toEqual([]);
    expect(scaler.status().started).toBe(false);

    for (let i = 0; i < 45; i++) scaler.onRead();
    advance(9_000);
    scaler.tick();
    expect(cluster.calls).toEqual([]); // the window is not over yet
    advance(1_000);
    scaler.tick();
    expect(cluster.calls).toEqual([{ slaves: 3, reason: '45 read(s) in the last window: scaling up from 1 to 3 slave(s)' }]);
    expect(scaler.status().readsInWindow).toBe(0);

    scaler.onRead();
    advance(10_000);
    scaler.tick();
    expect(cluster.calls.at(-1)?.slaves).toBe(1);
    const decisions = audit.list().filter((e) => e.kind === 'scaling');
    expect(decisions).toHaveLength(2);
    expect(decisions[1]?.details).toMatchObject({ reads: 1, target: 1, previous: 3 });
    await scaler.close();
  });

  it('holds a decision while a promotion is in progress', async () => {
    const { cluster, scaler, advance } = setup();
    for (let i = 0; i < 30; i++) scaler.onRead();
    cluster.promoting = true;
    advance(20_000);
    scaler.tick();
    expect(cluster.calls).toEqual([]);
    cluster.promoting = false;
    scaler.tick();
    expect(cluster.calls).toEqual([{ slaves: 2, reason: '30 read(s) in the last window: scaling up from 1 to 2 slave(s)' }]);
    await scaler.close();
  });

  it('records an unchanged target too', async () => {
    const { cluster, audit, scaler, advance } = setup();
    scaler.onRead();
    advance(10_000);
    scaler.tick();
    expect(cluster.calls).toEqual([{ slaves: 1, reason: '1 read(s) in the last window: keeping 1 slave(s)' }]);
    expect(audit.list()).toHaveLength(1);
    await scaler.close();
  });
});
