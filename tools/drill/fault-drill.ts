/**
 * The fault drill: idempotent writers retry until acknowledged while the master
 * and slaves are killed again and again; at the end every replica must hold each
 * acknowledged write exactly once.
 *
 * It speaks only the public HTTP API of a running orchestrator, so it runs the
 * same against `npm start` and against a test cluster.
 */
import { DbaasClient, DbaasClientError } from '../../client/dbaas-client.js';
import type { WorkerInfo, WriteBody } from '../../client/types.js';

export interface DrillOptions {
  url: string;
  adminToken?: string;
  rounds: number;
  writers: number;
  /** Pause between a recovery and the next crash. */
  settleMs: number;
  /** How long one write may be retried before the drill calls it lost. */
  writeDeadlineMs: number;
  /** How long recovery (worker count and readiness back) may take. */
  recoveryTimeoutMs: number;
  log?: (line: string) => void;
}

export interface DrillReport {
  table: string;
  acknowledged: number;
  increments: number;
  /** Per master crash: ms from the kill until a write sent after it succeeded. */
  masterGapsMs: number[];
  /** Per slave crash: ms from the kill until the worker count was back and every slave served. */
  slaveRecoveryMs: number[];
  /** Per master crash: whether the new master was the lowest-pid caught-up slave. */
  lowestPidPromoted: boolean[];
  replicasChecked: number;
  problems: string[];
  ok: boolean;
}

