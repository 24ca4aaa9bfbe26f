/**
 * The end-of-run checks: from the history of writes and outcomes, what every
 * replica must hold, and whether it does. Pure: the history and the replicas'
 * data in, one result per check out.
 *
 * - acknowledged (`ok`): applied exactly once;
 * - `unknown`: applied at most once (it may still be applied late, from the queue);
 * - `refused` (a 4xx on the first try): never applied;
 * - a document nobody wrote (a phantom) is a failure, and so is any difference between replicas.
 */
import { ownerOf, TABLES, type OpRecord } from './history.js';

export type Doc = Record<string, unknown> & { _id?: unknown };
/** One replica's user tables: table → documents. */
export type Dump = Record<string, Doc[]>;

export interface Replica {
  id: string;
  role: string;
  dump: Dump;
}

export interface CheckResult {
  name: string;
  passed: boolean;
  /** What was checked, e.g. "812 documents on 3 replicas". */
  counts: string;
  /** Every problem found (the report shows the first few). */
  problems: string[];
}

interface KeyOps {
  ok: OpRecord[];
  unknown: OpRecord[];
  refused: OpRecord[];
}

function byKey(history: readonly OpRecord[], kinds: readonly string[]): Map<string, KeyOps> {
  const out = new Map<string, KeyOps>();
  for (const r of history) {
    if (!kinds.includes(r.kind)) continue;
    let k = out.get(r.key);
    if (!k) out.set(r.key, (k = { ok: [], unknown: [], refused: [] }));
    k[r.outcome].push(r);
  }
  return out;
}

const idOf = (d: Doc): string => String(d._id);
const where = (rep: Replica): string => `${rep.id} (${rep.role})`;

/** Inserts with `_id` and deletes by `_id` (nm_docs). */
function checkDocs(history: readonly OpRecord[], replicas: readonly Replica[]): CheckResult[] {
  const inserts = byKey(history, ['insert-id']);
  const deletes = byKey(history, ['delete']);
  const present: CheckResult = { name: 'acknowledged inserts (with _id) present once', passed: true, counts: '', problems: [] };
  const absent: CheckResult = { name: 'acknowledged deletes absent', passed: true, counts: '', problems: [] };
  let mustExist = 0;
  let mustBeGone = 0;
  for (const rep of replicas) {
    const docs = rep.dump[TABLES.docs] ?? [];
    const seen = new Map<string, Doc[]>();
    for (const d of docs) seen.set(idOf(d), [...(seen.get(idOf(d)) ?? []), d]);
    mustExist = 0;
    mustBeGone = 0;
    for (const [key, ins] of inserts) {
      const del = deletes.get(key);
      const found = seen.get(key) ?? [];
      if (found.length > 1) present.problems.push(`${where(rep)}: ${key} is there ${found.length} times`);
      if (del && del.ok.length > 0) {
        mustBeGone++;
        if (found.length > 0) absent.problems.push(`${where(rep)}: ${key} was deleted (acknowledged: ${del.ok[0]?.requestId}) and is there again`);
        continue;
      }
      if (ins.ok.length > 0 && (!del || del.unknown.length === 0)) {
        mustExist++;
        if (found.length === 0) present.problems.push(`${where(rep)}: acknowledged insert ${key} is missing`);
      }
      if (ins.ok.length === 0 && ins.unknown.length === 0 && found.length > 0) {
        present.problems.push(`${where(rep)}: ${key} is there although its insert was refused (${ins.refused[0]?.code})`);
      }
      for (const d of found) {
        const op = ins.ok[0] ?? ins.unknown[0];
        if (op && (d['c'] !== op.client || d['i'] !== Number(key.split('-')[2]))) {
          present.problems.push(`${where(rep)}: ${key} holds ${JSON.stringify(d)}, not what was inserted`);
        }
      }
    }
    for (const key of seen.keys()) {
      if (!inserts.has(key)) present.problems.push(`${where(rep)}: ${TABLES.docs} holds ${key}, which nobody inserted`);
    }
  }
  present.counts = `${mustExist} documents × ${replicas.length} replicas`;
  absent.counts = `${mustBeGone} deletes × ${replicas.length} replicas`;
  return [present, absent];
}

