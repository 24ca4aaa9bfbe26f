import { describe, expect, it } from 'vitest';
import type { WorkerZnode } from '../../coordination/schemas.js';
import { gatherFacts, type FactSources } from '../../orchestrator/facts.js';
import { decide, lostBecause } from '../../orchestrator/reconcile.js';
import type { ExitInfo } from '../../orchestrator/runtimes/runtime.js';
import { WorkerRegistry } from '../../orchestrator/worker-registry.js';

const exitOf = (id: string): ExitInfo => ({ id, pid: 7, code: null, signal: 'SIGKILL', expected: false });

function znode(id: string, over: Partial<WorkerZnode> = {}): WorkerZnode {
  return { id, role: 'slave', state: 'slave', pid: 7, appliedSeq: 3, term: 0, startedAt: 't', dbUrl: 'u', ...over };
}

/** A cluster as the registry sees it: ZooKeeper's znodes and the runtime's processes, both settable. */
function world() {
  const registry = new WorkerRegistry();
  const zk = new Map<string, WorkerZnode>();
  const procs = new Map<string, number>();
  const sources = (): FactSources => ({
    registry,
    view: { workers: zk, master: undefined },
    runtime: { list: () => [...procs].map(([id, pid]) => ({ id, pid })), hasData: () => false },
    lastMasterId: undefined,
    targetSlaves: 1,
    missingGraceMs: 1000,
  });
  const observe = (now: number): void =>
    registry.observe(zk, (id) => procs.has(id) || registry.isStarting(id), now, new Set([...procs.keys(), ...zk.keys(), ...registry.startingIds()]));
  return { registry, zk, procs, sources, observe };
}

