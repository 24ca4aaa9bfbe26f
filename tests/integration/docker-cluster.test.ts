/**
 * The whole service with DBAAS_RUNTIME=docker (every worker and its database
 * in containers on the namespace's bridge network) and with DBAAS_RUNTIME=swarm
 * (the same containers, made by Swarm services on the namespace's overlay
 * network, on a single-node swarm), against the host's RabbitMQ and ZooKeeper.
 * Skipped, loudly, when no Docker Engine (or swarm) can be set up (see
 * docker-env.ts); DBAAS_REQUIRE_DOCKER=1 turns that into a failure.
 */
import type Docker from 'dockerode';
import { afterEach, describe, expect, it } from 'vitest';
import { DOCKER_LABELS, removeDockerNamespace } from '../../orchestrator/runtimes/docker-runtime.js';
import { dockerClient } from '../../orchestrator/runtimes/index.js';
import { removeSwarmNamespace } from '../../orchestrator/runtimes/swarm-runtime.js';
import { dockerTestEnv, swarmTestEnv, type DockerTestEnv } from './docker-env.js';
import { eventually, startTestCluster, type TestCluster, type TestClusterOptions } from './harness.js';

const runtimes: Array<{ kind: 'docker' | 'swarm'; status: DockerTestEnv; title: string }> = [
  { kind: 'docker', status: dockerTestEnv(), title: 'docker runtime: a cluster in containers' },
  { kind: 'swarm', status: swarmTestEnv(), title: 'swarm runtime: a cluster of Swarm services' },
];

