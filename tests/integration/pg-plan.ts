/**
 * A statement's plan as PostgreSQL ran it (`EXPLAIN (ANALYZE, FORMAT JSON)`), for
 * tests that check a path below FerretDB reads only the rows it needs
 * (oplog-range.test.ts, seq-trim.test.ts). ANALYZE runs the statement: a test of a
 * DELETE runs it in a transaction it rolls back.
 */
import type pg from 'pg';

interface PlanNode {
  'Node Type': string;
  'Actual Rows': number;
  'Rows Removed by Filter'?: number;
  Plans?: PlanNode[];
}

/** The scans' node types, the table rows they read (a bitmap's index part reads none: its heap scan counts them) and the rows filters removed. */
export async function scanPlan(client: pg.Pool | pg.ClientBase, sql: { text: string; values: string[] }): Promise<{ types: string[]; rows: number; removed: number }> {
  const { rows } = await client.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql.text}`, sql.values);
  const nodes: PlanNode[] = [];
  const walk = (n: PlanNode): void => {
    nodes.push(n);
    for (const c of n.Plans ?? []) walk(c);
  };
  walk((rows[0] as { 'QUERY PLAN': Array<{ Plan: PlanNode }> })['QUERY PLAN'][0]!.Plan);
  const scans = nodes.filter((n) => n['Node Type'].includes('Scan'));
  return {
    types: scans.map((n) => n['Node Type']),
    rows: scans.filter((n) => n['Node Type'] !== 'Bitmap Index Scan').reduce((sum, n) => sum + n['Actual Rows'], 0),
    removed: nodes.reduce((sum, n) => sum + (n['Rows Removed by Filter'] ?? 0), 0),
  };
}
