/**
 * Queue, exchange and znode names of one cluster, all derived from its namespace
 * so that several clusters (and test runs) can share one broker and ensemble.
 */
export interface ClusterNames {
  readonly writeQueue: string;
  readonly readQueue: string;
  readonly syncExchange: string;
  readonly deadLetterExchange: string;
  readonly deadLetterQueue: string;
  syncQueue(workerId: string): string;
  controlQueue(workerId: string): string;
  readonly zkRoot: string;
  readonly zkWorkers: string;
  readonly zkMaster: string;
  readonly zkTerm: string;
  zkWorker(workerId: string): string;
}

export function clusterNames(namespace: string): ClusterNames {
  const zkRoot = `/${namespace}`;
  return Object.freeze({
    writeQueue: `${namespace}.writeQ`,
    readQueue: `${namespace}.readQ`,
    syncExchange: `${namespace}.syncQ`,
    deadLetterExchange: `${namespace}.dlx`,
    deadLetterQueue: `${namespace}.deadQ`,
    syncQueue: (workerId: string) => `${namespace}.sync.${workerId}`,
    controlQueue: (workerId: string) => `${namespace}.ctl.${workerId}`,
    zkRoot,
    zkWorkers: `${zkRoot}/workers`,
    zkMaster: `${zkRoot}/master`,
    zkTerm: `${zkRoot}/term`,
    zkWorker: (workerId: string) => `${zkRoot}/workers/${workerId}`,
  });
}
