import type { WorkerFact } from '../../orchestrator/reconcile.js';

/** A serving, registered slave at seq 10 (the unit tests of the control loop's decisions change what they need). */
export function workerFact(id: string, pid: number, over: Partial<WorkerFact> = {}): WorkerFact {
  return {
    id,
    role: 'slave',
    state: 'slave',
    pid,
    appliedSeq: 10,
    running: true,
    registered: true,
    everRegistered: true,
    starting: false,
    retiring: false,
    ...over,
  };
}