interface Attempt {
  start: number;
  end: number;
  ok: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export async function runDrill(o: DrillOptions): Promise<DrillReport> {
  const log = o.log ?? (() => undefined);
  // One try per call: the drill retries writes itself, to time every attempt.
  const client = new DbaasClient({
    url: o.url,
    ...(o.adminToken ? { adminToken: o.adminToken } : {}),
    timeoutMs: 15_000,
    retry: { attempts: 1 },
    readYourWrites: false,
  });

  const table = `drill_${Date.now().toString(36)}`;
  const run = Math.random().toString(36).slice(2, 8);
  const attempts: Attempt[] = [];
  const acked = new Set<string>();
  const increments = new Map<string, number>();
  const problems: string[] = [];
  let stop = false;

  /** One write, retried with the same requestId until it is acknowledged. */
  const writeUntilAcked = async (requestId: string, body: WriteBody): Promise<boolean> => {
    const deadline = Date.now() + o.writeDeadlineMs;
    while (Date.now() < deadline) {
      const start = Date.now();
      let ok = false;
      try {
        await client.write(body, { requestId });
        ok = true;
      } catch (err) {
        // An answer below 500 is a refusal: retrying the same write cannot help.
        if (err instanceof DbaasClientError && err.status > 0 && err.status < 500) {
          problems.push(`write ${requestId} refused with ${err.status}: ${err.code} ${err.message}`);
          return false;
        }
        ok = false;
      }
      attempts.push({ start, end: Date.now(), ok });
      if (ok) return true;
      await sleep(25);
    }
    problems.push(`write ${requestId} was never acknowledged within ${o.writeDeadlineMs} ms`);
    return false;
  };

  const writer = async (w: number): Promise<void> => {
    const counter = `counter-${w}`;
    for (let i = 0; !stop; i++) {
      const key = `${w}-${i}`;
      if (await writeUntilAcked(`drill-${run}-${key}`, { table, operation: 'insert', data: { key, w, i } })) acked.add(key);
      if (i % 4 === 3) {
        const ok = await writeUntilAcked(`drill-${run}-${key}-inc`, {
          table,
          operation: 'upsert',
          where: { key: counter },
          data: { $inc: { n: 1 } },
        });
        if (ok) increments.set(counter, (increments.get(counter) ?? 0) + 1);
      }
    }
  };

  const workers = (): Promise<WorkerInfo[]> => client.workers();
  const initial = await workers();
  const expectedCount = initial.length;
  log(`drill: ${expectedCount} workers, ${o.writers} writers, ${o.rounds} round(s), table ${table}`);

  /** Back to the starting worker count, all serving, the killed pid gone. */
  const recovered = async (killedPid: number): Promise<void> => {
    const deadline = Date.now() + o.recoveryTimeoutMs;
    while (Date.now() < deadline) {
      const ws = await workers().catch(() => []);
      const ready = (await client.readiness().catch(() => ({ ready: false }))).ready;
      const whole = ws.length === expectedCount && ws.every((w) => (w.state === 'master' || w.state === 'slave') && w.pid !== killedPid);
      if (ready && whole) return;
      await sleep(50);
    }
    throw new Error(`the cluster did not recover to ${expectedCount} serving workers within ${o.recoveryTimeoutMs} ms`);
  };

  /**
   * ms from `killedAt` until the first write sent after it was acknowledged.
   * Waits for one: on a busy machine the cluster can look recovered before any
   * writer's next try has come back (NaN when none did within the deadline).
   */
  const writeGapAfter = async (killedAt: number): Promise<number> => {
    const deadline = Date.now() + o.writeDeadlineMs;
    for (;;) {
      const first = attempts.find((a) => a.ok && a.start >= killedAt);
      if (first) return first.end - killedAt;
      if (Date.now() > deadline) return NaN;
      await sleep(20);
    }
  };

  const runningWriters = Array.from({ length: o.writers }, (_, w) => writer(w));
  const masterGapsMs: number[] = [];
  const slaveRecoveryMs: number[] = [];
  const lowestPidPromoted: boolean[] = [];
  try {
    await sleep(o.settleMs);
    for (let round = 1; round <= o.rounds; round++) {
      const before = await workers();
      const caughtUpSlaves = before.filter((w) => w.role === 'slave' && w.state === 'slave').sort((a, b) => a.pid - b.pid);
      const killedAt = Date.now();
      const killedMaster = await client.crash('master');
      await recovered(killedMaster);
      const gap = await writeGapAfter(killedAt);
      masterGapsMs.push(gap);
      const after = await workers();
      const newMaster = after.find((w) => w.role === 'master');
      const expected = caughtUpSlaves[0];
      lowestPidPromoted.push(newMaster !== undefined && expected !== undefined && newMaster.id === expected.id);
      log(`round ${round}: killed master pid ${killedMaster}; writes resumed after ${gap} ms; new master pid ${newMaster?.pid} (lowest caught-up slave pid was ${expected?.pid})`);
      await sleep(o.settleMs);

      const slaveKilledAt = Date.now();
      const killedSlave = await client.crash('slave');
      await recovered(killedSlave);
      slaveRecoveryMs.push(Date.now() - slaveKilledAt);
      log(`round ${round}: killed slave pid ${killedSlave}; replacement serving after ${Date.now() - slaveKilledAt} ms`);
      await sleep(o.settleMs);
    }
  } finally {
    stop = true;
    await Promise.all(runningWriters);
  }

  // Every replica must hold each acknowledged insert exactly once, and each counter its exact count.
  const deadline = Date.now() + o.recoveryTimeoutMs;
  let final = await workers();
  while (Date.now() < deadline && final.some((w) => w.lag > 0)) {
    await sleep(100);
    final = await workers();
  }
  for (const w of final) {
    const docs = await readReplica(o, w.id, table);
    if (typeof docs === 'number') {
      problems.push(`reading replica ${w.id} answered ${docs}`);
      continue;
    }
    const seen = new Map<string, number>();
    for (const d of docs) seen.set(d.key, (seen.get(d.key) ?? 0) + 1);
    for (const key of acked) {
      const n = seen.get(key) ?? 0;
      if (n !== 1) problems.push(`replica ${w.id} (${w.role}, pid ${w.pid}) holds acknowledged write ${key} ${n} times`);
    }
    for (const [counter, count] of increments) {
      const doc = docs.find((d) => d.key === counter);
      if (doc?.n !== count) problems.push(`replica ${w.id} has ${counter} = ${doc?.n}, expected ${count} acknowledged increments`);
    }
  }
  for (const [i, promoted] of lowestPidPromoted.entries()) {
    if (!promoted) problems.push(`round ${i + 1}: the new master was not the lowest-pid caught-up slave`);
  }
  const ackedIncrements = [...increments.values()].reduce((a, b) => a + b, 0);
  return {
    table,
    acknowledged: acked.size,
    increments: ackedIncrements,
    masterGapsMs,
    slaveRecoveryMs,
    lowestPidPromoted,
    replicasChecked: final.length,
    problems,
    ok: problems.length === 0,
  };
}

/**
 * Every document of `table` on one replica (`POST /api/v1/workers/:id/read`, an
 * admin route the typed client does not offer), or the HTTP status when it failed.
 */
async function readReplica(o: DrillOptions, workerId: string, table: string): Promise<Array<{ key: string; n?: number }> | number> {
  const res = await fetch(`${o.url}/api/v1/workers/${encodeURIComponent(workerId)}/read`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(o.adminToken ? { authorization: `Bearer ${o.adminToken}` } : {}) },
    body: JSON.stringify({ table, where: {}, columns: ['key', 'n'], limit: 100000 }),
    signal: AbortSignal.timeout(15_000),
  });
  if (res.status !== 200) return res.status;
  return (await res.json()) as Array<{ key: string; n?: number }>;
}
