/**
 * What a benchmark run found, as a terminal table, a Markdown section for
 * docs/BENCHMARKS.md and an SVG chart. Pure functions of {@link BenchResults}.
 */
import type { Component } from './cpu-meter.js';
import type { LoadResult } from './load.js';
import { keyReadLines, type KeyReads } from './key-reads.js';

/** `read`: one document by `_id`; `find`: one document by an indexed field (issue 17). */
export type Op = 'read' | 'find' | 'insert' | 'update';

/** Index figures at the catch-up's table size (issue 17). */
export interface IndexFigures {
  /** Documents in the table the index was built on. */
  docs: number;
  /** `POST /api/v1/db/indexes` (unique), until answered. */
  buildMs: number;
  /** Single-document inserts into another table sent one at a time during the build, and the slowest of them. */
  writesDuringBuild: number;
  maxWriteMsDuringBuild: number;
  /** The same for a non-unique index on `source` (absent in older runs). */
  plainBuildMs?: number;
  maxWriteMsDuringPlainBuild?: number;
  /** Median of a 1,000-document insert with its own `_id`s into an empty table and into the large one. */
  ownIdInsertEmptyMs: number;
  ownIdInsertFullMs: number;
}

/** CPU seconds used by each part during a measurement, and its wall time. */
export interface CpuUse {
  wallSec: number;
  cpuSec: Partial<Record<Component, number>>;
}

export interface Cell {
  op: Op;
  concurrency: number;
  dbaas: LoadResult;
  direct: LoadResult;
  cpu?: { dbaas: CpuUse; direct: CpuUse };
}

export interface MemoryPeaks {
  /** Highest resident set size seen, in MiB. */
  orchestratorMb: number;
  masterMb: number;
  slaveMb: number;
}

export interface BigRead {
  docs: number;
  bytes: number;
  dbaasMs: number;
  directMs: number;
}

export interface CatchUp {
  /** Documents on the master when the new slave was asked for. */
  docs: number;
  /** Documents loaded for it through the write API (in `loadMs`). */
  loadedDocs: number;
  /** From the scale request until the new slave served reads. */
  joinMs: number;
  /** The snapshot copy alone, as the new slave logged it (when it did). */
  copyMs?: number;
  copiedDocs?: number;
  /** Loading those documents through the write API (1,000 per insert). */
  loadMs: number;
}

export interface Environment {
  date: string;
  machine: string;
  node: string;
  ferretdb: string;
  rabbitmq: string;
  commit: string;
  loadBefore: string;
  durationSec: number;
  keys: number;
}

export interface BenchResults {
  env: Environment;
  cells: Cell[];
  rpc: Array<{ concurrency: number; result: LoadResult }>;
  /** Peak resident memory during the throughput and latency cells. */
  memory: MemoryPeaks;
  /** Peak resident memory during the large reads. */
  memoryBigReads: MemoryPeaks;
  bigReads: BigRead[];
  catchUp?: CatchUp;
  /** Reads by `_id` at 1,000 and at the catch-up's size, through the API and directly (issue 17). */
  keyReads?: KeyReads[];
  indexes?: IndexFigures;
}

export interface Ratio {
  name: string;
  value: string;
  goal: string;
  met: boolean;
}

const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '–');
const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '–');
const f0 = (x: number): string => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');

function cell(r: BenchResults, op: Op, c: number): Cell | undefined {
  return r.cells.find((x) => x.op === op && x.concurrency === c);
}

