/**
 * One conformance suite, run against every runtime backend (`process` with FerretDB
 * on SQLite and on PostgreSQL, `docker`, `swarm`):
 * start, pid, list, kill, stop, exit detection (planned or not, either half of
 * the pair), remove, and adoption by a fresh runtime instance. Each test runs a
 * real worker (as the master of a namespace of its own) against the real
 * RabbitMQ and ZooKeeper, and checks that it registers.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import { afterEach, describe, expect, it } from 'vitest';
import { loadOrchestratorConfig } from '../../common/config.js';
import { createLogger } from '../../common/logger.js';
import { zkPaths } from '../../coordination/paths.js';
import { ZkSession } from '../../coordination/zk-session.js';
import { DOCKER_LABELS, dockerNames, removeDockerNamespace } from '../../orchestrator/runtimes/docker-runtime.js';
import { createRuntime, dockerClient } from '../../orchestrator/runtimes/index.js';
import { removeSwarmNamespace } from '../../orchestrator/runtimes/swarm-runtime.js';
import { findPsql, readMarker, workerDatabaseName } from '../../orchestrator/runtimes/postgresql-databases.js';
import type { ExitInfo, Runtime, WorkerHandle } from '../../orchestrator/runtimes/runtime.js';
import { dockerTestEnv, swarmTestEnv } from './docker-env.js';
import { purgeNamespace } from './infra.js';
import { eventually } from './harness.js';
import { isAlive as alive } from '../../common/probes.js';

interface Backend {
  kind: 'process' | 'docker' | 'swarm';
  /** How the suite is titled (the kind, and for the process runtime its storage). */
  name: string;
  /** Why it cannot run here, or undefined. */
  skip: string | undefined;
  env: Record<string, string>;
  /** Backend-specific facts about a started worker. */
  checkStarted(ns: string, dataDir: string, h: WorkerHandle): Promise<void>;
  /** Kills the database half from outside, as a crash would. */
  crashDatabase(ns: string, dataDir: string, id: string): Promise<void>;
  /** True when nothing of the worker runs any more (both halves). */
  allGone(ns: string, dataDir: string, id: string, pid: number): Promise<boolean>;
  /** True when the worker's leftovers (data, containers) are gone. */
  removed(ns: string, dataDir: string, id: string): Promise<boolean>;
  cleanup(ns: string): Promise<void>;
}

function processEnvOf(pid: number): string[] {
  return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
}

const processBackend: Backend = {
  kind: 'process',
  name: 'process (FerretDB on SQLite)',
  skip: undefined,
  env: { DBAAS_DB_BACKEND: 'sqlite' },
  async checkStarted(_ns, _dataDir, h) {
    expect(processEnvOf(h.pid)).toContain(`DBAAS_WORKER_ID=${h.id}`);
  },
  async crashDatabase(ns, dataDir, id) {
    const unit = JSON.parse(readFileSync(path.join(dataDir, ns, id, 'unit.json'), 'utf8')) as { dbPid: number };
    process.kill(unit.dbPid, 'SIGKILL');
  },
  async allGone(ns, dataDir, id, pid) {
    return !alive(pid) && !existsSync(path.join(dataDir, ns, id, 'unit.json'));
  },
  async removed(ns, dataDir, id) {
    return !existsSync(path.join(dataDir, ns, id));
  },
  async cleanup() {},
};

/** The namespace's worker databases on the PostgreSQL server of `npm test` (DBAAS_PG_URL). */
function pgDatabases(ns: string): string[] {
  const out = execFileSync(findPsql(), ['-X', '-q', '-A', '-t', '-d', process.env.DBAAS_PG_URL ?? '', '-c', `SELECT datname FROM pg_database WHERE starts_with(datname, '${ns}_')`], {
    encoding: 'utf8',
  });
  return out.split('\n').filter((l) => l !== '');
}

const processPgBackend: Backend = {
  ...processBackend,
  name: 'process (FerretDB on PostgreSQL)',
  skip: process.env.DBAAS_PG_URL ? undefined : 'DBAAS_PG_URL is not set (npm test sets up PostgreSQL; DBAAS_DB_BACKEND=sqlite skips it)',
  env: { DBAAS_DB_BACKEND: 'postgresql', DBAAS_PG_URL: process.env.DBAAS_PG_URL ?? '' },
  async checkStarted(ns, dataDir, h) {
    await processBackend.checkStarted(ns, dataDir, h);
    // Its FerretDB keeps the data in a database of the worker's own, named in its directory.
    const marker = readMarker(path.join(dataDir, ns, h.id, 'db'));
    expect(marker?.database).toBe(workerDatabaseName(ns, h.id));
    expect(pgDatabases(ns)).toEqual([workerDatabaseName(ns, h.id)]);
  },
  async removed(ns, dataDir, id) {
    return !existsSync(path.join(dataDir, ns, id)) && !pgDatabases(ns).includes(workerDatabaseName(ns, id));
  },
  async cleanup(ns) {
    for (const name of pgDatabases(ns)) {
      execFileSync(findPsql(), ['-X', '-q', '-d', process.env.DBAAS_PG_URL ?? '', '-c', `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`]);
    }
  },
};

