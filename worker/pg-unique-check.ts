/**
 * Whether a table's data allows a unique index, asked of PostgreSQL itself
 * (issue 17), where the worker's FerretDB keeps its data (`DBAAS_WORKER_PG_URL`):
 * one `GROUP BY` on the fields' expressions instead of reading every document
 * through FerretDB (15 s at 100,000 documents on a loaded machine, while writes
 * wait). The same rules as common/index-spec.ts: a missing field counts as null,
 * and an array or an object in a unique field is refused.
 *
 * FerretDB 1.24's layout: pg-layout.ts.
 */
import pg from 'pg';
import type { IndexSpec } from '../common/commands.js';
import { tableIn } from './pg-layout.js';
import { documentFromJsonb } from './pg-snapshot.js';

export type UniqueVerdict = { kind: 'ok' } | { kind: 'duplicate'; key: string } | { kind: 'not-scalar'; field: string };

/** Asks PostgreSQL whether `index` (unique, top-level fields) fits the table's data; undefined when the table is not found there. */
export async function uniqueVerdict(url: string, dbName: string, qualified: string, index: IndexSpec): Promise<UniqueVerdict | undefined> {
  const client = new pg.Client({ connectionString: url, application_name: 'dbaas-unique-check' });
  await client.connect();
  try {
    const from = await tableIn(client, dbName, qualified);
    if (from === undefined) return undefined;
    const fields = index.keys.map(([path]) => path);
    for (const [i, field] of fields.entries()) {
      const bad = await client.query(`SELECT 1 FROM ${from} WHERE jsonb_typeof(_jsonb->$1) IN ('array', 'object') LIMIT 1`, [field]);
      if (bad.rows.length > 0) return { kind: 'not-scalar', field: fields[i] as string };
    }
    const keys = fields.map((_, i) => `COALESCE(_jsonb->$${i + 1}, 'null'::jsonb)`);
    const dup = await client.query<{ k: string }>(
      `SELECT jsonb_build_array(${keys.join(', ')})::text AS k FROM ${from} GROUP BY jsonb_build_array(${keys.join(', ')}) HAVING count(*) > 1 LIMIT 1`,
      fields,
    );
    const key = dup.rows[0]?.k;
    return key === undefined ? { kind: 'ok' } : { kind: 'duplicate', key };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * JSON bytes of an index entry's values under which their BSON cannot pass MAX_INDEX_KEY_BYTES (common/index-spec.ts):
 * BSON is at most about 6x JSON (an array of small numbers or empty arrays) plus each value's own few bytes.
 */
const CANDIDATE_JSON_BYTES = 160;

/**
 * The documents whose entry in `index` might pass the index entry bound, in one query (the index's values as JSON
 * longer than {@link CANDIDATE_JSON_BYTES}), for the master to measure exactly; a read of the whole table through
 * FerretDB took 5-10x the index's own build (20,000 documents: 1.7-3.1 s against 0.2-0.3 s). Undefined: no table.
 */
export async function indexKeyCandidates(url: string, dbName: string, qualified: string, index: IndexSpec): Promise<Array<Record<string, unknown>> | undefined> {
  const client = new pg.Client({ connectionString: url, application_name: 'dbaas-index-key-check' });
  await client.connect();
  try {
    const from = await tableIn(client, dbName, qualified);
    if (from === undefined) return undefined;
    const values = index.keys.map((_, i) => `_jsonb #> $${i + 1}::text[]`).join(', ');
    const res = await client.query<{ j: string }>(
      `SELECT _jsonb::text AS j FROM ${from} WHERE octet_length(jsonb_build_array(${values})::text) > $${index.keys.length + 1}`,
      [...index.keys.map(([path]) => path.split('.')), CANDIDATE_JSON_BYTES],
    );
    return res.rows.map((r) => documentFromJsonb(JSON.parse(r.j) as Record<string, unknown>));
  } finally {
    await client.end().catch(() => undefined);
  }
}
