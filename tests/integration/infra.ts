/**
 * Test-only control over the shared infrastructure: restarting ZooKeeper the way
 * it was started, and looking at queues and znodes directly.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import amqp from 'amqplib';
import zookeeper from 'node-zookeeper-client';
import { createLogger } from '../../common/logger.js';
import { clusterNames } from '../../common/names.js';
import { isNoNode, ZkSession } from '../../common/zk-session.js';

// Restarting and pausing ZooKeeper the way it was started: one copy, the nemesis'.
export { pauseZooKeeper, restartZooKeeper } from '../../tools/nemesis/infra.js';

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
 * Deletes what a test namespace leaves on the shared broker and ensemble once
 * its workers are gone: the queues and exchanges of the namespace (the
 * cluster's own stop keeps the durable `writeQ` on purpose, for the next
 * start), the sync and control queues of `workerIds`, and the znode tree.
 * Tests call it so that runs do not pile up durable queues the broker must
 * recover at every boot.
 */
export async function purgeNamespace(namespace: string, workerIds: Iterable<string> = []): Promise<void> {
  const names = clusterNames(namespace);
  const conn = await amqp.connect('amqp://guest:guest@127.0.0.1:5672');
  try {
    const queues = [names.writeQueue, names.readQueue, names.deadLetterQueue];
    for (const id of workerIds) queues.push(names.syncQueue(id), names.controlQueue(id));
    // A channel closes on the first error; deleting what does not exist is not one.
    const ch = await conn.createChannel();
    for (const q of queues) await ch.deleteQueue(q);
    for (const x of [names.syncExchange, names.deadLetterExchange, names.poisonExchange]) await ch.deleteExchange(x);
    await ch.close();
  } finally {
    await conn.close().catch(() => undefined);
  }
  await removeZnodeTree(names.zkRoot);
}

/** Removes a znode and everything under it (nothing when it does not exist). */
async function removeZnodeTree(root: string): Promise<void> {
  const zk = new ZkSession({ connect: '127.0.0.1:2181', sessionTimeoutMs: 5000, logger: createLogger('test-zk', 'warn') });
  zk.start();
  try {
    await zk.waitUntilConnected(10_000);
    const remove = async (p: string): Promise<void> => {
      const children = await zk.getChildren(p).catch((err: unknown) => (isNoNode(err) ? [] : Promise.reject(err)));
      for (const child of children) await remove(`${p}/${child}`);
      await zk.remove(p).catch((err: unknown) => (isNoNode(err) ? undefined : Promise.reject(err)));
    };
    await remove(root);
  } finally {
    zk.close();
  }
}

/** The children of a znode ([] when it does not exist). */
export async function znodeChildren(p: string): Promise<string[]> {
  const client = zookeeper.createClient('127.0.0.1:2181', { sessionTimeout: 5000 });
  client.connect();
  try {
    return await new Promise<string[]>((resolve, reject) => {
      client.once('connected', () => {
        client.getChildren(p, (err, children) => {
          if (err && (err as { getCode?: () => number }).getCode?.() === zookeeper.Exception.NO_NODE) resolve([]);
          else if (err) reject(err);
          else resolve(children);
        });
      });
    });
  } finally {
    client.close();
  }
}

export { isAlive as alive } from '../../common/probes.js';

/** The database server's pid of a process-runtime worker, from its unit.json. */
export function dbPidOf(dataDir: string, namespace: string, workerId: string): number {
  return (JSON.parse(readFileSync(path.join(dataDir, namespace, workerId, 'unit.json'), 'utf8')) as { dbPid: number }).dbPid;
}
