/**
 * Worker entry point: reads its configuration, starts, and handles signals.
 * Started by a runtime (child process or container), never by hand.
 */
import { ConfigError, loadWorkerConfig } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { EXIT_FAILED, Worker } from './worker.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadWorkerConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger('dbaas-worker', config.logLevel, { worker: config.workerId });
  // The one place the worker's process exits (fail() and stop() end here).
  const worker = new Worker(config, logger, (code) => process.exit(code));
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    logger.info('stopping on signal');
    void worker.stop(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  try {
    await worker.start();
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, 'worker failed to start');
    process.exit(EXIT_FAILED);
  }
}

void main();