/** Inserts without `_id` (nm_auto): one document per acknowledged key, with the id the answer gave. */
function checkAuto(history: readonly OpRecord[], replicas: readonly Replica[]): CheckResult {
  const inserts = byKey(history, ['insert-auto']);
  const res: CheckResult = { name: 'acknowledged inserts (no _id) present once', passed: true, counts: '', problems: [] };
  let acked = 0;
  for (const ops of inserts.values()) if (ops.ok.length > 0) acked++;
  for (const rep of replicas) {
    const byField = new Map<string, Doc[]>();
    for (const d of rep.dump[TABLES.auto] ?? []) {
      const k = String(d['key']);
      byField.set(k, [...(byField.get(k) ?? []), d]);
    }
    for (const [key, ops] of inserts) {
      const found = byField.get(key) ?? [];
      if (ops.ok.length > 0) {
        if (found.length !== 1) res.problems.push(`${where(rep)}: acknowledged insert ${key} is there ${found.length} times`);
        const id = ops.ok[0]?.ids?.[0];
        if (found.length === 1 && id !== undefined && idOf(found[0] as Doc) !== id) {
          res.problems.push(`${where(rep)}: ${key} has _id ${idOf(found[0] as Doc)}, the answer said ${id}`);
        }
      } else if (ops.unknown.length > 0) {
        if (found.length > 1) res.problems.push(`${where(rep)}: insert ${key} (outcome unknown) is there ${found.length} times`);
      } else if (found.length > 0) {
        res.problems.push(`${where(rep)}: ${key} is there although its insert was refused`);
      }
    }
    for (const key of byField.keys()) {
      if (!inserts.has(key)) res.problems.push(`${where(rep)}: ${TABLES.auto} holds key ${key}, which nobody inserted`);
    }
  }
  res.counts = `${acked} documents × ${replicas.length} replicas`;
  return res;
}

/** Upserts on accounts: the owner never changes, the note is the last acknowledged one (or one of unknown outcome). */
function checkAccounts(history: readonly OpRecord[], replicas: readonly Replica[]): CheckResult[] {
  const upserts = byKey(history, ['upsert']);
  const foreign = history.filter((r) => r.kind === 'upsert-foreign');
  const data: CheckResult = { name: 'upserts: owner kept, note from the last acknowledged', passed: true, counts: '', problems: [] };
  const refusal: CheckResult = { name: 'upsert naming an existing _id refused (409)', passed: true, counts: '', problems: [] };
  for (const r of foreign) {
    if (r.outcome === 'ok') {
      refusal.problems.push(`upsert ${r.requestId} {_id: ${r.key}, owner: ${r.owner}} matched ${r.matched}, answered 200 inserted ${r.inserted}: it should be 409`);
    } else if (r.outcome === 'refused' && r.code !== 'DBAAS_WRITE_DUPLICATE_ID') {
      refusal.problems.push(`upsert ${r.requestId} refused with ${r.status} ${r.code}, expected 409 DBAAS_WRITE_DUPLICATE_ID`);
    }
  }
  refusal.counts = `${foreign.length} foreign upserts (${foreign.filter((r) => r.outcome === 'refused').length} refused)`;
  for (const rep of replicas) {
    const docs = new Map((rep.dump[TABLES.accounts] ?? []).map((d) => [idOf(d), d]));
    for (const [key, ops] of upserts) {
      const d = docs.get(key);
      const last = ops.ok.sort((a, b) => a.startMs - b.startMs).at(-1);
      const allowed = new Set<unknown>([...(last ? [last.value] : []), ...ops.unknown.map((r) => r.value)]);
      const owner = ownerOf((ops.ok[0] ?? ops.unknown[0] ?? ops.refused[0])?.client ?? -1);
      if (!d) {
        if (last) data.problems.push(`${where(rep)}: account ${key} (acknowledged upsert ${last.requestId}) is missing`);
        continue;
      }
      if (d['owner'] !== owner) data.problems.push(`${where(rep)}: account ${key} has owner ${JSON.stringify(d['owner'])}, expected ${owner} (${JSON.stringify(d)})`);
      if (!allowed.has(d['note'])) {
        data.problems.push(`${where(rep)}: account ${key} has note ${JSON.stringify(d['note'])}, expected ${last ? JSON.stringify(last.value) : 'none'}${ops.unknown.length ? ' or one of unknown outcome' : ''}`);
      }
    }
    for (const key of docs.keys()) {
      if (!upserts.has(key)) data.problems.push(`${where(rep)}: ${TABLES.accounts} holds ${key}, which nobody upserted`);
    }
  }
  data.counts = `${upserts.size} accounts × ${replicas.length} replicas`;
  return [data, refusal];
}

