/**
 * Orchestrator entry point (`npm start` runs it after setting up the services):
 * reads the configuration, starts the cluster, serves HTTP, and on SIGINT/SIGTERM
 * stops everything it started.
 */
import { ConfigError, loadOrchestratorConfig } from '../common/config.js';
import { createLogger, readableDestination } from '../common/logger.js';
import { unknownSettings } from '../common/unknown-settings.js';
import type { FastifyInstance } from 'fastify';
import { startOrchestrator, type Orchestrator } from './orchestrator.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadOrchestratorConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const readable = config.logFormat === 'pretty' || (config.logFormat === 'auto' && process.stdout.isTTY === true);
  const logger = createLogger('dbaas-orchestrator', config.logLevel, {}, readable ? readableDestination(process.stdout) : undefined);
  for (const { name, suggestion } of unknownSettings(process.env)) {
    process.stdout.write(`[dbaas] WARNING: ${name} is not a dbaas setting and is ignored${suggestion ? ` (did you mean ${suggestion}?)` : ''}; the settings are listed in README.md.\n`);
  }
  if (config.adminToken === undefined) {
    process.stdout.write(
      '[dbaas] WARNING: DBAAS_ADMIN_TOKEN is not set: anyone who can reach this port can kill workers, clear all data and rescale.\n' +
        '[dbaas]          Set DBAAS_ADMIN_TOKEN (8+ characters) before exposing the service; see docs/SECURITY.md.\n',
    );
  }
  if (config.apiKeys.length === 0 && config.host !== '127.0.0.1') {
    process.stdout.write(`[dbaas] note: DBAAS_API_KEYS is not set: reads and writes are open to anyone who can reach ${config.host}:${config.port}.\n`);
  }
  process.stdout.write(`[dbaas] starting a cluster (namespace ${config.namespace}, 1 master + ${config.initialSlaves} slave(s), runtime ${config.runtime}) …\n`);
  const shown = config.host === '0.0.0.0' ? '127.0.0.1' : config.host;
  // listen-early: HTTP is served before the election and the cluster start (a restarted orchestrator adopting a
  // running cluster answers through its master at once); writes get 503 until a master is known, /readyz 503 until ready.
  let listenFailed = false;
  const listen = async (app: FastifyInstance): Promise<void> => {
    try {
      await app.listen({ port: config.port, host: config.host });
    } catch (err) {
      listenFailed = true;
      const code = (err as NodeJS.ErrnoException).code;
      const hint =
        code === 'EACCES'
          ? ` (ports below 1024 need root: run as root or set DBAAS_PORT=8080)`
          : code === 'EADDRINUSE'
            ? ` (something already listens there: stop it or set DBAAS_PORT)`
            : '';
      process.stderr.write(`[dbaas] cannot listen on ${config.host}:${config.port}: ${(err as Error).message}${hint}\n`);
      throw err;
    }
    process.stdout.write(`[dbaas] listening on http://${shown}:${config.port} (not ready until the cluster is: /readyz) …\n`);
  };
  // Signals are handled from here on, the start included: one during the start ends it at its next step and
  // stops what it started (the workers were left running when Node's default ended the process there).
  const interrupt = new AbortController();
  const started: { orchestrator?: Orchestrator } = {};
  let stopping = false;
  const closeAndExit = (o: Orchestrator): void => {
    void o.close().then(() => {
      process.stdout.write('[dbaas] stopped\n');
      process.exit(0);
    });
  };
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    if (started.orchestrator === undefined) {
      process.stdout.write(`[dbaas] ${signal} during the start: stopping what it started …\n`);
      interrupt.abort();
      return;
    }
    process.stdout.write(`[dbaas] ${signal}: stopping the workers …\n`);
    closeAndExit(started.orchestrator);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));

  const orchestrator = await startOrchestrator(config, logger, { listen, signal: interrupt.signal }).catch((err: unknown) => {
    if (interrupt.signal.aborted) {
      process.stdout.write('[dbaas] stopped\n');
      process.exit(0);
    }
    if (!listenFailed) process.stderr.write(`[dbaas] could not start the cluster: ${(err as Error).message}\n`);
    process.exit(1);
  });
  started.orchestrator = orchestrator;
  // A signal just as the start ended (it had nothing left to interrupt).
  if (interrupt.signal.aborted) return closeAndExit(orchestrator);

  if (!config.advertiseUrl) await orchestrator.advertise(`http://${shown}:${config.port}`);
  const role = orchestrator.election.isLeader ? 'leader' : 'follower (another orchestrator leads; admin actions are forwarded to it)';
  process.stdout.write(
    `[dbaas] ready: http://${shown}:${config.port}/api/v1 as ${role} — workers (pids) ${orchestrator.cluster.pids().join(', ')}; Ctrl-C stops ${orchestrator.election.isLeader ? 'everything (or hands over to another orchestrator)' : 'this orchestrator only'}\n`,
  );
}

void main();
