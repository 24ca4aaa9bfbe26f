/**
 * Opt-in (`npm run test:swarm-trial`, DBAAS_SWARM_TRIAL_TEST=1): the swarm
 * runtime on a two-node swarm made by scripts/swarm-trial.sh (two engines in
 * containers on this host; the orchestrator runs here and speaks to node a, a
 * manager). Workers are spread over both nodes; each worker's database is on
 * its node; a slave on node b killed from outside (its container, through node
 * b's own engine: no container event reaches the orchestrator) is seen dead
 * from the manager's task states and replaced; crash drills move the master
 * between the nodes (a slave copies the master's data across the overlay
 * network); every acknowledged write is on every replica at the end.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerClient } from '../../orchestrator/runtimes/index.js';
import { removeSwarmNamespace, type SwarmTask } from '../../orchestrator/runtimes/swarm-runtime.js';
import { DOCKER_LABELS } from '../../orchestrator/runtimes/docker-runtime.js';
import { dockerTestEnv, readRuntimeEnv } from './docker-env.js';
import { eventually, startTestCluster, type TestCluster } from './harness.js';

const enabled = process.env.DBAAS_SWARM_TRIAL_TEST === '1';
const root = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);
/** scripts/swarm-trial.sh up|down, without blocking the test worker's event loop for its minute. */
async function trial(cmd: 'up' | 'down'): Promise<void> {
  const { stdout } = await run('bash', [path.join(root, 'scripts/swarm-trial.sh'), cmd], { cwd: root, timeout: 600_000 });
  process.stdout.write(stdout);
}

