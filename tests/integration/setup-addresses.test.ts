/**
 * scripts/setup.sh uses the RabbitMQ and the ZooKeeper that DBAAS_AMQP_URL and
 * DBAAS_ZK_CONNECT name. Before, it probed (and would start) 127.0.0.1:5672
 * and 127.0.0.1:2181 whatever they said: with those up it reported them
 * reused and succeeded, though the configured servers did not answer (the
 * services then failed at start); with them down it started its own there.
 *
 * Here the configured addresses are proxies to the shared services (reachable)
 * or closed ports (unreachable); only `--only rabbitmq|zookeeper` runs, which
 * starts nothing when the address is elsewhere.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { amqpUrl } from '../../tools/nemesis/infra.js';
import { freePort, tcpProxy, zkProxy, type ZkProxy } from './infra.js';

const root = path.resolve(import.meta.dirname, '../..');

/** Runs `scripts/setup.sh --only <step>` with these settings; its exit code and output. */
function setupStep(step: 'rabbitmq' | 'zookeeper', env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'DBAAS_AMQP_URL' && k !== 'DBAAS_ZK_CONNECT'));
  const child = spawn('bash', ['scripts/setup.sh', '--only', step], { cwd: root, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, out })));
}

let rabbit: ZkProxy;
let zk: ZkProxy;

beforeAll(async () => {
  rabbit = await tcpProxy(5672);
  zk = await zkProxy();
});

afterAll(async () => {
  await rabbit?.close();
  await zk?.close();
});

/** The shared broker's URL with its address replaced by 127.0.0.1:<port>. */
function amqpAt(port: number): string {
  const u = new URL(amqpUrl().split(',')[0] ?? '');
  u.host = `127.0.0.1:${port}`;
  return u.toString();
}

describe('setup.sh with DBAAS_AMQP_URL and DBAAS_ZK_CONNECT elsewhere', () => {
  it('uses the RabbitMQ DBAAS_AMQP_URL names, and refuses one that does not answer instead of reusing 127.0.0.1:5672', async () => {
    const used = await setupStep('rabbitmq', { DBAAS_AMQP_URL: amqpAt(rabbit.port) });
    expect({ code: used.code, out: used.out }).toMatchObject({ code: 0, out: expect.stringContaining(`using RabbitMQ at 127.0.0.1:${rabbit.port} (DBAAS_AMQP_URL; not started here)`) });
    expect(used.out).not.toMatch(/reusing RabbitMQ|starting RabbitMQ|127\.0\.0\.1:5672/);

    const closed = await freePort();
    const refused = await setupStep('rabbitmq', { DBAAS_AMQP_URL: amqpAt(closed) });
    expect(refused.code).not.toBe(0);
    expect(refused.out).toContain(`RabbitMQ at 127.0.0.1:${closed} (DBAAS_AMQP_URL) does not let the services in`);
    expect(refused.out).not.toMatch(/reusing RabbitMQ|starting RabbitMQ/);
  });

  it('uses the ZooKeeper DBAAS_ZK_CONNECT names, and refuses one that does not answer instead of reusing 127.0.0.1:2181', async () => {
    const used = await setupStep('zookeeper', { DBAAS_ZK_CONNECT: `127.0.0.1:${zk.port}/dbaas-chroot` });
    expect({ code: used.code, out: used.out }).toMatchObject({ code: 0, out: expect.stringContaining(`using ZooKeeper at 127.0.0.1:${zk.port} (DBAAS_ZK_CONNECT; not started here)`) });
    expect(used.out).not.toMatch(/reusing ZooKeeper|starting ZooKeeper|127\.0\.0\.1:2181/);

    const closed = await freePort();
    const refused = await setupStep('zookeeper', { DBAAS_ZK_CONNECT: `127.0.0.1:${closed}` });
    expect(refused.code).not.toBe(0);
    expect(refused.out).toContain(`ZooKeeper at 127.0.0.1:${closed} (DBAAS_ZK_CONNECT) does not answer`);
    expect(refused.out).not.toMatch(/reusing ZooKeeper|starting ZooKeeper/);
  });
});
