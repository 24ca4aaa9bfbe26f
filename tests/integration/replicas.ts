/**
 * Test-only access to each worker's own database, to check replicas against
 * each other. The service itself never reads a database from the orchestrator.
 */
import { MongoClient } from 'mongodb';
import type { Orchestrator } from '../../orchestrator/orchestrator.js';
import { eventually } from './harness.js';

export type Dump = Record<string, unknown[]>;

/** Every user table of one database, documents sorted by _id. */
export async function dumpDb(url: string, dbName = 'dbaas'): Promise<Dump> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 5000 });
  await client.connect();
  try {
    const db = client.db(dbName);
    const out: Dump = {};
    const cols = await db.listCollections({}, { nameOnly: true }).toArray();
    for (const { name } of cols.sort((a, b) => a.name.localeCompare(b.name))) {
      if (name.startsWith('_dbaas') || name.startsWith('system.')) continue;
      const docs = await db.collection(name).find({}).sort({ _id: 1 }).toArray();
      if (docs.length > 0) out[name] = docs;
    }
    return out;
  } finally {
    await client.close();
  }
}

/** Waits until every live worker has applied the master's last seq, then dumps each: id → dump. */
export async function dumpAllReplicas(orch: Orchestrator, timeoutMs = 20_000): Promise<Map<string, Dump>> {
  const seqs = (): string =>
    [...orch.view.workers.values()].map((w) => `${w.id} ${w.role}/${w.state} seq ${w.appliedSeq}`).join('; ') || 'no workers';
  await eventually(
    () => {
      const master = orch.view.masterStatus();
      if (!master) return false;
      return [...orch.view.workers.values()].every((w) => w.state !== 'syncing' && w.appliedSeq === master.appliedSeq);
    },
    timeoutMs,
    'every replica to reach the master seq',
  ).catch((err: unknown) => {
    throw new Error(`${(err as Error).message} (view ${orch.view.ready ? 'ready' : 'not ready'}, master ${orch.view.master?.id ?? 'none'}: ${seqs()})`);
  });
  const dumps = new Map<string, Dump>();
  for (const w of orch.view.workers.values()) dumps.set(w.id, await dumpDb(w.dbUrl));
  return dumps;
}
