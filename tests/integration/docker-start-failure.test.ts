/**
 * A worker container that cannot use its database says why (the docker runtime's
 * failureCause, which the orchestrator's start error, the audit and the
 * x-dbaas-start-failure header quote, as for the process runtime:
 * storage-start-failure.test.ts). The real case: the database's volume is full.
 * The worker's volume is made before its start as a 48 KiB tmpfs (startWorker
 * reuses a volume of its name): FerretDB starts and answers pings, and its first
 * write fails with "database or disk is full". The worker exits at once; the
 * cause is only in the two containers' logs, which the runtime reads through the
 * engine. The swarm runtime's is the same code (its tasks' containers on this
 * node). Skipped, loudly, without Docker or a swarm (docker-env.ts).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadOrchestratorConfig } from '../../common/config.js';
import { createLogger } from '../../common/logger.js';
import { DOCKER_LABELS, dockerNames, removeDockerNamespace } from '../../orchestrator/runtimes/docker-runtime.js';
import { createRuntime, dockerClient } from '../../orchestrator/runtimes/index.js';
import type { ExitInfo, Runtime } from '../../orchestrator/runtimes/runtime.js';
import { removeSwarmNamespace } from '../../orchestrator/runtimes/swarm-runtime.js';
import { dockerTestEnv, swarmTestEnv } from './docker-env.js';

const FULL = /database or disk is full/;

for (const { kind, status } of [
  { kind: 'docker', status: dockerTestEnv() },
  { kind: 'swarm', status: swarmTestEnv() },
] as const) describe.skipIf(!status.ready)(`${kind} runtime: a worker whose database cannot be used`, () => {
  const docker = dockerClient('unix:///var/run/docker.sock');
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  it('its failure cause quotes the worker container\'s fatal line and FerretDB\'s error from the containers\' logs', async () => {
    const ns = `t-${randomBytes(4).toString('hex')}`;
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'dbaas-docker-fail-'));
    cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    cleanups.push(() => (kind === 'swarm' ? removeSwarmNamespace(docker, ns) : removeDockerNamespace(docker, ns)));
    const config = loadOrchestratorConfig({
      DBAAS_NAMESPACE: ns,
      DBAAS_DATA_DIR: dataDir,
      DBAAS_LOG_LEVEL: process.env.DBAAS_TEST_LOG_LEVEL ?? 'warn',
      DBAAS_RUNTIME: kind,
      ...(status.ready ? status.env : {}),
    });
    const runtime: Runtime = createRuntime(config, createLogger('test-runtime', config.logLevel));
    cleanups.push(() => runtime.close(10_000));
    const id = `wfull-${randomBytes(3).toString('hex')}`;
    await docker.createVolume({
      Name: dockerNames(ns, id).volume,
      Driver: 'local',
      DriverOpts: { type: 'tmpfs', device: 'tmpfs', o: 'size=48k,uid=1000' },
      Labels: { [DOCKER_LABELS.managed]: 'true', [DOCKER_LABELS.namespace]: ns },
    });
    const exited = new Promise<ExitInfo>((resolve) => runtime.onExit((e) => e.id === id && resolve(e)));

    await runtime.startWorker({ id, role: 'master', term: 1 });
    const exit = await exited;
    expect(exit).toMatchObject({ code: 1, expected: false });

    const cause = await runtime.failureCause?.(id);
    const names = dockerNames(ns, id);
    // Each half named by its container (a swarm task's: `<service>.<slot>.<task id>`).
    expect(cause).toMatch(new RegExp(`^${names.worker}(\\.\\S+)?: worker failed to start: .*database or disk is full`));
    expect(cause).toMatch(new RegExp(`; ${names.db}(\\.\\S+)?: .*database or disk is full`));
    expect(cause).not.toMatch(/\.go:\d/); // FerretDB's call chain left out
    expect(cause).toMatch(FULL);
    console.log(`${kind} failure cause: ${cause ?? ''}`);
  }, 120_000);
});
