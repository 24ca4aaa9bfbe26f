/**
 * Prometheus metrics of one orchestrator (`GET /metrics`), in its own registry
 * so that several clusters in one process (tests) never mix.
 *
 * Several orchestrators serve one namespace, and each has its own `/metrics`.
 * Every metric has a scope ({@link METRIC_SCOPES}, and the first words of its
 * help text): `cluster` metrics describe the cluster (workers and their roles,
 * replication, queues, readiness, the leader's epoch) and are read from
 * ZooKeeper and RabbitMQ at scrape time, so every orchestrator reports the
 * same; `process` metrics describe this orchestrator (requests it served, reads
 * it counted, its connections, the events it recorded): sum them over the
 * orchestrators for the cluster's totals. Control actions (failovers, scaling,
 * verification) are recorded by the leader, so their counters grow there.
 *
 * Counts that happen elsewhere come in through small hooks: the RPC client's
 * {@link RpcObserver} (round-trip times, broker reconnects), the audit log's
 * `onRecord` (failovers, scaling decisions), ZooKeeper session events. State
 * (workers, lag, queue depths, the autoscaler) is read from the live objects at
 * scrape time. Nothing on the request path waits for a metric.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ClusterNames } from '../common/names.js';
import type { AuditEvent } from './audit-log.js';
import type { AutoscalerStatus } from './autoscaler.js';
import type { ClusterManager } from './cluster.js';
import { RateHistory, type RateSeries } from './rate-history.js';
import type { RpcObserver } from './rpc-client.js';

export type WorkerDetail = ReturnType<ClusterManager['workersDetail']>[number];

/**
 * What a metric describes: the cluster (the same value from every orchestrator
 * of the namespace, read from ZooKeeper or RabbitMQ at scrape time) or this
 * orchestrator process (its own requests, counts and connections).
 */
export type MetricScope = 'cluster' | 'process';

/** The scope of every dbaas_ metric (the process_ and nodejs_ defaults are the process's too). */
export const METRIC_SCOPES: Readonly<Record<string, MetricScope>> = Object.freeze({
  dbaas_workers: 'cluster',
  dbaas_worker_applied_seq: 'cluster',
  dbaas_replication_lag_entries: 'cluster',
  dbaas_replication_lag_max_entries: 'cluster',
  dbaas_ready: 'cluster',
  dbaas_queue_messages: 'cluster',
  dbaas_queue_consumers: 'cluster',
  dbaas_leader_epoch: 'cluster',
  dbaas_orchestrators: 'cluster',
  dbaas_orchestrator_leader: 'process',
  dbaas_http_requests_total: 'process',
  dbaas_http_request_duration_seconds: 'process',
  dbaas_rpc_duration_seconds: 'process',
  dbaas_audit_events_total: 'process',
  dbaas_failovers_total: 'process',
  dbaas_scaling_decisions_total: 'process',
  dbaas_amqp_reconnects_total: 'process',
  dbaas_amqp_disconnects_total: 'process',
  dbaas_amqp_connected: 'process',
  dbaas_zk_session_events_total: 'process',
  dbaas_zk_connected: 'process',
  dbaas_verify_runs_total: 'process',
  dbaas_verify_divergent_replicas: 'process',
  dbaas_verify_last_seq: 'process',
  dbaas_verify_last_run_timestamp_seconds: 'process',
  dbaas_autoscaler_target_slaves: 'process',
  dbaas_autoscaler_reads_in_window: 'process',
});

const SCOPE_PREFIX: Record<MetricScope, string> = {
  cluster: 'Cluster (the same from every orchestrator):',
  process: 'This orchestrator:',
};

/** The help text of `name`, opened by its scope. */
function help(name: string, text: string): string {
  const scope = METRIC_SCOPES[name];
  if (scope === undefined) throw new Error(`metric ${name} has no scope in METRIC_SCOPES`);
  return `${SCOPE_PREFIX[scope]} ${text}`;
}

