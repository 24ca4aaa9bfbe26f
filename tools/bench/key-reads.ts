/**
 * Reads of one document by `_id` at two table sizes, through the API and
 * straight from a slave's database (issue 17: a lookup by `_id` must not cost
 * time proportional to the table). One request at a time, random keys.
 */
import type { Collection, Document } from 'mongodb';

export interface KeyReads {
  /** Documents in the table read from. */
  docs: number;
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

/** `n` reads by a random one of `ids` on each path, alternating. Throws when a read does not find its document. */
export async function measureKeyReads(url: string, table: string, ids: readonly string[], direct: Collection<Document>, n: number): Promise<KeyReads> {
  const dbaasMs: number[] = [];
  const directMs: number[] = [];
  const pick = (): string => ids[Math.floor(Math.random() * ids.length)] as string;
  for (let i = 0; i < n; i++) {
    const id = pick();
    let t = performance.now();
    const res = await fetch(`${url}/api/v1/db/read`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ table, where: { _id: id } }),
    });
    const found = (await res.json()) as unknown[];
    dbaasMs.push(performance.now() - t);
    if (res.status !== 200 || found.length !== 1) throw new Error(`a read of ${table} by _id answered ${res.status} with ${found.length} documents`);
    t = performance.now();
    const doc = await direct.findOne({ _id: pick() as unknown as Document['_id'] });
    directMs.push(performance.now() - t);
    if (!doc) throw new Error(`a direct read of ${table} by _id found nothing`);
  }
  return { docs: ids.length, n, dbaasMs: median(dbaasMs), directMs: median(directMs) };
}

/** One line per size, then the growth from the first size to the last. */
export function keyReadLines(reads: readonly KeyReads[]): string[] {
  const f2 = (x: number): string => x.toFixed(2);
  const lines = reads.map(
    (r) =>
      `- read of one document by \`_id\` in a table of ${r.docs.toLocaleString('en-US')} documents (median of ${r.n}, one at a time): dbaas ${f2(r.dbaasMs)} ms, direct ${f2(r.directMs)} ms (dbaas ÷ direct ${f2(r.dbaasMs / r.directMs)}×)`,
  );
  const a = reads[0];
  const b = reads[reads.length - 1];
  if (a && b && a !== b) {
    lines.push(
      `- the same read at ${b.docs.toLocaleString('en-US')} ÷ at ${a.docs.toLocaleString('en-US')} documents: dbaas ${f2(b.dbaasMs / a.dbaasMs)}×, direct ${f2(b.directMs / a.directMs)}× (goal: within 1.5×)`,
    );
  }
  return lines;
}
