/**
 * Every znode path of a namespace: the only place they are spelled.
 *
 * ```
 * /<ns>                       persistent   created by whoever needs it first (mkdirp)
 * /<ns>/workers/<workerId>    ephemeral    WorkerZnode (schemas.ts), one per live worker
 * /<ns>/master                ephemeral    MasterZnode, held by the master
 * /<ns>/term                  persistent   decimal counter, CAS-bumped by the leader orchestrator
 * /<ns>/orchestrator          ephemeral    LeaderZnode, held by the leader orchestrator
 * /<ns>/orchestrators/o-NNN   ephemeral sequential  OrchestratorZnode, one per orchestrator
 * /<ns>/epoch                 persistent   decimal counter, CAS-bumped at every election
 * /<ns>/cluster               persistent   ClusterRecord: which worker's data is the master's
 * /<ns>/audit/e-NNN           persistent sequential AuditZnode, the namespace's audit log
 * /<ns>/platform/<service>    persistent   PlatformServiceZnode, written by the lifecycle manager (orchestrator/lifecycle/)
 * ```
 */
export interface ZkPaths {
  readonly root: string;
  /** Parent of the workers' ephemeral znodes. */
  readonly workers: string;
  worker(workerId: string): string;
  /** The master's ephemeral znode. */
  readonly master: string;
  /** The promotion counter (the workers' fencing token). */
  readonly term: string;
  /** The leader orchestrator's ephemeral znode. */
  readonly leader: string;
  /** Every orchestrator's ephemeral sequential membership znode lives under here. */
  readonly orchestrators: string;
  /** Prefix of a new membership znode (sequential). */
  readonly orchestratorPrefix: string;
  /** Bumped (CAS) at every election: the leader's fencing token. */
  readonly epoch: string;
  /** The master record that outlives a data directory. */
  readonly cluster: string;
  /** Parent of the shared audit log's sequential znodes. */
  readonly audit: string;
  /** Prefix of a new audit znode (sequential). */
  readonly auditPrefix: string;
  /** Parent of the lifecycle manager's one znode per supervised service. */
  readonly platform: string;
  platformService(name: string): string;
}

export function zkPaths(namespace: string): ZkPaths {
  const root = `/${namespace}`;
  return Object.freeze({
    root,
    workers: `${root}/workers`,
    worker: (workerId: string) => `${root}/workers/${workerId}`,
    master: `${root}/master`,
    term: `${root}/term`,
    leader: `${root}/orchestrator`,
    orchestrators: `${root}/orchestrators`,
    orchestratorPrefix: `${root}/orchestrators/o-`,
    epoch: `${root}/epoch`,
    cluster: `${root}/cluster`,
    audit: `${root}/audit`,
    auditPrefix: `${root}/audit/e-`,
    platform: `${root}/platform`,
    platformService: (name: string) => `${root}/platform/${name}`,
  });
}
