/**
 * `dbaas teardown --namespace NS [--yes]`: removes a stopped namespace's queues,
 * exchanges, znodes, Docker containers, volumes and network, and its data
 * directory (orchestrator/teardown.ts), then looks again and reports anything
 * left. An admin command: it talks to RabbitMQ, ZooKeeper, Docker and the disk
 * directly (with the cluster's own settings, DBAAS_AMQP_URL and the rest), not to
 * the orchestrator, which must not be running.
 */
import { amqpHosts } from '../../common/amqp-urls.js';
import type { Env } from '../../common/config.js';
import { formatPairs } from './table.js';
import type { NamespaceObjects } from '../../orchestrator/teardown.js';

export interface TeardownIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Asks the user and resolves with the answer; undefined when nobody can answer (no terminal). */
  ask?: (question: string) => Promise<string | undefined>;
  /** The environment to read the cluster settings from (DBAAS_AMQP_URL, DBAAS_ZK_CONNECT, DBAAS_DATA_DIR, DBAAS_DOCKER_HOST). */
  env?: Env;
}

/** Exit codes, as in cli.ts: 0 done, 1 refused or something left, 2 bad command line or not confirmed, 3 a service unreachable. */
export async function runTeardown(namespace: string, opts: { yes: boolean; json: boolean }, io: TeardownIo): Promise<number> {
  const [{ ConfigError, loadOrchestratorConfig }, { createLogger }, { inventory, teardownNamespace, TeardownIncomplete, TeardownRefused }] = await Promise.all([
    import('../../common/config.js'),
    import('../../common/logger.js'),
    import('../../orchestrator/teardown.js'),
  ]);
  let config;
  try {
    config = loadOrchestratorConfig({ ...(io.env ?? {}), DBAAS_NAMESPACE: namespace });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.stderr(`dbaas: ${err.message}`);
    return 2;
  }
  if (!opts.yes) {
    const question =
      `This removes everything of namespace ${namespace}: its queues and exchanges on ${amqpHosts(config.amqpUrl).join(', ')}, ` +
      `its znodes on ${config.zkConnect}, its Docker containers, volumes and network, and ${config.dataDir}/${namespace} (all its data).\n` +
      `Type the namespace to confirm: `;
    const answer = io.ask ? await io.ask(question) : undefined;
    if (answer?.trim() !== namespace) {
      io.stderr('dbaas: teardown not confirmed; nothing was removed (pass --yes to skip the question)');
      return 2;
    }
  }
  const logger = createLogger('dbaas-teardown', 'silent');
  let removed;
  try {
    removed = await teardownNamespace(config, logger);
  } catch (err) {
    if (err instanceof TeardownRefused) {
      io.stderr(`dbaas: teardown refused: ${err.message}`);
      return 1;
    }
    // A service did not answer: what was removed, then exactly what is left and why.
    if (err instanceof TeardownIncomplete) {
      if (opts.json) io.stdout(JSON.stringify({ namespace, removed: err.removed, left: err.left, error: err.message }, null, 2));
      else io.stdout(summary(namespace, err.removed, err.left.map((l): [string, string] => ['not cleaned', l])));
      io.stderr(`dbaas: teardown incomplete: ${err.message}`);
      return 3;
    }
    io.stderr(`dbaas: teardown failed: ${(err as Error).message}`);
    return 3;
  }
  const left = await inventory(config, logger);
  const leftCount = left.queues.length + left.exchanges.length + left.znodes.length + left.services.length + left.containers.length + left.volumes.length + left.networks.length + left.processes.length + left.dataDir.length + left.databases.length;
  if (opts.json) io.stdout(JSON.stringify({ namespace, removed, left }, null, 2));
  else io.stdout(summary(namespace, removed, [['left', leftCount === 0 ? 'nothing' : JSON.stringify(left)]]));
  return leftCount === 0 ? 0 : 1;
}

/** What a teardown removed, one line per kind, then `tail` (what is left), then its notes. */
function summary(namespace: string, removed: NamespaceObjects, tail: Array<[string, string]>): string {
  const list = (xs: readonly unknown[]): string => (xs.length === 0 ? '-' : `${xs.length}: ${xs.join(', ')}`);
  return formatPairs([
    ['namespace', namespace],
    ['queues', list(removed.queues)],
    ['exchanges', list(removed.exchanges)],
    ['znodes', removed.znodes.length === 0 ? '-' : `${removed.znodes.length} under /${namespace}`],
    ['processes', list(removed.processes)],
    ['services', list(removed.services)],
    ['containers', list(removed.containers)],
    ['volumes', list(removed.volumes)],
    ['networks', list(removed.networks)],
    ['data', list(removed.dataDir)],
    ['databases', list(removed.databases)],
    ['relays stopped', list(removed.relays)],
    ...tail,
    ...removed.notes.map((n): [string, string] => ['note', n]),
  ]);
}
