/**
 * The nemesis in the default suite: one round of every fault kind (each once)
 * against an own cluster (an orchestrator child process from dist/), with
 * clients writing throughout; then every acknowledged write must be on every
 * replica exactly once, every acknowledged delete gone, every counter and
 * array exact, the replicas equal. `npm run nemesis` is the long run.
 *
 * DBAAS_NEMESIS_SEED replays a run's operation mix and fault order.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FAULT_KINDS } from '../../tools/nemesis/faults.js';
import { runNemesis } from '../../tools/nemesis/nemesis.js';
import { formatReport } from '../../tools/nemesis/report.js';

const root = path.resolve(import.meta.dirname, '../..');
const seed = Number(process.env.DBAAS_NEMESIS_SEED ?? 1212);

describe('nemesis: every fault kind once, with clients writing', () => {
  it('loses, duplicates or resurrects no acknowledged write, and the replicas end equal', async () => {
    const report = await runNemesis({
      durationMs: 0,
      clients: 3,
      faults: [...FAULT_KINDS],
      seed,
      port: 18410,
      secondPort: 18411,
      entry: path.join(root, 'dist/orchestrator/main.js'),
      keep: false,
      writeDeadlineMs: 30_000,
      tryTimeoutMs: 10_000,
      // About 90 s when every fault heals; bounded when one does not.
      recoveryTimeoutMs: 60_000,
      zkSessionTimeoutMs: 2000,
      zkDownMs: 1000,
      acksBetweenFaults: 20,
      keysPerClient: 3,
      thinkMs: 0,
      // Periodic replica checksums while the faults run: a divergence found by any of them fails the run.
      env: { DBAAS_VERIFY_INTERVAL_MS: '15000' },
      log: (line) => process.stdout.write(`${line}\n`),
    });
    process.stdout.write(`${formatReport(report)}\n`);

    expect(report.faults.map((f) => f.kind).sort()).toEqual([...FAULT_KINDS].sort());
    expect(report.replicasChecked).toBe(3);
    // Enough traffic for the checks to mean something: writes of every kind, acknowledged after every fault.
    expect(report.stats.ok).toBeGreaterThan(200);
    for (const kind of ['insert-id', 'insert-auto', 'delete', 'upsert', 'inc', 'push'] as const) {
      expect(report.history.filter((r) => r.kind === kind && r.outcome === 'ok').length, `acknowledged ${kind} writes`).toBeGreaterThan(0);
    }
    const failed = report.checks.filter((c) => !c.passed).map((c) => `${c.name}: ${c.problems.slice(0, 3).join(' | ')}`);
    expect(failed, `seed ${seed}; data and logs in ${report.workDir}`).toEqual([]);
  }, 900_000);
});
