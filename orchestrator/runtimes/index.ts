import Docker from 'dockerode';
import { clusterEnv, type OrchestratorConfig } from '../../common/config.js';
import type { Logger } from '../../common/logger.js';
import { DockerRuntime, type DockerRuntimeOptions } from './docker-runtime.js';
import { ProcessRuntime } from './process-runtime.js';
import type { Runtime } from './runtime.js';
import { SwarmRuntime } from './swarm-runtime.js';

export type { Runtime } from './runtime.js';

/** Builds the runtime `DBAAS_RUNTIME` names. */
export function createRuntime(config: OrchestratorConfig, logger: Logger): Runtime {
  switch (config.runtime) {
    case 'process': {
      if (!config.dbBin) {
        throw new Error('DBAAS_DB_BIN is not set: the process runtime needs a FerretDB or mongod binary (npm start sets it up)');
      }
      return new ProcessRuntime({
        dataDir: config.dataDir,
        namespace: config.namespace,
        dbBin: config.dbBin,
        dbBackend: config.dbBackend,
        ...(config.pgUrl ? { pgUrl: config.pgUrl } : {}),
        spareDatabases: config.spareDatabases,
        startNice: config.workerStartNice,
        dbName: config.dbName,
        clusterEnv: clusterEnv(config),
        logger: logger.child({ component: 'runtime' }),
      });
    }
    case 'docker':
      return new DockerRuntime(dockerOptions(config, logger));
    case 'swarm':
      return new SwarmRuntime({ ...dockerOptions(config, logger), constraints: config.swarmConstraints });
  }
}

/** What the `docker` and `swarm` runtimes share: the engine, images, network and the addresses workers see. */
function dockerOptions(config: OrchestratorConfig, logger: Logger): DockerRuntimeOptions {
  return {
    docker: dockerClient(config.dockerHost),
    namespace: config.namespace,
    dataDir: config.dataDir,
    network: config.dockerNetwork,
    workerImage: config.dockerWorkerImage,
    dbImage: config.dockerDbImage,
    // Workers in containers reach RabbitMQ and ZooKeeper by other addresses than the orchestrator.
    clusterEnv: { ...clusterEnv(config), DBAAS_AMQP_URL: config.dockerAmqpUrl, DBAAS_ZK_CONNECT: config.dockerZkConnect },
    logger: logger.child({ component: 'runtime' }),
    dbStartTimeoutMs: config.dockerDbStartTimeoutMs,
  };
}

/** A Docker Engine API client for `unix:///path` or `tcp://host:port` (as validated by the config). */
export function dockerClient(host: string): Docker {
  if (host.startsWith('unix://')) return new Docker({ socketPath: host.slice('unix://'.length) });
  const url = new URL(host);
  return new Docker({ host: url.hostname, port: Number(url.port || 2375), protocol: 'http' });
}