describe.skipIf(!enabled)('swarm runtime on a two-node swarm (opt-in: scripts/swarm-trial.sh)', () => {
  let env: Record<string, string> = {};
  let manager: Docker;
  let c: TestCluster | undefined;

  beforeAll(async () => {
    if (!dockerTestEnv().ready) throw new Error('Docker is not ready (scripts/setup-docker.sh)');
    await trial('up');
    env = readRuntimeEnv(path.join(root, '.dbaas/swarm-trial.env'));
    manager = dockerClient(env.DBAAS_DOCKER_HOST ?? '');
  }, 600_000);

  afterAll(async () => {
    const ns = c?.namespace;
    await c?.close().catch(() => undefined);
    if (ns && manager) await removeSwarmNamespace(manager, ns).catch(() => undefined);
    await trial('down');
  }, 300_000);

  /** Each worker's node, from the manager's tasks: both halves of a worker must be on one node. */
  async function placement(ns: string): Promise<Map<string, { node: string; pid: number; container: string }>> {
    const nodes = new Map((await manager.listNodes()).map((n) => [n.ID ?? '', n.Description?.Hostname ?? '']));
    const services = await manager.listServices({ filters: { label: [`${DOCKER_LABELS.namespace}=${ns}`] } });
    const tasks = (await manager.listTasks({ filters: { 'desired-state': ['running'] } })) as SwarmTask[];
    const out = new Map<string, { node: string; pid: number; container: string }>();
    const dbNode = new Map<string, string>();
    for (const s of services) {
      const labels = (s.Spec?.Labels ?? {}) as Record<string, string>;
      const task = tasks.find((t) => t.ServiceID === s.ID && t.Status.State === 'running');
      const id = labels[DOCKER_LABELS.workerId] ?? '';
      if (!task) continue;
      const node = nodes.get(task.NodeID ?? '') ?? '?';
      if (labels[DOCKER_LABELS.part] === 'db') dbNode.set(id, node);
      else out.set(id, { node, pid: task.Status.ContainerStatus?.PID ?? 0, container: task.Status.ContainerStatus?.ContainerID ?? '' });
    }
    for (const [id, w] of out) expect(dbNode.get(id), `worker ${id}'s database is on another node than the worker`).toBe(w.node);
    return out;
  }

  /** A master and two serving slaves, none of them with a pid that died (a dead worker's znode outlives it by its session). */
  async function whole(cluster: TestCluster, what: string, gone: number[] = []): Promise<void> {
    await eventually(
      async () => {
        const ws = (await cluster.get('/api/v1/workers')).body as Array<{ state: string; pid: number }>;
        const pids = (await cluster.get('/api/v1/workers/list')).body as number[];
        return (
          ws.length === 3 &&
          ws.filter((w) => w.state === 'master').length === 1 &&
          ws.filter((w) => w.state === 'slave').length === 2 &&
          pids.length === 3 &&
          ws.every((w) => pids.includes(w.pid) && !gone.includes(w.pid))
        );
      },
      90_000,
      what,
    );
  }

  it('spreads workers over both nodes, detects a death on the other node from task states, and survives crash drills with every write on every replica', async () => {
    c = await startTestCluster({ DBAAS_RUNTIME: 'swarm', DBAAS_INITIAL_SLAVES: '2', ...env });
    const cluster = c;
    const acked: string[] = [];
    let lastSeq = 0;
    const write = async (id: string): Promise<void> => {
      const w = await cluster.post('/api/v1/db/write', { table: 'spread', operation: 'insert', data: { _id: id }, requestId: `spread-${id}` });
      expect(w.status).toBe(200);
      acked.push(id);
      lastSeq = w.body.seq as number;
    };
    await write('first');
    const first = await placement(cluster.namespace);
    const nodes = new Set([...first.values()].map((w) => w.node));
    console.log(`placement: ${[...first].map(([id, w]) => `${id}@${w.node}`).join(', ')}`);
    expect(nodes.size).toBe(2);
    // The pids listed are the tasks' (this host's, the nodes run with --pid=host).
    expect(((await cluster.get('/api/v1/workers/list')).body as number[]).sort()).toEqual([...first.values()].map((w) => w.pid).sort());

    // A slave on the node that is not the orchestrator's manager, killed through its own engine.
    const masterId = cluster.orch.view.master?.id;
    const nodeB = [...nodes].find((n) => n.endsWith('-b')) ?? '';
    let victim = [...first].find(([id, w]) => id !== masterId && w.node === nodeB);
    if (!victim) {
      // Both slaves on node a: the master is on b; move it with a drill first.
      const crash = await cluster.post('/api/v1/crash/master');
      expect(crash.status).toBe(200);
      await whole(cluster, 'a new master and slave after the first drill', [Number(crash.body[0])]);
      const again = await placement(cluster.namespace);
      victim = [...again].find(([id, w]) => id !== cluster.orch.view.master?.id && w.node === nodeB);
    }
    expect(victim, 'a slave on node b').toBeDefined();
    const [victimId, victimTask] = victim as [string, { node: string; pid: number; container: string }];
    const killedAt = Date.now();
    await run('docker', ['exec', nodeB, 'docker', 'kill', victimTask.container]);
    await eventually(async () => !((await cluster.get('/api/v1/workers/list')).body as number[]).includes(victimTask.pid), 30_000, 'the killed slave dropped');
    const detectedMs = Date.now() - killedAt;
    await whole(cluster, 'the slave killed on node b replaced', [victimTask.pid]);
    console.log(`slave ${victimId} killed on ${nodeB}: dropped from the list after ${detectedMs} ms, replaced after ${Date.now() - killedAt} ms`);
    await write('after-kill');

    // Crash drills through the API: the master (wherever it is), twice, and a slave.
    for (const [i, role] of (['master', 'master', 'slave'] as const).entries()) {
      const before = cluster.orch.view.master?.id;
      const crash = await cluster.post(`/api/v1/crash/${role}`);
      expect(crash.status).toBe(200);
      if (role === 'master') await eventually(() => (cluster.orch.view.master?.id ?? before) !== before, 30_000, 'a slave promoted');
      await whole(cluster, `whole after crash/${role} ${i + 1}`, [Number(crash.body[0])]);
      await write(`after-crash-${i}`);
      const p = await placement(cluster.namespace);
      console.log(`after crash/${role}: master ${cluster.orch.view.master?.id}@${p.get(cluster.orch.view.master?.id ?? '')?.node}; ${[...p].map(([id, w]) => `${id}@${w.node}`).join(', ')}`);
    }

    const verify = await cluster.get('/api/v1/verify');
    expect(verify.body.result).toBe('equal');
    const read = await cluster.post('/api/v1/db/read', { table: 'spread', where: {}, sort: { _id: 1 }, afterSeq: lastSeq });
    expect((read.body as Array<{ _id: string }>).map((d) => d._id)).toEqual([...acked].sort());
    for (const r of verify.body.replicas as Array<{ documents: number }>) expect(r.documents).toBe(acked.length);
  }, 600_000);
});
