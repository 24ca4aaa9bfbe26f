/**
 * `npm run nemesis`: a long, on-demand Jepsen-style run against an own cluster.
 *
 *   npm run nemesis -- [--duration 300] [--clients 4] [--faults all|kind,kind] [--seed N]
 *                      [--runtime process|docker|swarm] [--port 18400] [--second-port 18401] [--keep] …
 *                      (--help lists all)
 *
 * Needs RabbitMQ, ZooKeeper and DBAAS_DB_BIN as `npm start` sets them up
 * (.dbaas/runtime.env is read when DBAAS_DB_BIN is not set). Exits 1 when any
 * check failed, 2 on bad arguments.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { numberArg } from './args.js';
import { parseRuntime, runtimeRunOptions } from './containers.js';
import { FAULT_KINDS, parseFaultKinds } from './faults.js';
import { repoRoot } from './infra.js';
import { runNemesis } from './nemesis.js';
import { formatReport } from './report.js';

const HELP = `npm run nemesis -- [options]

  --duration S             keep injecting faults for S seconds (default 300); every
                           selected kind is injected at least once
  --clients N              concurrent writing clients (default 4)
  --faults LIST            comma list, "all" (default) or "none"; kinds:
                           ${FAULT_KINDS.join(', ')}
  --seed N                 seed of the operation mix and the fault order (default: random, printed)
  --runtime KIND           where the workers run: process, docker or swarm (default: DBAAS_RUNTIME, else process)
                           (docker and swarm use the engine and images scripts/setup-docker.sh set up)
  --port P                 orchestrator port (default 18400)
  --second-port P          port of the second orchestrator (default 18401)
  --orchestrator FILE      orchestrator entry to run (default dist/orchestrator/main.js of this checkout)
  --work-dir DIR           data and logs here (default: a fresh temporary directory)
  --keep                   keep the work directory even when every check passed
  --write-deadline S       retry one write this long before its outcome is unknown (default 60)
  --recovery-timeout S     how long the cluster may take to be whole after a fault (default 90)
  --zk-session-timeout MS  DBAAS_ZK_SESSION_TIMEOUT_MS of the cluster (default 2000)
  --zk-down MS             how long ZooKeeper stays down in restart-zookeeper (default 1000)
  --acks-between N         acknowledged writes to wait for after a recovery (default 20)
  --think MS               pause between two writes of one client (default 0)
  --verify-interval MS     DBAAS_VERIFY_INTERVAL_MS of the cluster: periodic replica checksums
                           during the run, any divergence found fails the run (default 20000; 0 off)
  --history FILE           write every write and its outcome as JSON lines
`;

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        duration: { type: 'string', default: '300' },
        clients: { type: 'string', default: '4' },
        faults: { type: 'string', default: 'all' },
        seed: { type: 'string' },
        runtime: { type: 'string', default: process.env.DBAAS_RUNTIME ?? 'process' },
        port: { type: 'string', default: '18400' },
        'second-port': { type: 'string', default: '18401' },
        orchestrator: { type: 'string' },
        'work-dir': { type: 'string' },
        keep: { type: 'boolean', default: false },
        'write-deadline': { type: 'string', default: '60' },
        'recovery-timeout': { type: 'string', default: '90' },
        'zk-session-timeout': { type: 'string', default: '2000' },
        'zk-down': { type: 'string', default: '1000' },
        'acks-between': { type: 'string', default: '20' },
        think: { type: 'string', default: '0' },
        'verify-interval': { type: 'string', default: '20000' },
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
  let opts;
  try {
    const onRuntime = runtimeRunOptions(parseRuntime(values.runtime));
    opts = {
      ...onRuntime,
      durationMs: num('duration', values.duration, 0) * 1000,
      clients: num('clients', values.clients, 1),
      faults: parseFaultKinds(values.faults),
      seed: values.seed === undefined ? Math.floor(Math.random() * 1_000_000) : num('seed', values.seed, 0),
      port: num('port', values.port, 1),
      secondPort: num('second-port', values['second-port'], 1),
      entry: path.resolve(values.orchestrator ?? path.join(repoRoot(), 'dist/orchestrator/main.js')),
      ...(values['work-dir'] ? { workDir: path.resolve(values['work-dir']) } : {}),
      keep: values.keep,
      writeDeadlineMs: num('write-deadline', values['write-deadline'], 1) * 1000,
      tryTimeoutMs: 10_000,
      recoveryTimeoutMs: num('recovery-timeout', values['recovery-timeout'], 1) * 1000,
      zkSessionTimeoutMs: num('zk-session-timeout', values['zk-session-timeout'], 500),
      zkDownMs: num('zk-down', values['zk-down'], 0),
      acksBetweenFaults: num('acks-between', values['acks-between'], 0),
      keysPerClient: 3,
      thinkMs: num('think', values.think, 0),
      env: { ...onRuntime.env, DBAAS_VERIFY_INTERVAL_MS: String(num('verify-interval', values['verify-interval'], 0)) },
    };
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  // Ctrl-C: stop injecting after the current fault (it restores what it broke), check, clean up. Twice: leave now.
  let interrupts = 0;
  process.on('SIGINT', () => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    process.stdout.write('[nemesis] interrupted: finishing the current fault, then checking and cleaning up (Ctrl-C again to leave at once)\n');
  });
  const report = await runNemesis({ ...opts, log: (line) => process.stdout.write(`${line}\n`), stopRequested: () => interrupts > 0 });
  if (values.history) writeFileSync(values.history, report.history.map((r) => JSON.stringify(r)).join('\n') + '\n');
  process.stdout.write(`\n${formatReport(report)}\n\n${report.ok ? 'nemesis: every check passed' : 'nemesis: SOME CHECKS FAILED'}\n`);
  return report.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`[nemesis] ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
