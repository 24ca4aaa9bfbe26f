/**
 * Lifecycle manager entry point: what scripts/start.sh (`npm start`) runs after
 * setting up the services. It starts the orchestrator (dist/orchestrator/main.js,
 * same environment) and supervises it and the platform services (ZooKeeper,
 * RabbitMQ; single or HA) until SIGINT/SIGTERM, which it forwards to the
 * orchestrator before it exits with the orchestrator's status.
 *
 * scripts/start.sh restarts this process if it dies; a new one adopts the
 * orchestrator still running (supervised-orchestrator.ts).
 */
import path from 'node:path';
import { ConfigError, loadLifecycleConfig } from '../../common/config.js';
import { createLogger, readableDestination } from '../../common/logger.js';
import { zkPaths } from '../../coordination/paths.js';
import { ZkSession } from '../../coordination/zk-session.js';
import { LifecycleManager } from './lifecycle-manager.js';
import { SupervisedOrchestrator } from './supervised-orchestrator.js';
import { PlatformLock } from './platform-lock.js';
import { haPlatform, singlePlatform } from './platform-services.js';

function main(): void {
  let config;
  try {
    config = loadLifecycleConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const o = config.orchestrator;
  const root = path.resolve(import.meta.dirname, '../../..');
  const readable = o.logFormat === 'pretty' || (o.logFormat === 'auto' && process.stdout.isTTY === true);
  const logger = createLogger('dbaas-lifecycle', o.logLevel, {}, readable ? readableDestination(process.stdout) : undefined);

  let stopping = false;
  let everRan = false;
  const orchestrator = new SupervisedOrchestrator({
    root,
    port: o.port,
    env: process.env,
    onExit: (pid, code, signal) => {
      // An orchestrator that exits by itself (not killed by a signal) before it ever answered did not crash: it could
      // not start (a port in use, …). Nothing to supervise. One killed, even that early, is restarted.
      if (!stopping && !everRan && signal === null && manager.view().find((s) => s.name === orchestrator.name)?.state !== 'running') {
        process.stderr.write(`[dbaas] the orchestrator (pid ${pid}) exited with ${signal ?? code} before it was ready; stopping\n`);
        void shutdown(undefined, code ?? 1);
      }
    },
  });
  const platformOptions = { root, zkConnect: o.zkConnect, amqpUrl: o.amqpUrl, managed: config.managed, log: path.join(root, '.dbaas/lifecycle/scripts.log') };
  const zk = new ZkSession({ connect: o.zkConnect, sessionTimeoutMs: 5000, logger });
  zk.start();
  const manager = new LifecycleManager({
    services: [...(o.platform === 'ha' ? haPlatform(platformOptions) : singlePlatform(platformOptions)), orchestrator],
    policy: config,
    probeIntervalMs: config.probeIntervalMs,
    probeTimeoutMs: config.probeTimeoutMs,
    logger,
    zk,
    paths: zkPaths(o.namespace),
    // Only a manager that may restart platform services competes for them; a watching one needs no lock.
    ...(config.managed.length > 0 ? { lock: new PlatformLock(path.join(root, '.dbaas/lifecycle/platform.lock')) } : {}),
    startNow: [orchestrator.name],
  });
  const watch = setInterval(() => {
    const me = manager.view().find((s) => s.name === orchestrator.name);
    if (me?.state === 'running') everRan = true;
    if (me?.state === 'failed') {
      process.stderr.write(`[dbaas] the orchestrator keeps failing (${me.lastFailure?.reason ?? 'see above'}); the lifecycle manager gave up\n`);
      void shutdown(undefined, 1);
    }
  }, 500);

  const shutdown = async (signal: NodeJS.Signals | undefined, status: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    clearInterval(watch);
    await manager.markStopped(orchestrator.name);
    await manager.close();
    if (signal) await orchestrator.stop(signal);
    zk.close();
    process.exit(status);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void shutdown(signal, 0));

  process.stdout.write(
    `[dbaas] lifecycle manager (pid ${process.pid}) watching the ${o.platform} platform` +
      `${config.managed.length > 0 ? ` (restarting ${config.managed.join(', ')})` : ' (started by an earlier run: watched, not restarted)'} and the orchestrator on port ${o.port}\n`,
  );
  manager.start();
}

main();
