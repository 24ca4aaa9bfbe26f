/**
 * Test-only control over the shared infrastructure: restarting ZooKeeper the way
 * it was started, and looking at queues and znodes directly.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import amqp from 'amqplib';
import { createLogger } from '../../common/logger.js';
import { withZkSession } from '../../coordination/namespace.js';
import { isNoNode } from '../../coordination/zk-session.js';

// Restarting and pausing ZooKeeper the way it was started: one copy, the nemesis'.
export { closeBrokerConnections, pauseZooKeeper, restartZooKeeper } from '../../tools/nemesis/infra.js';

/** Whether a queue exists on the broker. */
export async function queueExists(name: string): Promise<boolean> {
  const conn = await amqp.connect('amqp://guest:guest@127.0.0.1:5672');
  try {
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    try {
      await ch.checkQueue(name);
      return true;
    } catch {
      return false;
    }
  } finally {
    await conn.close().catch(() => undefined);
  }
}

/**
 * Deletes everything a test cluster leaves on the broker and in ZooKeeper: its
 * queues (the cluster's own stop keeps the durable `writeQ` on purpose), the
 * sync and control queues of `workerIds`, exchanges and the znode tree, so runs
 * do not pile up durable queues the broker must recover at every boot. One
 * copy, the nemesis'.
 */
export { purgeNamespace } from '../../tools/nemesis/infra.js';

/** The children of a znode ([] when it does not exist). */
export async function znodeChildren(p: string): Promise<string[]> {
  return withZkSession('127.0.0.1:2181', createLogger('test-zk', 'warn'), 10_000, (zk) =>
    zk.getChildren(p).catch((err: unknown) => (isNoNode(err) ? [] : Promise.reject(err))),
  );
}

/** Deletes a znode as another ZooKeeper client would (an operator, a stray tool): its owner's session is not told. */
export async function removeZnode(p: string): Promise<void> {
  await withZkSession('127.0.0.1:2181', createLogger('test-zk', 'warn'), 10_000, (zk) => zk.remove(p));
}

export { isAlive as alive } from '../../common/probes.js';

/** The database server's pid of a process-runtime worker, from its unit.json. */
export function dbPidOf(dataDir: string, namespace: string, workerId: string): number {
  return (JSON.parse(readFileSync(path.join(dataDir, namespace, workerId, 'unit.json'), 'utf8')) as { dbPid: number }).dbPid;
}

/** A loopback port nothing listens on now (the kernel's choice, bound once and closed, so no other test's range is touched). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A TCP proxy to the shared ZooKeeper, so a test can cut one cluster off it without touching the server. */
export interface ZkProxy {
  port: number;
  /** The connections open now stop passing anything on (a hung path); new ones pass. */
  swallow(): void;
  /** An outage for whoever connects through the proxy: open connections are cut, new ones refused, until `up()`. */
  down(): void;
  /** A server that accepts and never answers: open connections and new ones pass nothing (and stay so) until `up()`. */
  blackhole(): void;
  up(): void;
  close(): Promise<void>;
}

export function zkProxy(): Promise<ZkProxy> {
  return tcpProxy(2181);
}

/** The same proxy to another loopback service (e.g. the shared PostgreSQL, for an outage of one client only). */
export async function tcpProxy(upstreamPort: number): Promise<ZkProxy> {
  const open = new Set<{ client: net.Socket; upstream: net.Socket; pipe: boolean }>();
  let refusing = false;
  let swallowing = false;
  const held = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    if (swallowing) {
      held.add(client);
      client.on('error', () => undefined).on('close', () => held.delete(client));
      return;
    }
    const upstream = net.connect({ host: '127.0.0.1', port: upstreamPort });
    const conn = { client, upstream, pipe: true };
    open.add(conn);
    client.on('data', (d) => conn.pipe && upstream.write(d));
    upstream.on('data', (d) => conn.pipe && client.write(d));
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      open.delete(conn);
    };
    client.on('error', end).on('close', end);
    // A swallowed connection stays open towards the client even when the server closes it: a hung path.
    upstream.on('error', () => conn.pipe && end()).on('close', () => conn.pipe && end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const cutAll = (): void => {
    for (const c of held) c.destroy();
    held.clear();
    for (const c of open) {
      c.client.destroy();
      c.upstream.destroy();
    }
    open.clear();
  };
  return {
    port,
    swallow: () => {
      for (const c of open) c.pipe = false;
    },
    down: () => {
      refusing = true;
      cutAll();
    },
    blackhole: () => {
      swallowing = true;
      for (const c of open) c.pipe = false;
    },
    up: () => {
      refusing = false;
      swallowing = false;
    },
    close: async () => {
      cutAll();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