describe('worker lifecycle registry', () => {
  it('an exited worker adopted again as another process (restarted in place by another leader) serves; as the same process it stays exited', () => {
    const r = new WorkerRegistry();
    r.exit(exitOf('m1'));
    r.runningAgain('m1', 7);
    expect(r.phase('m1')).toBe('exited');
    r.runningAgain('m1', 8);
    expect(r.phase('m1')).toBe('serving');
    expect(r.exitOf('m1')).toBeUndefined();
    r.runningAgain('never-seen', 9);
    expect(r.phase('never-seen')).toBeUndefined();
  });

  it('an exited worker registered again after its exit was seen (restarted in place by another leader) serves; its old registration does not', () => {
    const r = new WorkerRegistry();
    r.exit(exitOf('m1'), Date.parse('2026-12-01T05:00:00.000Z'));
    // The dead process's znode, not expired yet: registered before the exit.
    r.registeredAgain(new Map([['m1', znode('m1', { role: 'master', startedAt: '2026-12-01T04:00:00.000Z' })]]));
    expect(r.phase('m1')).toBe('exited');
    expect(r.exitOf('m1')?.pid).toBe(7);
    r.registeredAgain(new Map([['m1', znode('m1', { role: 'master', pid: 8, startedAt: '2026-12-01T05:00:01.000Z' })]]));
    expect(r.phase('m1')).toBe('serving');
    expect(r.exitOf('m1')).toBeUndefined();
    // Only an exited worker moves; one never seen stays unknown.
    r.registeredAgain(new Map([['s9', znode('s9', { startedAt: '2026-12-01T06:00:00.000Z' })]]));
    expect(r.phase('s9')).toBeUndefined();
  });

  it('a slave goes starting → serving → missing(since) → serving as its znode comes and goes', () => {
    const w = world();
    w.registry.start({ id: 's1', role: 'slave', term: 0 });
    w.procs.set('s1', 7);
    w.zk.set('s1', znode('s1', { state: 'syncing' }));
    w.observe(100);
    expect(w.registry.phase('s1')).toBe('starting');
    w.registry.started('s1');
    expect(w.registry.get('s1')).toEqual({ phase: 'serving' });
    w.zk.delete('s1');
    w.observe(200);
    expect(w.registry.get('s1')).toEqual({ phase: 'missing', since: 200 });
    w.observe(900); // still missing: since stays
    expect(w.registry.missingSince('s1')).toBe(200);
    w.zk.set('s1', znode('s1'));
    w.observe(1000);
    expect(w.registry.phase('s1')).toBe('serving');
  });

  it('an exit while starting or retiring is kept on that phase (not a loss); otherwise it is exited', () => {
    const r = new WorkerRegistry();
    r.start({ id: 'a', role: 'slave', term: 0 });
    r.exit(exitOf('a'));
    expect(r.phase('a')).toBe('starting');
    expect(r.exitOf('a')?.signal).toBe('SIGKILL');
    r.startFailed('a', exitOf('a'));
    expect(r.phase('a')).toBe('exited');

    r.observe(new Map([['b', znode('b')]]), () => true, 0, new Set(['b']));
    r.retire('b');
    r.exit(exitOf('b'));
    expect(r.phase('b')).toBe('retiring');
    expect(r.exitOf('b')).toBeDefined();

    r.observe(new Map([['c', znode('c')]]), () => true, 0, new Set(['c']));
    r.exit(exitOf('c'));
    expect(r.phase('c')).toBe('exited');
  });

  it('illegal moves throw', () => {
    const r = new WorkerRegistry();
    r.observe(new Map([['b', znode('b')]]), () => true, 0, new Set(['b']));
    r.retire('b');
    expect(() => r.start({ id: 'b', role: 'slave', term: 0 })).toThrow(/illegal worker lifecycle move for b: retiring → starting/);
    r.forget('b');
    expect(r.phase('b')).toBe('forgotten');
    // A forgotten worker is dead for good: its late exit changes nothing, ZooKeeper showing it for a moment neither.
    r.exit(exitOf('b'));
    r.observe(new Map([['b', znode('b')]]), () => true, 0, new Set(['b']));
    expect(r.phase('b')).toBe('forgotten');
    // A master restarted from its data starts again under its id.
    r.start({ id: 'b', role: 'master', term: 2 });
    expect(r.phase('b')).toBe('starting');
  });

  it('a dead worker may be restarted in place up to the limit within the window, and again once the window passed', () => {
    const r = new WorkerRegistry();
    const spec = { id: 'a', role: 'slave' as const, term: 0 };
    r.start(spec);
    r.started('a');
    expect(r.mayRestartInPlace('a', 2, 0)).toBe(false);
    r.exit(exitOf('a'));
    expect(r.mayRestartInPlace('a', 0, 0)).toBe(false);
    expect(r.mayRestartInPlace('a', 2, 0)).toBe(true);
    r.restartInPlace(spec, 0);
    expect(r.phase('a')).toBe('starting');
    expect(r.mayRestartInPlace('a', 2, 0)).toBe(false);
    r.started('a');
    r.exit(exitOf('a'));
    r.restartInPlace(spec, 1000);
    r.started('a');
    r.exit(exitOf('a'));
    expect(r.mayRestartInPlace('a', 2, 2000)).toBe(false);
    expect(r.mayRestartInPlace('a', 2, 600_500)).toBe(true);
    r.forget('a');
    expect(r.mayRestartInPlace('a', 2, 2000)).toBe(false);
  });

  it('divergence marks stay beside the phase until the worker is forgotten or unknown', () => {
    const r = new WorkerRegistry();
    r.observe(new Map([['b', znode('b')]]), () => true, 0, new Set(['b']));
    r.markDivergent('b', 'differs at seq 9');
    r.observe(new Map([['b', znode('b')]]), () => true, 0, new Set(['b']));
    expect(r.divergenceOf('b')).toBe('differs at seq 9');
    r.observe(new Map(), () => false, 0, new Set());
    expect(r.divergenceOf('b')).toBeUndefined();
  });
});