export function ratios(r: BenchResults): Ratio[] {
  const out: Ratio[] = [];
  const read64 = cell(r, 'read', 64);
  if (read64) {
    const v = read64.dbaas.rps / read64.direct.rps;
    out.push({ name: 'read throughput at concurrency 64, dbaas ÷ direct', value: `${f2(v)}×`, goal: '≥ 0.5×', met: v >= 0.5 });
  }
  const find64 = cell(r, 'find', 64);
  if (find64) {
    const v = find64.dbaas.rps / find64.direct.rps;
    out.push({ name: 'read throughput by an indexed field at concurrency 64, dbaas ÷ direct', value: `${f2(v)}×`, goal: '≥ 0.5×', met: v >= 0.5 });
  }
  const read1 = cell(r, 'read', 1);
  if (read1) {
    const v = read1.dbaas.p50 - read1.direct.p50;
    out.push({ name: 'added median read latency at concurrency 1', value: `${f2(v)} ms`, goal: '< 1 ms', met: v < 1 });
  }
  const ins64 = cell(r, 'insert', 64);
  if (ins64) {
    const v = ins64.dbaas.rps / ins64.direct.rps;
    out.push({ name: 'insert throughput at concurrency 64, dbaas ÷ direct', value: `${f2(v)}×`, goal: '≥ 0.3×', met: v >= 0.3 });
  }
  const upd64 = cell(r, 'update', 64);
  if (upd64) {
    const v = upd64.dbaas.rps / upd64.direct.rps;
    out.push({ name: 'update throughput at concurrency 64, dbaas ÷ direct', value: `${f2(v)}×`, goal: '≥ 0.6×', met: v >= 0.6 });
  }
  // Goals are in MB (10^6 bytes); RSS is measured in MiB.
  const mem = (mib: number): string => `${f0(mib)} MiB (${f0(mib * 1.048576)} MB)`;
  out.push({ name: 'orchestrator resident memory, peak under load', value: mem(r.memory.orchestratorMb), goal: '< 150 MB', met: r.memory.orchestratorMb * 1.048576 < 150 });
  const worker = Math.max(r.memory.masterMb, r.memory.slaveMb);
  out.push({ name: 'worker resident memory, peak under load', value: mem(worker), goal: '< 120 MB', met: worker * 1.048576 < 120 });
  return out;
}

export function failedRequests(r: BenchResults): number {
  return r.cells.reduce((n, c) => n + c.dbaas.errors + c.direct.errors, 0) + r.rpc.reduce((n, x) => n + x.result.errors, 0);
}

function pad(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? [];
  return rows.map((row) => row.map((v, i) => (i === 0 ? v.padEnd(widths[i] ?? 0) : v.padStart(widths[i] ?? 0))).join('  ')).join('\n');
}