/** `$inc` counters: acknowledged total ≤ n ≤ acknowledged + unknown. */
function checkCounters(history: readonly OpRecord[], replicas: readonly Replica[]): CheckResult {
  const incs = byKey(history, ['inc']);
  const res: CheckResult = { name: 'counters = acknowledged $inc total', passed: true, counts: '', problems: [] };
  const sum = (rs: OpRecord[]): number => rs.reduce((a, r) => a + Number(r.value), 0);
  let total = 0;
  for (const ops of incs.values()) total += sum(ops.ok);
  for (const rep of replicas) {
    const docs = new Map((rep.dump[TABLES.counters] ?? []).map((d) => [idOf(d), d]));
    for (const [key, ops] of incs) {
      const lo = sum(ops.ok);
      const hi = lo + sum(ops.unknown);
      const n = docs.get(key)?.['n'] ?? 0;
      if (typeof n !== 'number' || n < lo || n > hi) {
        res.problems.push(`${where(rep)}: counter ${key} = ${JSON.stringify(n)}, expected ${lo === hi ? lo : `${lo}..${hi}`} (${ops.ok.length} acknowledged, ${ops.unknown.length} unknown increments)`);
      }
    }
    for (const key of docs.keys()) {
      if (!incs.has(key)) res.problems.push(`${where(rep)}: ${TABLES.counters} holds ${key}, which nobody incremented`);
    }
  }
  res.counts = `${incs.size} counters, ${total} acknowledged increments × ${replicas.length} replicas`;
  return res;
}

/** `$push` arrays: each acknowledged item exactly once, each unknown one at most once, nothing else. */
function checkArrays(history: readonly OpRecord[], replicas: readonly Replica[]): CheckResult {
  const pushes = byKey(history, ['push']);
  const res: CheckResult = { name: 'arrays hold each acknowledged $push once', passed: true, counts: '', problems: [] };
  let acked = 0;
  for (const ops of pushes.values()) acked += ops.ok.length;
  for (const rep of replicas) {
    const docs = new Map((rep.dump[TABLES.arrays] ?? []).map((d) => [idOf(d), d]));
    for (const [key, ops] of pushes) {
      const raw = docs.get(key)?.['items'] ?? [];
      const items = Array.isArray(raw) ? raw.map(String) : [];
      const counts = new Map<string, number>();
      for (const it of items) counts.set(it, (counts.get(it) ?? 0) + 1);
      const missing = ops.ok.filter((r) => counts.get(String(r.value)) !== 1).map((r) => `${String(r.value)}×${counts.get(String(r.value)) ?? 0}`);
      const unknownTwice = ops.unknown.filter((r) => (counts.get(String(r.value)) ?? 0) > 1).map((r) => String(r.value));
      const allowed = new Set([...ops.ok, ...ops.unknown].map((r) => String(r.value)));
      const foreign = items.filter((it) => !allowed.has(it));
      if (missing.length > 0) res.problems.push(`${where(rep)}: array ${key}: acknowledged items not there exactly once: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` (+${missing.length - 5})` : ''}`);
      if (unknownTwice.length > 0) res.problems.push(`${where(rep)}: array ${key}: items of unknown outcome there twice: ${unknownTwice.join(', ')}`);
      if (foreign.length > 0) res.problems.push(`${where(rep)}: array ${key}: items nobody pushed (or refused): ${foreign.slice(0, 5).join(', ')}`);
    }
    for (const key of docs.keys()) {
      if (!pushes.has(key)) res.problems.push(`${where(rep)}: ${TABLES.arrays} holds ${key}, which nobody pushed to`);
    }
  }
  res.counts = `${pushes.size} arrays, ${acked} acknowledged pushes × ${replicas.length} replicas`;
  return res;
}

