/**
 * `npm run bench:catch-up`: how long a new slave takes to serve, against the
 * data and against the history (issue 16's table), on one cluster:
 *
 * 1. 200 documents, no history;
 * 2. the same 200 documents after 20,000 `$inc` updates to them;
 * 3. the same, with a writer running at about 200 writes/s;
 * 4. 100,000 more documents loaded in bulk.
 *
 * Each case asks for one more slave and times it from the request until it
 * serves; the new slave's log gives the copy itself (documents, ms) and when its
 * request ledger was copied. Prints a table and writes it as JSON (--json FILE).
 */
import { writeFileSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { clusterEnv, loadOrchestratorConfig } from '../../common/config.js';
import { BenchCluster } from './bench-cluster.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function log(line: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

export interface CatchUpCase {
  name: string;
  /** Documents on the master when the slave was asked for. */
  documents: number;
  /** Entries the master had written (its seq). */
  history: number;
  /** Asked for → serving. */
  servedMs: number;
  /** The copy as the new slave logged it. */
  copyMs?: number;
  copiedDocs?: number;
  /** Ledger records copied, and how long that took (beside the copy). */
  ledgerRecords?: number;
  ledgerMs?: number;
  /** Writes acknowledged per second while the slave joined (case 3). */
  writesPerSec?: number;
}

interface LogLine {
  msg?: string;
  ms?: number;
  documents?: number;
  records?: number;
}

function workerLog(cluster: BenchCluster, id: string): LogLine[] {
  return readFileSync(path.join(cluster.dataDir, cluster.namespace, id, 'worker.log'), 'utf8')
    .split('\n')
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as LogLine];
      } catch {
        return [];
      }
    });
}

async function addSlave(cluster: BenchCluster, name: string, writes?: () => number): Promise<CatchUpCase> {
  const ws = await cluster.workers();
  const before = new Set(ws.map((w) => w.id));
  const master = ws.find((w) => w.role === 'master');
  let documents = 0;
  for (const t of ['cu_small', 'cu_big']) documents += await cluster.client.count(t);
  const slaves = ws.filter((w) => w.role === 'slave').length;
  const writesBefore = writes?.() ?? 0;
  const started = Date.now();
  await cluster.client.scale(slaves + 1);
  let id: string | undefined;
  for (;;) {
    const fresh = (await cluster.workers()).find((w) => !before.has(w.id));
    if (fresh?.state === 'slave') {
      id = fresh.id;
      break;
    }
    if (Date.now() - started > 600_000) throw new Error(`${name}: the new slave did not serve within 10 minutes`);
    await sleep(20);
  }
  const servedMs = Date.now() - started;
  // What the orchestrator said while this slave started (failed tries, extensions).
  const said = (await cluster.client.events().catch(() => []))
    .filter((e) => Date.parse(e.at) >= started && /start|slave/.test(e.reason))
    .map((e) => `${e.at.slice(11, 19)} ${e.reason}`);
  for (const line of said) log(`  audit: ${line}`);
  const writesPerSec = writes ? Math.round(((writes() - writesBefore) * 1000) / servedMs) : undefined;
  await sleep(500);
  const lines = workerLog(cluster, id);
  const copy = lines.find((l) => l.msg === 'snapshot copied from master');
  const ledger = lines.find((l) => l.msg === 'request ledger copied from master');
  const c: CatchUpCase = {
    name,
    documents,
    history: master?.appliedSeq ?? 0,
    servedMs,
    ...(copy?.ms !== undefined ? { copyMs: copy.ms, copiedDocs: copy.documents ?? 0 } : {}),
    ...(ledger?.ms !== undefined ? { ledgerMs: ledger.ms, ledgerRecords: ledger.records ?? 0 } : {}),
    ...(writesPerSec === undefined ? {} : { writesPerSec }),
  };
  log(`${name}: served after ${servedMs} ms (${JSON.stringify(c)})`);
  return c;
}

/** Runs `n` writes from `concurrency` loops. */
async function burst(n: number, concurrency: number, write: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) await write(next++);
    }),
  );
}

