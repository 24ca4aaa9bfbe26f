/**
 * `dbaas teardown --namespace NS` (issue 13.3): refused while an orchestrator
 * runs the namespace; after a stop it removes everything of it, and a fresh
 * look (rabbitmqctl, ZooKeeper, Docker labels, the disk) finds nothing left.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { clusterNames } from '../../common/names.js';
import { runCli } from '../../client/cli/cli.js';
import { DOCKER_LABELS } from '../../orchestrator/runtimes/docker-runtime.js';
import { dockerClient } from '../../orchestrator/runtimes/index.js';
import { inventory, teardownNamespace, type NamespaceObjects } from '../../orchestrator/teardown.js';
import { startTestCluster, type TestCluster } from './harness.js';
import { freePort, znodeChildren } from './infra.js';

const run = promisify(execFile);
const logger = createLogger('test-teardown', 'warn');
let c: TestCluster;
let namespace: string;
let dataDir: string;
let stopped = false;
const docker = dockerClient('unix:///var/run/docker.sock');
let dockerUp = false;

const settings = () => ({ namespace, amqpUrl: 'amqp://guest:guest@127.0.0.1:5672', zkConnect: '127.0.0.1:2181', dataDir, dockerHost: 'unix:///var/run/docker.sock' });

async function cli(argv: string[], answer?: string, env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, {
    stdout: (t) => (out += `${t}\n`),
    stderr: (t) => (err += `${t}\n`),
    readStdin: async () => '',
    defaults: { url: 'http://127.0.0.1:1' },
    env: { DBAAS_DATA_DIR: dataDir, ...env },
    ...(answer === undefined ? {} : { ask: async () => answer }),
  });
  return { code, out, err };
}

/** Queue and exchange names of the namespace on the broker, as rabbitmqctl lists them (no AMQP declare involved). */
async function brokerLeftovers(): Promise<string[]> {
  const names: string[] = [];
  for (const what of ['queues', 'exchanges']) {
    // Other test files restart the shared broker now and then: rabbitmqctl may fail while it boots.
    let stdout = '';
    for (let attempt = 1; ; attempt++) {
      try {
        stdout = (await run('rabbitmqctl', [`list_${what}`, '-q', '--no-table-headers', 'name'], { timeout: 60_000 })).stdout;
        break;
      } catch (err) {
        if (attempt >= 5) throw err;
        await new Promise((r) => setTimeout(r, 3000));
      }
    }
    names.push(...stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith(`${namespace}.`)));
  }
  return names;
}

async function dockerLeftovers(): Promise<string[]> {
  const filters = { label: [`${DOCKER_LABELS.namespace}=${namespace}`] };
  const [containers, volumes, networks] = await Promise.all([docker.listContainers({ all: true, filters }), docker.listVolumes({ filters }), docker.listNetworks({ filters })]);
  return [...containers.map((x) => `container ${x.Names[0]}`), ...(volumes.Volumes ?? []).map((v) => `volume ${v.Name}`), ...networks.map((n) => `network ${n.Name}`)];
}

beforeAll(async () => {
  c = await startTestCluster();
  namespace = c.namespace;
  dataDir = c.dataDir;
  dockerUp = await docker.ping().then(
    () => true,
    () => false,
  );
});

afterAll(async () => {
  if (!stopped) await c?.close();
  else {
    // Whatever a failed test left: the teardown itself is the cleanup.
    await teardownNamespace(settings(), logger).catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  }
});

