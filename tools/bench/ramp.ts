/**
 * The benchmark's load ramp (`npm run bench -- --ramp`), JMeter 's thread-group
 * shape: for each level (5,000, 10,000 and 15,000 requests by default), `users`
 * clients start one after another over the ramp-up (10 s), and together send
 * that many requests, each a read by `_id` or a write (an insert or an `$inc`),
 * mixed at `readShare`, as fast as they are answered. A request counts as an
 * error when it failed after the typed client's own retries (what a service
 * using dbaas sees); the retries are counted beside it. With `chaos`, the
 * kube-monkey faults of `npm run chaos` (a random worker, a random database,
 * the orchestrator) are injected one after another while each level runs.
 *
 * Runs its own cluster: two orchestrator child processes on a fresh namespace
 * (one leads; the clients are given both addresses, as a service would be
 * given several orchestrators or one proxy in front of them), master + 2
 * slaves, on the runtime asked for (process, docker or swarm). The chaos kills
 * the first orchestrator, leader or not, and starts it again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DbaasClient, DbaasClientError } from '../../client/dbaas-client.js';
import { removeDockerNamespace } from '../../orchestrator/runtimes/docker-runtime.js';
import { dockerClient } from '../../orchestrator/runtimes/index.js';
import { removeSwarmNamespace } from '../../orchestrator/runtimes/swarm-runtime.js';
import { containerSettings } from '../nemesis/containers.js';
import { inject, waitHealthy, type FaultContext, type FaultKind } from '../nemesis/faults.js';
import { purgeNamespace, repoRoot, workerDirs } from '../nemesis/infra.js';
import { OrchestratorProcess } from '../nemesis/orchestrator-process.js';
import { seededRandom } from '../nemesis/random.js';

export interface RampOptions {
  runtime: 'process' | 'docker' | 'swarm';
  totals: number[];
  rampUpMs: number;
  users: number;
  /** Share of reads in the mix (the rest are writes). */
  readShare: number;
  chaos: boolean;
  seed: number;
  port: number;
  /** First word of the namespace. */
  name: string;
  log: (line: string) => void;
}

export interface RampLevel {
  total: number;
  ok: number;
  errors: number;
  errorCodes: Record<string, number>;
  retries: number;
  reads: number;
  writes: number;
  durationMs: number;
  p50: number;
  p99: number;
  kills: string[];
  /** Kills after which the cluster was not whole again within the wait, and kills that could not be made. */
  notes: string[];
}

const CHAOS: readonly FaultKind[] = ['kill-worker', 'kill-database', 'restart-orchestrator'];
const TABLE = 'ramp';
const SEED_DOCS = 200;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function quantile(sorted: number[], q: number): number {
  return sorted.length === 0 ? NaN : (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number);
}

export async function runRamp(o: RampOptions): Promise<RampLevel[]> {
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'dbaas-ramp-'));
  const dataDir = path.join(workDir, 'data');
  const namespace = `${o.name}-${o.runtime}-${Date.now().toString(36)}`;
  const docker = o.runtime === 'process' ? undefined : dockerClient('unix:///var/run/docker.sock');
  const orchestrator = (port: number, log: string): OrchestratorProcess =>
    new OrchestratorProcess({
      entry: path.join(repoRoot(), 'dist/orchestrator/main.js'),
      port,
      namespace,
      dataDir,
      logFile: path.join(workDir, log),
      env: { DBAAS_RUNTIME: o.runtime, DBAAS_ZK_SESSION_TIMEOUT_MS: '2000', DBAAS_LOG_LEVEL: 'warn', ...(docker ? containerSettings() : {}) },
    });
  const primary = orchestrator(o.port, 'orchestrator.log');
  const second = orchestrator(o.port + 1, 'orchestrator-2.log');
  const api = new DbaasClient({ url: primary.url, timeoutMs: 5000, retry: { attempts: 1 } });
  const random = seededRandom(o.seed);
  const ctx: FaultContext = {
    primary,
    api,
    namespace,
    dataDir,
    secondPort: o.port + 2,
    zkSessionTimeoutMs: 2000,
    zkDownMs: 1000,
    expectedWorkers: 3,
    stableMs: 2000,
    random,
    log: o.log,
    ...(docker ? { docker } : {}),
  };
  const levels: RampLevel[] = [];
  try {
    await primary.start(120_000);
    const first = await waitHealthy(ctx, 120_000);
    if (!first.ok) throw new Error(`the cluster did not become whole: ${first.last}`);
    await second.start(120_000);
    const seeder = new DbaasClient({ url: primary.url });
    await seeder.insert(TABLE, Array.from({ length: SEED_DOCS }, (_, i) => ({ _id: `s${i}`, n: 0 })));
    o.log(`${o.runtime} cluster ready (${namespace}); ${SEED_DOCS} documents to read and update`);
    for (const [li, total] of o.totals.entries()) {
      levels.push(await runLevel(o, ctx, `${primary.url},${second.url}`, li, total));
      const healthy = await waitHealthy(ctx, 120_000);
      if (!healthy.ok) throw new Error(`not whole after level ${total}: ${healthy.last}`);
    }
  } finally {
    second.signal('SIGINT');
    await second.waitExit(60_000);
    primary.signal('SIGINT');
    await primary.waitExit(60_000);
    await purgeNamespace(namespace, workerDirs(dataDir, namespace)).catch(() => undefined);
    if (docker) await (o.runtime === 'swarm' ? removeSwarmNamespace(docker, namespace) : removeDockerNamespace(docker, namespace)).catch(() => undefined);
    rmSync(workDir, { recursive: true, force: true });
  }
  return levels;
}

