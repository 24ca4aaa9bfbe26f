/**
 * A worker's presence in ZooKeeper: its ephemeral znode `/<ns>/workers/<id>`
 * (its status, re-created on every new session), the master's ephemeral
 * `/<ns>/master` (claimed at start or promotion, taken back after a session
 * expiry), what a new slave reads of the master, and the leader epoch a
 * worker checks control messages against.
 *
 * Invariant: at most one worker holds `/<ns>/master`; a claim waits out a
 * previous holder's session (bounded) and succeeds at once only for the worker
 * that already holds it (re-created on the claiming session).
 */
import { waitFor } from '../common/backoff.js';
import type { WorkerStatus } from '../common/messages.js';
import type { ZkPaths } from './paths.js';
import { decodeCounter, decodeMasterZnode, decodeWorkerZnode, encodeMasterZnode, encodeZnode, type MasterZnode, type WorkerZnode } from './schemas.js';
import { CreateMode, isBadVersion, isNodeExists, isNoNode, readZnode, type ZkStore } from './zk-session.js';

/** Creates (or replaces, when a previous session of this worker left it) the worker's ephemeral znode. */
export async function registerWorker(zk: ZkStore, paths: ZkPaths, status: WorkerZnode): Promise<Buffer> {
  const path = paths.worker(status.id);
  await zk.mkdirp(paths.workers);
  const data = encodeZnode(status);
  try {
    await zk.create(path, data, CreateMode.EPHEMERAL);
  } catch (err) {
    if (!isNodeExists(err)) throw err;
    // Left by our previous, expired session: replace it.
    await zk.remove(path).catch(() => undefined);
    await zk.create(path, data, CreateMode.EPHEMERAL);
  }
  return data;
}

/** Writes a worker's status to its znode (rejects when it is not there). */
export async function publishWorker(zk: ZkStore, paths: ZkPaths, status: WorkerStatus | WorkerZnode): Promise<void> {
  await zk.setData(paths.worker(status.id), encodeZnode(status));
}

/** A worker's znode, or undefined when it is missing or does not decode. */
export function readWorker(zk: ZkStore, paths: ZkPaths, id: string): Promise<WorkerZnode | undefined> {
  return readZnode(zk, paths.worker(id), decodeWorkerZnode);
}

/** The master znode, or undefined while there is none (or it does not decode). */
export function readMaster(zk: ZkStore, paths: ZkPaths): Promise<MasterZnode | undefined> {
  return readZnode(zk, paths.master, decodeMasterZnode);
}

/**
 * Creates the ephemeral master znode, waiting (up to `timeoutMs`) for a
 * previous holder's session to end; a znode this worker already holds is
 * created again on this session.
 */
export async function claimMaster(zk: ZkStore, paths: ZkPaths, me: MasterZnode, timeoutMs: number): Promise<void> {
  const data = encodeMasterZnode(me);
  const create = async (): Promise<boolean> => {
    try {
      await zk.create(paths.master, data, CreateMode.EPHEMERAL);
      return true;
    } catch (err) {
      if (!isNodeExists(err)) throw err;
      return false;
    }
  };
  await waitFor(
    async () => {
      if (await create()) return true;
      const held = await zk.getData(paths.master).catch((err: unknown) => (isNoNode(err) ? undefined : Promise.reject(err)));
      if (held === undefined || decodeMasterZnode(held.data)?.id !== me.id) return undefined;
      // Ours, but perhaps held by an earlier session of this worker that the server has not ended yet (the client gave
      // up on it, e.g. while ZooKeeper restarted): rewritten, it stayed that session's, and went when it ended, leaving
      // no master for good. So it is replaced on this session (that version only: another holder's is never removed).
      await zk.remove(paths.master, held.stat.version).catch((err: unknown) => (isNoNode(err) || isBadVersion(err) ? undefined : Promise.reject(err)));
      return (await create()) || undefined;
    },
    timeoutMs,
    () => new Error('another master still holds the master znode'),
    100,
  );
}

/** The master's newest seq as it last published it in its worker znode (at most half a second old). */
export async function masterSeq(zk: ZkStore, paths: ZkPaths): Promise<number | undefined> {
  const master = await readMaster(zk, paths);
  if (!master) return undefined;
  return (await readWorker(zk, paths, master.id))?.appliedSeq;
}

/** Where the master's database is (a new slave copies its snapshot from there), waiting up to `timeoutMs` for a master. */
export async function waitForMasterDbUrl(zk: ZkStore, paths: ZkPaths, timeoutMs: number): Promise<string> {
  return waitFor(
    async () => (await readMaster(zk, paths))?.dbUrl,
    timeoutMs,
    () => new Error(`no master registered after ${timeoutMs} ms`),
    100,
  );
}

/**
 * Orchestrator: deletes the znodes a dead worker's session may still hold (its
 * worker znode, and the master znode when it holds it), so nobody waits for its
 * session to expire.
 */
export async function removeWorkerZnodes(zk: ZkStore, paths: ZkPaths, id: string): Promise<void> {
  await zk.remove(paths.worker(id)).catch(() => undefined);
  try {
    if ((await readMaster(zk, paths))?.id === id) await zk.remove(paths.master);
  } catch {
    // no master znode
  }
}

/**
 * The newest leader epoch a worker knows (coordination/leader-election.ts),
 * kept current by a watch: a promote, retire or demote sent by a former leader
 * (paused, cut off) carries an older one and is refused ({@link check}).
 */
export class EpochWatch {
  private epoch = 0;

  constructor(
    private readonly zk: ZkStore,
    private readonly paths: ZkPaths,
    private readonly stopped: () => boolean,
  ) {}

  get current(): number {
    return this.epoch;
  }

  /** Arms the watch (and keeps re-arming it); resolves once the first read is done or scheduled again. */
  async start(): Promise<void> {
    const read = async (): Promise<void> => {
      if (this.stopped()) return;
      try {
        const { data } = await this.zk.getData(this.paths.epoch, () => void reread());
        this.epoch = Math.max(this.epoch, decodeCounter(data) || 0);
      } catch (err) {
        if (!isNoNode(err)) throw err;
        // No leader yet: watch for the znode to appear.
        if (!(await this.zk.exists(this.paths.epoch, () => void reread()))) return;
        await read();
      }
    };
    const reread = async (): Promise<void> => {
      for (let i = 0; i < 600 && !this.stopped(); i++) {
        try {
          await read();
          return;
        } catch {
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    };
    await read().catch(() => void reread());
  }

  /**
   * Reads the epoch afresh (these messages are rare, and the watch may lag a new
   * election by a moment) and answers whether a message from `epoch` may act:
   * false when a newer leader leads. An accepted epoch becomes the newest known.
   */
  async admits(epoch: number): Promise<boolean> {
    try {
      const { data } = await this.zk.getData(this.paths.epoch);
      this.epoch = Math.max(this.epoch, decodeCounter(data) || 0);
    } catch (err) {
      if (!isNoNode(err)) throw err;
    }
    if (epoch < this.epoch) return false;
    this.epoch = epoch;
    return true;
  }
}
