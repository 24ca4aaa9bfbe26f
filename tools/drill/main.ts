/**
 * `npm run drill`: the fault drill against a running orchestrator.
 *
 *   npm run drill -- [--url http://127.0.0.1:80] [--rounds 3] [--writers 4] [--settle-ms 1500]
 *
 * URL and admin token default to DBAAS_URL (or http://127.0.0.1:$DBAAS_PORT) and
 * DBAAS_ADMIN_TOKEN. Exits 0 when every acknowledged write is on every replica
 * exactly once, 1 otherwise.
 */
import { parseArgs } from 'node:util';
import { loadClientConfig } from '../../common/config.js';
import { median, runDrill } from './fault-drill.js';

async function main(): Promise<void> {
  const client = loadClientConfig();
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: client.url },
      token: { type: 'string' },
      rounds: { type: 'string', default: '3' },
      writers: { type: 'string', default: '4' },
      'settle-ms': { type: 'string', default: '1500' },
    },
  });
  const token = values.token ?? client.adminToken;
  const report = await runDrill({
    url: values.url.replace(/\/+$/, ''),
    ...(token === undefined ? {} : { adminToken: token }),
    rounds: Number(values.rounds),
    writers: Number(values.writers),
    settleMs: Number(values['settle-ms']),
    writeDeadlineMs: 60_000,
    recoveryTimeoutMs: 60_000,
    log: (line) => process.stdout.write(`[drill] ${line}\n`),
  });
  const fmt = (xs: number[]): string => xs.map((x) => `${Math.round(x)}`).join(', ');
  process.stdout.write(
    [
      '',
      `acknowledged inserts:           ${report.acknowledged} (+ ${report.increments} acknowledged $inc)`,
      `replicas checked:               ${report.replicasChecked}`,
      `write gap per master crash ms:  ${fmt(report.masterGapsMs)}  (median ${Math.round(median(report.masterGapsMs))}, worst ${Math.round(Math.max(...report.masterGapsMs))})`,
      `slave replacement ms:           ${fmt(report.slaveRecoveryMs)}  (median ${Math.round(median(report.slaveRecoveryMs))}, worst ${Math.round(Math.max(...report.slaveRecoveryMs))})`,
      `lowest-pid slave promoted:      ${report.lowestPidPromoted.map((b) => (b ? 'yes' : 'NO')).join(', ')}`,
      report.ok ? 'PASS: every acknowledged write is on every replica exactly once' : `FAIL:\n  ${report.problems.slice(0, 50).join('\n  ')}`,
      '',
    ].join('\n'),
  );
  process.exit(report.ok ? 0 : 1);
}

main().catch((err: unknown) => {
  process.stderr.write(`[drill] ${(err as Error).message}\n`);
  process.exit(1);
});
