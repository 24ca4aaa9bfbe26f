/**
 * Test-only access to each worker's own database, to check replicas against
 * each other. The service itself never reads a database from the orchestrator.
 */
import type { Orchestrator } from '../../orchestrator/orchestrator.js';
import type { Dump } from '../../tools/nemesis/checker.js';
import { dumpDb } from '../../tools/nemesis/replicas.js';
import { MongoClient } from 'mongodb';
import { OPLOG } from '../../worker/oplog.js';
import type { WorkerZnode } from '../../coordination/schemas.js';
import { eventually } from './harness.js';

// Reading one database: one copy, the nemesis'.
export type { Dump } from '../../tools/nemesis/checker.js';
export { dumpDb } from '../../tools/nemesis/replicas.js';

/** The newest seq in a database's oplog: what its worker has stored, read from the database itself. */
async function newestOplogSeq(url: string): Promise<number> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 5000 });
  try {
    const [last] = await client.db('dbaas').collection<{ _id: number }>(OPLOG).find({}).sort({ _id: -1 }).limit(1).toArray();
    return last?._id ?? 0;
  } finally {
    await client.close();
  }
}

/**
 * Waits until every live worker has applied the master's last seq, then dumps each: id → dump.
 *
 * The seq to wait for is read from the master's own oplog, not from its znode: the znode is
 * published every 500 ms, so just after an acknowledged write it can still show the seq before
 * it, and every replica would look level while a slave has yet to apply the write.
 * `replicas`: also wait until exactly that many workers are registered (a slave replaced after a
 * fault is not yet in the view when the master alone is level).
 */
export async function dumpAllReplicas(orch: Pick<Orchestrator, 'view'>, timeoutMs = 20_000, replicas?: number): Promise<Map<string, Dump>> {
  const seqs = (): string =>
    [...orch.view.workers.values()].map((w) => `${w.id} ${w.role}/${w.state} seq ${w.appliedSeq}`).join('; ') || 'no workers';
  const first = orch.view.masterStatus();
  const stored = first ? await newestOplogSeq(first.dbUrl).catch(() => 0) : 0;
  // A worker still starting or syncing is never level (it may be dropping or copying its data), and the
  // ones found level are the ones dumped: one that registers after the check would dump empty or partial.
  let level: WorkerZnode[] = [];
  await eventually(
    () => {
      const master = orch.view.masterStatus();
      if (!master || (master.id === first?.id && master.appliedSeq < stored)) return false;
      level = [...orch.view.workers.values()];
      if (replicas !== undefined && level.length !== replicas) return false;
      return level.every((w) => w.state !== 'starting' && w.state !== 'syncing' && w.appliedSeq === master.appliedSeq);
    },
    timeoutMs,
    'every replica to reach the master seq',
  ).catch((err: unknown) => {
    throw new Error(`${(err as Error).message} (view ${orch.view.ready ? 'ready' : 'not ready'}, master ${orch.view.master?.id ?? 'none'}: ${seqs()})`);
  });
  const dumps = new Map<string, Dump>();
  for (const w of level) dumps.set(w.id, await dumpDb(w.dbUrl));
  return dumps;
}
