/**
 * Queue and exchange names of one cluster, all derived from its namespace so
 * that several clusters (and test runs) can share one broker. The znode paths
 * are coordination/paths.ts's.
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
}

export function clusterNames(namespace: string): ClusterNames {
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
  });
}
