/**
 * Wires the orchestrator together: ZooKeeper view, RPC client, runtime, cluster
 * manager and HTTP app. Used by `main.ts` and by the integration tests alike.
 */
import type { FastifyInstance } from 'fastify';
import type { OrchestratorConfig } from '../common/config.js';
import { DbaasError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { clusterNames } from '../common/names.js';
import { ClusterView } from '../coordination/cluster-view.js';
import { describeInfo, LeaderElection } from '../coordination/leader-election.js';
import { zkPaths } from '../coordination/paths.js';
import { ZkSession } from '../coordination/zk-session.js';
import { SharedAudit } from './shared-audit.js';
import { DatabaseStore } from '../coordination/database-store.js';
import { PlatformStore } from '../coordination/platform-store.js';
import { buildApp } from './app.js';
import { AuditLog } from './audit-log.js';
import { Autoscaler } from './autoscaler.js';
import { ClusterManager, type LeaderGate } from './cluster.js';
import { Metrics } from './metrics.js';
import { RpcClient } from './rpc-client.js';
import { createRuntime, type Runtime } from './runtimes/index.js';
import { Verifier } from './verify.js';

export interface Orchestrator {
  app: FastifyInstance;
  cluster: ClusterManager;
  view: ClusterView;
  runtime: Runtime;
  rpc: RpcClient;
  audit: AuditLog;
  autoscaler: Autoscaler;
  metrics: Metrics;
  /** Replica checksums: on demand and every DBAAS_VERIFY_INTERVAL_MS. */
  verifier: Verifier;
  /** Stops serving, stops every worker, closes connections. Idempotent. */
  close(): Promise<void>;
  /** Stops serving and closes connections but leaves the workers running, as a crash would (tests of adoption). */
  abandon(): Promise<void>;
  /** Membership, leadership and epoch of this orchestrator among those of its namespace. */
  election: LeaderElection;
  /** Tells the other orchestrators where this one's API listens (after listen on port 0). */
  advertise(url: string): Promise<void>;
}

export interface StartOptions {
  /** Use this runtime instead of the configured one (tests). */
  runtime?: Runtime;
  /**
   * Starts serving HTTP (say `app.listen`) once ZooKeeper and the broker are connected, before the election
   * and the leader's cluster start: the data path answers as soon as a master is known (503 before), and
   * /readyz says `starting` until this resolves (listen-early: a restarted orchestrator refused connections
   * for up to 30 s while its slaves' ledgers were awaited).
   */
  listen?: (app: FastifyInstance) => Promise<void>;
  /**
   * Aborted by a signal during the start (main.ts): the start ends at its next step and the start
   * rejects with DBAAS_SHUTTING_DOWN once what it started is stopped (or handed over), as `close` does.
   */
  signal?: AbortSignal;
}

export async function startOrchestrator(config: OrchestratorConfig, logger: Logger, opts: StartOptions = {}): Promise<Orchestrator> {
  const names = clusterNames(config.namespace);
  const paths = zkPaths(config.namespace);
  const zk = new ZkSession({
    connect: config.zkConnect,
    sessionTimeoutMs: config.zkSessionTimeoutMs,
    stuckAfterMs: config.zkOutageToleranceMs,
    logger: logger.child({ component: 'zk' }),
  });
  const view = new ClusterView(zk, paths, logger.child({ component: 'view' }));
  const rpc = new RpcClient(config.amqpUrl, names, logger.child({ component: 'rpc' }), config);
  const runtime = opts.runtime ?? createRuntime(config, logger);
  const audit = new AuditLog(logger.child({ component: 'audit' }));
  /** A signal came during the start (StartOptions.signal). */
  const interrupted = (): boolean => opts.signal?.aborted === true;
  // The election is made below; the cluster asks it before every action (a getter: it exists by then).
  const gate: LeaderGate = {
    confirm: () => election.confirm(),
    get epoch() {
      return election.epoch;
    },
    get epochVersion() {
      return election.epochVersion;
    },
  };
  const cluster = new ClusterManager({ leader: gate, config, names, paths, runtime, zk, view, rpc, audit, logger: logger.child({ component: 'cluster' }) });
  const autoscaler = new Autoscaler(config, cluster, audit);
  const verifier = new Verifier({ config, names, rpc, cluster, audit, logger: logger.child({ component: 'verify' }) });
  const metrics = new Metrics({ names, cluster, autoscaler, rpc, audit, zk });
  const election = new LeaderElection(zk, paths, { port: config.port, url: defaultUrl(config) }, logger.child({ component: 'election' }), {
    onElected: async (epoch) => {
      audit.record('election', `this orchestrator (${describeInfo(election.me)}) leads namespace ${config.namespace} in epoch ${epoch}`, { details: { epoch } });
      try {
        if (!interrupted()) await cluster.lead();
      } catch (err) {
        // Interrupted: it stays the leader, so that the close below stops what the start began (or hands it over).
        if (!interrupted()) throw err;
      }
      if (!interrupted()) verifier.start();
    },
    onDeposed: (why) => {
      // Another orchestrator leads now (or will): touch no worker any more; the data API keeps working.
      audit.record('election', `this orchestrator no longer leads: ${why}`);
      cluster.follow();
      // Periodic runs are the leader's; closing for good here refused every later verify after a re-election.
      verifier.pause();
    },
  });

  // A signal during the start: the waits below end (the election's for a dead leader's znode too), the
  // cluster's start ends at its next step, and the close stops what it started.
  const stopped = (): DbaasError => new DbaasError('DBAAS_SHUTTING_DOWN', 'stopped during the start');
  const interruption = new Promise<never>((_, reject) => opts.signal?.addEventListener('abort', () => reject(stopped()), { once: true }));
  interruption.catch(() => undefined);
  opts.signal?.addEventListener(
    'abort',
    () => {
      election.close();
      cluster.interruptStart();
    },
    { once: true },
  );
  const sharedAudit = new SharedAudit(zk, paths, audit, describeInfo(election.me));
  // Until startOrchestrator returns (elected and the cluster started, or following): /readyz says not ready.
  let starting = true;
  const app = await buildApp({ starting: () => starting, config, names, rpc, cluster, router: cluster.router, view, audit, autoscaler, metrics, verifier, election, sharedAudit, platform: new PlatformStore(zk, paths), databases: new DatabaseStore(zk, paths), logger });
  // The leader's epoch and the orchestrators of the namespace, in every orchestrator's /metrics.
  metrics.followElection(election);

  // Reads are counted by every orchestrator and summed by the leader (autoscaling follows them all).
  const readsTimer = setInterval(() => {
    const work = election.isLeader ? election.collectReads().then((n) => autoscaler.addExternal(n)) : election.publishReads(autoscaler.cumulativeReads);
    work.catch(() => undefined);
  }, 1000);
  readsTimer.unref();

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      clearInterval(readsTimer);
      verifier.close();
      await autoscaler.close();
      await app.close().catch(() => undefined);
      election.close();
      // Only the leader stops workers, and only when no other orchestrator is there to take the cluster
      // over; a follower, or a leader handing over, leaves them running.
      // Not knowing (ZooKeeper unreachable) counts as "others may be there": the workers are left
      // running rather than stopped under an orchestrator that may still be alive.
      let stopWorkers = false;
      if (election.isLeader) {
        const others = await election.others().catch(() => 1);
        stopWorkers = others === 0;
        if (!stopWorkers) {
          // Hand over: stop acting, resign, and see another one lead. Orchestrators stopped together
          // would otherwise all hand over to each other and leave the workers running unmanaged.
          cluster.follow();
          audit.record('election', `stopping: handing the cluster over to one of ${others} other orchestrator(s)`);
          await election.resign();
          const taken = await election.waitForOtherLeader(config.zkSessionTimeoutMs * 3 + 2000);
          if (!taken && (await election.retakeForShutdown())) {
            audit.record('election', 'stopping: no other orchestrator took the cluster over (they are stopping too); stopping the workers');
            stopWorkers = true;
          }
        }
      }
      if (stopWorkers) {
        await cluster.stop(10_000).catch((err: unknown) => logger.error({ err: (err as Error).message }, 'stopping workers failed'));
      } else {
        cluster.detach();
        runtime.detach?.();
      }
      await election.resign();
      await rpc.close();
      view.close();
      zk.close();
    })();
    return closing;
  };

  const abandon = async (): Promise<void> => {
    clearInterval(readsTimer);
    election.close();
    verifier.close();
    await autoscaler.close();
    cluster.detach();
    runtime.detach?.();
    await app.close().catch(() => undefined);
    await rpc.close();
    view.close();
    zk.close();
  };

  try {
    zk.start();
    rpc.start();
    await Promise.race([zk.waitUntilConnected(20_000), interruption]);
    await Promise.race([rpc.waitUntilReady(20_000), interruption]);
    // listen-early: serves before the election and the cluster start, which may take tens of seconds.
    if (opts.listen) await opts.listen(app);
    // Leads at once, or follows the leader; a leader znode left by a crashed orchestrator of this
    // host lasts one session timeout and is waited out.
    const role = await election.start(config.zkSessionTimeoutMs * 3 + 2000);
    if (interrupted()) throw stopped();
    if (role === 'follower') logger.info({ leader: describeInfo((await election.leader().catch(() => undefined)) ?? {}) }, 'following the leader');
  } catch (err) {
    await close();
    throw err;
  }
  starting = false;
  return { app, cluster, view, runtime, rpc, audit, autoscaler, metrics, verifier, election, close, abandon, advertise: (url) => election.advertise(url) };
}

/** Where this orchestrator says it listens until it is told (advertise) its real address. */
function defaultUrl(config: OrchestratorConfig): string {
  if (config.advertiseUrl) return config.advertiseUrl;
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.port}`;
}
