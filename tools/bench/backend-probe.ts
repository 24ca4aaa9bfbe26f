/**
 * `node dist/tools/bench/backend-probe.js`: which database server behind a worker
 * answers lookups without a scan (issue 17).
 *
 *   node dist/tools/bench/backend-probe.js [--backends sqlite,pg-plain,pg-companion]
 *        [--sizes 1000,100000] [--reads 300] [--scan-reads 30] [--batches 5]
 *        [--ferretdb /path/ferretdb] [--pg-url postgres://postgres@127.0.0.1:15432/postgres]
 *        [--port 18410] [--budget-s 90] [--json out.json]
 *
 * For each backend it starts one FerretDB of its own (what the process runtime
 * starts for one worker), fills one table up to each size (1,000 documents per
 * insertMany, an index on `username` created first, as a user would), and at
 * each size times with the mongodb driver, one request at a time:
 * - reads of one document by `_id`, by the indexed `username` and by the
 *   unindexed `city` (`findOne`, as the worker reads one key), random keys,
 *   and of an `_id` that is not there (a per-id duplicate check);
 * - `replaceOne` by `_id` (how the master and the slaves write an update);
 * - 1,000-document inserts that carry their own `_id`s, split into the
 *   worker's duplicate check (`find({_id: {$in: ids}})`) and the `insertMany`;
 * - the query plan FerretDB reports (`explain`) for each read.
 * A cell stops early, with at least 20 samples, once it has taken `--budget-s`
 * (reads that scan 100,000 documents on SQLite take seconds each); the report
 * gives each cell's sample count.
 *
 * Backends: `sqlite` (FerretDB's SQLite handler, today's default), `pg-plain`
 * (FerretDB's PostgreSQL handler as it comes) and `pg-companion` (the same with
 * the companion-index triggers of
 * orchestrator/runtimes/postgresql-databases.ts, as the process runtime sets
 * up a worker's database). The PostgreSQL ones need a server that `--pg-url`
 * reaches as a superuser (`scripts/setup.sh` with DBAAS_DB_BACKEND=postgresql
 * starts one and writes DBAAS_PG_URL to .dbaas/runtime.env) and `psql`. Each
 * run drops and recreates its own databases (`b_probe_*`) and state directories
 * (under the system's temporary directory); nothing else is touched.
 */
import { seededRandom } from '../nemesis/random.js';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { MongoClient, type Collection, type Document } from 'mongodb';
import { waitFor } from '../../common/backoff.js';
import { loadOrchestratorConfig } from '../../common/config.js';
import { canConnect } from '../../common/probes.js';
import { COMPANION_INDEX_SQL, databaseUrl, ferretdbUrl, findPsql } from '../../orchestrator/runtimes/postgresql-databases.js';

const BACKENDS = ['sqlite', 'pg-plain', 'pg-companion'] as const;
type Backend = (typeof BACKENDS)[number];
interface ProbeDoc {
  _id: string;
  [key: string]: unknown;
}
type Coll = Collection<ProbeDoc>;

interface Timing {
  n: number;
  medianMs: number;
  p90Ms: number;
}

interface SizeResult {
  docs: number;
  byId: Timing;
  /** A lookup of an `_id` that is not there (what a per-id duplicate check costs per id). */
  missingId: Timing;
  byIndexed: Timing;
  byUnindexed: Timing;
  replaceById: Timing;
  /** The worker's duplicate check of 1,000 new ids (`$in`). */
  dupCheck1000: Timing;
  /** insertMany of 1,000 documents with their own `_id`s. */
  insert1000: Timing;
  plans: { byId: string; byIndexed: string; byUnindexed: string };
}

interface BackendResult {
  backend: Backend;
  loadMs: number;
  sizes: SizeResult[];
}

function log(line: string): void {
  process.stdout.write(`[backend-probe] ${line}\n`);
}


function doc(i: number): ProbeDoc {
  return {
    _id: `k${i}`,
    username: `user${i}`,
    city: `city${i}`,
    n: i,
    created: new Date(Date.UTC(2026, 10, 1) + i * 1000).toISOString(),
    tags: ['rider', i % 2 === 0 ? 'even' : 'odd'],
    note: 'x'.repeat(80),
  };
}