async function runLevel(o: RampOptions, ctx: FaultContext, url: string, li: number, total: number): Promise<RampLevel> {
  const level: RampLevel = { total, ok: 0, errors: 0, errorCodes: {}, retries: 0, reads: 0, writes: 0, durationMs: 0, p50: NaN, p99: NaN, kills: [], notes: [] };
  const latencies: number[] = [];
  let issued = 0;
  let done = false;
  const started = Date.now();
  const user = async (u: number): Promise<void> => {
    await sleep(Math.round((u * o.rampUpMs) / o.users));
    const random = seededRandom(o.seed * 7919 + li * 1000 + u);
    const client = new DbaasClient({ url, readYourWrites: false, onRetry: () => void level.retries++ });
    while (issued < total) {
      const n = issued++;
      const t = Date.now();
      try {
        if (random() < o.readShare) {
          level.reads++;
          await client.read(TABLE, { where: { _id: `s${Math.floor(random() * SEED_DOCS)}` } });
        } else {
          level.writes++;
          if (random() < 0.5) await client.insert(TABLE, { _id: `l${li}-${n}`, u });
          else await client.update(TABLE, { _id: `s${Math.floor(random() * SEED_DOCS)}` }, { $inc: { n: 1 } });
        }
        level.ok++;
        latencies.push(Date.now() - t);
      } catch (err) {
        level.errors++;
        const code = err instanceof DbaasClientError ? err.code : (err as Error).name;
        level.errorCodes[code] = (level.errorCodes[code] ?? 0) + 1;
      }
    }
  };
  const chaos = async (): Promise<void> => {
    for (let k = 0; !done; k++) {
      const kind = CHAOS[Math.floor(ctx.random() * CHAOS.length)] as FaultKind;
      try {
        const r = await inject(kind, ctx, k);
        level.kills.push(`${kind}: ${r.text}`);
        const healthy = await waitHealthy(ctx, 120_000, r.gone ?? {});
        if (!healthy.ok) level.notes.push(`after ${kind}, NOT whole again within 120 s: ${healthy.last}`);
      } catch (err) {
        level.notes.push(`${kind} failed: ${(err as Error).message}`);
      }
      // A pause between kills, cut short when the level ends.
      for (let i = 0; i < 20 && !done; i++) await sleep(100);
    }
  };
  const killer = o.chaos ? chaos() : Promise.resolve();
  await Promise.all(Array.from({ length: o.users }, (_, u) => user(u)));
  level.durationMs = Date.now() - started;
  done = true;
  await killer;
  latencies.sort((a, b) => a - b);
  level.p50 = quantile(latencies, 0.5);
  level.p99 = quantile(latencies, 0.99);
  o.log(
    `${total} requests: ${level.ok} ok, ${level.errors} errors (${((100 * level.errors) / total).toFixed(2)} %), ${level.retries} client retries, ` +
      `${((1000 * level.ok) / level.durationMs).toFixed(0)} req/s over ${(level.durationMs / 1000).toFixed(1)} s, p50 ${level.p50} ms, p99 ${level.p99} ms` +
      (o.chaos ? `, ${level.kills.length} kills` : '') +
      (level.errors > 0 ? `; errors: ${Object.entries(level.errorCodes).map(([c, n]) => `${c} ${n}`).join(', ')}` : ''),
  );
  return level;
}