export function catchUpTable(cases: readonly CatchUpCase[]): string {
  const base = cases[0]?.servedMs ?? 1;
  const rows = cases.map(
    (c) =>
      `| ${c.name} | ${c.documents.toLocaleString('en-US')} | ${c.history.toLocaleString('en-US')} | ${(c.servedMs / 1000).toFixed(2)} s | ×${(c.servedMs / base).toFixed(2)} | ${
        c.copyMs === undefined ? '–' : `${c.copiedDocs?.toLocaleString('en-US')} docs in ${(c.copyMs / 1000).toFixed(2)} s`
      } | ${c.ledgerMs === undefined ? '–' : `${c.ledgerRecords?.toLocaleString('en-US')} in ${(c.ledgerMs / 1000).toFixed(2)} s`} | ${c.writesPerSec ?? '–'} |`,
  );
  return [
    '| situation | documents | history (seq) | new slave serving after | vs. case 1 | snapshot copy | ledger copied (beside) | writes/s meanwhile |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { json: { type: 'string' }, 'big-docs': { type: 'string', default: '100000' }, incs: { type: 'string', default: '20000' } } });
  const config = loadOrchestratorConfig();
  if (!config.dbBin) throw new Error('DBAAS_DB_BIN is not set: run `npm run bench:catch-up` (it sets it up)');
  log(`load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const cluster = new BenchCluster({
    slaves: 1,
    env: {
      ...clusterEnv(config),
      DBAAS_DB_BIN: config.dbBin,
      DBAAS_DB_BACKEND: config.dbBackend,
      ...(config.pgUrl ? { DBAAS_PG_URL: config.pgUrl } : {}),
      DBAAS_LOG_LEVEL: 'info',
      DBAAS_REQUEST_TIMEOUT_MS: '30000',
      DBAAS_MAX_SLAVES: '8',
    },
    log,
  });
  const cases: CatchUpCase[] = [];
  try {
    log(`starting a cluster (namespace ${cluster.namespace}) …`);
    await cluster.start();
    await cluster.write({ table: 'cu_small', operation: 'insert', data: Array.from({ length: 200 }, (_, i) => ({ _id: `k${i}`, n: 0 })) });
    await cluster.settled();
    cases.push(await addSlave(cluster, '200 documents, no history'));

    const incs = Number(values.incs);
    log(`${incs} $inc updates to the 200 documents …`);
    const t0 = Date.now();
    await burst(incs, 8, (i) => cluster.write({ table: 'cu_small', operation: 'update', where: { _id: `k${i % 200}` }, data: { $inc: { n: 1 } } }));
    log(`… in ${Date.now() - t0} ms`);
    await cluster.settled(600_000);
    cases.push(await addSlave(cluster, `the same 200 documents after ${incs.toLocaleString('en-US')} $inc`));

    // A writer aiming at 200 writes/s while the next slave joins: 8 loops of 25 writes/s each (the machine may allow fewer;
    // the table reports what was acknowledged).
    let stop = false;
    let written = 0;
    const writers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const t = Date.now();
        await cluster.write({ table: 'cu_small', operation: 'update', where: { _id: `k${(i * 8 + w) % 200}` }, data: { $inc: { n: 1 } } });
        written += 1;
        await sleep(Math.max(0, 40 - (Date.now() - t)));
      }
    });
    await sleep(2000);
    cases.push(await addSlave(cluster, 'the same, with a writer running', () => written));
    stop = true;
    await Promise.all(writers);
    await cluster.settled(600_000);

    const big = Number(values['big-docs']);
    log(`loading ${big.toLocaleString('en-US')} documents …`);
    await burst(Math.ceil(big / 1000), 4, (i) => cluster.write({ table: 'cu_big', operation: 'insert', data: Array.from({ length: Math.min(1000, big - i * 1000) }, (_, j) => ({ i: i * 1000 + j, source: (i * 7 + j) % 50, note: 'x'.repeat(120) })) }));
    await cluster.settled(600_000);
    cases.push(await addSlave(cluster, `${big.toLocaleString('en-US')} more documents loaded in bulk`));
  } finally {
    await cluster.stop(config.amqpUrl, config.zkConnect);
  }
  const table = catchUpTable(cases);
  process.stdout.write(`\n${table}\n\n`);
  if (values.json) writeFileSync(values.json, JSON.stringify({ at: new Date().toISOString(), load: os.loadavg(), cases }, null, 2));
}

main().catch((err: unknown) => {
  log(`catch-up benchmark failed: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
});
