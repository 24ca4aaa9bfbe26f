/**
 * `npm run chaos`: kube-monkey for dbaas. An own cluster (on the Swarm runtime
 * by default) under a mixed load — writers with requestIds and retries, and
 * readers — while random workers, databases and the orchestrator (and, with
 * --platform, RabbitMQ and ZooKeeper) are killed from outside, one after
 * another, each followed by a bounded wait for the cluster to be whole again.
 * Then the nemesis' checks: no acknowledged write lost or applied twice, every
 * replica equal. Prints a table of the kills and their outcomes.
 *
 *   npm run chaos -- [--minutes 2] [--seed N] [--runtime swarm|docker|process]
 *                    [--clients 3] [--readers 2] [--platform] [--port 18420]
 *
 * The same machinery as `npm run nemesis` (tools/nemesis/nemesis.ts), with
 * kube-monkey's faults: kill-worker (a random worker, any role: `docker kill`
 * of its container), kill-database (a random worker's database container),
 * restart-orchestrator (SIGKILL, then started again), and with --platform
 * restart-broker and restart-zookeeper. Those two stop the machine's shared
 * RabbitMQ and ZooKeeper, so they are off unless asked for.
 * Exits 1 when a check failed, 2 on bad arguments.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { numberArg } from './args.js';
import { parseRuntime, runtimeRunOptions, type RuntimeKind } from './containers.js';
import type { FaultKind } from './faults.js';
import { repoRoot } from './infra.js';
import { runNemesis } from './nemesis.js';
import { formatReport } from './report.js';

const HELP = `npm run chaos -- [options]

  --minutes N        keep killing for N minutes (default 2); every kind is killed at least once
  --seed N           seed of the victims, the kill order and the load (default: random, printed)
  --runtime KIND     swarm (default), docker or process
  --clients N        writing clients (default 3)
  --readers N        reading clients (default 2)
  --platform         also restart RabbitMQ and ZooKeeper (the machine's shared ones: not while others test)
  --port P           orchestrator port (default 18420; a second one may use P+1)
  --name WORD        first word of the run's namespace (default chaos)
  --history FILE     write every write and its outcome as JSON lines
`;

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        minutes: { type: 'string', default: '2' },
        seed: { type: 'string' },
        runtime: { type: 'string', default: 'swarm' },
        clients: { type: 'string', default: '3' },
        readers: { type: 'string', default: '2' },
        platform: { type: 'boolean', default: false },
        port: { type: 'string', default: '18420' },
        name: { type: 'string', default: 'chaos' },
        history: { type: 'string' },
        help: { type: 'boolean', default: false },
      },
    }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const num = numberArg;
  let runtime: RuntimeKind, minutes: number, seed: number, clients: number, readers: number, port: number;
  try {
    runtime = parseRuntime(values.runtime);
    minutes = num('minutes', values.minutes, 0);
    seed = values.seed === undefined ? Math.floor(Math.random() * 1_000_000) : num('seed', values.seed, 0);
    clients = num('clients', values.clients, 1);
    readers = num('readers', values.readers, 0);
    port = num('port', values.port, 1);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  const faults: FaultKind[] = ['kill-worker', 'kill-database', 'restart-orchestrator', ...(values.platform ? (['restart-broker', 'restart-zookeeper'] as const) : [])];
  const onRuntime = runtimeRunOptions(runtime);
  let interrupts = 0;
  process.on('SIGINT', () => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    process.stdout.write('[chaos] interrupted: finishing the current kill, then checking and cleaning up (Ctrl-C again to leave at once)\n');
  });
  const report = await runNemesis({
    name: values.name,
    durationMs: minutes * 60_000,
    clients,
    readers,
    faults,
    seed,
    port,
    secondPort: port + 1,
    entry: path.join(repoRoot(), 'dist/orchestrator/main.js'),
    keep: false,
    writeDeadlineMs: 60_000,
    tryTimeoutMs: 10_000,
    recoveryTimeoutMs: 120_000,
    zkSessionTimeoutMs: 2000,
    zkDownMs: 1000,
    acksBetweenFaults: 20,
    keysPerClient: 3,
    thinkMs: 0,
    ...onRuntime,
    env: { ...onRuntime.env, DBAAS_VERIFY_INTERVAL_MS: '20000' },
    log: (line) => process.stdout.write(`${line.replace(/^\[nemesis/, '[chaos')}\n`),
    stopRequested: () => interrupts > 0,
  });
  if (values.history) writeFileSync(values.history, report.history.map((r) => JSON.stringify(r)).join('\n') + '\n');
  process.stdout.write(`\n${formatReport(report)}\n\n${report.ok ? 'chaos: every check passed' : 'chaos: SOME CHECKS FAILED'}\n`);
  return report.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`[chaos] ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
