/**
 * Reads every worker's own database directly with the MongoDB driver, to
 * compare replicas with each other and with the history. (The service itself
 * never reads a database from the orchestrator; this is the checker's view.)
 */
import { DEFAULT_DATABASE, qualifiedTable } from '../../common/databases.js';
import { mongoPrefix } from '../../worker/tables.js';
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
    const out: Dump = {};
    // Every database (issue 20): `default` is the worker's own database, the others `<dbName>--<name>`,
    // their tables keyed by qualified name (`<name>.<table>`), as worker/tables.ts names them.
    const prefix = mongoPrefix(dbName);
    const { databases } = await client.db(dbName).admin().listDatabases({ nameOnly: true });
    const others = databases.map((d) => d.name).filter((n) => n.startsWith(prefix)).sort();
    for (const mongoName of [dbName, ...others]) {
      const db = client.db(mongoName);
      const database = mongoName === dbName ? DEFAULT_DATABASE : mongoName.slice(prefix.length);
      const cols = await db.listCollections({}, { nameOnly: true }).toArray();
      for (const { name } of cols.sort((a, b) => a.name.localeCompare(b.name))) {
        if (name.startsWith('_dbaas') || name.startsWith('system.')) continue;
        const docs = await db.collection(name).find({}).sort({ _id: 1 }).toArray();
        if (docs.length > 0) out[qualifiedTable(database, name)] = docs as unknown as Dump[string];
      }
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

/**
 * One dump per worker; a worker whose database cannot be read is reported, not skipped silently.
 * `urlsOf` (workers in containers: tools/nemesis/containers.ts) answers addresses to try first.
 */
export async function dumpReplicas(
  workers: readonly WorkerInfo[],
  dataDir: string,
  namespace: string,
  urlsOf?: (w: WorkerInfo) => Promise<string[]>,
): Promise<{ replicas: Replica[]; problems: string[] }> {
  const replicas: Replica[] = [];
  const problems: string[] = [];
  for (const w of workers) {
    const own = dbUrlOf(w, dataDir, namespace);
    const urls = [...((await urlsOf?.(w).catch(() => [])) ?? []), ...(own ? [own] : [])];
    if (urls.length === 0) {
      problems.push(`worker ${w.id} (${w.role}): no database address`);
      continue;
    }
    const errors: string[] = [];
    for (const url of urls) {
      try {
        replicas.push({ id: w.id, role: w.role, dump: await dumpDb(url) });
        break;
      } catch (err) {
        errors.push(`at ${url}: ${(err as Error).message}`);
      }
    }
    if (errors.length === urls.length) problems.push(`worker ${w.id} (${w.role}) ${errors.join('; ')}`);
  }
  return { replicas, problems };
}
