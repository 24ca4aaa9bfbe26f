/** The nemesis' closing table: faults injected, every check, and the counts. */
import type { FaultKind } from './faults.js';
import type { NemesisReport } from './nemesis.js';

function table(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)];
}

const seconds = (ms: number): string => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)} s` : '-');

export function formatReport(r: NemesisReport, maxProblems = 5): string {
  const out: string[] = [];
  const kinds = [...new Set(r.faults.map((f) => f.kind))] as FaultKind[];
  // The longest acknowledged write that began while a fault was in play (from its injection to the next one).
  const stall = (i: number): number => {
    const from = r.startedAt + (r.faults[i]?.atMs ?? 0);
    const next = r.faults[i + 1];
    const to = next ? r.startedAt + next.atMs : Infinity;
    return Math.max(0, ...r.history.filter((x) => x.outcome === 'ok' && x.startMs >= from && x.startMs < to).map((x) => x.endMs - x.startMs));
  };
  out.push(
    ...table(
      ['fault', 'injected', 'recovered', 'worst recovery', 'longest acked write', 'writes acked after (min)'],
      kinds.map((k) => {
        const idx = r.faults.map((f, i) => (f.kind === k ? i : -1)).filter((i) => i >= 0);
        const fs = idx.map((i) => r.faults[i] as (typeof r.faults)[number]);
        return [
          k,
          String(fs.length),
          String(fs.filter((f) => f.recovered && !f.error).length),
          seconds(Math.max(...fs.map((f) => f.recoveryMs))),
          seconds(Math.max(...idx.map(stall))),
          String(Math.min(...fs.map((f) => f.acksAfter))),
        ];
      }),
    ),
  );
  out.push('');
  out.push(...table(['check', 'result', 'counts'], r.checks.map((c) => [c.name, c.passed ? 'passed' : `FAILED (${c.problems.length})`, c.counts])));
  const h = r.history;
  const n = (pred: (x: (typeof h)[number]) => boolean): number => h.filter(pred).length;
  const incs = h.filter((x) => x.kind === 'inc' && x.outcome === 'ok').reduce((a, x) => a + Number(x.value), 0);
  out.push('');
  out.push(
    `writes: ${h.length} in all, ${r.stats.ok} acknowledged, ${r.stats.unknown} unknown outcome, ${r.stats.refused} refused (${n((x) => x.kind === 'upsert-foreign' && x.outcome === 'refused')} of them foreign upserts, as expected), ${r.stats.retries} retries`,
  );
  out.push(
    `acknowledged: ${n((x) => x.kind === 'insert-id' && x.outcome === 'ok')} inserts with _id, ${n((x) => x.kind === 'insert-auto' && x.outcome === 'ok')} without, ${n((x) => x.kind === 'delete' && x.outcome === 'ok')} deletes, ${n((x) => x.kind === 'upsert' && x.outcome === 'ok')} upserts, ${n((x) => x.kind === 'inc' && x.outcome === 'ok')} $inc (total ${incs}), ${n((x) => x.kind === 'push' && x.outcome === 'ok')} $push`,
  );
  if (r.reads) {
    const total = r.reads.ok + r.reads.failed;
    const errors = Object.entries(r.reads.errors).map(([code, n]) => `${code} ${n}`).join(', ');
    out.push(`reads: ${total} in all, ${r.reads.ok} served, ${r.reads.failed} failed after the client's retries (${total ? ((100 * r.reads.failed) / total).toFixed(2) : '0'} %)${errors ? `: ${errors}` : ''}`);
  }
  out.push(
    `replicas checked: ${r.replicasChecked}; acknowledged write latency p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms, max ${r.latency.max} ms (${r.latency.over5s} over 5 s); run ${seconds(r.durationMs)}, seed ${r.seed}, namespace ${r.namespace}`,
  );
  const failed = r.checks.filter((c) => !c.passed);
  if (failed.length > 0) {
    out.push('');
    for (const c of failed) {
      out.push(`FAILED: ${c.name}`);
      for (const p of c.problems.slice(0, maxProblems)) out.push(`  - ${p}`);
      if (c.problems.length > maxProblems) out.push(`  - … and ${c.problems.length - maxProblems} more`);
    }
  }
  out.push('');
  out.push('faults in order:');
  for (const f of r.faults) out.push(`  +${seconds(f.atMs)} ${f.kind}: ${f.text}; ${f.recovered ? `whole after ${seconds(f.recoveryMs)}` : 'NOT whole again'}`);
  return out.join('\n');
}
