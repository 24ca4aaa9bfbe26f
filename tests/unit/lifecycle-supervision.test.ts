/** The lifecycle manager's decision step (orchestrator/lifecycle/supervision.ts), by its sentences. */
import { describe, expect, it } from 'vitest';
import { decide, initialRecord, restartDelayMs, type Supervised, type SupervisionPolicy } from '../../orchestrator/lifecycle/supervision.js';

const policy: SupervisionPolicy = { wedgedAfter: 3, maxRestarts: 3, restartWindowMs: 60_000, backoffMs: 1000, startGraceMs: 10_000 };
const running: Supervised = { ...initialRecord('running'), restarts: 0 };
const ok = { alive: true, pid: 42 };
const dead = { alive: false };
const silent = { alive: true, pid: 42, probeFailure: 'no imok to ruok on 127.0.0.1:2281 within 2000 ms' };

describe('lifecycle supervision', () => {
  it('a first answer makes a service running, and a running one that answers changes nothing', () => {
    const d = decide('zookeeper-1', initialRecord('starting'), ok, 0, policy, true);
    expect(d.next.state).toBe('running');
    expect(d.sentence).toBe('zookeeper-1 (pid 42) is running');
    const again = decide('zookeeper-1', d.next, ok, 1000, policy, true);
    expect(again).toEqual({ next: d.next, action: 'none' });
  });

  it('a managed service that is gone is restarted at once, and the restart is counted', () => {
    const d = decide('rabbitmq-2', running, dead, 5000, policy, true);
    expect(d.action).toBe('restart');
    expect(d.next.state).toBe('restarting');
    expect(d.next.restarts).toBe(1);
    expect(d.next.lastFailure).toEqual({ at: 5000, reason: 'has no process (it exited or was killed)' });
    expect(d.sentence).toBe('rabbitmq-2 has no process (it exited or was killed); restarting it (restart 1 within 60 s, 1 in all)');
  });

  it('a live process is wedged only after wedgedAfter failed probes in a row, then killed and restarted', () => {
    let s = running;
    for (let i = 1; i < policy.wedgedAfter; i++) {
      const d = decide('zookeeper-3', s, silent, i * 1000, policy, true);
      expect(d.action).toBe('none');
      expect(d.sentence).toBeUndefined();
      s = d.next;
    }
    const d = decide('zookeeper-3', s, silent, 3000, policy, true);
    expect(d.action).toBe('kill-and-restart');
    expect(d.sentence).toBe(
      'zookeeper-3 (pid 42) is alive but failed 3 probes in a row (no imok to ruok on 127.0.0.1:2281 within 2000 ms); killing and restarting it (restart 1 within 60 s, 1 in all)',
    );
    // One answer in between starts the count again.
    const mid = decide('zookeeper-3', decide('zookeeper-3', running, silent, 0, policy, true).next, ok, 1, policy, true);
    expect(mid.next.probeFailures).toBe(0);
  });

  it('a wedged server is not killed while a peer of its ensemble is not running (its quorum), and is once the peer is back', () => {
    const twice = decide('rabbitmq-2', decide('rabbitmq-2', running, silent, 0, policy, true).next, silent, 1, policy, true).next;
    const blocked = decide('rabbitmq-2', twice, silent, 2, policy, true, undefined, 'rabbitmq-1 is restarting: killing rabbitmq-2 as well could cost the cluster its quorum');
    expect(blocked.action).toBe('none');
    expect(blocked.next.state).toBe('wedged');
    expect(blocked.sentence).toBe(
      'rabbitmq-2 (pid 42) is alive but failed 3 probes in a row (no imok to ruok on 127.0.0.1:2281 within 2000 ms); not killed: rabbitmq-1 is restarting: killing rabbitmq-2 as well could cost the cluster its quorum',
    );
    expect(decide('rabbitmq-2', blocked.next, silent, 3, policy, true, undefined, 'rabbitmq-1 is restarting').sentence).toBeUndefined();
    expect(decide('rabbitmq-2', blocked.next, silent, 4, policy, true).action).toBe('kill-and-restart');
  });

  it('restarts within the window back off (0, 1 s, 2 s, … capped at 30 s), and past maxRestarts the service is left failed', () => {
    expect([1, 2, 3, 4, 10].map((n) => restartDelayMs(n, policy))).toEqual([0, 1000, 2000, 4000, 30_000]);
    // Second failure 500 ms after the first restart: it waits 1 s.
    const afterFirst: Supervised = { ...running, state: 'starting', startedAt: 100, restartTimes: [0], restarts: 1 };
    const waiting = decide('orchestrator-18300', afterFirst, dead, 500, policy, true);
    expect(waiting.action).toBe('none');
    expect(waiting.next.state).toBe('down');
    expect(waiting.sentence).toBe('orchestrator-18300 has no process (it exited or was killed); restart 2 within the window in 1 s (backoff)');
    expect(decide('orchestrator-18300', waiting.next, dead, 900, policy, true)).toEqual({ next: waiting.next, action: 'none' });
    const second = decide('orchestrator-18300', waiting.next, dead, 1000, policy, true);
    expect(second.action).toBe('restart');
    expect(second.next.restarts).toBe(2);
    const spent: Supervised = { ...running, restartTimes: [0, 1000, 3000], restarts: 3 };
    const failed = decide('orchestrator-18300', spent, dead, 10_000, policy, true);
    expect(failed.action).toBe('none');
    expect(failed.next.state).toBe('failed');
    expect(failed.sentence).toBe('orchestrator-18300 has no process (it exited or was killed); given up: 3 restarts within 60 s (DBAAS_LIFECYCLE_MAX_RESTARTS=3)');
    // Outside the window the old restarts no longer count.
    expect(decide('orchestrator-18300', spent, dead, 61_000, policy, true).action).toBe('restart');
  });

  it('an unmanaged service is reported down or wedged, never restarted', () => {
    const d = decide('rabbitmq', running, dead, 0, policy, false);
    expect(d.action).toBe('none');
    expect(d.next.state).toBe('down');
    expect(d.sentence).toBe('rabbitmq has no process (it exited or was killed); not restarted: this manager did not start it');
    expect(decide('rabbitmq', d.next, dead, 1000, policy, false)).toEqual({ next: d.next, action: 'none' });
    const back = decide('rabbitmq', d.next, ok, 2000, policy, false);
    expect(back.next.state).toBe('running');
    expect(back.sentence).toBe('rabbitmq (pid 42) answers its probe again, 2.0 s after it failed (has no process (it exited or was killed))');
  });

  it('a (re)started service has the start grace to answer; one that does not is a failed start', () => {
    const starting: Supervised = { ...running, state: 'starting', startedAt: 0, restartTimes: [0], restarts: 1 };
    expect(decide('rabbitmq-1', starting, silent, 9_000, policy, true).action).toBe('none');
    const late = decide('rabbitmq-1', starting, silent, 10_000, policy, true);
    expect(late.action).toBe('kill-and-restart');
    expect(late.sentence).toMatch(/^rabbitmq-1 \(pid 42\) did not answer its probe within 10 s of its start/);
    const back = decide('rabbitmq-1', starting, ok, 4_000, policy, true);
    expect(back.sentence).toBe('rabbitmq-1 (pid 42) is back after restart 1');
  });
});
