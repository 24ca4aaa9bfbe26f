/**
 * Wires the orchestrator together: ZooKeeper view, RPC client, runtime, cluster
 * manager and HTTP app. Used by `main.ts` and by the integration tests alike.
 */
import type { FastifyInstance } from 'fastify';
import type { OrchestratorConfig } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import { clusterNames } from '../common/names.js';
import { ZkSession } from '../common/zk-session.js';
import { NamespaceLock } from './namespace-lock.js';
import { buildApp } from './app.js';
import { AuditLog } from './audit-log.js';
import { Autoscaler } from './autoscaler.js';
import { ClusterManager } from './cluster.js';
import { ClusterView } from './cluster-view.js';
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
}

export interface StartOptions {
  /** Use this runtime instead of the configured one (tests). */
  runtime?: Runtime;
}

export async function startOrchestrator(config: OrchestratorConfig, logger: Logger, opts: StartOptions = {}): Promise<Orchestrator> {
  const names = clusterNames(config.namespace);
  const zk = new ZkSession({
    connect: config.zkConnect,
    sessionTimeoutMs: config.zkSessionTimeoutMs,
    stuckAfterMs: config.zkOutageToleranceMs,
    logger: logger.child({ component: 'zk' }),
  });
  const view = new ClusterView(zk, names, logger.child({ component: 'view' }));
  const rpc = new RpcClient(config.amqpUrl, names, logger.child({ component: 'rpc' }), config);
  const runtime = opts.runtime ?? createRuntime(config, logger);
  const audit = new AuditLog(logger.child({ component: 'audit' }));
  const cluster = new ClusterManager({ config, names, runtime, zk, view, rpc, audit, logger: logger.child({ component: 'cluster' }) });
  const autoscaler = new Autoscaler(config, cluster, audit);
  const verifier = new Verifier({ config, names, rpc, cluster, audit, logger: logger.child({ component: 'verify' }) });
  const metrics = new Metrics({ names, cluster, autoscaler, rpc, audit, zk });
  const app = await buildApp({ config, names, rpc, cluster, view, audit, autoscaler, metrics, verifier, logger });
  const lock = new NamespaceLock(zk, names, config.namespace, config.port, logger.child({ component: 'lock' }), (why) => {
    // Deposed: another orchestrator manages the workers now. Touch nothing more; the API answers 503.
    audit.record('error', `${why}; this orchestrator stops managing the cluster`);
    logger.fatal({ why }, 'namespace lock lost');
    cluster.detach();
  });

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      verifier.close();
      await autoscaler.close();
      await app.close().catch(() => undefined);
      // Only the holder of the namespace lock may stop workers: one refused at start, or deposed, leaves them be.
      if (lock.holding) {
        await cluster.stop(10_000).catch((err: unknown) => logger.error({ err: (err as Error).message }, 'stopping workers failed'));
        await lock.release();
      } else cluster.detach();
      await rpc.close();
      view.close();
      zk.close();
    })();
    return closing;
  };

  const abandon = async (): Promise<void> => {
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
    await zk.waitUntilConnected(20_000);
    await rpc.waitUntilReady(20_000);
    // An orchestrator killed a moment ago holds the lock until its session expires.
    await lock.acquire(config.zkSessionTimeoutMs * 3 + 2000);
    await cluster.start();
    verifier.start();
  } catch (err) {
    await close();
    throw err;
  }
  return { app, cluster, view, runtime, rpc, audit, autoscaler, metrics, verifier, close, abandon };
}
