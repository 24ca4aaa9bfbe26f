import { clusterEnv, type OrchestratorConfig } from '../../common/config.js';
import type { Logger } from '../../common/logger.js';
import { ProcessRuntime } from './process-runtime.js';
import type { Runtime } from './runtime.js';

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
        clusterEnv: clusterEnv(config),
        logger: logger.child({ component: 'runtime' }),
      });
    }
    case 'docker':
      throw new Error('the docker runtime is not built yet; use DBAAS_RUNTIME=process');
  }
}
