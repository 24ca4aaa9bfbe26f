/**
 * The term: the persistent counter `/<ns>/term` that numbers masters. It is the
 * workers' fencing token in ZooKeeper.
 *
 * Invariant: the term moves only by compare-and-set, one step at a time, and,
 * under an elected leader, only in the same transaction that checks the epoch
 * is still the one this leader set (a deposed leader's bump fails). Every
 * master watches it ({@link watchTerm}) from the moment it holds `/<ns>/master`
 * and leaves once it moves past its own: the orchestrator moves it before it
 * promotes anyone (see common/fencing.ts).
 */
import type { ZkPaths } from './paths.js';
import { decodeCounter, encodeCounter } from './schemas.js';
import { CreateMode, isBadVersion, isNodeExists, isNoNode, type ZkStore } from './zk-session.js';

/** The leader's fencing token, checked in the same transaction as a term bump. */
export interface EpochGuard {
  /** The epoch znode's version this leadership set. */
  readonly epochVersion: number;
  /** Asks ZooKeeper whether this orchestrator still leads (false deposes it). */
  confirm(): Promise<boolean>;
}

/**
 * Increments a persistent decimal counter by compare-and-set, creating it at 0
 * first; retries while another writer moved it. With `guard`, the write also
 * checks that `guard.path` is still at `guard.version` (a BAD_VERSION from that
 * check is handed to `onConflict`, which may throw to give up).
 */
export async function bumpCounter(
  zk: ZkStore,
  path: string,
  opts: { guard?: { path: string; version: number }; onConflict?: () => Promise<void> } = {},
): Promise<{ value: number; version: number | undefined }> {
  for (;;) {
    try {
      await zk.create(path, encodeCounter(0), CreateMode.PERSISTENT);
    } catch (err) {
      if (!isNodeExists(err)) throw err;
    }
    const { data, stat } = await zk.getData(path);
    const next = decodeCounter(data) + 1;
    try {
      if (opts.guard) {
        await zk.setDataGuarded(path, encodeCounter(next), stat.version, opts.guard.path, opts.guard.version);
        return { value: next, version: undefined };
      }
      const after = await zk.setData(path, encodeCounter(next), stat.version);
      return { value: next, version: after.version };
    } catch (err) {
      if (!isBadVersion(err)) throw err;
      await opts.onConflict?.();
    }
  }
}

/**
 * Moves the term one step (orchestrator: cluster start, failover, master
 * restart). Fenced by the epoch when `leader` is given: a former leader's bump
 * fails, and throws once it learns it no longer leads.
 */
export async function bumpTerm(zk: ZkStore, paths: ZkPaths, leader?: EpochGuard): Promise<number> {
  await zk.mkdirp(paths.root);
  const { value } = await bumpCounter(zk, paths.term, {
    ...(leader ? { guard: { path: paths.epoch, version: leader.epochVersion } } : {}),
    onConflict: async () => {
      // The term moved (retry), or the epoch did: then this orchestrator no longer leads.
      if (leader && !(await leader.confirm())) throw new Error('no longer the leader: the term was not moved');
    },
  });
  return value;
}

/** The current term (rejects NO_NODE before the first bump). */
export async function readTerm(zk: ZkStore, paths: ZkPaths): Promise<number> {
  return decodeCounter((await zk.getData(paths.term)).data);
}

/**
 * A master's watch on the term: calls `onMoved(term)` once the term is past
 * `myTerm`. The watch is re-armed on every event; a read that fails (ZooKeeper
 * unreachable) is retried every `retryMs`, since a watch that is never re-armed
 * would leave a master that can no longer be deposed. Stops when `stopped()`.
 * Resolves once armed; rejects when the first read fails (NO_NODE excepted).
 */
export async function watchTerm(
  zk: ZkStore,
  paths: ZkPaths,
  myTerm: number,
  on: { moved: (term: number) => Promise<void> | void; stopped: () => boolean },
  retryMs = 1000,
): Promise<void> {
  const check = async (): Promise<void> => {
    if (on.stopped()) return;
    const { data } = await zk.getData(paths.term, () => void retry());
    const term = decodeCounter(data);
    if (term > myTerm) await on.moved(term);
  };
  const retry = async (): Promise<void> => {
    for (;;) {
      try {
        await check();
        return;
      } catch (err) {
        if (isNoNode(err)) return;
        if (on.stopped()) return;
        await new Promise((r) => setTimeout(r, retryMs));
      }
    }
  };
  await check().catch((err: unknown) => {
    if (!isNoNode(err)) throw err;
  });
}