/** The leader election, as the metrics read it (`LeaderElection`). */
export interface ElectionSource {
  readonly isLeader: boolean;
  /** The leader's record in ZooKeeper (its epoch), or undefined while none leads. */
  leader(): Promise<{ epoch?: number; url?: string } | undefined>;
  /** Every registered orchestrator of the namespace. */
  members(): Promise<unknown[]>;
}

/** The live objects the metrics read and hook into. */
export interface MetricsSources {
  names: ClusterNames;
  cluster: { workersDetail(): WorkerDetail[]; ready(): boolean };
  autoscaler: { status(): AutoscalerStatus };
  rpc: {
    readonly connected: boolean;
    observer: RpcObserver | undefined;
    queueStats(queue: string): Promise<{ messageCount: number; consumerCount: number }>;
  };
  audit: { onRecord(listener: (event: AuditEvent) => void): void };
  /** The orchestrator's ZooKeeper session (events `reconnected`, `expired`, `disconnected`). */
  zk?: { readonly connected: boolean; on(event: string, listener: () => void): unknown };
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const QUEUE_SCRAPE_TIMEOUT_MS = 1000;
const ZK_SCRAPE_TIMEOUT_MS = 1000;

/** Which kind of data request a route is, for the dashboard's rates. */
const RATE_ROUTES: Record<string, 'reads' | 'writes'> = {
  '/api/v1/db/read': 'reads',
  '/api/v1/db/write': 'writes',
  '/api/v1/db/clear': 'writes',
};

interface QueueSample {
  queue: string;
  messages: number;
  consumers: number;
}

export class Metrics {
  readonly registry = new Registry();
  /** Reads, writes and server errors per 5 s over the last 10 minutes (the dashboard's chart). */
  readonly rates = new RateHistory(5000, 120);

  private readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  private readonly httpDuration: Histogram<'method' | 'route'>;
  private readonly rpcDuration: Histogram<'queue' | 'outcome'>;
  private readonly auditEvents: Counter<'kind'>;
  private readonly failovers: Counter;
  private readonly scalingDecisions: Counter<'trigger' | 'direction'>;
  private readonly amqpReconnects: Counter;
  private readonly amqpDisconnects: Counter;
  private readonly zkEvents: Counter<'event'>;
  private readonly verifyRuns: Counter<'result'>;
  private readonly verifyDivergent: Gauge;
  private readonly verifySeq: Gauge;
  private readonly verifyAt: Gauge;
  private queueScrape: { at: number; samples: Promise<QueueSample[]> } | undefined;
  private election: ElectionSource | undefined;
  private electionScrape: { at: number; sample: Promise<{ epoch?: number; url?: string; members?: number }> } | undefined;

  constructor(private readonly s: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });

    this.httpRequests = new Counter({
      name: 'dbaas_http_requests_total',
      help: help('dbaas_http_requests_total', 'HTTP requests answered, by route pattern and status code'),
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.httpDuration = new Histogram({
      name: 'dbaas_http_request_duration_seconds',
      help: help('dbaas_http_request_duration_seconds', 'time from receiving an HTTP request to answering it'),
      labelNames: ['method', 'route'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.rpcDuration = new Histogram({
      name: 'dbaas_rpc_duration_seconds',
      help: help('dbaas_rpc_duration_seconds', 'round trip of an RPC over RabbitMQ (queue: write, read or control), by outcome (ok or the error code)'),
      labelNames: ['queue', 'outcome'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.auditEvents = new Counter({ name: 'dbaas_audit_events_total', help: help('dbaas_audit_events_total', 'audit log events it recorded, by kind (control actions are recorded by the leader)'), labelNames: ['kind'], registers });
    this.failovers = new Counter({ name: 'dbaas_failovers_total', help: help('dbaas_failovers_total', 'slaves it promoted to master after the master was lost (while it led)'), registers });
    this.scalingDecisions = new Counter({
      name: 'dbaas_scaling_decisions_total',
      help: help('dbaas_scaling_decisions_total', 'slave-target decisions it made (while it led), by trigger (autoscaler or manual) and direction (up, down, keep)'),
      labelNames: ['trigger', 'direction'],
      registers,
    });
    this.amqpReconnects = new Counter({ name: 'dbaas_amqp_reconnects_total', help: help('dbaas_amqp_reconnects_total', 'connections to RabbitMQ re-established after a loss'), registers });
    this.amqpDisconnects = new Counter({ name: 'dbaas_amqp_disconnects_total', help: help('dbaas_amqp_disconnects_total', 'connections to RabbitMQ lost'), registers });
    this.zkEvents = new Counter({
      name: 'dbaas_zk_session_events_total',
      help: help('dbaas_zk_session_events_total', 'ZooKeeper session events: disconnected, reconnected (same session), expired (a new session follows)'),
      labelNames: ['event'],
      registers,
    });

    this.verifyRuns = new Counter({
      name: 'dbaas_verify_runs_total',
      help: help('dbaas_verify_runs_total', 'replica verifications it ran (checksums of every table at one seq), by result: equal, divergent, incomplete'),
      labelNames: ['result'],
      registers,
    });
    this.verifyDivergent = new Gauge({ name: 'dbaas_verify_divergent_replicas', help: help('dbaas_verify_divergent_replicas', 'replicas the last verification it ran found different from the master'), registers });
    this.verifySeq = new Gauge({ name: 'dbaas_verify_last_seq', help: help('dbaas_verify_last_seq', 'the seq at which the last verification it ran compared the replicas'), registers });
    this.verifyAt = new Gauge({ name: 'dbaas_verify_last_run_timestamp_seconds', help: help('dbaas_verify_last_run_timestamp_seconds', 'when the last verification it ran ran (Unix time)'), registers });

    const workersDetail = (): WorkerDetail[] => s.cluster.workersDetail();
    new Gauge({
      name: 'dbaas_workers',
      help: help('dbaas_workers', 'registered workers, by role and state'),
      labelNames: ['role', 'state'],
      registers,
      collect() {
        this.reset();
        for (const w of workersDetail()) this.inc({ role: w.role, state: w.state });
      },
    });
    new Gauge({
      name: 'dbaas_worker_applied_seq',
      help: help('dbaas_worker_applied_seq', 'highest write sequence number each worker has applied'),
      labelNames: ['worker', 'role'],
      registers,
      collect() {
        this.reset();
        for (const w of workersDetail()) this.set({ worker: w.id, role: w.role }, w.appliedSeq);
      },
    });
    new Gauge({
      name: 'dbaas_replication_lag_entries',
      help: help('dbaas_replication_lag_entries', "writes the master has applied that a slave has not yet (master's seq minus the slave's)"),
      labelNames: ['worker'],
      registers,
      collect() {
        this.reset();
        for (const w of workersDetail()) if (w.role !== 'master') this.set({ worker: w.id }, w.lag);
      },
    });
    new Gauge({
      name: 'dbaas_replication_lag_max_entries',
      help: help('dbaas_replication_lag_max_entries', 'the largest replication lag of any slave'),
      registers,
      collect() {
        this.set(Math.max(0, ...workersDetail().filter((w) => w.role !== 'master').map((w) => w.lag)));
      },
    });
    new Gauge({
      name: 'dbaas_ready',
      help: help('dbaas_ready', '1 while a master and a caught-up slave serve and the broker is reachable (GET /readyz)'),
      registers,
      collect() {
        this.set(s.cluster.ready() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'dbaas_amqp_connected',
      help: help('dbaas_amqp_connected', '1 while it is connected to RabbitMQ'),
      registers,
      collect() {
        this.set(s.rpc.connected ? 1 : 0);
      },
    });
    if (s.zk) {
      const zk = s.zk;
      new Gauge({
        name: 'dbaas_zk_connected',
        help: help('dbaas_zk_connected', '1 while it has a live ZooKeeper session'),
        registers,
        collect() {
          this.set(zk.connected ? 1 : 0);
        },
      });
      for (const event of ['disconnected', 'reconnected', 'expired']) zk.on(event, () => this.zkEvents.inc({ event }));
    }
    new Gauge({
      name: 'dbaas_autoscaler_target_slaves',
      help: help('dbaas_autoscaler_target_slaves', 'the slave count its control loop converges on (autoscaler or manual override); the one that counts is the leader\'s (dbaas_orchestrator_leader 1)'),
      registers,
      collect() {
        this.set(s.autoscaler.status().targetSlaves);
      },
    });
    new Gauge({
      name: 'dbaas_autoscaler_reads_in_window',
      help: help('dbaas_autoscaler_reads_in_window', 'reads counted so far in its current autoscaling window (the leader adds the followers\' counts as they publish them)'),
      registers,
      collect() {
        this.set(s.autoscaler.status().readsInWindow);
      },
    });
    const queues = (): Promise<QueueSample[]> => this.sampleQueues();
    new Gauge({
      name: 'dbaas_queue_messages',
      help: help('dbaas_queue_messages', 'messages ready in a RabbitMQ queue (write, read, dead-letter, and each slave sync queue)'),
      labelNames: ['queue'],
      registers,
      async collect() {
        this.reset();
        for (const q of await queues()) this.set({ queue: q.queue }, q.messages);
      },
    });
    new Gauge({
      name: 'dbaas_queue_consumers',
      help: help('dbaas_queue_consumers', 'consumers of a RabbitMQ queue'),
      labelNames: ['queue'],
      registers,
      async collect() {
        this.reset();
        for (const q of await queues()) this.set({ queue: q.queue }, q.consumers);
      },
    });

    const electionSample = (): Promise<{ epoch?: number; url?: string; members?: number }> => this.sampleElection();
    new Gauge({
      name: 'dbaas_leader_epoch',
      help: help('dbaas_leader_epoch', "the epoch of the orchestrator that leads, labelled with its URL (ZooKeeper's leader record); no sample while none leads"),
      labelNames: ['leader'],
      registers,
      async collect() {
        this.reset();
        const { epoch, url } = await electionSample();
        if (epoch !== undefined) this.set({ leader: url ?? '' }, epoch);
      },
    });
    new Gauge({
      name: 'dbaas_orchestrators',
      help: help('dbaas_orchestrators', 'orchestrators registered for the namespace'),
      registers,
      async collect() {
        // Kept as it was when ZooKeeper does not answer in time.
        const { members } = await electionSample();
        if (members !== undefined) this.set(members);
      },
    });
    const isLeader = (): boolean | undefined => this.election?.isLeader;
    new Gauge({
      name: 'dbaas_orchestrator_leader',
      help: help('dbaas_orchestrator_leader', '1 while it leads the namespace (runs the control loop), 0 while it follows'),
      registers,
      collect() {
        this.set(isLeader() === false ? 0 : 1);
      },
    });

    s.rpc.observer = {
      call: (queue, ms, errorCode) => this.rpcDuration.observe({ queue: this.queueKind(queue), outcome: errorCode ?? 'ok' }, ms / 1000),
      connected: (reconnect) => {
        if (reconnect) this.amqpReconnects.inc();
      },
      disconnected: () => this.amqpDisconnects.inc(),
    };
    s.audit.onRecord((event) => this.onAudit(event));
  }

  /**
   * Reads the leader election at scrape time: the leader's epoch, how many
   * orchestrators there are, whether this one leads. Without it (one
   * orchestrator with no election, as in unit tests) this one counts as leading.
   */
  followElection(election: ElectionSource): void {
    this.election = election;
  }

  /** One answered HTTP request; `route` is the route pattern (undefined when no route matched). */
  observeRequest(method: string, route: string | undefined, status: number, seconds: number): void {
    const pattern = route ?? 'unmatched';
    this.httpRequests.inc({ method, route: pattern, status: String(status) });
    this.httpDuration.observe({ method, route: pattern }, seconds);
    const kind = route === undefined ? undefined : RATE_ROUTES[route];
    if (kind && method === 'POST') {
      this.rates.record(kind);
      if (status >= 500) this.rates.record('errors');
    }
  }

  /** The read/write rate history for the dashboard. */
  rateSeries(): RateSeries {
    return this.rates.series();
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private onAudit(event: AuditEvent): void {
    this.auditEvents.inc({ kind: event.kind });
    if (event.kind === 'promotion') this.failovers.inc();
    const details = event.details ?? {};
    if (event.kind === 'verify') this.onVerify(details, event.at);
    // Scaling decisions carry target and previous; a new slave coming up (also 'scaling') does not.
    if (event.kind === 'scaling' && typeof details['target'] === 'number' && typeof details['previous'] === 'number') {
      const { target, previous } = details as { target: number; previous: number };
      const direction = target > previous ? 'up' : target < previous ? 'down' : 'keep';
      this.scalingDecisions.inc({ trigger: details['manual'] === true ? 'manual' : 'autoscaler', direction });
    }
  }

  /** A verify's audit event (see verify.ts) carries its result, seq and the divergent replicas. */
  private onVerify(details: Record<string, unknown>, at: string): void {
    const result = typeof details['result'] === 'string' ? details['result'] : 'unknown';
    this.verifyRuns.inc({ result });
    this.verifyDivergent.set(Array.isArray(details['divergent']) ? details['divergent'].length : 0);
    if (typeof details['seq'] === 'number') this.verifySeq.set(details['seq']);
    this.verifyAt.set(Date.parse(at) / 1000);
  }

  private queueKind(queue: string): string {
    const { names } = this.s;
    if (queue === names.writeQueue) return 'write';
    if (queue === names.readQueue) return 'read';
    return 'control';
  }

  /** One look at the queues per scrape (both queue gauges share it); a queue that does not answer in time is left out. */
  private sampleQueues(): Promise<QueueSample[]> {
    const now = Date.now();
    if (this.queueScrape && now - this.queueScrape.at < 500) return this.queueScrape.samples;
    const samples = this.s.rpc.connected ? this.fetchQueueSamples() : Promise.resolve([]);
    this.queueScrape = { at: now, samples };
    return samples;
  }

  /** The leader's epoch and the member count, once per scrape; what ZooKeeper does not answer in time is left out. */
  private sampleElection(): Promise<{ epoch?: number; url?: string; members?: number }> {
    const election = this.election;
    // No election: one orchestrator on its own.
    if (!election) return Promise.resolve({ members: 1 });
    const now = Date.now();
    if (this.electionScrape && now - this.electionScrape.at < 500) return this.electionScrape.sample;
    const within = <T>(p: Promise<T>): Promise<T | undefined> => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), ZK_SCRAPE_TIMEOUT_MS);
      });
      return Promise.race([p.catch(() => undefined), timeout]).finally(() => clearTimeout(timer));
    };
    const sample = Promise.all([within(election.leader()), within(election.members())]).then(([leader, members]) => ({
      ...(typeof leader?.epoch === 'number' ? { epoch: leader.epoch } : {}),
      ...(typeof leader?.url === 'string' ? { url: leader.url } : {}),
      ...(members === undefined ? {} : { members: members.length }),
    }));
    this.electionScrape = { at: now, sample };
    return sample;
  }

  private async fetchQueueSamples(): Promise<QueueSample[]> {
    const { names, rpc, cluster } = this.s;
    const queues = [names.writeQueue, names.readQueue, names.deadLetterQueue];
    for (const w of cluster.workersDetail()) if (w.role !== 'master') queues.push(names.syncQueue(w.id));
    const results = await Promise.all(
      queues.map(async (queue): Promise<QueueSample | undefined> => {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<undefined>((resolve) => {
          timer = setTimeout(() => resolve(undefined), QUEUE_SCRAPE_TIMEOUT_MS);
        });
        const stats = rpc.queueStats(queue).then(
          (st) => ({ queue, messages: st.messageCount, consumers: st.consumerCount }),
          () => undefined,
        );
        try {
          return await Promise.race([stats, timeout]);
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    return results.filter((r): r is QueueSample => r !== undefined);
  }
}
