/**
 * `npm run bench:platform`: what the HA platform costs (issue 18): insert
 * throughput through the API on DBAAS_PLATFORM=ha (3 ZooKeeper servers, a
 * 3-node RabbitMQ cluster, quorum queues: scripts/platform-ha.sh, started here
 * if it is not running) as a ratio to the single platform (.dbaas/runtime.env),
 * each on a fresh cluster of 1 master + 2 slaves, the platforms alternating
 * (single, HA, single, HA …) so that a drift of the machine's load hits both.
 *
 *   npm run bench:platform -- [--duration 5] [--concurrency 1,16,64] [--rounds 2] [--no-write]
 *
 * Prints a table and writes it to docs/BENCHMARKS.md between its markers.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadOrchestratorConfig } from '../../common/config.js';
import { BenchCluster, benchEnv } from './bench-cluster.js';
import { httpLoad, type LoadResult } from './load.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const START = '<!-- platform-ratio:start -->';
const END = '<!-- platform-ratio:end -->';

function log(line: string): void {
  process.stdout.write(`[bench:platform] ${line}\n`);
}

/** The HA platform's addresses, starting it first (idempotent); runtime.env is not touched. */
function haPlatform(): { amqpUrl: string; zkConnect: string } {
  const script = path.join(root, 'scripts/platform-ha.sh');
  execFileSync('bash', [script, 'start'], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 600_000 });
  const out = execFileSync('bash', [script, 'env'], { encoding: 'utf8' });
  const get = (key: string): string => out.split('\n').find((l) => l.startsWith(`${key}=`))?.slice(key.length + 1) ?? '';
  return { amqpUrl: get('DBAAS_AMQP_URL'), zkConnect: get('DBAAS_ZK_CONNECT') };
}

interface Run {
  platform: 'single' | 'ha';
  concurrency: number;
  result: LoadResult;
}

async function measure(platform: 'single' | 'ha', env: Record<string, string>, amqpUrl: string, zkConnect: string, concurrency: number[], durationSec: number): Promise<Run[]> {
  const cluster = new BenchCluster({ slaves: 2, env, log });
  const runs: Run[] = [];
  try {
    log(`${platform}: starting a cluster (namespace ${cluster.namespace}) …`);
    await cluster.start();
    let n = 0;
    const body = (): unknown => ({ table: 'bench_rides', operation: 'insert', data: { rider: `r${n++}`, fare: 12.5, at: Date.now() } });
    // Warm-up: connections, the JIT, the queues' first leaders.
    await httpLoad({ url: cluster.url, path: '/api/v1/db/write', connections: 4, durationSec: 1, body });
    for (const c of concurrency) {
      const result = await httpLoad({ url: cluster.url, path: '/api/v1/db/write', connections: c, durationSec, body });
      log(`${platform} insert ×${c}: ${result.rps.toFixed(0)} req/s, p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms, ${result.errors} errors`);
      runs.push({ platform, concurrency: c, result });
    }
  } finally {
    await cluster.stop(amqpUrl, zkConnect);
  }
  return runs;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

function report(runs: Run[], concurrency: number[], durationSec: number, rounds: number): string {
  const cpus = os.cpus();
  const lines = [
    `Insert throughput through the API (one document per request, 1 master + 2 slaves), HA platform against single, ` +
      `${rounds} round(s) of ${durationSec} s per cell, median of the rounds; ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ` +
      `${cpus.length} × ${cpus[0]?.model.trim() ?? 'cpu'} (\`npm run bench:platform\`).`,
    '',
    '| concurrency | single: req/s | HA: req/s | HA / single | single p50 / p99 (ms) | HA p50 / p99 (ms) | errors |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const c of concurrency) {
    const of = (p: Run['platform']): LoadResult[] => runs.filter((r) => r.platform === p && r.concurrency === c).map((r) => r.result);
    const s = of('single');
    const h = of('ha');
    const rps = (xs: LoadResult[]): number => median(xs.map((x) => x.rps));
    const lat = (xs: LoadResult[]): string => `${median(xs.map((x) => x.p50)).toFixed(1)} / ${median(xs.map((x) => x.p99)).toFixed(1)}`;
    const errors = [...s, ...h].reduce((a, x) => a + x.errors, 0);
    lines.push(`| ${c} | ${rps(s).toFixed(0)} | ${rps(h).toFixed(0)} | **${(rps(h) / rps(s)).toFixed(2)}** | ${lat(s)} | ${lat(h)} | ${errors} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '5' },
      concurrency: { type: 'string', default: '1,16,64' },
      rounds: { type: 'string', default: '2' },
      'no-write': { type: 'boolean', default: false },
    },
  });
  const durationSec = Number(values.duration);
  const rounds = Number(values.rounds);
  const concurrency = values.concurrency.split(',').map(Number);
  const config = loadOrchestratorConfig();
  if (config.platform !== 'single') throw new Error('run this with the single platform in .dbaas/runtime.env (it starts the HA one itself)');
  const base = benchEnv(config);
  const ha = haPlatform();
  const runs: Run[] = [];
  for (let round = 1; round <= rounds; round++) {
    runs.push(...(await measure('single', base, config.amqpUrl, config.zkConnect, concurrency, durationSec)));
    runs.push(
      ...(await measure('ha', { ...base, DBAAS_PLATFORM: 'ha', DBAAS_AMQP_URL: ha.amqpUrl, DBAAS_ZK_CONNECT: ha.zkConnect }, ha.amqpUrl, ha.zkConnect, concurrency, durationSec)),
    );
  }
  const table = report(runs, concurrency, durationSec, rounds);
  process.stdout.write(`\n${table}\n\n`);
  if (values['no-write']) return;
  const md = path.join(root, 'docs/BENCHMARKS.md');
  const text = existsSync(md) ? readFileSync(md, 'utf8') : '';
  const block = `${START}\n${table}\n${END}`;
  const i = text.indexOf(START);
  const j = text.indexOf(END);
  writeFileSync(md, i >= 0 && j > i ? `${text.slice(0, i)}${block}${text.slice(j + END.length)}` : `${text.trimEnd()}\n\n## HA platform: insert throughput against single (issue 18)\n\n${block}\n`);
  log('wrote the table to docs/BENCHMARKS.md');
}

main().catch((err: unknown) => {
  process.stderr.write(`[bench:platform] ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
