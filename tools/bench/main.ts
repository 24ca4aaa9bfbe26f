/**
 * `npm run bench`: measures dbaas against the parts it is made of.
 *
 *   npm run bench -- [--duration 5] [--quick] [--catchup-docs 100000] [--keys 1000]
 *                    [--no-write] [--json out.json] [--cells read:1,insert:64] [--no-extras] [--commit label]
 *   npm run bench -- --from-json out.json     (writes the report of a saved run, measures nothing)
 *
 * Starts a cluster (process runtime, 1 master + 2 slaves), warms up, then for
 * reads by key, inserts and updates at concurrency 1, 16 and 64 measures the
 * HTTP API (autocannon) and, in the same run, the same operation with the
 * mongodb driver straight against one worker's database; then a bare RabbitMQ
 * RPC round trip, a 10,000-document read, a new slave catching up on
 * 100,000 documents, and reads by `_id` in the 1,000-key table and in those
 * 100,000 documents, through the API and directly. Prints a table, writes docs/BENCHMARKS.md (between its
 * markers) and docs/benchmarks.svg, and exits 1 if any request failed.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { MongoClient, ObjectId, type Collection, type Document } from 'mongodb';
import { loadOrchestratorConfig } from '../../common/config.js';
import { BenchCluster, benchEnv, rssBytes } from './bench-cluster.js';
import { CpuMeter, findBrokerPid } from './cpu-meter.js';
import { keyReadLines, measureKeyReads, type KeyReads } from './key-reads.js';
import { closedLoop, httpLoad, type LoadResult } from './load.js';
import { failedRequests, markdownReport, spliceGenerated, svgChart, textReport, type BenchResults, type CatchUp, type Cell, type IndexFigures, type Op } from './report.js';
import { RpcEchoClient, startEchoServer } from './rpc-echo.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CONCURRENCY = [1, 16, 64] as const;
const OPS: Op[] = ['read', 'find', 'insert', 'update'];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const MiB = 1024 * 1024;

function log(line: string): void {
  process.stdout.write(`[bench] ${line}\n`);
}

/** Peak resident memory per role while sampling is on. */
class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  peaks = { orchestratorMb: 0, masterMb: 0, slaveMb: 0 };
  pids: { orchestrator: number; master: number[]; slaves: number[] } = { orchestrator: 0, master: [], slaves: [] };

  start(): void {
    this.timer ??= setInterval(() => this.sample(), 250);
  }

  sample(): void {
    const p = this.peaks;
    p.orchestratorMb = Math.max(p.orchestratorMb, rssBytes(this.pids.orchestrator) / MiB);
    for (const pid of this.pids.master) p.masterMb = Math.max(p.masterMb, rssBytes(pid) / MiB);
    for (const pid of this.pids.slaves) p.slaveMb = Math.max(p.slaveMb, rssBytes(pid) / MiB);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

function versionOf(cmd: string | undefined): string {
  if (!cmd) return 'unknown database';
  try {
    const out = execFileSync(cmd, ['--version'], { encoding: 'utf8', timeout: 5000 });
    const v = /version:\s*(\S+)/i.exec(out)?.[1] ?? out.split('\n')[0]?.trim();
    return `${path.basename(cmd).startsWith('mongod') ? 'mongod' : 'FerretDB'} ${v ?? '?'}`;
  } catch {
    return path.basename(cmd);
  }
}

function gitCommit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', 'common', 'orchestrator', 'worker'], { cwd: root, encoding: 'utf8' }).trim();
    return dirty ? `${head} (with uncommitted changes)` : head;
  } catch {
    return 'unknown';
  }
}

function machine(): string {
  const cpus = os.cpus();
  return `${cpus.length} × ${cpus[0]?.model.trim() ?? 'cpu'}, ${Math.round(os.totalmem() / 1024 ** 3)} GiB, ${os.type()} ${os.release()}`;
}

const newId = (): string => new ObjectId().toHexString();

