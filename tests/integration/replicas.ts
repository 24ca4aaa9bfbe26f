/**
 * Test-only access to each worker's own database, to check replicas against
 * each other. The service itself never reads a database from the orchestrator.
 */
import type { Orchestrator } from '../../orchestrator/orchestrator.js';
import type { Dump } from '../../tools/nemesis/checker.js';
import { dumpDb } from '../../tools/nemesis/replicas.js';
import { eventually } from './harness.js';

// Reading one database: one copy, the nemesis'.
export type { Dump } from '../../tools/nemesis/checker.js';
export { dumpDb } from '../../tools/nemesis/replicas.js';

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
