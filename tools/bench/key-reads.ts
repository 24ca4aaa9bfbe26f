/**
 * Reads of one document by `_id` at two table sizes, through the API and
 * straight from a slave's database (issue 17: a lookup by `_id` must not cost
 * time proportional to the table). One request at a time, random keys.
 */
import type { Collection, Document } from 'mongodb';

export interface KeyReads {
  /** Documents in the table read from. */
  docs: number;
  /** The field read by: `_id`, or an indexed field (absent in older runs: `_id`). */
  field?: string;
  /** Reads on each path. */
  n: number;
  /** Median milliseconds of `POST /api/v1/db/read` with `where: {_id}`. */
  dbaasMs: number;
  /** Median milliseconds of the same `findOne` with the mongodb driver on a slave's database. */
  directMs: number;
}

function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
}

/**
 * `n` reads by a random one of `ids` (values of `field`, `_id` by default) on each
 * path, alternating. Throws when a read does not find exactly one document.
 */
export async function measureKeyReads(url: string, table: string, ids: ReadonlyArray<string | number>, direct: Collection<Document>, n: number, field = '_id'): Promise<KeyReads> {
  const dbaasMs: number[] = [];
  const directMs: number[] = [];
  const pick = (): string | number => ids[Math.floor(Math.random() * ids.length)] as string | number;
  for (let i = 0; i < n; i++) {
    const id = pick();
    let t = performance.now();
    const res = await fetch(`${url}/api/v1/db/read`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ table, where: { [field]: id } }),
    });
    const found = (await res.json()) as unknown[];
    dbaasMs.push(performance.now() - t);
    if (res.status !== 200 || found.length !== 1) throw new Error(`a read of ${table} by ${field} answered ${res.status} with ${found.length} documents`);
    t = performance.now();
    const doc = await direct.findOne({ [field]: pick() });
    directMs.push(performance.now() - t);
    if (!doc) throw new Error(`a direct read of ${table} by ${field} found nothing`);
  }
  return { docs: ids.length, field, n, dbaasMs: median(dbaasMs), directMs: median(directMs) };
}

/** One line per read, then for each field the growth from its smallest table to its largest. */
export function keyReadLines(reads: readonly KeyReads[]): string[] {
  const f2 = (x: number): string => x.toFixed(2);
  const by = (r: KeyReads): string => r.field ?? '_id';
  const lines = reads.map(
    (r) =>
      `- read of one document by \`${by(r)}\`${by(r) === '_id' ? '' : ' (indexed)'} in a table of ${r.docs.toLocaleString('en-US')} documents (median of ${r.n}, one at a time): dbaas ${f2(r.dbaasMs)} ms, direct ${f2(r.directMs)} ms (dbaas ÷ direct ${f2(r.dbaasMs / r.directMs)}×)`,
  );
  for (const field of new Set(reads.map(by))) {
    const same = reads.filter((r) => by(r) === field).sort((x, y) => x.docs - y.docs);
    const a = same[0];
    const b = same[same.length - 1];
    if (a && b && a !== b) {
      lines.push(
        `- by \`${field}\` at ${b.docs.toLocaleString('en-US')} ÷ at ${a.docs.toLocaleString('en-US')} documents: dbaas ${f2(b.dbaasMs / a.dbaasMs)}×, direct ${f2(b.directMs / a.directMs)}× (goal: within 1.5×)`,
      );
    }
  }
  return lines;
}