function loadRows(r: BenchResults): string[][] {
  const rows: string[][] = [['operation', 'conc', 'path', 'req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'errors']];
  for (const c of r.cells) {
    for (const [path, x] of [['dbaas', c.dbaas], ['direct', c.direct]] as const) {
      rows.push([c.op, String(c.concurrency), path, f0(x.rps), f2(x.p50), f2(x.p99), f2(x.p999), String(x.errors)]);
    }
  }
  for (const x of r.rpc) {
    rows.push(['rabbitmq rpc', String(x.concurrency), 'bare', f0(x.result.rps), f2(x.result.p50), f2(x.result.p99), f2(x.result.p999), String(x.result.errors)]);
  }
  return rows;
}

const COMPONENTS: Component[] = ['load generator', 'orchestrator', 'rabbitmq', 'master', 'slaves', 'databases'];

function cpuRows(r: BenchResults): string[][] {
  const rows: string[][] = [['operation', 'conc', 'path', ...COMPONENTS, 'busy']];
  for (const c of r.cells) {
    if (!c.cpu) continue;
    for (const [path, use, res] of [['dbaas', c.cpu.dbaas, c.dbaas], ['direct', c.cpu.direct, c.direct]] as const) {
      const n = Math.max(1, res.requests);
      const total = Object.values(use.cpuSec).reduce((a, b) => a + (b ?? 0), 0);
      rows.push([c.op, String(c.concurrency), path, ...COMPONENTS.map((k) => f2(((use.cpuSec[k] ?? 0) * 1000) / n)), `${Math.round((total / use.wallSec / 2) * 100)}%`]);
    }
  }
  return rows;
}

/** The index build and the own-`_id` inserts, as Markdown list lines. */
function indexLines(x: IndexFigures | undefined): string[] {
  if (!x) return [];
  return [
    `- building a unique index on ${f0(x.docs)} documents: answered after ${f0(x.buildMs)} ms; ${f0(x.writesDuringBuild)} single inserts into another table sent one at a time meanwhile, the slowest ${f0(x.maxWriteMsDuringBuild)} ms (writes wait for the build)`,
    ...(x.plainBuildMs === undefined ? [] : [`- building a non-unique index on the same table: answered after ${f0(x.plainBuildMs)} ms; the slowest insert meanwhile ${f0(x.maxWriteMsDuringPlainBuild ?? NaN)} ms`]),
    `- a 1,000-document insert with its own \`_id\`s: ${f0(x.ownIdInsertEmptyMs)} ms into an empty table, ${f0(x.ownIdInsertFullMs)} ms into the ${f0(x.docs)}-document one (${f2(x.ownIdInsertFullMs / x.ownIdInsertEmptyMs)}×; goal within 1.5×)`,
  ];
}

export function textReport(r: BenchResults): string {
  const lines = [pad(loadRows(r)), ''];
  for (const b of r.bigReads) {
    lines.push(`read of ${f0(b.docs)} documents (${f0(b.bytes / 1024)} KiB): dbaas ${f1(b.dbaasMs)} ms, direct ${f1(b.directMs)} ms`);
  }
  if (r.catchUp) {
    const c = r.catchUp;
    lines.push(`loading ${f0(c.loadedDocs)} documents through the write API (1,000 per insert, 4 at a time): ${f1(c.loadMs / 1000)} s (${f0(c.loadedDocs / (c.loadMs / 1000))} docs/s)`);
    lines.push(`new slave catching up on ${f0(c.docs)} documents: serving after ${f1(c.joinMs / 1000)} s (${f0(c.docs / (c.joinMs / 1000))} docs/s)` +
      (c.copyMs !== undefined && c.copiedDocs !== undefined ? `; snapshot copy ${f1(c.copyMs / 1000)} s (${f0(c.copiedDocs / (c.copyMs / 1000))} docs/s)` : ''));
  }
  lines.push(...keyReadLines(r.keyReads ?? []).map((l) => l.slice(2)));
  lines.push(...indexLines(r.indexes).map((l) => l.slice(2)));
  lines.push(`peak RSS under load: orchestrator ${f0(r.memory.orchestratorMb)} MiB, master ${f0(r.memory.masterMb)} MiB, slave ${f0(r.memory.slaveMb)} MiB`);
  lines.push(`peak RSS during the large reads: orchestrator ${f0(r.memoryBigReads.orchestratorMb)} MiB, slave ${f0(r.memoryBigReads.slaveMb)} MiB`, '');
  lines.push(pad(cpuRows(r)), '');
  for (const x of ratios(r)) lines.push(`${x.met ? 'ok  ' : 'MISS'} ${x.name}: ${x.value} (goal ${x.goal})`);
  return lines.join('\n');
}

function mdTable(rows: string[][]): string {
  const [head, ...body] = rows;
  if (!head) return '';
  return [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < 3 ? '---' : '--:')).join('|')}|`, ...body.map((row) => `| ${row.join(' | ')} |`)].join('\n');
}

/** The generated part of docs/BENCHMARKS.md. */
export function markdownReport(r: BenchResults, chartFile: string): string {
  const e = r.env;
  const out = [
    `Measured ${e.date} by \`npm run bench\` (${e.durationSec} s per cell, closed loop, ${f0(e.keys)} keys).`,
    '',
    `- machine: ${e.machine}; load average before the run: ${e.loadBefore}`,
    `- Node.js ${e.node}, ${e.ferretdb}, RabbitMQ ${e.rabbitmq}, commit ${e.commit}`,
    '- cluster: process runtime, 1 master + 2 slaves, each worker with its own FerretDB (storage: see above); the load generator on the same cores',
    '- direct: the mongodb driver straight to one slave\'s FerretDB (reads: its copy of the same table; writes: a database of their own)',
    '',
    '### Ratios',
    '',
    mdTable([['measure', 'value', 'goal', 'met'], ...ratios(r).map((x) => [x.name, x.value, x.goal, x.met ? 'yes' : '**no**'])]),
    '',
    '### Throughput and latency',
    '',
    mdTable(loadRows(r)),
    '',
    `![throughput, dbaas and direct](${chartFile})`,
    '',
    '### Large reads, catch-up, memory',
    '',
  ];
  for (const b of r.bigReads) {
    out.push(`- read of ${f0(b.docs)} documents (${f0(b.bytes / 1024)} KiB of JSON): dbaas ${f1(b.dbaasMs)} ms, direct ${f1(b.directMs)} ms`);
  }
  if (r.catchUp) {
    const c = r.catchUp;
    out.push(`- loading ${f0(c.loadedDocs)} documents through the write API (1,000 per insert, 4 inserts at a time, until every replica had them): ${f1(c.loadMs / 1000)} s, ${f0(c.loadedDocs / (c.loadMs / 1000))} docs/s`);
    out.push(`- a new slave catching up on ${f0(c.docs)} documents: serving reads ${f1(c.joinMs / 1000)} s after the scale request, ${f0(c.docs / (c.joinMs / 1000))} docs/s` +
      (c.copyMs !== undefined && c.copiedDocs !== undefined ? ` (the snapshot copy alone: ${f0(c.copiedDocs)} documents in ${f1(c.copyMs / 1000)} s, ${f0(c.copiedDocs / (c.copyMs / 1000))} docs/s)` : ''));
  }
  out.push(...keyReadLines(r.keyReads ?? []));
  out.push(...indexLines(r.indexes));
  out.push(`- peak resident memory under load (the cells above): orchestrator ${f0(r.memory.orchestratorMb)} MiB, master ${f0(r.memory.masterMb)} MiB, slaves ${f0(r.memory.slaveMb)} MiB (FerretDB not counted)`);
  out.push(`- peak resident memory during the large reads: orchestrator ${f0(r.memoryBigReads.orchestratorMb)} MiB, master ${f0(r.memoryBigReads.masterMb)} MiB, slaves ${f0(r.memoryBigReads.slaveMb)} MiB`);
  out.push('', '### Where the CPU goes', '', 'Milliseconds of CPU per request, by process, during each dbaas cell (both cores are shared by everything, the load generator included); "busy" is the share of the two cores in use.', '', mdTable(cpuRows(r)));
  return out.join('\n');
}