function userDoc(i: number, id: string): Document {
  return { _id: id, username: `user${i}`, city: ['lisbon', 'porto', 'faro'][i % 3], rating: 4 + (i % 10) / 10, n: 0 };
}

function rideDoc(i: number): Document {
  return { no: i, created_by: `user${i % 1000}`, source: i % 200, destination: (i * 7) % 200, timestamp: new Date().toISOString(), users: [], fare: 12.5 };
}

/** Writes docs/benchmarks.svg and the generated section of docs/BENCHMARKS.md. */
function writeReports(results: BenchResults): void {
  const mdPath = path.join(root, 'docs/BENCHMARKS.md');
  writeFileSync(path.join(root, 'docs/benchmarks.svg'), svgChart(results));
  writeFileSync(mdPath, spliceGenerated(existsSync(mdPath) ? readFileSync(mdPath, 'utf8') : undefined, markdownReport(results, 'benchmarks.svg')));
  log('wrote docs/BENCHMARKS.md and docs/benchmarks.svg');
}

/** Loads `catchupDocs` documents, then asks for a third slave and times it until it serves. */
async function measureCatchUp(cluster: BenchCluster, catchupDocs: number): Promise<CatchUp> {
  log(`loading ${catchupDocs.toLocaleString('en-US')} documents for the catch-up …`);
  const loadStart = Date.now();
  let next = 0;
  const loader = async (): Promise<void> => {
    while (next < catchupDocs) {
      const from = next;
      next += 1000;
      const n = Math.min(1000, catchupDocs - from);
      await cluster.write({ table: 'bench_catchup', operation: 'insert', data: Array.from({ length: n }, (_, j) => rideDoc(from + j)) });
    }
  };
  await Promise.all([loader(), loader(), loader(), loader()]);
  await cluster.settled(600_000);
  const loadMs = Date.now() - loadStart;
  // The loaded table is not counted through the API: FerretDB 1.24 counts by reading every document
  // (9.1 s at 100,000 here, past the request timeout on a busy machine).
  let total = catchupDocs;
  for (const table of ['bench_users', 'bench_rides', 'bench_big']) {
    total += await cluster.client.count(table);
  }
  log(`asking for a third slave (the master holds ${total.toLocaleString('en-US')} documents) …`);
  const before = new Set((await cluster.workers()).map((w) => w.id));
  const joinStart = Date.now();
  await cluster.client.scale(3);
  let newcomer: string | undefined;
  for (;;) {
    const ws = await cluster.workers();
    const fresh = ws.find((w) => !before.has(w.id));
    if (fresh?.state === 'slave') {
      newcomer = fresh.id;
      break;
    }
    if (Date.now() - joinStart > 600_000) throw new Error('the new slave did not serve within 10 minutes');
    await sleep(50);
  }
  const joinMs = Date.now() - joinStart;
  const snapshotLine = readFileSync(path.join(cluster.dataDir, cluster.namespace, newcomer, 'worker.log'), 'utf8')
    .split('\n')
    .map((l) => {
      try {
        return JSON.parse(l) as { msg?: string; ms?: number; documents?: number };
      } catch {
        return {};
      }
    })
    .find((l) => l.msg === 'snapshot copied from master');
  return {
    docs: total,
    loadedDocs: catchupDocs,
    joinMs,
    loadMs,
    ...(snapshotLine?.ms !== undefined && snapshotLine.documents !== undefined ? { copyMs: snapshotLine.ms, copiedDocs: snapshotLine.documents } : {}),
  };
}

/** `POST /api/v1/db/indexes`; throws unless it answers 200. */
/** One insert at a time into `bench_during` until stopped: what writes wait while an index is built (each write's ms). */
function writesMeanwhile(cluster: BenchCluster): { stop(): Promise<number[]> } {
  let going = true;
  const times: number[] = [];
  const loop = (async () => {
    while (going) {
      const t = performance.now();
      await cluster.write({ table: 'bench_during', operation: 'insert', data: { at: Date.now() } });
      times.push(performance.now() - t);
    }
  })();
  return {
    stop: async () => {
      going = false;
      await loop.catch(() => undefined);
      return times;
    },
  };
}