/** The `docker` runtime, or the `swarm` one (the same containers, made by Swarm services on a single-node swarm). */
function makeDockerBackend(kind: 'docker' | 'swarm'): Backend {
  const status = kind === 'swarm' ? swarmTestEnv() : dockerTestEnv();
  let docker: Docker | undefined;
  const client = (): Docker => (docker ??= dockerClient('unix:///var/run/docker.sock'));
  /** The newest container of one half of a worker, found by its labels (Swarm names containers after its tasks). */
  const container = async (ns: string, id: string, part: 'worker' | 'db'): Promise<Docker.ContainerInspectInfo | undefined> => {
    const found = await client().listContainers({
      all: true,
      filters: { label: [`${DOCKER_LABELS.namespace}=${ns}`, `${DOCKER_LABELS.workerId}=${id}`, `${DOCKER_LABELS.part}=${part}`] },
    });
    const newest = found.sort((a, b) => b.Created - a.Created)[0];
    return newest ? client().getContainer(newest.Id).inspect() : undefined;
  };
  const state = async (ns: string, id: string, part: 'worker' | 'db'): Promise<'running' | 'stopped' | 'absent'> => {
    const c = await container(ns, id, part).catch(() => undefined);
    return c === undefined ? 'absent' : c.State.Running ? 'running' : 'stopped';
  };
  const services = async (ns: string, id: string): Promise<number> =>
    kind === 'swarm' ? (await client().listServices({ filters: { label: [`${DOCKER_LABELS.namespace}=${ns}`, `${DOCKER_LABELS.workerId}=${id}`] } })).length : 0;
  return {
    kind,
    name: kind,
    skip: status.ready ? undefined : status.reason,
    env: status.ready ? status.env : {},
    async checkStarted(ns, _dataDir, h) {
      const worker = await container(ns, h.id, 'worker');
      const db = await container(ns, h.id, 'db');
      // The pid is the container's main process as the host sees it.
      expect(worker?.State.Pid).toBe(h.pid);
      expect(processEnvOf(h.pid)).toContain(`DBAAS_WORKER_ID=${h.id}`);
      for (const c of [worker, db]) {
        expect(c?.Config.Labels[DOCKER_LABELS.namespace]).toBe(ns);
        expect(c?.Config.Labels[DOCKER_LABELS.workerId]).toBe(h.id);
        expect(c?.Config.Labels[DOCKER_LABELS.role]).toBe('master');
        expect(Object.keys(c?.NetworkSettings.Networks ?? {})).toEqual([`dbaas-${ns}`]);
      }
      expect(worker?.Config.Labels[DOCKER_LABELS.part]).toBe('worker');
      expect(db?.Config.Labels[DOCKER_LABELS.part]).toBe('db');
      expect(worker?.Config.User).toBe('1000:1000');
      if (kind === 'swarm') {
        // Two services of one replica each, placed on the same node, restarted by dbaas only.
        const names = dockerNames(ns, h.id);
        const specs = await Promise.all([names.worker, names.db].map((n) => client().getService(n).inspect() as Promise<{ Spec: Docker.ServiceSpec }>));
        for (const s of specs) expect(s.Spec.TaskTemplate && 'ContainerSpec' in s.Spec.TaskTemplate ? s.Spec.TaskTemplate.RestartPolicy?.Condition : '').toBe('none');
        expect(worker?.Config.Labels['com.docker.swarm.node.id']).toBe(db?.Config.Labels['com.docker.swarm.node.id']);
        expect(worker?.Config.Labels['com.docker.swarm.service.name']).toBe(names.worker);
      }
    },
    async crashDatabase(ns, _dataDir, id) {
      const db = await container(ns, id, 'db');
      await client().getContainer(db?.Id ?? '').kill({ signal: 'SIGKILL' });
    },
    async allGone(ns, _dataDir, id, pid) {
      return !alive(pid) && (await state(ns, id, 'worker')) !== 'running' && (await state(ns, id, 'db')) !== 'running';
    },
    async removed(ns, _dataDir, id) {
      const volume = dockerNames(ns, id).volume;
      const volumes = (await client().listVolumes({ filters: { name: [volume] } })).Volumes ?? [];
      return (await state(ns, id, 'worker')) === 'absent' && (await state(ns, id, 'db')) === 'absent' && volumes.length === 0 && (await services(ns, id)) === 0;
    },
    async cleanup(ns) {
      await (kind === 'swarm' ? removeSwarmNamespace(client(), ns) : removeDockerNamespace(client(), ns));
    },
  };
}