describe('gathering facts', () => {
  it('changes nothing: the same answer twice, and a missing worker is only marked by observe()', () => {
    const w = world();
    w.procs.set('s1', 7);
    w.zk.set('s1', znode('s1'));
    w.observe(0);
    w.zk.delete('s1');
    const before = JSON.stringify(w.registry.get('s1'));
    const f1 = gatherFacts(w.sources(), 5000);
    const f2 = gatherFacts(w.sources(), 5000);
    expect(f1).toEqual(f2);
    expect(JSON.stringify(w.registry.get('s1'))).toBe(before);
    const s1 = f1.workers.find((x) => x.id === 's1');
    expect(s1).toMatchObject({ registered: false, everRegistered: true, running: true });
    expect(s1?.missingSince).toBeUndefined();
    expect(s1 && lostBecause(s1, f1)).toBeUndefined();

    w.observe(1000);
    const f3 = gatherFacts(w.sources(), 2500);
    const s1b = f3.workers.find((x) => x.id === 's1');
    expect(s1b?.missingSince).toBe(1000);
    expect(s1b && lostBecause(s1b, f3)).toMatch(/session ended 1500 ms ago/);
  });

  it('a dead slave stays a fact after its znode expired (the loop was busy restarting the master): restarted in place, or removed', () => {
    const w = world();
    w.procs.set('m1', 5);
    w.zk.set('m1', znode('m1', { role: 'master', state: 'master' }));
    w.procs.set('s1', 7);
    w.zk.set('s1', znode('s1'));
    w.observe(0);
    // Killed together with the master; the master's restart held the loop until the slave's session had expired.
    w.procs.delete('s1');
    w.registry.exit(exitOf('s1'));
    w.zk.delete('s1');
    const withData = { ...w.sources(), lastMasterId: 'm1', view: { workers: w.zk, master: { id: 'm1', term: 2, dbUrl: 'u' } }, restartsInPlace: 3 };
    const f = gatherFacts({ ...withData, runtime: { ...withData.runtime, hasData: () => true } }, 3000);
    expect(f.workers.find((x) => x.id === 's1')).toMatchObject({ running: false, registered: false, restartable: true });
    expect(decide(f).action).toEqual({ kind: 'restart-slave', id: 's1' });
    // Without its data: removed (so its queue and data go), not left out while a new slave is started beside it.
    expect(decide(gatherFacts(withData, 3000)).action).toEqual({ kind: 'remove-lost', id: 's1', role: 'slave' });
    w.registry.forget('s1');
    expect(gatherFacts(withData, 3000).workers.map((x) => x.id)).toEqual(['m1']);
  });

  it('a forgotten worker ZooKeeper still lists is left out; one being started counts as running', () => {
    const w = world();
    w.zk.set('gone', znode('gone'));
    w.observe(0);
    w.registry.forget('gone');
    w.registry.start({ id: 'new', role: 'slave', term: 0 });
    const f = gatherFacts(w.sources(), 0);
    expect(f.workers.map((x) => x.id)).toEqual(['new']);
    expect(f.workers[0]).toMatchObject({ starting: true, running: true, registered: false, state: 'unregistered' });
  });

  it('a master registered in state master while nobody holds /master is lost after twice the grace: failed over, or restarted in place', () => {
    const registry = new WorkerRegistry();
    const zk = new Map<string, WorkerZnode>([
      ['m', znode('m', { role: 'master', state: 'master', pid: 5 })],
      ['s', znode('s', { pid: 6, promotable: true })],
    ]);
    let master: { id: string; term: number; dbUrl: string } | undefined = { id: 'm', term: 1, dbUrl: 'u' };
    const procs = new Map([
      ['m', 5],
      ['s', 6],
    ]);
    const sources = (): FactSources => ({
      registry,
      view: { workers: zk, master },
      runtime: { list: () => [...procs].map(([id, pid]) => ({ id, pid })), hasData: (id) => id === 'm' },
      lastMasterId: 'm',
      targetSlaves: 1,
      missingGraceMs: 1000,
    });
    const step = (now: number) => {
      registry.observe(zk, (id) => procs.has(id), now, new Set([...procs.keys()]), master?.id);
      return decide(gatherFacts(sources(), now));
    };
    expect(step(0).reason).toBe('steady: master m, 1 slave(s)');
    master = undefined; // /master deleted while the master's session lives: it never notices
    expect(step(100).reason).toBe('steady: master m, 1 slave(s)');
    expect(step(2099).reason).toBe('steady: master m, 1 slave(s)');
    const d = step(2100);
    expect(d.action).toEqual({ kind: 'failover', oldMasterId: 'm', candidateId: 's' });
    expect(d.reason).toBe(
      'master m (pid 5) is lost (it has run registered as master without holding /master for 2000 ms, so it takes no writes); promoting s (pid 6), the lowest-pid caught-up slave whose request ledger covers the retry horizon',
    );
    // No slave to promote: restarted from its own data (restartMaster kills it first).
    zk.delete('s');
    procs.delete('s');
    expect(step(2200).action).toEqual({ kind: 'restart-master', id: 'm' });
    // /master held again (taken back, say): not lost, and the clock starts anew next time.
    master = { id: 'm', term: 1, dbUrl: 'u' };
    expect(step(2300).action.kind).toBe('add-slave');
    expect(registry.unclaimedSince('m')).toBeUndefined();
    master = undefined;
    step(5000);
    expect(registry.unclaimedSince('m')).toBe(5000);
  });
});