describe('dbaas teardown', () => {
  it('is refused while the orchestrator runs the namespace, and removes nothing', async () => {
    expect((await c.post('/api/v1/db/write', { table: 'keep', operation: 'insert', data: { v: 1 } })).status).toBe(200);
    const before = await inventory(settings(), logger);
    const res = await cli(['teardown', '--namespace', namespace, '--yes']);
    expect(res.code).toBe(1);
    expect(res.err).toMatch(/teardown refused: an orchestrator runs namespace/);
    const after = await inventory(settings(), logger);
    expect(after.queues.sort()).toEqual(before.queues.sort());
    expect(after.znodes.length).toBe(before.znodes.length);
    expect(after.dataDir).toEqual([path.join(path.resolve(dataDir), namespace)]);
    expect((await c.post('/api/v1/db/read', { table: 'keep', where: {}, count: true, afterSeq: 1 })).body).toEqual({ count: 1 });
  });

  it('asks for the namespace unless --yes, and without an answer removes nothing', async () => {
    await c.handOver('stop');
    stopped = true;
    expect((await cli(['teardown', '--namespace', namespace])).code).toBe(2);
    const wrong = await cli(['teardown', '--namespace', namespace], 'some-other-namespace');
    expect(wrong.code).toBe(2);
    expect(wrong.err).toMatch(/not confirmed; nothing was removed/);
    expect((await inventory(settings(), logger)).queues).toContain(clusterNames(namespace).writeQueue);
    expect((await cli(['teardown'])).code).toBe(2); // --namespace is required
  });

  // Before: "teardown failed: no ZooKeeper session with … after 10000 ms", exit 3, and nothing said of what was left (a
  // namespace of DBAAS_PLATFORM=ha after its platform was stopped).
  it('with its ZooKeeper and broker down, removes nothing, names what is left and how to finish, and exits 3', async () => {
    const [zkPort, amqpPort] = [await freePort(), await freePort()];
    const down = { DBAAS_ZK_CONNECT: `127.0.0.1:${zkPort}`, DBAAS_AMQP_URL: `amqp://guest:guest@127.0.0.1:${amqpPort}` };
    const started = Date.now();
    const res = await cli(['teardown', '--namespace', namespace, '--yes'], undefined, down);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(res.code).toBe(3);
    expect(res.err).toMatch(new RegExp(`teardown incomplete: ZooKeeper did not answer \\(.*\\), so whether an orchestrator still runs namespace ${namespace} cannot be told: nothing of it was removed; start the platform`));
    const dir = path.join(path.resolve(dataDir), namespace);
    expect(res.out).toContain(`not cleaned:    data directory: ${dir}`);
    expect(res.out).toContain(`not cleaned:    its znodes on 127.0.0.1:${zkPort} and its queues and exchanges on 127.0.0.1:${amqpPort}: not looked at`);
    expect(existsSync(dir)).toBe(true);
    expect((await inventory(settings(), logger)).queues).toContain(clusterNames(namespace).writeQueue);
  });

  it('after a stop, removes the queues, exchanges, znodes, Docker objects and data of the namespace: nothing is left', async () => {
    const names = clusterNames(namespace);
    // Leftovers beyond what a stop keeps: a dead worker's sync queue (and its data directory, as a killed
    // worker leaves it), the dead-letter queue of an older version.
    mkdirSync(path.join(dataDir, namespace, 'wdead-000000'), { recursive: true });
    const conn = await amqp.connect('amqp://guest:guest@127.0.0.1:5672');
    try {
      const ch = await conn.createChannel();
      await ch.assertQueue(names.syncQueue('wdead-000000'), { durable: true });
      await ch.assertQueue(names.legacyDeadLetterQueue, { durable: true, arguments: { 'x-max-length': 10000, 'x-overflow': 'drop-head' } });
      await ch.close();
    } finally {
      await conn.close();
    }
    if (dockerUp) {
      const labels = { [DOCKER_LABELS.managed]: 'true', [DOCKER_LABELS.namespace]: namespace, [DOCKER_LABELS.workerId]: 'wdocker-000000' };
      await docker.createVolume({ Name: `dbaas-${namespace}-wdocker-000000-db`, Labels: labels });
      await docker.createNetwork({ Name: `dbaas-${namespace}`, Labels: labels });
      const images = await docker.listImages();
      const image = images.find((i) => (i.RepoTags ?? []).some((t) => t !== '<none>:<none>'))?.RepoTags?.[0];
      if (image) await docker.createContainer({ Image: image, name: `dbaas-${namespace}-wdocker-000000`, Labels: labels, Cmd: ['true'] });
    }

    const before: NamespaceObjects = await inventory(settings(), logger);
    if (before.notes.length > 0) console.log(`[teardown] inventory notes: ${before.notes.join('; ')}`);
    expect(before.queues).toEqual(expect.arrayContaining([names.writeQueue, names.deadLetterQueue, names.legacyDeadLetterQueue, names.syncQueue('wdead-000000')]));
    expect(before.exchanges).toEqual(expect.arrayContaining([names.syncExchange, names.deadLetterExchange, names.poisonExchange]));
    expect(before.znodes.length).toBeGreaterThan(1);
    expect(before.dataDir).toHaveLength(1);
    if (dockerUp) expect(before.volumes.length + before.networks.length).toBeGreaterThanOrEqual(2);

    // The real command line, as `npm run teardown -- --namespace NS --yes` runs it (from dist/).
    const { stdout } = await run('npm', ['run', '-s', 'teardown', '--', '--namespace', namespace, '--yes', '--json'], {
      cwd: path.resolve(import.meta.dirname, '../..'),
      env: { ...process.env, DBAAS_DATA_DIR: dataDir },
      timeout: 120_000,
    });
    const report = JSON.parse(stdout) as { removed: NamespaceObjects; left: NamespaceObjects };
    expect(report.removed.queues.length).toBe(before.queues.length);
    expect(report.removed.znodes.length).toBe(before.znodes.length);
    expect(report.left.queues).toEqual([]);

    // Looked at afresh, by other means than the teardown's own.
    expect(await brokerLeftovers()).toEqual([]);
    expect(await znodeChildren('/')).not.toContain(namespace);
    expect(existsSync(path.join(dataDir, namespace))).toBe(false);
    if (dockerUp) expect(await dockerLeftovers()).toEqual([]);
    console.log(
      `[teardown] removed ${report.removed.queues.length} queues, ${report.removed.exchanges.length} exchanges, ${report.removed.znodes.length} znodes, ` +
        `${report.removed.containers.length} containers, ${report.removed.volumes.length} volumes, ${report.removed.networks.length} networks, ` +
        `${report.removed.dataDir.length} data directory; left: ${JSON.stringify(report.left)}; docker ${dockerUp ? 'checked' : 'not available'}`,
    );

    // A second run finds nothing and says so.
    const again = await cli(['teardown', '--namespace', namespace, '--yes', '--json']);
    expect(again.code).toBe(0);
    const second = JSON.parse(again.out) as { removed: NamespaceObjects };
    expect(second.removed.queues).toEqual([]);
    expect(second.removed.znodes).toEqual([]);
  }, 180_000);
});
