/**
 * Reads every worker's own database directly with the MongoDB driver, to
 * compare replicas with each other and with the history. (The service itself
 * never reads a database from the orchestrator; this is the checker's view.)
 */
import { readFileSync } from 'node:fs';
import { MongoClient } from 'mongodb';
import type { WorkerInfo } from '../../client/types.js';
import type { Dump, Replica } from './checker.js';
import { unitOf } from './infra.js';

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
      if (docs.length > 0) out[name] = docs as unknown as Dump[string];
    }
    return out;
  } finally {
    await client.close();
  }
}

/**
 * Where a worker's database listens: `dbUrl` from GET /api/v1/workers when the
 * server gives it, else the worker process's own DBAAS_WORKER_MONGO_URL (from
 * /proc), else the process runtime's unit.json.
 */
export function dbUrlOf(w: WorkerInfo & { dbUrl?: string }, dataDir: string, namespace: string): string | undefined {
  if (typeof w.dbUrl === 'string' && w.dbUrl !== '') return w.dbUrl;
  try {
    const env = readFileSync(`/proc/${w.pid}/environ`, 'utf8').split('\0');
    if (env.includes(`DBAAS_WORKER_ID=${w.id}`)) {
      const url = env.find((e) => e.startsWith('DBAAS_WORKER_MONGO_URL='))?.slice('DBAAS_WORKER_MONGO_URL='.length);
      if (url) return url;
    }
  } catch {
    // not a local process, or gone
  }
  const unit = unitOf(dataDir, namespace, w.id);
  return unit?.port ? `mongodb://127.0.0.1:${unit.port}/` : undefined;
}

/** One dump per worker; a worker whose database cannot be read is reported, not skipped silently. */
export async function dumpReplicas(workers: readonly WorkerInfo[], dataDir: string, namespace: string): Promise<{ replicas: Replica[]; problems: string[] }> {
  const replicas: Replica[] = [];
  const problems: string[] = [];
  for (const w of workers) {
    const url = dbUrlOf(w, dataDir, namespace);
    if (!url) {
      problems.push(`worker ${w.id} (${w.role}): no database address`);
      continue;
    }
    try {
      replicas.push({ id: w.id, role: w.role, dump: await dumpDb(url) });
    } catch (err) {
      problems.push(`worker ${w.id} (${w.role}) at ${url}: ${(err as Error).message}`);
    }
  }
  return { replicas, problems };
}
