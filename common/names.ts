/**
 * Queue, exchange and znode names of one cluster, all derived from its namespace
 * so that several clusters (and test runs) can share one broker and ensemble.
 */
export interface ClusterNames {
  readonly writeQueue: string;
  readonly readQueue: string;
  readonly syncExchange: string;
  /** Fanout every request queue dead-letters to. */
  readonly deadLetterExchange: string;
  /** Headers exchange behind the dead-letter fanout: lets only poison (rejected messages) through. */
  readonly poisonExchange: string;
  /** Where poison is kept for inspection, bounded (common/topology.ts). */
  readonly deadLetterQueue: string;
  /** The dead-letter queue of versions before issue 13, deleted at the orchestrator's start. */
  readonly legacyDeadLetterQueue: string;
  syncQueue(workerId: string): string;
  controlQueue(workerId: string): string;
  readonly zkRoot: string;
  readonly zkWorkers: string;
  readonly zkMaster: string;
  readonly zkTerm: string;
  /** The leader orchestrator's ephemeral znode. */
  readonly zkLeader: string;
  /** Every orchestrator's ephemeral sequential membership znode lives under here. */
  readonly zkOrchestrators: string;
  /** Bumped (CAS) at every election: the leader's fencing token. */
  readonly zkEpoch: string;
  zkWorker(workerId: string): string;
}

export function clusterNames(namespace: string): ClusterNames {
  const zkRoot = `/${namespace}`;
  return Object.freeze({
    writeQueue: `${namespace}.writeQ`,
    readQueue: `${namespace}.readQ`,
    syncExchange: `${namespace}.syncQ`,
    deadLetterExchange: `${namespace}.dlx`,
    poisonExchange: `${namespace}.poison`,
    deadLetterQueue: `${namespace}.poisonQ`,
    legacyDeadLetterQueue: `${namespace}.deadQ`,
    syncQueue: (workerId: string) => `${namespace}.sync.${workerId}`,
    controlQueue: (workerId: string) => `${namespace}.ctl.${workerId}`,
    zkRoot,
    zkWorkers: `${zkRoot}/workers`,
    zkMaster: `${zkRoot}/master`,
    zkTerm: `${zkRoot}/term`,
    zkLeader: `${zkRoot}/orchestrator`,
    zkOrchestrators: `${zkRoot}/orchestrators`,
    zkEpoch: `${zkRoot}/epoch`,
    zkWorker: (workerId: string) => `${zkRoot}/workers/${workerId}`,
  });
}