/** The ramp's rows, as markdown. */
export function rampTable(runs: Array<{ runtime: string; chaos: boolean; levels: RampLevel[] }>): string {
  const rows = ['| runtime | chaos | requests | ok | errors | error rate | client retries | throughput | p50 / p99 | kills |', '|---|---|---|---|---|---|---|---|---|---|'];
  for (const r of runs) {
    for (const l of r.levels) {
      rows.push(
        `| ${r.runtime} | ${r.chaos ? 'yes' : 'no'} | ${l.total.toLocaleString('en-US')} | ${l.ok} | ${l.errors} | ${((100 * l.errors) / l.total).toFixed(2)} % | ${l.retries} | ` +
          `${((1000 * l.ok) / l.durationMs).toFixed(0)} req/s | ${l.p50} / ${l.p99} ms | ${r.chaos ? l.kills.length : '-'} |`,
      );
    }
  }
  return rows.join('\n');
}

const RAMP_HELP = `npm run bench -- --ramp [options]

  --runtimes LIST    comma list of process, docker, swarm (default process,swarm)
  --chaos WHEN       no, yes or both (default both): kube-monkey kills during each level
  --totals LIST      requests per level (default 5000,10000,15000)
  --users N          clients, started evenly over the ramp-up (default 50)
  --ramp-up S        seconds over which the clients start (default 10)
  --read-share F     share of reads, 0..1 (default 0.7)
  --seed N           seed of the mix and the victims (default 19)
  --port P           orchestrator port (default 18430)
  --name WORD        first word of the namespaces (default ramp)
`;

/** `npm run bench -- --ramp …`: runs the ramp on each runtime, with and without chaos; prints the table. Exit code 1 when any request failed. */
export async function rampMain(argv: string[]): Promise<number> {
  const { parseArgs } = await import('node:util');
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        ramp: { type: 'boolean' },
        runtimes: { type: 'string', default: 'process,swarm' },
        chaos: { type: 'string', default: 'both' },
        totals: { type: 'string', default: '5000,10000,15000' },
        users: { type: 'string', default: '50' },
        'ramp-up': { type: 'string', default: '10' },
        'read-share': { type: 'string', default: '0.7' },
        seed: { type: 'string', default: '19' },
        port: { type: 'string', default: '18430' },
        name: { type: 'string', default: 'ramp' },
        help: { type: 'boolean', default: false },
      },
    }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${RAMP_HELP}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(RAMP_HELP);
    return 0;
  }
  const runtimes = values.runtimes.split(',').map((r) => r.trim());
  const chaosModes = values.chaos === 'both' ? [false, true] : values.chaos === 'yes' ? [true] : values.chaos === 'no' ? [false] : undefined;
  const totals = values.totals.split(',').map(Number);
  const bad = [
    ...runtimes.filter((r) => !['process', 'docker', 'swarm'].includes(r)).map((r) => `unknown runtime ${r}`),
    ...(chaosModes ? [] : [`--chaos must be no, yes or both`]),
    ...totals.filter((t) => !Number.isInteger(t) || t < 1).map((t) => `bad total ${t}`),
  ];
  if (bad.length > 0) {
    process.stderr.write(`${bad.join('; ')}\n\n${RAMP_HELP}`);
    return 2;
  }
  const runs: Array<{ runtime: string; chaos: boolean; levels: RampLevel[] }> = [];
  for (const runtime of runtimes as RampOptions['runtime'][]) {
    for (const chaos of chaosModes ?? []) {
      const log = (line: string): void => void process.stdout.write(`[ramp ${runtime}${chaos ? ' +chaos' : ''}] ${line}\n`);
      const levels = await runRamp({
        runtime,
        chaos,
        totals,
        users: Number(values.users),
        rampUpMs: Number(values['ramp-up']) * 1000,
        readShare: Number(values['read-share']),
        seed: Number(values.seed),
        port: Number(values.port),
        name: values.name,
        log,
      });
      runs.push({ runtime, chaos, levels });
      if (chaos) for (const l of levels) for (const k of [...l.kills, ...l.notes]) log(`  level ${l.total}: ${k}`);
    }
  }
  process.stdout.write(`\n${rampTable(runs)}\n`);
  return runs.some((r) => r.levels.some((l) => l.errors > 0)) ? 1 : 0;
}
