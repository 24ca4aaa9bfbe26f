import { describe, expect, it } from 'vitest';
import { decide, lostBecause, type ClusterFacts, type WorkerFact } from '../../orchestrator/reconcile.js';
import { workerFact } from './worker-fact.js';

const NOW = 1_000_000;

const worker = workerFact;

function facts(workers: WorkerFact[], over: Partial<ClusterFacts> = {}): ClusterFacts {
  return {
    now: NOW,
    workers,
    masterId: 'm',
    lastMasterId: 'm',
    lastMasterDataAvailable: true,
    targetSlaves: 2,
    missingGraceMs: 4000,
    ...over,
  };
}

const master = (over: Partial<WorkerFact> = {}): WorkerFact => worker('m', 100, { role: 'master', state: 'master', ...over });

describe('decide', () => {
  it('promotes only a slave whose request ledger covers the retry horizon, and says why it passed over the others', () => {
    const d = decide(facts([master({ running: false }), worker('fresh', 150, { promotable: false }), worker('old', 400), worker('older', 500, { promotable: true })]));
    expect(d.action).toEqual({ kind: 'failover', oldMasterId: 'm', candidateId: 'old' });
    expect(d.reason).toBe('master m (pid 100) is lost (its process exited); promoting old (pid 400), the lowest-pid caught-up slave whose request ledger covers the retry horizon');
  });

  it('with only slaves whose ledger is incomplete, restarts the master from its data (or waits), naming them', () => {
    const restart = decide(facts([master({ running: false }), worker('fresh', 150, { promotable: false })]));
    expect(restart.action).toEqual({ kind: 'restart-master', id: 'm' });
    expect(restart.reason).toBe(
      'master m is lost (its process exited) and no caught-up slave can take over (fresh (pid 150) caught up, but no request ledger covering the retry horizon yet); restarting it from its own data',
    );
    const wait = decide(facts([master({ running: false }), worker('fresh', 150, { promotable: false })], { lastMasterDataAvailable: false }));
    expect(wait.action).toEqual({ kind: 'idle' });
    expect(wait.reason).toBe('master m is lost and no slave can take over yet (fresh (pid 150) caught up, but no request ledger covering the retry horizon yet); waiting');
  });

  it('is idle with a master and the target number of slaves, and says so', () => {
    const d = decide(facts([master(), worker('a', 200), worker('b', 300)]));
    expect(d.action).toEqual({ kind: 'idle' });
    expect(d.reason).toBe('steady: master m, 2 slave(s)');
  });

  it('promotes the lowest-pid caught-up slave when the master process exits', () => {
    const d = decide(facts([master({ running: false }), worker('high', 900), worker('low', 300), worker('syncing', 100, { state: 'syncing' })]));
    expect(d.action).toEqual({ kind: 'failover', oldMasterId: 'm', candidateId: 'low' });
    expect(d.reason).toBe('master m (pid 100) is lost (its process exited); promoting low (pid 300), the lowest-pid caught-up slave whose request ledger covers the retry horizon');
  });

  it('never promotes a slave that is still syncing, retiring or itself lost', () => {
    const d = decide(
      facts([
        master({ running: false }),
        worker('syncing', 10, { state: 'syncing' }),
        worker('retiring', 20, { retiring: true }),
        worker('dead', 30, { running: false }),
        worker('ok', 40),
      ]),
    );
    expect(d.action).toEqual({ kind: 'failover', oldMasterId: 'm', candidateId: 'ok' });
  });

  it('treats a master missing from ZooKeeper past the grace period as lost, but not before', () => {
    const within = decide(facts([master({ registered: false, missingSince: NOW - 1000 }), worker('a', 200), worker('b', 300)]));
    expect(within.action.kind).toBe('idle');
    const past = decide(facts([master({ registered: false, missingSince: NOW - 5000 }), worker('a', 200), worker('b', 300)]));
    expect(past.action).toEqual({ kind: 'failover', oldMasterId: 'm', candidateId: 'a' });
    expect(past.reason).toMatch(/ZooKeeper session ended 5000 ms ago/);
  });

  it('fails over when the master znode names a worker nobody runs (adoption after a crash)', () => {
    const d = decide(facts([worker('a', 200)], { masterId: 'gone', lastMasterId: 'gone' }));
    expect(d.action).toEqual({ kind: 'failover', oldMasterId: 'gone', candidateId: 'a' });
  });

  it('restarts the master from its data when no slave can take over', () => {
    const d = decide(facts([master({ running: false }), worker('s', 200, { state: 'syncing' })]));
    expect(d.action).toEqual({ kind: 'restart-master', id: 'm' });
  });

  it('waits when no slave can take over and the master data is gone', () => {
    const d = decide(facts([master({ running: false })], { lastMasterDataAvailable: false }));
    expect(d.action.kind).toBe('idle');
    expect(d.reason).toMatch(/no slave is caught up yet/);
  });

  it('removes a lost slave, then asks for a new one', () => {
    const lost = decide(facts([master(), worker('a', 200), worker('b', 300, { running: false })]));
    expect(lost.action).toEqual({ kind: 'remove-lost', id: 'b', role: 'slave' });
    const short = decide(facts([master(), worker('a', 200)]));
    expect(short.action).toEqual({ kind: 'add-slave' });
    expect(short.reason).toBe('1 slave(s) for a target of 2; starting one');
  });

  it('restarts a dead slave in place when its data is there and it has restarts left; removes it otherwise', () => {
    const dead = (over: Partial<WorkerFact> = {}): WorkerFact => worker('b', 300, { running: false, registered: false, state: 'unregistered', ...over });
    const d = decide(facts([master(), worker('a', 200), dead({ restartable: true })]));
    expect(d.action).toEqual({ kind: 'restart-slave', id: 'b' });
    expect(d.reason).toBe('slave b (pid 300) is lost (its process exited); restarting it in place to resume from its own data');
    expect(decide(facts([master(), worker('a', 200), dead({ restartable: false })])).action).toEqual({ kind: 'remove-lost', id: 'b', role: 'slave' });
    // A divergent one is not kept, and one that lost its session but still runs is not restarted.
    expect(decide(facts([master(), worker('a', 200), dead({ restartable: true, divergent: 'differs' })])).action.kind).toBe('remove-lost');
    expect(decide(facts([master(), worker('a', 200), worker('b', 300, { registered: false, missingSince: NOW - 5000, restartable: true })])).action.kind).toBe('remove-lost');
  });

  it('counts slaves being started, so it does not start too many', () => {
    const d = decide(facts([master(), worker('a', 200), worker('new', 0, { starting: true, registered: false, everRegistered: false, state: 'unregistered' })]));
    expect(d.action.kind).toBe('idle');
  });

  it('does not take a starting worker without a znode for lost', () => {
    const starting = worker('new', 0, { starting: true, registered: false, everRegistered: false });
    expect(lostBecause(starting, { now: NOW, missingGraceMs: 10 })).toBeUndefined();
  });

  it('retires the highest-pid serving slave above the target, never the last serving one', () => {
    const d = decide(facts([master(), worker('a', 200), worker('b', 300), worker('c', 250)], { targetSlaves: 2 }));
    expect(d.action).toEqual({ kind: 'retire-slave', id: 'b' });
    const onlyOneServing = decide(facts([master(), worker('a', 200), worker('b', 300, { state: 'syncing' })], { targetSlaves: 1 }));
    expect(onlyOneServing.action.kind).toBe('idle');
  });

  it('does not replace a retiring slave that exits', () => {
    const d = decide(facts([master(), worker('a', 200), worker('b', 300, { running: false, retiring: true })], { targetSlaves: 1 }));
    expect(d.action.kind).toBe('idle');
  });

  it('does nothing for slaves while there is no master yet', () => {
    const d = decide(facts([worker('a', 200)], { masterId: undefined, lastMasterId: undefined }));
    expect(d.action.kind).toBe('idle');
  });
  describe('divergent slaves (replica checksums)', () => {
    const why = 'differs from the master at seq 42 in table(s) rides';

    it('removes a slave a verify found divergent, and says how it differs', () => {
      const d = decide(facts([master(), worker('a', 200), worker('b', 300, { divergent: why })]));
      expect(d.action).toEqual({ kind: 'replace-divergent', id: 'b' });
      expect(d.reason).toBe('slave b (pid 300) differs from the master at seq 42 in table(s) rides; removing it so that a fresh copy of the master replaces it');
    });

    it('then starts a replacement, like for any missing slave', () => {
      const d = decide(facts([master(), worker('a', 200)]));
      expect(d.action).toEqual({ kind: 'add-slave' });
    });

    it('never promotes a divergent slave, even the lowest-pid one', () => {
      const d = decide(facts([master({ running: false }), worker('low', 100, { divergent: why }), worker('high', 900)]));
      expect(d.action).toEqual({ kind: 'failover', oldMasterId: 'm', candidateId: 'high' });
      const onlyDivergent = decide(facts([master({ running: false }), worker('low', 100, { divergent: why })], { lastMasterDataAvailable: false }));
      expect(onlyDivergent.action.kind).toBe('idle');
      expect(onlyDivergent.reason).toBe('master m is lost and no slave is caught up yet; waiting');
    });

    it('replaces nothing while there is no live master to copy from, nor a retiring slave', () => {
      const noMaster = decide(facts([master({ state: 'promoting' }), worker('b', 300, { divergent: why })]));
      expect(noMaster.action.kind).toBe('idle');
      const retiring = decide(facts([master(), worker('a', 200), worker('b', 300, { divergent: why, retiring: true })], { targetSlaves: 1 }));
      expect(retiring.action.kind).toBe('idle');
    });
  });
});
