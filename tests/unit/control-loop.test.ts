/**
 * The control loop (orchestrator/control-loop.ts) with stand-ins for the
 * actions: it acts on decide()'s answer only after confirming it still leads,
 * one action per step, and a switchover intent is carried out between steps
 * (or refused when the leadership is gone).
 */
import { describe, expect, it } from 'vitest';
import type { ControlState } from '../../orchestrator/cluster-state.js';
import { ControlLoop } from '../../orchestrator/control-loop.js';
import type { Failover } from '../../orchestrator/failover.js';
import type { ClusterFacts, WorkerFact } from '../../orchestrator/reconcile.js';
import type { WorkerActions } from '../../orchestrator/worker-actions.js';
import { WorkerRegistry } from '../../orchestrator/worker-registry.js';
import { workerFact } from './worker-fact.js';

const worker = (id: string, pid: number, over: Partial<WorkerFact> = {}): WorkerFact => workerFact(id, pid, { appliedSeq: 1, ...over });

function loopWith(opts: { leads: () => boolean; slaves: () => number; maySpawn?: () => boolean }) {
  const calls: string[] = [];
  const audit: string[] = [];
  const state: ControlState = { registry: new WorkerRegistry(), lastMasterId: 'm', failingOver: false, stopping: false, leading: true, targetSlaves: 2 };
  const facts = (): ClusterFacts => ({
    now: 0,
    workers: [worker('m', 1, { role: 'master', state: 'master' }), ...Array.from({ length: opts.slaves() }, (_, i) => worker(`s${i}`, 10 + i))],
    masterId: 'm',
    lastMasterId: 'm',
    lastMasterDataAvailable: true,
    targetSlaves: state.targetSlaves,
    missingGraceMs: 1000,
  });
  const workers = {
    maySpawn: () => opts.maySpawn?.() ?? true,
    spawnSlave: (reason: string) => void calls.push(`spawn: ${reason}`),
    retryOrphanQueues: async () => undefined,
  } as unknown as WorkerActions;
  const failover = {
    switchover: async (target: string | undefined) => {
      calls.push(`switchover to ${target ?? 'any'}`);
      return { from: 'm', to: target ?? 's0', toPid: 10, durationMs: 1 };
    },
  } as unknown as Failover;
  const d = {
    leader: { epoch: 1, epochVersion: 1, confirm: async () => opts.leads() },
    view: { ready: true },
    zk: { connected: true },
    audit: { record: (_kind: string, reason: string) => void audit.push(reason) },
    logger: { info: () => undefined },
  } as never;
  const loop = new ControlLoop(d, state, { failover, workers, observe: () => void calls.push('observe'), facts });
  return { loop, calls, audit, state };
}

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 20));

describe('control loop', () => {
  it('observes, decides and acts while it leads: one slave short, one spawned per step until decide() is idle', async () => {
    let slaves = 1;
    const w = loopWith({ leads: () => true, slaves: () => slaves });
    w.loop.kick();
    await settle();
    // The stand-in spawn changes nothing, so the next step decides the same and the loop stops at its step bound.
    expect(w.calls[0]).toBe('observe');
    expect(w.calls[1]).toBe('spawn: 1 slave(s) for a target of 2; starting one');
    slaves = 2;
    w.calls.length = 0;
    w.loop.kick();
    await settle();
    expect(w.calls).toEqual(['observe']);
  });

  it('a leader that finds it no longer leads carries out nothing', async () => {
    const w = loopWith({ leads: () => false, slaves: () => 1 });
    w.loop.kick();
    await settle();
    expect(w.calls).toEqual(['observe']);
  });

  it('does nothing while it follows or stops, and holds a spawn back while its backoff runs', async () => {
    const w = loopWith({ leads: () => true, slaves: () => 1, maySpawn: () => false });
    w.loop.kick();
    await settle();
    expect(w.calls).toEqual(['observe']);
    w.state.leading = false;
    w.calls.length = 0;
    w.loop.kick();
    await settle();
    expect(w.calls).toEqual([]);
  });

  it('a switchover intent runs between two steps; it is refused when the leadership is gone, or while another is pending', async () => {
    let leads = true;
    const w = loopWith({ leads: () => leads, slaves: () => 2 });
    const first = w.loop.switchover('s1');
    await expect(w.loop.switchover(undefined)).rejects.toMatchObject({ code: 'DBAAS_SWITCHOVER_BUSY' });
    expect(await first).toMatchObject({ to: 's1' });
    expect(w.calls[0]).toBe('switchover to s1');
    leads = false;
    await expect(w.loop.switchover('s1')).rejects.toMatchObject({ code: 'DBAAS_CLUSTER_NO_LEADER' });
    w.state.leading = false;
    await expect(w.loop.switchover('s1')).rejects.toMatchObject({ code: 'DBAAS_CLUSTER_NO_LEADER' });
  });
});
