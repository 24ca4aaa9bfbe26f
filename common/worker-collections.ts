/**
 * The collections every worker's database holds beside the user tables: its
 * oplog (worker/oplog.ts), its request ledger with the `requestId` index a
 * retry is looked up on (worker/request-ledger.ts) and its own settings
 * (worker/store.ts). A spare PostgreSQL database has them made ahead, through
 * FerretDB, before any worker takes it (orchestrator/runtimes/spare-databases.ts):
 * a new slave then makes none of them on its way to serving (issue 16). On
 * FerretDB/PostgreSQL each is a CREATE TABLE and a CREATE INDEX or two (with
 * their companion GIN index), one at a time (FerretDB makes one table at a time),
 * and under a steady writer those statements waited for the CPU beside the
 * writes: a new slave's database was ready for its copy 0.10-0.15 s later than
 * with no writer (docs/BENCHMARKS.md).
 */
import type { Db } from 'mongodb';

export const OPLOG_COLLECTION = '_dbaas_oplog';
export const LEDGER_COLLECTION = '_dbaas_ledger';
export const META_COLLECTION = '_dbaas_meta';

/** The worker's collections, by name. */
export const WORKER_COLLECTIONS: ReadonlySet<string> = new Set([OPLOG_COLLECTION, LEDGER_COLLECTION, META_COLLECTION]);

/** The ledger's index: a retried requestId is looked up on it. */
export const LEDGER_INDEX = { requestId: 1 } as const;

/** MongoDB's NamespaceExists: a collection made already. */
const NAMESPACE_EXISTS = 48;

/** Makes the worker's collections and the ledger's index in `db`, as a worker would (idempotent). */
export async function makeWorkerCollections(db: Db): Promise<void> {
  for (const name of [OPLOG_COLLECTION, META_COLLECTION]) {
    await db.createCollection(name).catch((err: unknown) => {
      if ((err as { code?: number }).code !== NAMESPACE_EXISTS) throw err;
    });
  }
  await db.collection(LEDGER_COLLECTION).createIndex(LEDGER_INDEX);
}