const backends: Backend[] = [processBackend, processPgBackend, makeDockerBackend('docker'), makeDockerBackend('swarm')];

for (const backend of backends) {
  describe.skipIf(backend.skip !== undefined)(`runtime conformance: ${backend.name}`, () => {
    interface Ctx {
      ns: string;
      dataDir: string;
      runtimes: Runtime[];
      /** Ids of the workers started, whose queues go at the end. */
      started: string[];
      exits: ExitInfo[];
      zk?: ZkSession;
    }
    let ctx: Ctx;

    const makeRuntime = (): Runtime => {
      const config = loadOrchestratorConfig({
        DBAAS_NAMESPACE: ctx.ns,
        DBAAS_DATA_DIR: ctx.dataDir,
        DBAAS_DB_BIN: process.env.DBAAS_DB_BIN,
        DBAAS_LOG_LEVEL: process.env.DBAAS_TEST_LOG_LEVEL ?? 'warn',
        DBAAS_RUNTIME: backend.kind,
        ...backend.env,
      });
      const runtime = createRuntime(config, createLogger('test-runtime', config.logLevel));
      ctx.runtimes.push(runtime);
      return runtime;
    };

    const fresh = (): Runtime => {
      ctx = {
        ns: `t-${randomBytes(4).toString('hex')}`,
        dataDir: mkdtempSync(path.join(os.tmpdir(), 'dbaas-conf-')),
        runtimes: [],
        started: [],
        exits: [],
      };
      const runtime = makeRuntime();
      runtime.onExit((e) => ctx.exits.push(e));
      return runtime;
    };

    /**
     * Waits until the worker has registered in ZooKeeper in the state its role
     * leads to: it really runs, with its database, ZooKeeper and RabbitMQ (and a
     * slave has copied the master's data over the network).
     */
    const registered = async (id: string, state: 'master' | 'slave'): Promise<void> => {
      if (!ctx.zk) {
        ctx.zk = new ZkSession({ connect: '127.0.0.1:2181', sessionTimeoutMs: 5000, logger: createLogger('test-zk', 'warn') });
        ctx.zk.start();
        await ctx.zk.waitUntilConnected(10_000);
      }
      const zk = ctx.zk;
      const znode = zkPaths(ctx.ns).worker(id);
      await eventually(
        async () => {
          const { data } = await zk.getData(znode);
          return (JSON.parse(data?.toString() ?? '{}') as { state?: string }).state === state;
        },
        30_000,
        `worker ${id} registered as ${state}`,
      );
    };

    const start = async (runtime: Runtime, role: 'master' | 'slave' = 'master'): Promise<WorkerHandle> => {
      const id = `w${randomBytes(4).toString('hex')}`;
      ctx.started.push(id);
      const h = await runtime.startWorker({ id, role, term: role === 'master' ? 1 : 0 });
      await registered(id, role);
      return h;
    };

    const exitsOf = (id: string): ExitInfo[] => ctx.exits.filter((e) => e.id === id);

    /** The one exit of `id`, checked to stay one a little later. */
    const onlyExit = async (id: string): Promise<ExitInfo> => {
      await eventually(() => exitsOf(id).length > 0, 20_000, `exit of ${id}`);
      await new Promise((r) => setTimeout(r, 500));
      expect(exitsOf(id)).toHaveLength(1);
      return exitsOf(id)[0]!;
    };

    afterEach(async () => {
      for (const r of ctx.runtimes) await r.close(5000).catch(() => undefined);
      ctx.zk?.close();
      await backend.cleanup(ctx.ns);
      await purgeNamespace(ctx.ns, ctx.started);
      rmSync(ctx.dataDir, { recursive: true, force: true });
    });

    it('starts a worker with its database: a real pid, listed, registered', async () => {
      const runtime = fresh();
      const h = await start(runtime);
      expect(h.pid).toBeGreaterThan(1);
      expect(alive(h.pid)).toBe(true);
      expect(runtime.list()).toEqual([{ id: h.id, pid: h.pid }]);
      await backend.checkStarted(ctx.ns, ctx.dataDir, h);
    });

    it('kill: both halves die, the exit is reported once as expected, and kill is idempotent', async () => {
      const runtime = fresh();
      const h = await start(runtime);
      await runtime.kill(h.id);
      const exit = await onlyExit(h.id);
      expect(exit).toMatchObject({ id: h.id, pid: h.pid, expected: true });
      expect(runtime.list()).toEqual([]);
      expect(await backend.allGone(ctx.ns, ctx.dataDir, h.id, h.pid)).toBe(true);
      await runtime.kill(h.id);
      expect(exitsOf(h.id)).toHaveLength(1);
    });

    it('a worker killed from outside is reported once as unexpected, and its database goes too', async () => {
      const runtime = fresh();
      const h = await start(runtime);
      process.kill(h.pid, 'SIGKILL');
      const exit = await onlyExit(h.id);
      expect(exit).toMatchObject({ id: h.id, pid: h.pid, expected: false, signal: 'SIGKILL' });
      expect(runtime.list()).toEqual([]);
      await eventually(() => backend.allGone(ctx.ns, ctx.dataDir, h.id, h.pid), 10_000, 'both halves gone');
    });

    it('a database that dies takes its worker with it, reported once as unexpected', async () => {
      const runtime = fresh();
      const h = await start(runtime);
      await backend.crashDatabase(ctx.ns, ctx.dataDir, h.id);
      const exit = await onlyExit(h.id);
      expect(exit).toMatchObject({ id: h.id, expected: false });
      await eventually(() => backend.allGone(ctx.ns, ctx.dataDir, h.id, h.pid), 10_000, 'both halves gone');
    });

    it('stop: a graceful exit, reported once as expected; remove deletes what is left', async () => {
      const runtime = fresh();
      const h = await start(runtime);
      await runtime.stop(h.id, 10_000);
      const exit = await onlyExit(h.id);
      expect(exit).toMatchObject({ id: h.id, expected: true });
      // Not killed by the timeout: the worker handled SIGTERM.
      expect(exit.signal).not.toBe('SIGKILL');
      expect(runtime.list()).toEqual([]);
      expect(runtime.hasData?.(h.id)).toBe(true);
      await runtime.remove(h.id);
      expect(await backend.removed(ctx.ns, ctx.dataDir, h.id)).toBe(true);
      expect(runtime.hasData?.(h.id)).toBe(false);
      await runtime.stop(h.id, 1000);
    });

    // A close that comes while a start awaits (a free port, the worker's storage) must reach what that start
    // spawns after it: a start that went on regardless left a worker and its database running past the close.
    it.runIf(backend.kind === 'process')('a close during a start cancels it and leaves no process of that worker', async () => {
      const runtime = fresh();
      const id = `w${randomBytes(4).toString('hex')}`;
      ctx.started.push(id);
      const starting = runtime.startWorker({ id, role: 'master', term: 1 });
      await runtime.close(5000);
      await expect(starting).rejects.toThrow(/cancelled|closed/);
      const ours = (): number[] =>
        readdirSync('/proc')
          .filter((e) => /^\d+$/.test(e))
          .filter((e) => {
            try {
              return processEnvOf(Number(e)).includes(`DBAAS_WORKER_ID=${id}`) || readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(path.join(ctx.dataDir, ctx.ns, id));
            } catch {
              return false;
            }
          })
          .map(Number);
      await eventually(() => ours().length === 0, 10_000, `no process of ${id}`);
    });

    it('remove refuses a running worker', async () => {
      const runtime = fresh();
      const h = await start(runtime);
      await expect(runtime.remove(h.id)).rejects.toThrow(/still running/);
      expect(runtime.list()).toHaveLength(1);
    });

    it('a fresh runtime adopts running workers: listed with the same pid, stopped and watched like its own', async () => {
      const first = fresh();
      const a = await start(first);
      const b = await start(first, 'slave');

      const second = makeRuntime();
      const secondExits: ExitInfo[] = [];
      second.onExit((e) => secondExits.push(e));
      const adopted = await second.adopt();
      const byId = (l: WorkerHandle[]) => [...l].sort((x, y) => x.id.localeCompare(y.id));
      expect(byId(adopted)).toEqual(byId([a, b]));
      expect(byId(await second.adopt())).toEqual(byId([a, b])); // idempotent
      expect(byId(second.list())).toEqual(byId([a, b]));

      // A crash of an adopted worker is seen by the new runtime, as unexpected.
      process.kill(a.pid, 'SIGKILL');
      await eventually(() => secondExits.some((e) => e.id === a.id), 20_000, 'exit of the adopted worker');
      expect(secondExits.find((e) => e.id === a.id)).toMatchObject({ pid: a.pid, expected: false });
      await eventually(() => backend.allGone(ctx.ns, ctx.dataDir, a.id, a.pid), 10_000, 'both halves gone');

      // A planned stop through the new runtime is expected.
      await second.stop(b.id, 10_000);
      expect(secondExits.filter((e) => e.id === b.id)).toEqual([expect.objectContaining({ pid: b.pid, expected: true })]);
      expect(second.list()).toEqual([]);
      expect(await backend.allGone(ctx.ns, ctx.dataDir, b.id, b.pid)).toBe(true);
    });
  });
}