/** Grouped bars: requests/s of dbaas and direct for each operation and concurrency (log scale). */
export function svgChart(r: BenchResults): string {
  const W = 760;
  const H = 340;
  const left = 60;
  const bottom = 280;
  const top = 40;
  const groups = r.cells;
  const max = Math.max(10, ...groups.flatMap((c) => [c.dbaas.rps, c.direct.rps]));
  const decades = Math.ceil(Math.log10(max));
  const y = (v: number): number => bottom - (Math.log10(Math.max(1, v)) / decades) * (bottom - top);
  const gw = (W - left - 20) / Math.max(1, groups.length);
  const bw = Math.min(24, gw / 3);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${left}" y="20" font-size="13" font-weight="bold">requests/s by operation and concurrency (log scale): dbaas vs direct driver</text>`,
  ];
  for (let d = 0; d <= decades; d++) {
    const v = 10 ** d;
    parts.push(`<line x1="${left}" x2="${W - 20}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`, `<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${v.toLocaleString('en-US')}</text>`);
  }
  groups.forEach((c, i) => {
    const x0 = left + i * gw + (gw - 2 * bw) / 2;
    for (const [k, v, color] of [[0, c.dbaas.rps, '#2b6cb0'], [1, c.direct.rps, '#a0aec0']] as const) {
      const yy = y(v);
      parts.push(`<rect x="${x0 + k * bw}" y="${yy}" width="${bw - 2}" height="${bottom - yy}" fill="${color}"><title>${c.op} c${c.concurrency} ${k === 0 ? 'dbaas' : 'direct'}: ${Math.round(v)} req/s</title></rect>`);
    }
    parts.push(`<text x="${left + i * gw + gw / 2}" y="${bottom + 14}" text-anchor="middle">${c.op}</text>`, `<text x="${left + i * gw + gw / 2}" y="${bottom + 27}" text-anchor="middle" fill="#555">c=${c.concurrency}</text>`);
  });
  parts.push(
    `<rect x="${W - 190}" y="${H - 24}" width="12" height="12" fill="#2b6cb0"/><text x="${W - 174}" y="${H - 14}">dbaas (HTTP)</text>`,
    `<rect x="${W - 100}" y="${H - 24}" width="12" height="12" fill="#a0aec0"/><text x="${W - 84}" y="${H - 14}">direct driver</text>`,
    '</svg>',
  );
  return parts.join('\n');
}

const BEGIN = '<!-- bench:begin (generated by npm run bench; edit outside these markers) -->';
const END = '<!-- bench:end -->';

/** Puts the generated section into the document, keeping everything outside the markers. */
export function spliceGenerated(existing: string | undefined, generated: string): string {
  const block = `${BEGIN}\n${generated}\n${END}`;
  if (existing !== undefined) {
    const b = existing.indexOf('<!-- bench:begin');
    const e = existing.indexOf(END);
    if (b >= 0 && e > b) return existing.slice(0, b) + block + existing.slice(e + END.length);
  }
  return `# Benchmarks\n\n${block}\n`;
}