for (const { kind, status, title } of runtimes) describe.skipIf(!status.ready)(title, () => {
  const env = { DBAAS_RUNTIME: kind, ...(status.ready ? status.env : {}) };
  const docker: Docker = dockerClient('unix:///var/run/docker.sock');
  let clusters: TestCluster[] = [];
  const namespaces = new Set<string>();

  async function cluster(extra: Record<string, string> = {}, opts: TestClusterOptions = {}): Promise<TestCluster> {
    const started = Date.now();
    const c = await startTestCluster({ ...env, ...extra }, opts);
    console.log(`${kind} cluster ${c.namespace} (master + ${c.config.initialSlaves} slave(s)) ready in ${Date.now() - started} ms`);
    clusters.push(c);
    namespaces.add(c.namespace);
    return c;
  }

  afterEach(async () => {
    for (const c of clusters) await c.close().catch(() => undefined);
    clusters = [];
    for (const ns of namespaces) await (kind === 'swarm' ? removeSwarmNamespace(docker, ns) : removeDockerNamespace(docker, ns));
    namespaces.clear();
  });

  /** The running worker containers of a namespace, as the engine sees them. */
  async function workerContainers(ns: string): Promise<Array<{ id: string; role: string; pid: number; networks: string[] }>> {
    const list = await docker.listContainers({
      filters: { label: [`${DOCKER_LABELS.namespace}=${ns}`, `${DOCKER_LABELS.part}=worker`], status: ['running'] },
    });
    return Promise.all(
      list.map(async (c) => {
        const info = await docker.getContainer(c.Id).inspect();
        return {
          id: info.Config.Labels[DOCKER_LABELS.workerId] ?? '',
          role: info.Config.Labels[DOCKER_LABELS.role] ?? '',
          pid: info.State.Pid,
          networks: Object.keys(info.NetworkSettings.Networks),
        };
      }),
    );
  }

  /** The state of one half of a worker's newest container, found by its labels (Swarm names containers after tasks). */
  async function containerState(ns: string, id: string, part: 'worker' | 'db'): Promise<'running' | 'stopped' | 'absent'> {
    const found = await docker.listContainers({
      all: true,
      filters: { label: [`${DOCKER_LABELS.namespace}=${ns}`, `${DOCKER_LABELS.workerId}=${id}`, `${DOCKER_LABELS.part}=${part}`] },
    });
    const newest = found.sort((a, b) => b.Created - a.Created)[0];
    return newest === undefined ? 'absent' : newest.State === 'running' ? 'running' : 'stopped';
  }

  it('serves writes and reads through worker containers; workers/list shows their State.Pid', async () => {
    const c = await cluster();
    const w = await c.post('/api/v1/db/write', {
      table: 'rides',
      operation: 'insert',
      data: [
        { _id: 'r1', created_by: 'ana', source: 1, destination: 2 },
        { _id: 'r2', created_by: 'bo', source: 1, destination: 3 },
      ],
    });
    expect(w.status).toBe(200);
    expect(w.body).toMatchObject({ ok: true, inserted: 2 });
    const r = await c.post('/api/v1/db/read', { table: 'rides', where: { source: 1 }, sort: { _id: 1 }, afterSeq: w.body.seq });
    expect(r.status).toBe(200);
    expect(r.body.map((d: { _id: string }) => d._id)).toEqual(['r1', 'r2']);

    const containers = await workerContainers(c.namespace);
    expect(containers).toHaveLength(2);
    const list = (await c.get('/api/v1/workers/list')).body as number[];
    expect(list).toEqual(containers.map((x) => x.pid).sort((a, b) => a - b));
    const workers = (await c.get('/api/v1/workers')).body as Array<{ id: string; role: string; pid: number }>;
    for (const x of containers) {
      expect(workers.find((wk) => wk.id === x.id)).toMatchObject({ role: x.role, pid: x.pid });
      expect(x.networks).toEqual([`dbaas-${c.namespace}`]);
    }
    // Each worker has its own database container, running beside it.
    for (const x of containers) expect(await containerState(c.namespace, x.id, 'db')).toBe('running');
  });

  it('crash/slave: docker kills the highest-pid slave container; a replacement (or the slave restarted on its data) catches up and serves', async () => {
    const c = await cluster();
    const w = await c.post('/api/v1/db/write', { table: 'users', operation: 'insert', data: { _id: 'ana', password: 'x' } });
    expect(w.status).toBe(200);
    const slave = (await workerContainers(c.namespace)).find((x) => x.role === 'slave');
    expect(slave).toBeDefined();

    const crash = await c.post('/api/v1/crash/slave');
    expect(crash.status).toBe(200);
    expect(crash.body).toEqual([String(slave?.pid)]);
    const slaveId = slave?.id ?? '';
    expect(await containerState(c.namespace, slaveId, 'worker')).not.toBe('running');
    expect(await containerState(c.namespace, slaveId, 'db')).not.toBe('running');

    // Replaced by a new slave, or restarted in place on its own data (DBAAS_SLAVE_RESTARTS_IN_PLACE): either way a new pid.
    await eventually(
      () => c.orch.view.servingSlaves().length === 1 && c.orch.view.servingSlaves()[0]?.pid !== slave?.pid,
      30_000,
      'a replacement slave',
    );
    const r = await c.post('/api/v1/db/read', { table: 'users', where: { _id: 'ana' } });
    expect(r.body).toEqual([{ _id: 'ana', password: 'x' }]);
    const list = (await c.get('/api/v1/workers/list')).body as number[];
    expect(list).toHaveLength(2);
    expect(list).not.toContain(slave?.pid);
    // The dead slave's containers are cleaned up: one worker and one database container per live worker.
    const all = async (): Promise<number> => (await docker.listContainers({ all: true, filters: { label: [`${DOCKER_LABELS.namespace}=${c.namespace}`] } })).length;
    await eventually(async () => (await all()) === 4 && (await workerContainers(c.namespace)).every((x) => x.pid !== slave?.pid), 15_000, 'cleanup');
  });

  it('crash/master: the slave container is promoted and a new slave replaces it; acknowledged writes survive', async () => {
    const c = await cluster();
    const before = await c.post('/api/v1/db/write', { table: 'rides', operation: 'insert', data: { _id: 'before' } });
    expect(before.status).toBe(200);
    const containers = await workerContainers(c.namespace);
    const master = containers.find((x) => x.role === 'master');
    const slave = containers.find((x) => x.role === 'slave');

    const crash = await c.post('/api/v1/crash/master');
    expect(crash.status).toBe(200);
    expect(crash.body).toEqual([String(master?.pid)]);
    await eventually(() => c.orch.view.master?.id === slave?.id, 20_000, 'the slave promoted');

    const after = await c.post('/api/v1/db/write', { table: 'rides', operation: 'insert', data: { _id: 'after' } });
    expect(after.status).toBe(200);
    expect(after.body.seq).toBeGreaterThan(before.body.seq);
    await eventually(() => c.orch.cluster.ready(), 30_000, 'a new slave serving');
    const r = await c.post('/api/v1/db/read', { table: 'rides', where: {}, sort: { _id: 1 }, afterSeq: after.body.seq });
    expect(r.body).toEqual([{ _id: 'after' }, { _id: 'before' }]);
    const list = (await c.get('/api/v1/workers/list')).body as number[];
    expect(list).toHaveLength(2);
    expect(list).not.toContain(master?.pid);
    expect(list).toContain(slave?.pid);
    // The audit log names the host pids the drill named, never the container's own (pid 1).
    const reasons = (c.orch.audit.list() as Array<{ kind: string; reason: string }>).filter((e) => e.kind === 'detection' || e.kind === 'promotion').map((e) => e.reason);
    expect(reasons.join('\n')).toContain(`(pid ${master?.pid})`);
    expect(reasons.join('\n')).toContain(`(pid ${slave?.pid})`);
    expect(reasons.join('\n')).not.toMatch(/\(pid 1\)/);
  });

  it('a follower orchestrator lists the same host pids as the leader (workers/list, workers), before and after a crash/slave', async () => {
    const leader = await cluster({}, { listen: true });
    const follower = await cluster({}, { namespace: leader.namespace, dataDir: leader.dataDir, listen: true });
    expect(leader.orch.election.isLeader).toBe(true);
    expect(follower.orch.election.isLeader).toBe(false);
    const sameOnBoth = async (): Promise<number[]> => {
      const hostPids = (await workerContainers(leader.namespace)).map((x) => x.pid).sort((a, b) => a - b);
      const [l, f] = [(await leader.get('/api/v1/workers/list')).body as number[], (await follower.get('/api/v1/workers/list')).body as number[]];
      const byId = async (c: TestCluster): Promise<Record<string, number>> =>
        Object.fromEntries(((await c.get('/api/v1/workers')).body as Array<{ id: string; pid: number }>).map((w) => [w.id, w.pid]));
      return l.length === hostPids.length && JSON.stringify(l) === JSON.stringify(hostPids) && JSON.stringify(f) === JSON.stringify(l) &&
        JSON.stringify(await byId(follower)) === JSON.stringify(await byId(leader))
        ? l
        : [];
    };
    let before: number[] = [];
    await eventually(async () => (before = await sameOnBoth()).length === 2, 10_000, 'the same host pids listed by leader and follower');
    expect(before).not.toContain(1);

    const crash = await leader.post('/api/v1/crash/slave');
    expect(crash.status).toBe(200);
    await eventually(() => follower.orch.view.servingSlaves().length === 1 && !before.includes(follower.orch.view.servingSlaves()[0]?.pid ?? -1), 30_000, 'a replacement slave');
    let after: number[] = [];
    await eventually(async () => (after = await sameOnBoth()).length === 2, 10_000, 'the replacement listed by both with its host pid');
    expect(after).not.toContain(1);
    expect(after).not.toContain(Number(crash.body[0]));
    // The follower first, so that it hands nothing over: the leader then stops the workers.
    await follower.close();
    clusters = clusters.filter((x) => x !== follower);
  });

  it('a restarted orchestrator adopts the running containers instead of starting a second set', async () => {
    const first = await startTestCluster(env);
    namespaces.add(first.namespace);
    const w = await first.post('/api/v1/db/write', { table: 'adopt', operation: 'insert', data: { _id: 'a' } });
    const pids = (await first.get('/api/v1/workers/list')).body as number[];
    // abandon() also detaches the runtime: its events stream stops, the containers keep running.
    await first.handOver('abandon');

    const second = await cluster({}, { namespace: first.namespace, dataDir: first.dataDir });
    expect((await second.get('/api/v1/workers/list')).body).toEqual(pids);
    expect(await workerContainers(first.namespace)).toHaveLength(2);
    const r = await second.post('/api/v1/db/read', { table: 'adopt', where: {}, afterSeq: w.body.seq });
    expect(r.body).toEqual([{ _id: 'a' }]);
  });

  it('a master stopped with the service restarts on its data volume', async () => {
    const first = await startTestCluster(env);
    namespaces.add(first.namespace);
    const masterId = first.orch.view.master?.id;
    const w = await first.post('/api/v1/db/write', { table: 'kept', operation: 'insert', data: { _id: 'k' } });
    expect(w.status).toBe(200);
    // A clean stop keeps the master's containers' volume (and unit record), nothing else.
    await first.handOver('stop');
    expect(await workerContainers(first.namespace)).toEqual([]);

    const second = await cluster({}, { namespace: first.namespace, dataDir: first.dataDir });
    expect(second.orch.view.master?.id).toBe(masterId);
    const r = await second.post('/api/v1/db/read', { table: 'kept', where: {}, afterSeq: w.body.seq });
    expect(r.body).toEqual([{ _id: 'k' }]);
  });
});
