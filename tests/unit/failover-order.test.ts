/**
 * The orchestrator's half of promotion (orchestrator/failover.ts) against an
 * in-memory ZooKeeper and stand-ins for the runtime and the broker: nobody is
 * told to promote before the old master is fenced and the term has moved, and
 * a deposed leader gets no further than the term bump. The request router
 * (orchestrator/request-router.ts) holds writes back meanwhile.
 */
import { describe, expect, it } from 'vitest';
import { loadOrchestratorConfig } from '../../common/config.js';
import { DbaasError } from '../../common/errors.js';
import { createLogger } from '../../common/logger.js';
import { clusterNames } from '../../common/names.js';
import { zkPaths } from '../../coordination/paths.js';
import { claimMaster, readMaster, registerWorker } from '../../coordination/registration.js';
import { readTerm } from '../../coordination/term.js';
import type { ClusterDeps, ControlState } from '../../orchestrator/cluster-state.js';
import { Failover } from '../../orchestrator/failover.js';
import { RequestRouter } from '../../orchestrator/request-router.js';
import { WorkerActions } from '../../orchestrator/worker-actions.js';
import { WorkerRegistry } from '../../orchestrator/worker-registry.js';
import { statusOf } from '../coordination-suite.js';
import { MemoryZkServer, type MemoryZk } from './memory-zk.js';

interface World {
  steps: string[];
  failover: Failover;
  router: RequestRouter;
  state: ControlState;
  view: { workers: Map<string, ReturnType<typeof statusOf>>; master: { id: string; term: number; dbUrl: string } | undefined; servingSlaves(): ReturnType<typeof statusOf>[] };
  orch: MemoryZk;
  candidate: MemoryZk;
  server: MemoryZkServer;
}

async function world(opts: { killable?: boolean; leader?: ClusterDeps['leader']; promoteFails?: boolean } = {}): Promise<World> {
  const server = new MemoryZkServer();
  const paths = zkPaths('t');
  const names = clusterNames('t');
  const orch = await server.session();
  const oldMaster = await server.session();
  const candidate = await server.session();
  await registerWorker(oldMaster, paths, statusOf('m', { role: 'master', state: 'master' }));
  await claimMaster(oldMaster, paths, { id: 'm', term: 1, dbUrl: 'mongodb://m' }, 1000);
  await registerWorker(candidate, paths, statusOf('s', { state: 'slave' }));
  const steps: string[] = [];
  const view: World['view'] = {
    workers: new Map([['s', statusOf('s', { state: 'slave' })]]),
    master: { id: 'm', term: 1, dbUrl: 'mongodb://m' },
    servingSlaves: () => [...view.workers.values()].filter((w) => w.state === 'slave' && w.role === 'slave'),
  };
  const d = {
    ...(opts.leader ? { leader: opts.leader } : {}),
    config: loadOrchestratorConfig({ DBAAS_ZK_SESSION_TIMEOUT_MS: '500', DBAAS_MASTER_WAIT_MS: '300' }),
    names,
    paths,
    zk: orch,
    view,
    logger: createLogger('unit-failover', 'silent'),
    audit: { record: (kind: string, reason: string) => void steps.push(`audit ${kind}: ${reason}`) },
    runtime: {
      list: () => [],
      kill: async (id: string) => {
        steps.push(`kill ${id}`);
        if (id === 'm' && opts.killable !== false) oldMaster.close();
        return opts.killable !== false;
      },
      remove: async () => undefined,
      startWorker: async (spec: { id: string; role: string }) => {
        steps.push(`start ${spec.id} as ${spec.role}`);
        view.workers.set(spec.id, statusOf(spec.id, { role: spec.role as 'master', state: spec.role as 'master' }));
        return { id: spec.id, pid: 9 };
      },
    },
    rpc: {
      connected: true,
      deleteQueue: async (queue: string) => void steps.push(`delete queue ${queue}`),
      call: async (queue: string, msg: { type: string; term?: number }) => {
        if (msg.type === 'promote' && opts.promoteFails) throw new Error('promote timed out');
        // What the candidate sees when it is told to promote: the old master fenced and the term moved.
        const master = await readMaster(orch, paths);
        steps.push(`${msg.type} ${queue} term ${msg.term ?? '-'}; master znode ${master?.id ?? 'gone'}; term znode ${await readTerm(orch, paths)}`);
        if (msg.type === 'promote') {
          await claimMaster(candidate, paths, { id: 's', term: msg.term ?? 0, dbUrl: 'mongodb://s' }, 1000);
          view.master = { id: 's', term: msg.term ?? 0, dbUrl: 'mongodb://s' };
        }
        return {};
      },
    },
  } as unknown as ClusterDeps;
  const state: ControlState = { registry: new WorkerRegistry(), lastMasterId: 'm', failingOver: false, stopping: false, leading: true, targetSlaves: 1 };
  const router = new RequestRouter(d, state);
  const workers = new WorkerActions(d, state, () => undefined);
  return { steps, failover: new Failover(d, state, workers, router), router, state, view, orch, candidate, server };
}