/** Writes refused with a 4xx although they were valid (the expected refusal of a foreign upsert aside). */
function checkRefusals(history: readonly OpRecord[]): CheckResult {
  const res: CheckResult = { name: 'no valid write refused', passed: true, counts: '', problems: [] };
  const bad = history.filter((r) => r.kind !== 'upsert-foreign' && r.status >= 400 && r.status < 500);
  for (const r of bad) res.problems.push(`${r.kind} ${r.key} (${r.requestId}, try ${r.attempts}) answered ${r.status} ${r.code}`);
  res.counts = `${history.filter((r) => r.kind !== 'upsert-foreign').length} writes`;
  return res;
}

/** Keys sorted, so that field order does not count as a difference. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** Every replica's data equals the master's, document by document. */
export function checkReplicasEqual(replicas: readonly Replica[]): CheckResult {
  const res: CheckResult = { name: 'replicas equal (direct read of each database)', passed: true, counts: '', problems: [] };
  // The master's data is the reference; when it could not be read, the first replica's.
  const master = replicas.find((r) => r.role === 'master') ?? replicas[0];
  const label = master?.role === 'master' ? 'master' : 'reference';
  let docs = 0;
  if (!master) {
    res.problems.push('no replica to compare');
  } else {
    for (const docsOf of Object.values(master.dump)) docs += docsOf.length;
    for (const rep of replicas) {
      if (rep === master) continue;
      const tables = new Set([...Object.keys(master.dump), ...Object.keys(rep.dump)]);
      for (const t of [...tables].sort()) {
        const a = new Map((master.dump[t] ?? []).map((d) => [idOf(d), canonical(d)]));
        const b = new Map((rep.dump[t] ?? []).map((d) => [idOf(d), canonical(d)]));
        const onlyMaster = [...a.keys()].filter((k) => !b.has(k));
        const onlyRep = [...b.keys()].filter((k) => !a.has(k));
        const differ = [...a.keys()].filter((k) => b.has(k) && a.get(k) !== b.get(k));
        if (onlyMaster.length + onlyRep.length + differ.length > 0) {
          res.problems.push(
            `${where(rep)} vs ${label} ${master.id}, table ${t}: ${onlyMaster.length} missing (${onlyMaster.slice(0, 3).join(', ')}), ${onlyRep.length} extra (${onlyRep.slice(0, 3).join(', ')}), ${differ.length} different (${differ.slice(0, 3).join(', ')})`,
          );
        }
      }
    }
  }
  res.counts = `${replicas.length} replicas, ${docs} documents on the ${label}`;
  return res;
}

/** Every data check of a run. */
export function checkHistory(history: readonly OpRecord[], replicas: readonly Replica[]): CheckResult[] {
  const results = [
    ...checkDocs(history, replicas),
    checkAuto(history, replicas),
    ...checkAccounts(history, replicas),
    checkCounters(history, replicas),
    checkArrays(history, replicas),
    checkRefusals(history),
    checkReplicasEqual(replicas),
  ];
  for (const r of results) r.passed = r.problems.length === 0;
  return results;
}