function summarize(samples: number[]): Timing {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
  return { n: s.length, medianMs: round(at(0.5)), p90Ms: round(at(0.9)) };
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

/** Seconds one cell may take; past it a cell stops at {@link MIN_SAMPLES} samples or more (a scan of 100,000 documents on SQLite takes seconds). */
let budgetMs = 90_000;
const MIN_SAMPLES = 20;

async function timed(n: number, fn: (i: number) => Promise<unknown>): Promise<Timing> {
  const samples: number[] = [];
  const started = performance.now();
  for (let i = 0; i < n; i++) {
    if (i >= MIN_SAMPLES && performance.now() - started > budgetMs) break;
    const t0 = performance.now();
    await fn(i);
    samples.push(performance.now() - t0);
  }
  return summarize(samples);
}

function psql(url: string, sql: string): void {
  execFileSync(findPsql(), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url, '-f', '-'], { input: sql, stdio: ['pipe', 'ignore', 'inherit'] });
}

/** A fresh PostgreSQL database for one backend, set up as the process runtime sets up a worker's. */
function freshPgDatabase(adminUrl: string, name: string, companion: boolean): string {
  psql(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  psql(adminUrl, `CREATE DATABASE ${name}`);
  const url = databaseUrl(adminUrl, name);
  if (companion) psql(url, COMPANION_INDEX_SQL);
  return url;
}

class Server {
  private child: ChildProcess | undefined;
  readonly dir: string;

  constructor(
    private readonly bin: string,
    readonly backend: Backend,
    readonly port: number,
    private readonly pgUrl: string | undefined,
  ) {
    this.dir = mkdtempSync(path.join(os.tmpdir(), `b-probe-${backend}-`));
  }

  async start(): Promise<void> {
    const handler =
      this.backend === 'sqlite' ? ['--handler=sqlite', `--sqlite-url=file:${this.dir}/`] : ['--handler=postgresql', `--postgresql-url=${ferretdbUrl(this.pgUrl ?? '')}`];
    this.child = spawn(
      this.bin,
      [...handler, `--listen-addr=127.0.0.1:${this.port}`, `--state-dir=${this.dir}`, '--debug-addr=-', '--telemetry=disable', '--log-level=warn'],
      { stdio: ['ignore', 'ignore', 'ignore'] },
    );
    await waitFor(async () => ((await canConnect(this.port)) ? true : undefined), 20_000, () => new Error(`FerretDB (${this.backend}) did not listen on ${this.port}`), 50);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** One line for the plan FerretDB reports: pushdown, and the plan's first nodes. */
async function planOf(client: MongoClient, filter: Document): Promise<string> {
  const ex = await client.db('probe').command({ explain: { find: 't', filter, limit: 1 }, verbosity: 'queryPlanner' });
  const qp: unknown = ex['queryPlanner'];
  const nodes: string[] = [];
  const walk = (p: unknown): void => {
    if (!p || typeof p !== 'object') return;
    const o = p as Record<string, unknown>;
    if (typeof o['Node Type'] === 'string') nodes.push(`${o['Node Type']}${typeof o['Index Name'] === 'string' ? ` on ${o['Index Name']}` : ''}`);
    if (Array.isArray(o['Plans'])) for (const c of o['Plans']) walk(c);
    if (o['Plan']) walk(o['Plan']);
  };
  const sqliteRows = (qp as { Plan?: unknown } | undefined)?.Plan;
  if (Array.isArray(sqliteRows) && sqliteRows.every((r) => typeof r === 'string')) {
    // SQLite: EXPLAIN QUERY PLAN rows, "id=2 parent=0 notused=0 detail=SCAN t_…"
    for (const r of sqliteRows as string[]) nodes.push(r.replace(/^.*detail=/, ''));
  }
  if (nodes.length === 0) walk(qp);
  return `pushdown ${String(ex['filterPushdown'])}; ${nodes.join(' > ') || JSON.stringify(qp).slice(0, 120)}`;
}

async function load(coll: Coll, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i += 1000) {
    const batch: ProbeDoc[] = [];
    for (let j = i; j < Math.min(to, i + 1000); j++) batch.push(doc(j));
    await coll.insertMany(batch, { ordered: false });
  }
}

/** A 1,000-document insert with its own ids, as the worker does it: duplicate check, then insertMany. */
async function ownIdInserts(coll: Coll, firstId: number, batches: number): Promise<{ dup: Timing; insert: Timing; ids: string[] }> {
  const all: string[] = [];
  const dup: number[] = [];
  const ins: number[] = [];
  for (let b = 0; b < batches; b++) {
    const docs: ProbeDoc[] = [];
    for (let j = 0; j < 1000; j++) docs.push(doc(firstId + b * 1000 + j));
    const ids = docs.map((d) => d._id);
    all.push(...ids);
    let t0 = performance.now();
    const found = await coll.find({ _id: { $in: ids } }, { projection: { _id: 1 } }).toArray();
    dup.push(performance.now() - t0);
    if (found.length > 0) throw new Error(`duplicate check found ${found.length} of new ids`);
    t0 = performance.now();
    await coll.insertMany(docs, { ordered: false });
    ins.push(performance.now() - t0);
  }
  return { dup: summarize(dup), insert: summarize(ins), ids: all };
}

async function probe(
  backend: Backend,
  opts: { bin: string; pgUrl: string | undefined; port: number; sizes: number[]; reads: number; scanReads: number; batches: number },
): Promise<BackendResult> {
  let dbUrl: string | undefined;
  if (backend !== 'sqlite') {
    if (!opts.pgUrl) throw new Error(`${backend} needs --pg-url (or DBAAS_PG_URL from scripts/setup.sh with DBAAS_DB_BACKEND=postgresql)`);
    dbUrl = freshPgDatabase(opts.pgUrl, `b_probe_${backend.replace('-', '_')}`, backend === 'pg-companion');
  }
  const server = new Server(opts.bin, backend, opts.port, dbUrl);
  await server.start();
  const client = await MongoClient.connect(`mongodb://127.0.0.1:${opts.port}/`, { maxPoolSize: 4 });
  const result: BackendResult = { backend, loadMs: 0, sizes: [] };
  try {
    const db = client.db('probe');
    const coll = db.collection<ProbeDoc>('t');

    // Inserts with own ids on an empty table: a fresh table per batch.
    const emptyDup: number[] = [];
    const emptyIns: number[] = [];
    for (let b = 0; b < opts.batches; b++) {
      await coll.drop().catch(() => undefined);
      await coll.createIndex({ username: 1 });
      const r = await ownIdInserts(coll, 0, 1);
      emptyDup.push(r.dup.medianMs);
      emptyIns.push(r.insert.medianMs);
    }
    const atEmpty = { dup: summarize(emptyDup), insert: summarize(emptyIns), ids: [] as string[] };
    await coll.drop().catch(() => undefined);
    await coll.createIndex({ username: 1 });

    const rand = seededRandom(17);
    let have = 0;
    let loadMs = 0;
    for (const size of opts.sizes) {
      log(`${backend}: loading to ${size.toLocaleString('en')} documents …`);
      const t0 = performance.now();
      await load(coll, have, size);
      loadMs += performance.now() - t0;
      have = size;
      const key = (): number => Math.floor(rand() * size);
      log(`${backend}: reads at ${size.toLocaleString('en')} …`);
      const byId = await timed(opts.reads, () => coll.findOne({ _id: `k${key()}` }));
      const missingId = await timed(opts.reads, () => coll.findOne({ _id: `missing${key()}` }, { projection: { _id: 1 } }));
      const byIndexed = await timed(opts.reads, () => coll.findOne({ username: `user${key()}` }));
      const byUnindexed = await timed(size > 10_000 ? opts.scanReads : opts.reads, () => coll.findOne({ city: `city${key()}` }));
      const replaceById = await timed(Math.min(opts.reads, 100), () => {
        const i = key();
        return coll.replaceOne({ _id: `k${i}` }, { ...doc(i), n: -i });
      });
      const plans = {
        byId: await planOf(client, { _id: `k${key()}` }),
        byIndexed: await planOf(client, { username: `user${key()}` }),
        byUnindexed: await planOf(client, { city: `city${key()}` }),
      };
      const own = size === opts.sizes[0] ? atEmpty : await ownIdInserts(coll, 10_000_000 + size, opts.batches);
      result.sizes.push({ docs: size, byId, missingId, byIndexed, byUnindexed, replaceById, dupCheck1000: own.dup, insert1000: own.insert, plans });
      // Back to exactly `size` documents before the next size.
      if (own.ids.length > 0 && size !== opts.sizes[opts.sizes.length - 1]) await coll.deleteMany({ _id: { $in: own.ids } });
    }
    result.loadMs = round(loadMs);
    await db.dropDatabase();
  } finally {
    await client.close();
    await server.stop();
    if (backend !== 'sqlite' && opts.pgUrl) psql(opts.pgUrl, `DROP DATABASE IF EXISTS b_probe_${backend.replace('-', '_')} WITH (FORCE)`);
  }
  return result;
}

/** The median; the sample count too when it is not the number of reads asked for. */
let readsAsked = 300;
function fmt(t: Timing): string {
  return `${t.medianMs.toFixed(2)}${t.n === readsAsked ? '' : ` (n=${t.n})`}`;
}

function report(results: BackendResult[]): string {
  const lines: string[] = [];
  lines.push('Median milliseconds, one request at a time (n: samples, where not all were taken).');
  lines.push('');
  lines.push('| backend | documents | read by _id | read of a missing _id | read by indexed field | read by unindexed field | replaceOne by _id | duplicate check (`$in`), 1,000 ids | insertMany, 1,000 own ids |');
  lines.push('|---|--:|--:|--:|--:|--:|--:|--:|--:|');
  for (const r of results) {
    for (const s of r.sizes) {
      lines.push(
        `| ${r.backend} | ${s.docs.toLocaleString('en')} | ${fmt(s.byId)} | ${fmt(s.missingId)} | ${fmt(s.byIndexed)} | ${fmt(s.byUnindexed)} | ${fmt(s.replaceById)} | ${fmt(s.dupCheck1000)} | ${fmt(s.insert1000)} |`,
      );
    }
  }
  lines.push('');
  lines.push('Growth from the smallest to the largest size (× of the median):');
  lines.push('');
  lines.push('| backend | read by _id | read of a missing _id | read by indexed field | read by unindexed field | replaceOne by _id | duplicate check | insertMany |');
  lines.push('|---|--:|--:|--:|--:|--:|--:|--:|');
  for (const r of results) {
    const a = r.sizes[0];
    const b = r.sizes[r.sizes.length - 1];
    if (!a || !b || a === b) continue;
    const x = (p: Timing, q: Timing): string => `${(q.medianMs / p.medianMs).toFixed(1)}×`;
    lines.push(
      `| ${r.backend} | ${x(a.byId, b.byId)} | ${x(a.missingId, b.missingId)} | ${x(a.byIndexed, b.byIndexed)} | ${x(a.byUnindexed, b.byUnindexed)} | ${x(a.replaceById, b.replaceById)} | ${x(a.dupCheck1000, b.dupCheck1000)} | ${x(a.insert1000, b.insert1000)} |`,
    );
  }
  lines.push('');
  lines.push('Query plans at the largest size (FerretDB `explain`):');
  lines.push('');
  for (const r of results) {
    const b = r.sizes[r.sizes.length - 1];
    if (!b) continue;
    lines.push(`- ${r.backend}: by _id: ${b.plans.byId}; by indexed: ${b.plans.byIndexed}; by unindexed: ${b.plans.byUnindexed}`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      backends: { type: 'string', default: BACKENDS.join(',') },
      sizes: { type: 'string', default: '1000,100000' },
      reads: { type: 'string', default: '300' },
      'scan-reads': { type: 'string', default: '30' },
      batches: { type: 'string', default: '5' },
      'budget-s': { type: 'string', default: '90' },
      ferretdb: { type: 'string' },
      'pg-url': { type: 'string' },
      port: { type: 'string', default: '18410' },
      json: { type: 'string' },
    },
  });
  const config = loadOrchestratorConfig();
  const bin = values.ferretdb ?? config.dbBin;
  if (!bin) throw new Error('no FerretDB binary: pass --ferretdb or run scripts/setup.sh (DBAAS_DB_BIN)');
  const backends = values.backends.split(',').map((b) => {
    if (!(BACKENDS as readonly string[]).includes(b)) throw new Error(`unknown backend ${b} (known: ${BACKENDS.join(', ')})`);
    return b as Backend;
  });
  const sizes = values.sizes.split(',').map(Number);
  budgetMs = Number(values['budget-s']) * 1000;
  readsAsked = Number(values.reads);
  const opts = {
    bin,
    pgUrl: values['pg-url'] ?? config.pgUrl,
    port: Number(values.port),
    sizes,
    reads: Number(values.reads),
    scanReads: Number(values['scan-reads']),
    batches: Number(values.batches),
  };
  log(`load average before: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; FerretDB ${bin}`);
  const results: BackendResult[] = [];
  for (const b of backends) {
    results.push(await probe(b, opts));
    // Each backend's figures as soon as they are known (a run takes minutes).
    process.stdout.write(`\n${report(results.slice(-1))}\n\n`);
  }
  const text = report(results);
  process.stdout.write(`\n${text}\n\nload average after: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
  if (values.json) writeFileSync(values.json, JSON.stringify({ at: new Date().toISOString(), loadavg: os.loadavg(), results }, null, 2));
}

void main().catch((err: unknown) => {
  process.stderr.write(`[backend-probe] ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
