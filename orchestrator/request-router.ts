/**
 * The request path's view of the cluster: where a write goes (the master,
 * waited for during a failover), where a read goes (the slaves, else the
 * master), and whether the service is ready. It only reads; the control loop
 * and its actions change the cluster.
 */
import { waitFor } from '../common/backoff.js';
import { DbaasError } from '../common/errors.js';
import { masterLostGraceMs } from '../common/fencing.js';
import { WIRE_VERSION } from '../common/messages.js';
import type { MasterInfo } from '../coordination/cluster-view.js';
import type { ClusterDeps, ControlState } from './cluster-state.js';

export type ReadRoute = { to: 'slaves' } | { to: 'master'; id: string };

export class RequestRouter {
  private slavesServedAt = 0;

  constructor(
    private readonly d: Pick<ClusterDeps, 'config' | 'names' | 'view' | 'rpc'>,
    private readonly s: ControlState,
  ) {}

  /**
   * A master that is registered, running, and not being replaced right now. Only the leader trusts its runtime's
   * exits: a follower that led before still hears of the processes it ran, but the leader may have restarted that
   * worker in place under the same id (E's fault run: such a follower answered every write 503 for 9 minutes).
   */
  masterAvailable(): MasterInfo | undefined {
    const master = this.d.view.master;
    if (!master || this.s.failingOver || (this.s.leading && this.s.registry.exitOf(master.id))) return undefined;
    return master;
  }

  /** Resolves with the master, waiting up to `DBAAS_MASTER_WAIT_MS` for one; else 503. */
  async requireMaster(): Promise<MasterInfo> {
    if (this.s.stopping) throw new DbaasError('DBAAS_SHUTTING_DOWN');
    const now = this.masterAvailable();
    if (now) return now;
    return waitFor(
      () => this.masterAvailable(),
      this.d.config.masterWaitMs,
      () => new DbaasError('DBAAS_CLUSTER_NO_MASTER', `no master took over within ${this.d.config.masterWaitMs} ms; retry with the same requestId`),
      10,
    );
  }

  /**
   * Where a read goes: to the slaves (round robin over readQ), or, while no slave
   * serves (say the only one was just promoted), to the master itself, so reads
   * keep being answered through a failover. 503 when neither is there.
   */
  readRoute(): ReadRoute {
    if (this.s.stopping) throw new DbaasError('DBAAS_SHUTTING_DOWN');
    if (this.d.view.servingSlaves().length > 0) {
      this.slavesServedAt = Date.now();
      return { to: 'slaves' };
    }
    const master = this.masterAvailable();
    if (master) return { to: 'master', id: master.id };
    // Slaves served a moment ago and the view lost them (say their sessions were renewed after a
    // ZooKeeper outage): the read waits in readQ for them rather than failing at once.
    if (Date.now() - this.slavesServedAt < masterLostGraceMs(this.d.config.zkSessionTimeoutMs)) return { to: 'slaves' };
    throw new DbaasError('DBAAS_CLUSTER_NO_SLAVE');
  }

  /** Sends a read to one named worker (master or slave), for checking replicas; `reqId` goes into the worker's log line. */
  async readFrom(id: string, command: unknown, reqId?: string): Promise<unknown> {
    if (!this.d.view.workers.has(id)) throw new DbaasError('DBAAS_ROUTE_NOT_FOUND', `no live worker ${id}`);
    const opts = { timeoutMs: this.d.config.requestTimeoutMs, ...(reqId === undefined ? {} : { reqId }) };
    return this.d.rpc.call(this.d.names.controlQueue(id), { v: WIRE_VERSION, type: 'read', command }, opts);
  }

  /** Ready: a master and at least one caught-up slave, and the broker reachable. */
  ready(): boolean {
    return !this.s.stopping && this.d.rpc.connected && this.masterAvailable() !== undefined && this.d.view.servingSlaves().length > 0;
  }
}