async function createIndex(url: string, body: unknown): Promise<void> {
  const res = await fetch(`${url}/api/v1/db/indexes`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (res.status !== 200) throw new Error(`creating an index answered ${res.status}: ${await res.text()}`);
}

const medianOf = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

/**
 * Issue 17 at the catch-up's size: 1,000-document inserts with their own `_id`s
 * into an empty table and into the large one (the duplicate check must cost per
 * id, not per table; before any secondary index, so both pay the same checks),
 * then a unique index built on its `no` while one writer inserts single
 * documents into another table (how long writes wait).
 */
async function measureIndexes(cluster: BenchCluster, docs: number): Promise<IndexFigures> {
  const ownIds = async (table: string, k: number): Promise<number> => {
    const data = Array.from({ length: 1000 }, (_, j) => ({ _id: `own-${k}-${j}-${randomBytes(4).toString('hex')}`, ...rideDoc(docs + k * 1000 + j) }));
    const t = performance.now();
    await cluster.write({ table, operation: 'insert', data });
    return performance.now() - t;
  };
  const empty: number[] = [];
  const full: number[] = [];
  for (let k = 0; k < 5; k++) {
    empty.push(await ownIds(`bench_own_${k}`, k));
    full.push(await ownIds('bench_catchup', k + 5));
  }
  let during: number[] = [];
  let plainDuring: number[] = [];
  const writer = writesMeanwhile(cluster);
  const t0 = performance.now();
  try {
    // Past the request timeout the build goes on (the master answers when done): then wait until it is listed.
    await createIndex(cluster.url, { table: 'bench_catchup', keys: 'no', unique: true }).catch(async (err: unknown) => {
      if (!/DBAAS_RPC_TIMEOUT/.test((err as Error).message)) throw err;
      log('the index build outlived the request timeout; waiting until it is listed …');
      for (;;) {
        const res = await fetch(`${cluster.url}/api/v1/db/indexes?table=bench_catchup`);
        if (res.status === 200 && ((await res.json()) as Array<{ name: string }>).some((i) => i.name === 'no_1')) return;
        if (performance.now() - t0 > 300_000) throw new Error('the index was not listed within 5 minutes');
        await sleep(100);
      }
    });
  } finally {
    during = await writer.stop();
  }
  const buildMs = performance.now() - t0;
  // A non-unique index needs no check of the data: only the database's build holds the writes.
  const plainWriter = writesMeanwhile(cluster);
  const t1 = performance.now();
  try {
    await createIndex(cluster.url, { table: 'bench_catchup', keys: 'source' });
  } finally {
    plainDuring = await plainWriter.stop();
  }
  const plainBuildMs = performance.now() - t1;
  return {
    plainBuildMs,
    maxWriteMsDuringPlainBuild: Math.max(0, ...plainDuring),
    docs,
    buildMs,
    writesDuringBuild: during.length,
    maxWriteMsDuringBuild: Math.max(0, ...during),
    ownIdInsertEmptyMs: medianOf(empty),
    ownIdInsertFullMs: medianOf(full),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '5' },
      quick: { type: 'boolean', default: false },
      'catchup-docs': { type: 'string' },
      keys: { type: 'string', default: '1000' },
      'no-write': { type: 'boolean', default: false },
      json: { type: 'string' },
      /** Only these cells, e.g. `read:1,insert:64` (for profiling). */
      cells: { type: 'string' },
      /** Skip the RPC round trip, the large reads and the catch-up. */
      'no-extras': { type: 'boolean', default: false },
      /** What to record as the commit measured (default: git rev-parse HEAD of this checkout). */
      commit: { type: 'string' },
      /** Measure nothing: write the report of a run saved with --json. */
      'from-json': { type: 'string' },
    },
  });
  if (values['from-json']) {
    const saved = JSON.parse(readFileSync(values['from-json'], 'utf8')) as BenchResults;
    process.stdout.write(`\n${textReport(saved)}\n\n`);
    if (!values['no-write']) writeReports(saved);
    return;
  }
  const wanted = values.cells?.split(',').map((c) => c.trim());
  const extras = !values['no-extras'];
  const quick = values.quick;
  const durationSec = quick ? 2 : Number(values.duration);
  const keysN = Number(values.keys);
  const catchupDocs = Number(values['catchup-docs'] ?? (quick ? 10_000 : 100_000));
  const config = loadOrchestratorConfig();
  if (!config.dbBin) throw new Error('DBAAS_DB_BIN is not set: run `npm run bench` (scripts/bench.sh sets it up)');

  const loadBefore = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  if (os.loadavg()[0]! > os.cpus().length * 0.5) log(`WARNING: the machine is busy (load average ${loadBefore}); figures will be low and noisy`);

  const env = benchEnv(config);
  const cluster = new BenchCluster({ slaves: 2, env, log });
  const sampler = new RssSampler();
  const echoQueue = `bench-echo-${randomBytes(3).toString('hex')}`;
  const clients: MongoClient[] = [];
  let echo: Awaited<ReturnType<typeof startEchoServer>> | undefined;
  const rpcClient = new RpcEchoClient(config.amqpUrl, echoQueue);
  let catchUpFailed = false;

  try {
    log(`starting a cluster (namespace ${cluster.namespace}) …`);
    await cluster.start();
    const workers = await cluster.workers();
    const master = workers.find((w) => w.role === 'master');
    const slaves = workers.filter((w) => w.role === 'slave');
    const slave = slaves[0];
    if (!master || !slave) throw new Error('the cluster has no master or no slave');
    sampler.pids = { orchestrator: cluster.pid, master: [master.pid], slaves: slaves.map((w) => w.pid) };
    const cpu = new CpuMeter();
    const broker = findBrokerPid();
    cpu.setPids([
      [process.pid, 'load generator'],
      [cluster.pid, 'orchestrator'],
      [master.pid, 'master'],
      ...slaves.map((w): [number, 'slaves'] => [w.pid, 'slaves']),
      ...workers.map((w): [number, 'databases'] => [cluster.unit(w.id).dbPid, 'databases']),
      ...(broker ? [[broker, 'rabbitmq'] as [number, 'rabbitmq']] : []),
    ]);
    log(`cluster up: orchestrator pid ${cluster.pid}, master pid ${master.pid}, slave pids ${slaves.map((w) => w.pid).join(', ')}`);

    // The direct path: one slave's own database server.
    const direct = new MongoClient(cluster.dbUrl(slave.id), { maxPoolSize: 100 });
    clients.push(direct);
    await direct.connect();
    const directReads: Collection<Document> = direct.db('dbaas').collection('bench_users');
    const directDb = direct.db(`bench_direct_${randomBytes(3).toString('hex')}`);
    const directUsers = directDb.collection<Document>('users');
    const directRides = directDb.collection<Document>('rides');

    log(`seeding ${keysN} keys …`);
    const keys = Array.from({ length: keysN }, () => newId());
    for (let i = 0; i < keysN; i += 1000) {
      const docs = keys.slice(i, i + 1000).map((id, j) => userDoc(i + j, id));
      await cluster.write({ table: 'bench_users', operation: 'insert', data: docs });
      await directUsers.insertMany(docs.map((d) => ({ ...d })));
    }
    // Reads by an indexed field (issue 17): a unique index on username, created through the API (it replicates to the slaves).
    await createIndex(cluster.url, { table: 'bench_users', keys: 'username', unique: true });
    await cluster.settled();
    const key = (): string => keys[Math.floor(Math.random() * keys.length)] as string;
    const username = (): string => `user${Math.floor(Math.random() * keysN)}`;

    let rideNo = 0;
    const bodies: Record<Op, () => unknown> = {
      read: () => ({ table: 'bench_users', where: { _id: key() } }),
      find: () => ({ table: 'bench_users', where: { username: username() } }),
      insert: () => ({ table: 'bench_rides', operation: 'insert', data: rideDoc(rideNo++) }),
      update: () => ({ table: 'bench_users', operation: 'update', where: { _id: key() }, data: { $inc: { n: 1 } } }),
    };
    const directOps: Record<Op, () => Promise<unknown>> = {
      read: () => directReads.findOne({ _id: key() as unknown as ObjectId }),
      find: () => directReads.findOne({ username: username() }),
      insert: () => directRides.insertOne({ _id: newId() as unknown as ObjectId, ...rideDoc(rideNo++) }),
      update: () => directUsers.updateOne({ _id: key() as unknown as ObjectId }, { $inc: { n: 1 } }),
    };
    const http = (op: Op, c: number, sec: number): Promise<LoadResult> =>
      httpLoad({ url: cluster.url, path: op === 'read' || op === 'find' ? '/api/v1/db/read' : '/api/v1/db/write', connections: c, durationSec: sec, body: bodies[op] });

    log('warming up …');
    for (const op of OPS.filter((o) => !wanted || wanted.some((w) => w.startsWith(`${o}:`)))) {
      await http(op, 16, quick ? 1 : 2);
      await closedLoop(16, 1, directOps[op]);
    }
    await cluster.settled();

    sampler.start();
    const cells: Cell[] = [];
    for (const op of OPS) {
      for (const c of CONCURRENCY) {
        if (wanted && !wanted.includes(`${op}:${c}`)) continue;
        cpu.begin();
        const viaDbaas = await http(op, c, durationSec);
        const settleStart = Date.now();
        await cluster.settled();
        // Replication that finishes after the last answer is part of the cost.
        const dbaasCpu = cpu.end();
        const settleMs = Date.now() - settleStart;
        cpu.begin();
        const viaDriver = await closedLoop(c, durationSec, directOps[op]);
        const directCpu = cpu.end();
        cells.push({ op, concurrency: c, dbaas: viaDbaas, direct: viaDriver, cpu: { dbaas: dbaasCpu, direct: directCpu } });
        log(
          `${op.padEnd(6)} c=${String(c).padStart(2)}: dbaas ${Math.round(viaDbaas.rps)} req/s p50 ${viaDbaas.p50.toFixed(2)} ms` +
            ` | direct ${Math.round(viaDriver.rps)} req/s p50 ${viaDriver.p50.toFixed(2)} ms` +
            (op === 'read' || op === 'find' ? '' : ` | replicas caught up ${settleMs} ms after`) +
            (viaDbaas.errors + viaDriver.errors > 0 ? ` | ERRORS ${viaDbaas.errors}/${viaDriver.errors}: ${[...viaDbaas.errorSamples, ...viaDriver.errorSamples].join('; ')}` : ''),
        );
      }
    }
    sampler.stop();
    sampler.sample();
    const memory = { ...sampler.peaks };
    sampler.peaks = { orchestratorMb: 0, masterMb: 0, slaveMb: 0 };

    const rpc: BenchResults['rpc'] = [];
    const bigReads: BenchResults['bigReads'] = [];
    let catchUp: CatchUp | undefined;
    const keyReads: KeyReads[] = [];
    let indexes: IndexFigures | undefined;
    if (extras) {
      log('bare RabbitMQ RPC round trip …');
      echo = await startEchoServer(config.amqpUrl, echoQueue);
      await rpcClient.start();
      const payload = Buffer.from(JSON.stringify({ v: 1, command: { table: 'bench_users', where: { _id: newId() }, count: false } }));
      await closedLoop(16, 1, () => rpcClient.call(payload));
      for (const c of CONCURRENCY) rpc.push({ concurrency: c, result: await closedLoop(c, Math.max(2, durationSec / 2), () => rpcClient.call(payload)) });

      log('large reads …');
      sampler.start();
      for (let i = 0; i < 10_000; i += 1000) {
        await cluster.write({ table: 'bench_big', operation: 'insert', data: Array.from({ length: 1000 }, (_, j) => rideDoc(i + j)) });
      }
      await cluster.settled();
      const directBig = direct.db('dbaas').collection('bench_big');
      for (const docs of [1000, 10_000]) {
        const dbaasMs: number[] = [];
        const directMs: number[] = [];
        let bytes = 0;
        for (let k = 0; k < 5; k++) {
          let t = performance.now();
          const res = await fetch(`${cluster.url}/api/v1/db/read`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ table: 'bench_big', where: {}, limit: docs }),
          });
          const text = await res.text();
          dbaasMs.push(performance.now() - t);
          bytes = text.length;
          const n = (JSON.parse(text) as unknown[]).length;
          if (res.status !== 200 || n !== docs) throw new Error(`the ${docs}-document read answered ${res.status} with ${n} documents`);
          t = performance.now();
          await directBig.find({}).limit(docs).toArray();
          directMs.push(performance.now() - t);
        }
        const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
        bigReads.push({ docs, bytes, dbaasMs: med(dbaasMs), directMs: med(directMs) });
      }
      sampler.stop();
      sampler.sample();

      catchUp = await measureCatchUp(cluster, catchupDocs).catch((err: unknown) => {
        log(`FAIL: the catch-up was not measured: ${(err as Error).message}`);
        catchUpFailed = true;
        return undefined;
      });

      // Issue 17: a read by _id must not cost time proportional to the table.
      log('reads by _id in the small and the large table …');
      keyReads.push(await measureKeyReads(cluster.url, 'bench_users', keys, directReads, 300));
      const bigTable = direct.db('dbaas').collection<Document>('bench_catchup');
      const bigIds = (await bigTable.find({}, { projection: { _id: 1 } }).toArray()).map((d) => String(d['_id']));
      if (bigIds.length > 0) keyReads.push(await measureKeyReads(cluster.url, 'bench_catchup', bigIds, bigTable, 300));
      if (catchUp) {
        log('building a unique index on the large table, inserts with own _ids …');
        indexes = await measureIndexes(cluster, catchupDocs).catch((err: unknown) => {
          log(`FAIL: the index figures were not measured: ${(err as Error).message}`);
          catchUpFailed = true;
          return undefined;
        });
        await cluster.settled();
        keyReads.push(await measureKeyReads(cluster.url, 'bench_users', Array.from({ length: keysN }, (_, i) => `user${i}`), directReads, 300, 'username'));
        keyReads.push(await measureKeyReads(cluster.url, 'bench_catchup', Array.from({ length: catchupDocs }, (_, i) => i), bigTable, 300, 'no'));
      }
      for (const line of keyReadLines(keyReads)) log(line.slice(2));
    }

    const results: BenchResults = {
      env: {
        date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
        machine: machine(),
        node: process.version,
        ferretdb: `${versionOf(config.dbBin)} on ${config.dbBackend === 'postgresql' ? 'PostgreSQL' : 'SQLite'}`,
        rabbitmq: rpcClient.brokerVersion,
        commit: values.commit ?? gitCommit(),
        loadBefore,
        durationSec,
        keys: keysN,
      },
      cells,
      rpc,
      memory,
      memoryBigReads: sampler.peaks,
      bigReads,
      ...(catchUp ? { catchUp } : {}),
      ...(keyReads.length > 0 ? { keyReads } : {}),
      ...(indexes ? { indexes } : {}),
    };
    process.stdout.write(`\n${textReport(results)}\n\n`);
    if (values.json) writeFileSync(values.json, JSON.stringify(results, null, 2));
    if (!values['no-write']) writeReports(results);
    const failed = failedRequests(results) + (catchUpFailed ? 1 : 0);
    if (failed > 0) {
      log(`FAIL: ${failed} request(s) failed`);
      process.exitCode = 1;
    }
  } finally {
    sampler.stop();
    await rpcClient.close().catch(() => undefined);
    echo?.kill('SIGTERM');
    for (const c of clients) await c.close().catch(() => undefined);
    log('stopping the cluster …');
    await cluster.stop(config.amqpUrl, config.zkConnect);
  }
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    process.stderr.write(`[bench] ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