describe('failover: fence, then move the term, then promote', () => {
  it('kills the old master and removes its znode before the term moves, and promotes in the new term', async () => {
    const w = await world();
    await w.orch.mkdirp(zkPaths('t').root);
    await w.failover.failover('s', 'm', 'master m is lost');
    const promote = w.steps.find((s) => s.startsWith('promote'));
    expect(w.steps.indexOf('kill m')).toBeLessThan(w.steps.indexOf(promote ?? ''));
    expect(promote).toBe('promote t.ctl.s term 1; master znode gone; term znode 1');
    expect(w.state.lastMasterId).toBe('s');
    expect(w.steps.some((s) => s.startsWith('audit promotion: promoted s'))).toBe(true);
    expect(w.state.failingOver).toBe(false);
  });

  it('a master the runtime cannot kill is waited out; one that registers again meanwhile is not replaced', async () => {
    const w = await world({ killable: false });
    // It is back in the view (its session renewed): no promotion.
    w.view.workers.set('m', statusOf('m', { role: 'master', state: 'master' }));
    // Its znode vanished a minute ago: it must have fenced itself by now (common/fencing.ts), so the wait is over at once.
    w.state.registry.observe(new Map([['m', statusOf('m')]]), () => true, Date.now() - 61_000, new Set(['m']));
    w.state.registry.observe(new Map(), () => true, Date.now() - 60_000, new Set(['m']));
    await w.failover.failover('s', 'm', 'master m is lost');
    expect(w.steps.some((s) => /does not run master m, so it cannot kill it; waiting 0 ms/.test(s))).toBe(true);
    expect(w.steps.some((s) => s.startsWith('promote'))).toBe(false);
    expect(w.steps.some((s) => s.includes('registered again while the failover waited; not failing over'))).toBe(true);
    expect((await readMaster(w.orch, zkPaths('t')))?.id).toBe('m');
  });

  it('a deposed leader fences but promotes nobody: its term bump fails on the epoch', async () => {
    const w = await world({ leader: { epoch: 1, epochVersion: 5, confirm: async () => false } });
    await w.orch.mkdirp(zkPaths('t').root);
    await w.orch.create(zkPaths('t').epoch, Buffer.from('1'), 0);
    await expect(w.failover.failover('s', 'm', 'master m is lost')).rejects.toThrow(/no longer the leader/);
    expect(w.steps.some((s) => s.startsWith('promote'))).toBe(false);
    expect(w.state.failingOver).toBe(false);
  });
});

describe('a failed switchover leaves no rejoin queue behind', () => {
  it('the demoted master, restarted as master after the promotion failed, has its own sync queue deleted before it starts', async () => {
    const w = await world({ promoteFails: true });
    await w.orch.mkdirp(zkPaths('t').root);
    // A switchover demoted m (it bound its own sync queue to rejoin), then the promotion of s failed.
    await w.failover.failover('s', 'm', 'planned switchover', true);
    expect(w.steps.some((s) => s.startsWith('audit error: promoting s failed'))).toBe(true);
    // No slave can take over: the loop restarts m from its own data.
    await w.failover.restartMaster('m', 'master m is lost and no slave can take over');
    const mQueue = clusterNames('t').syncQueue('m');
    expect(w.steps).toContain(`delete queue ${mQueue}`);
    expect(w.steps.indexOf(`delete queue ${mQueue}`)).toBeLessThan(w.steps.indexOf('start m as master'));
  });
});

describe('request router', () => {
  it('holds writes back while a failover runs, and answers 503 when no master takes over in time', async () => {
    const w = await world();
    w.state.failingOver = true;
    expect(w.router.masterAvailable()).toBeUndefined();
    const waiting = w.router.requireMaster();
    setTimeout(() => (w.state.failingOver = false), 50);
    expect((await waiting).id).toBe('m');
    w.view.master = undefined;
    await expect(w.router.requireMaster()).rejects.toSatisfy((e: unknown) => e instanceof DbaasError && e.code === 'DBAAS_CLUSTER_NO_MASTER');
  });

  it('reads go to the slaves, else to the master, else 503', async () => {
    const w = await world();
    expect(w.router.readRoute()).toEqual({ to: 'slaves' });
    w.view.workers.clear();
    // Slaves served a moment ago: the read waits for them in readQ.
    expect(w.router.readRoute()).toEqual({ to: 'master', id: 'm' });
    w.view.master = undefined;
    expect(w.router.readRoute()).toEqual({ to: 'slaves' });
    const fresh = await world();
    fresh.view.workers.clear();
    fresh.view.master = undefined;
    expect(() => fresh.router.readRoute()).toThrow(DbaasError);
    fresh.state.stopping = true;
    expect(() => fresh.router.readRoute()).toThrow(/shutting down|DBAAS_SHUTTING_DOWN|closing/i);
  });
});
