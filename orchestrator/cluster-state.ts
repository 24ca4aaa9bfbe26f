/**
 * What the parts of the cluster manager share: their dependencies, and the
 * little state that is not a worker's lifecycle (which is the registry's).
 * cluster.ts wires the parts: the control loop (control-loop.ts), the
 * actions (failover.ts for the master, worker-actions.ts for the rest) and
 * the request router (request-router.ts).
 */
import { randomBytes } from 'node:crypto';
import type { OrchestratorConfig } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import type { ClusterNames } from '../common/names.js';
import type { ClusterView } from '../coordination/cluster-view.js';
import type { ZkPaths } from '../coordination/paths.js';
import type { ZkStore } from '../coordination/zk-session.js';
import type { AuditLog } from './audit-log.js';
import type { RpcClient } from './rpc-client.js';
import type { Runtime } from './runtimes/runtime.js';
import type { WorkerRegistry } from './worker-registry.js';

/** What the cluster manager needs of the leader election (coordination/leader-election.ts). */
export interface LeaderGate {
  /** Asks ZooKeeper whether this orchestrator still leads; false deposes it. */
  confirm(): Promise<boolean>;
  /** This leadership's epoch, carried by control messages. */
  readonly epoch: number;
  /** The epoch znode's version set by this leadership: a term bump checks it in the same transaction. */
  readonly epochVersion: number;
}

/** What a planned switchover did. */
export interface SwitchoverResult {
  from: string;
  to: string;
  toPid: number;
  durationMs: number;
}

export interface ClusterDeps {
  /** Absent: this orchestrator always leads (tests that run one without an election). */
  leader?: LeaderGate;
  config: OrchestratorConfig;
  names: ClusterNames;
  paths: ZkPaths;
  runtime: Runtime;
  zk: ZkStore;
  view: ClusterView;
  rpc: RpcClient;
  audit: AuditLog;
  logger: Logger;
}

/** The manager's state beside the registry, shared by its parts (one object, so each reads the current value). */
export interface ControlState {
  readonly registry: WorkerRegistry;
  /** The last master this orchestrator knew of (kept across its own ZooKeeper view changes). */
  lastMasterId: string | undefined;
  /** True while a failover or a master restart runs: the request path waits for the new master. */
  failingOver: boolean;
  /** Closing: no action starts, requests are refused. */
  stopping: boolean;
  /** This orchestrator leads: only then does the loop act. */
  leading: boolean;
  /** How many slaves the cluster should have; the autoscaler moves it. */
  targetSlaves: number;
  /** A signal came during the cluster's start (main.ts): it ends at its next step, and what it started is stopped. */
  startInterrupted?: boolean;
}

export function newWorkerId(): string {
  return `w${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export const CONTROL_TIMEOUT_MS = 15_000;

/** The sending leader's epoch, for control messages that move workers (absent without an election). */
export function epochField(d: Pick<ClusterDeps, 'leader'>): { epoch?: number } {
  return d.leader ? { epoch: d.leader.epoch } : {};
}
