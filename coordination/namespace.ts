/**
 * A namespace's znodes as a whole: what is there, who holds it, and removing it
 * (dbaas teardown, test and tool clean-up).
 */
import type { Logger } from '../common/logger.js';
import type { ZkPaths } from './paths.js';
import { decodeOrchestratorZnode, type OrchestratorZnode } from './schemas.js';
import { isNoNode, readZnode, ZkSession, type ZkStore } from './zk-session.js';

/** Runs `fn` with a short-lived session (5 s timeout), closed afterwards. */
export async function withZkSession<T>(connect: string, logger: Logger, connectTimeoutMs: number, fn: (zk: ZkStore) => Promise<T>): Promise<T> {
  const zk = new ZkSession({ connect, sessionTimeoutMs: 5000, logger });
  zk.start();
  try {
    await zk.waitUntilConnected(connectTimeoutMs);
    return await fn(zk);
  } finally {
    zk.close();
  }
}

/** `root` and every znode below it, parents first ([] when `root` does not exist). */
export async function znodeTree(zk: ZkStore, root: string): Promise<string[]> {
  const children = await zk.getChildren(root).catch((err: unknown) => (isNoNode(err) ? undefined : Promise.reject(err)));
  if (children === undefined) return [];
  const below = await Promise.all(children.map((c) => znodeTree(zk, `${root}/${c}`)));
  return [root, ...below.flat()];
}

/** Deletes `root` and everything below it, deepest first; answers what was there. */
export async function removeTree(zk: ZkStore, root: string): Promise<string[]> {
  const tree = await znodeTree(zk, root);
  for (const p of [...tree].reverse()) await zk.remove(p).catch((err: unknown) => (isNoNode(err) ? undefined : Promise.reject(err)));
  return tree;
}

/** The leader orchestrator as its znode describes it, or undefined while none leads. */
export function leaderOf(zk: ZkStore, paths: ZkPaths): Promise<Partial<OrchestratorZnode> | undefined> {
  return readZnode(zk, paths.leader, decodeOrchestratorZnode);
}

/** How many orchestrators are registered (led or following). */
export async function memberCount(zk: ZkStore, paths: ZkPaths): Promise<number> {
  return (await zk.getChildren(paths.orchestrators).catch((err: unknown) => (isNoNode(err) ? [] : Promise.reject(err)))).length;
}

/** The ids of the workers registered now ([] when none, or on any error). */
export async function registeredWorkerIds(zk: ZkStore, paths: ZkPaths): Promise<string[]> {
  return zk.getChildren(paths.workers).catch(() => [] as string[]);
}
