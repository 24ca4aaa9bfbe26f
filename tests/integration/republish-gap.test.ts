/**
 * A master restarted in place publishes again every entry the broker never took
 * (worker/sync-order.ts republishFrom). The master's connection to RabbitMQ goes
 * through a proxy in this test that can hold what the master sends: two batches
 * are stored and published (a large one, then one write), none reaches the
 * broker, and the master is killed (the slave first, so the master is restarted
 * in place from its own data, not replaced). Before, the restart published only
 * the newest batch and 8 entries: the slave, resuming from its own data and
 * queue, met a seq gap and exited ("sync gap"). Now it applies every entry, and
 * every replica ends with every write.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestCluster, type TestCluster } from './harness.js';
import { dumpAllReplicas } from './replicas.js';

/** A TCP proxy to RabbitMQ whose connections from one process can be held: what they send is kept, never forwarded. */
class HoldingProxy {
  readonly server = net.createServer((client) => this.accept(client));
  private readonly conns = new Set<{ client: net.Socket; upstream: net.Socket; held: boolean }>();
  port = 0;

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  private accept(client: net.Socket): void {
    const upstream = net.connect(5672, '127.0.0.1');
    const conn = { client, upstream, held: false };
    this.conns.add(conn);
    client.on('data', (d) => {
      if (!conn.held) upstream.write(d);
    });
    upstream.on('data', (d) => client.write(d));
    const end = (): void => {
      this.conns.delete(conn);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  }

  /** Holds from now on everything the process `pid` sends through this proxy; how many connections. */
  hold(pid: number): number {
    const inodes = new Set(
      readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
        try {
          const m = /^socket:\[(\d+)\]$/.exec(readlinkSafe(`/proc/${pid}/fd/${fd}`));
          return m ? [m[1] as string] : [];
        } catch {
          return [];
        }
      }),
    );
    // The client side of each proxied connection: local port = the port the proxy sees as remote.
    const byPort = new Map<number, string>();
    for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const local = parseInt((f[1] as string).split(':')[1] as string, 16);
      const remote = parseInt((f[2] as string).split(':')[1] as string, 16);
      if (remote === this.port) byPort.set(local, f[9] as string);
    }
    let n = 0;
    for (const c of this.conns) {
      const inode = byPort.get(c.client.remotePort ?? -1);
      if (inode && inodes.has(inode)) {
        c.held = true;
        n += 1;
      }
    }
    return n;
  }

  async close(): Promise<void> {
    for (const c of this.conns) {
      c.client.destroy();
      c.upstream.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function readlinkSafe(p: string): string {
  return readlinkSync(p);
}

let proxy: HoldingProxy;
let c: TestCluster;

beforeAll(async () => {
  proxy = new HoldingProxy();
  await proxy.listen();
  c = await startTestCluster({ DBAAS_AMQP_URL: `amqp://guest:guest@127.0.0.1:${proxy.port}`, DBAAS_REQUEST_TIMEOUT_MS: '60000' });
});

afterAll(async () => {
  await c?.close();
  await proxy?.close();
});

describe('re-publishing after a master restart', () => {
  it('publishes again every entry the broker never took, across batches', async () => {
    const first = await c.post('/api/v1/db/write', { table: 'r', operation: 'insert', data: { _id: 'w0' } });
    expect(first.status).toBe(200);
    await dumpAllReplicas(c.orch);
    const master = c.orch.view.masterStatus();
    const slave = c.orch.view.servingSlaves()[0];
    if (!master || !slave) throw new Error('no master or slave');
    expect(proxy.hold(master.pid)).toBeGreaterThan(0);
    const s0 = master.appliedSeq;
    // A large batch (30 writes at once), stored and published into the held connection ...
    const writes = Array.from({ length: 30 }, (_, i) => c.post('/api/v1/db/write', { table: 'r', operation: 'insert', data: { _id: `a${i}` }, requestId: `a${i}` }));
    await eventually(() => (c.orch.view.masterStatus()?.appliedSeq ?? 0) >= s0 + 30, 30_000, 'the master to store 30 writes');
    // ... then a batch of one.
    const last = c.post('/api/v1/db/write', { table: 'r', operation: 'insert', data: { _id: 'b' }, requestId: 'b' });
    await eventually(() => (c.orch.view.masterStatus()?.appliedSeq ?? 0) >= s0 + 31, 30_000, 'the master to store the last write');
    // The slave first (so no slave can take over), then the master: restarted in place from its own data.
    process.kill(slave.pid, 'SIGKILL');
    await eventually(() => !c.orch.view.workers.has(slave.id) || c.orch.view.workers.get(slave.id)?.pid !== slave.pid, 30_000, 'the slave gone');
    process.kill(master.pid, 'SIGKILL');
    const answers = await Promise.all([...writes, last]);
    for (const a of answers) expect(a.status).toBe(200);
    // Restarted in place (the same worker), not replaced by a promoted slave.
    expect(c.orch.view.master?.id).toBe(master.id);
    const dumps = await dumpAllReplicas(c.orch, 90_000, 2);
    expect(dumps.size).toBe(2);
    const want = ['w0', ...Array.from({ length: 30 }, (_, i) => `a${i}`), 'b'].sort();
    for (const [, dump] of dumps) expect(((dump['r'] ?? []) as Array<{ _id: string }>).map((d) => d._id).sort()).toEqual(want);
    const slaveLog = readFileSync(path.join(c.dataDir, c.namespace, slave.id, 'worker.log'), 'utf8');
    expect(slaveLog).not.toMatch(/sync gap/);
  }, 240_000);
});
