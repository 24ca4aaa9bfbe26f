/**
 * Replica verification: proves that every replica equals the master, table by
 * table, at one seq (`GET /api/v1/verify`, `dbaas verify`, and periodically).
 *
 * Invariant: replicas are compared only at a checkpoint, a `verify` write that
 * goes through the write path and gets its own seq S (see worker/checksum.ts),
 * so every answer that is compared describes the data exactly at S, on every
 * replica, whatever writes run meanwhile. A replica that did not apply S itself
 * (it joined later from a snapshot, or it did not get there in time) is "not
 * comparable", never "divergent". The master is the reference: it applied and
 * acknowledged every write, and a divergent slave is replaced by a fresh copy of
 * it. Only when every slave (two or more) agrees with the others and all differ
 * from the master is nothing replaced: then the master is the suspect, and an
 * operator must look.
 *
 * A run records an audit event (kind `verify`: the metrics count it from there)
 * and marks each divergent slave on the cluster manager, whose control loop
 * ({@link decide}) removes it and starts a replacement. One run at a time: a
 * caller arriving while one is in flight gets that run's report.
 */
import { randomUUID } from 'node:crypto';
import type { OrchestratorConfig } from '../common/config.js';
import { DbaasError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { WIRE_VERSION, type ChecksumReply, type ControlMessage, type TableChecksum, type WriteEnvelope } from '../common/messages.js';
import type { ClusterNames } from '../common/names.js';
import type { WriteResult } from '../common/commands.js';
import type { AuditLog } from './audit-log.js';

/** How one replica compared with the master at the checkpoint. */
export interface ReplicaVerdict {
  id: string;
  role: 'master' | 'slave';
  pid: number;
  status: 'equal' | 'divergent' | 'not-comparable' | 'unreachable';
  /** Divergent: the tables whose count or sum differ from the master's. */
  tables?: string[];
  /** Why it is not comparable or unreachable. */
  reason?: string;
  /** Documents it hashed, and how long it stopped applying to hash them. */
  documents?: number;
  hashMs?: number;
}

/**
 * `equal`: every replica was compared and equals the master. `divergent`: at
 * least one differs. `incomplete`: none differs, but some replica (or the
 * master) could not be compared.
 */
export type VerifyResult = 'equal' | 'divergent' | 'incomplete';

export interface VerifyReport {
  result: VerifyResult;
  /** The checkpoint: every compared replica hashed its data exactly at this seq. */
  seq: number;
  master: string;
  at: string;
  durationMs: number;
  /** The master's tables at `seq` (non-empty ones): document count and checksum. */
  tables: Record<string, TableChecksum>;
  replicas: ReplicaVerdict[];
  /** Set when every slave (two or more) agrees with the others and all differ from the master. */
  suspect?: 'master';
  /** `manual` (HTTP/CLI) or `periodic` (DBAAS_VERIFY_INTERVAL_MS). */
  trigger: 'manual' | 'periodic';
}

/** The tables whose checksum differs; an absent table counts as empty. */
export function divergentTables(reference: Record<string, TableChecksum>, replica: Record<string, TableChecksum>): string[] {
  const names = new Set([...Object.keys(reference), ...Object.keys(replica)]);
  const out: string[] = [];
  for (const name of names) {
    const a = reference[name];
    const b = replica[name];
    if ((a?.count ?? 0) !== (b?.count ?? 0) || (a?.sum ?? '') !== (b?.sum ?? '')) out.push(name);
  }
  return out.sort();
}

/** One replica as asked: its identity and its answer (or why there is none). */
export interface ReplicaAnswer {
  id: string;
  role: 'master' | 'slave';
  pid: number;
  answer: ChecksumReply | { error: string };
}

/** Compares every replica's answer with the master's, as a pure function. */
export function compareReplicas(masterId: string, answers: readonly ReplicaAnswer[]): Pick<VerifyReport, 'result' | 'tables' | 'replicas' | 'suspect'> {
  const masterAnswer = answers.find((a) => a.id === masterId)?.answer;
  const reference = masterAnswer && 'comparable' in masterAnswer && masterAnswer.comparable ? masterAnswer.tables : undefined;
  const replicas: ReplicaVerdict[] = answers.map(({ id, role, pid, answer }) => {
    const base = { id, role, pid };
    if ('error' in answer) return { ...base, status: 'unreachable', reason: answer.error };
    if (!answer.comparable) return { ...base, status: 'not-comparable', reason: answer.reason };
    const measured = { documents: answer.documents, hashMs: answer.ms };
    if (!reference) return { ...base, status: 'not-comparable', reason: 'the master has no checksum at this seq to compare with', ...measured };
    const tables = divergentTables(reference, answer.tables);
    return tables.length === 0 ? { ...base, status: 'equal', ...measured } : { ...base, status: 'divergent', tables, ...measured };
  });
  const divergent = replicas.filter((r) => r.status === 'divergent');
  const result: VerifyResult = divergent.length > 0 ? 'divergent' : replicas.every((r) => r.status === 'equal') && reference ? 'equal' : 'incomplete';
  const out: Pick<VerifyReport, 'result' | 'tables' | 'replicas' | 'suspect'> = { result, tables: reference ?? {}, replicas };
  const slaves = replicas.filter((r) => r.role === 'slave' && r.id !== masterId);
  if (slaves.length >= 2 && slaves.every((r) => r.status === 'divergent')) {
    const sums = slaves.map((r) => {
      const a = answers.find((x) => x.id === r.id)?.answer;
      return a && 'comparable' in a && a.comparable ? JSON.stringify(Object.entries(a.tables).sort()) : r.id;
    });
    if (new Set(sums).size === 1) out.suspect = 'master';
  }
  return out;
}

/** What the verifier needs from the rest of the orchestrator. */
export interface VerifierDeps {
  config: Pick<OrchestratorConfig, 'requestTimeoutMs' | 'verifyIntervalMs' | 'verifyWaitMs'>;
  names: ClusterNames;
  rpc: { call(queue: string, message: unknown, opts: { timeoutMs: number; persistent?: boolean; reqId?: string }): Promise<unknown> };
  cluster: {
    requireMaster(): Promise<{ id: string }>;
    /** Registered workers: id, pid, state. */
    workersDetail(): Array<{ id: string; pid: number; state: string }>;
    /** Marks a slave for replacement by the control loop. */
    markDivergent(id: string, why: string): void;
  };
  audit: AuditLog;
  logger: Logger;
}

export class Verifier {
  private inFlight: Promise<VerifyReport> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** The newest report, for operators and the metrics. */
  last: VerifyReport | undefined;

  constructor(private readonly d: VerifierDeps) {}

  /** Starts the periodic runs (DBAAS_VERIFY_INTERVAL_MS; 0 = off). */
  start(): void {
    const every = this.d.config.verifyIntervalMs;
    if (every <= 0 || this.timer || this.closed) return;
    this.timer = setInterval(() => {
      this.run('periodic').catch((err: unknown) => {
        // No master, broker away, a timeout: the next period tries again.
        this.d.logger.warn({ err: (err as Error).message }, 'periodic verify could not run');
      });
    }, every);
    this.timer.unref();
  }

  /** Stops the periodic runs until start() (a deposed leader); manual runs still work. Idempotent. */
  pause(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Stops the periodic runs for good (shutdown). Idempotent. */
  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Runs one verify, or joins the one in flight.
   * @throws DbaasError DBAAS_CLUSTER_NO_MASTER (503), DBAAS_RPC_TIMEOUT (504), DBAAS_BROKER_UNAVAILABLE (503)
   */
  run(trigger: 'manual' | 'periodic', reqId?: string): Promise<VerifyReport> {
    this.inFlight ??= this.verify(trigger, reqId).finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async verify(trigger: 'manual' | 'periodic', reqId?: string): Promise<VerifyReport> {
    if (this.closed) throw new DbaasError('DBAAS_SHUTTING_DOWN');
    const { config, names, rpc, cluster } = this.d;
    const started = Date.now();
    await cluster.requireMaster();
    const envelope: WriteEnvelope = { v: WIRE_VERSION, requestId: `verify-${randomUUID()}`, command: { kind: 'verify' } };
    const written = (await rpc.call(names.writeQueue, envelope, { timeoutMs: config.requestTimeoutMs, persistent: true, ...(reqId ? { reqId } : {}) })) as WriteResult;
    const seq = written.seq;
    // The master that took the checkpoint: a failover meanwhile hands it to a slave that applied it too.
    const master = await cluster.requireMaster();
    const workers = cluster.workersDetail();
    const answers = await Promise.all(
      workers.map(async (w): Promise<ReplicaAnswer> => {
        const role = w.id === master.id ? 'master' : 'slave';
        const base = { id: w.id, role, pid: w.pid } as const;
        if (role === 'slave' && w.state !== 'slave') {
          return { ...base, answer: { seq, comparable: false, reason: `it is ${w.state}, not serving` } };
        }
        const message: ControlMessage = { v: WIRE_VERSION, type: 'checksum', seq, waitMs: config.verifyWaitMs };
        try {
          const answer = (await rpc.call(names.controlQueue(w.id), message, { timeoutMs: config.verifyWaitMs + config.requestTimeoutMs })) as ChecksumReply;
          return { ...base, answer };
        } catch (err) {
          return { ...base, answer: { error: (err as Error).message } };
        }
      }),
    );
    const compared = compareReplicas(master.id, answers);
    const report: VerifyReport = {
      result: compared.result,
      seq,
      master: master.id,
      at: new Date(started).toISOString(),
      durationMs: Date.now() - started,
      trigger,
      ...(compared.suspect ? { suspect: compared.suspect } : {}),
      tables: compared.tables,
      replicas: compared.replicas,
    };
    this.last = report;
    this.act(report);
    return report;
  }

  /** Audits the run (the metrics count it from the event) and marks divergent slaves for replacement. */
  private act(report: VerifyReport): void {
    const divergent = report.replicas.filter((r) => r.status === 'divergent');
    const notCompared = report.replicas.filter((r) => r.status === 'not-comparable' || r.status === 'unreachable');
    const details = {
      result: report.result,
      seq: report.seq,
      trigger: report.trigger,
      replicas: report.replicas.length,
      divergent: divergent.map((r) => ({ id: r.id, tables: r.tables })),
      notCompared: notCompared.map((r) => r.id),
    };
    let reason: string;
    if (report.result === 'equal') reason = `verify at seq ${report.seq}: all ${report.replicas.length} replicas equal`;
    else if (report.result === 'incomplete') {
      reason = `verify at seq ${report.seq}: no replica differs; not compared: ${notCompared.map((r) => `${r.id} (${r.reason ?? r.status})`).join(', ')}`;
    } else {
      const list = divergent.map((r) => `${r.id} (pid ${r.pid}) in ${(r.tables ?? []).join(', ')}`).join('; ');
      reason =
        report.suspect === 'master'
          ? `verify at seq ${report.seq}: every slave differs from master ${report.master} the same way (${list}); nothing replaced, the master is suspect`
          : `verify at seq ${report.seq}: divergent from master ${report.master}: ${list}; marked for replacement`;
    }
    this.d.audit.record('verify', reason, { durationMs: report.durationMs, details: { ...details, ...(report.suspect ? { suspect: report.suspect } : {}) } });
    if (report.suspect === 'master') return;
    for (const r of divergent) {
      if (r.role === 'slave') this.d.cluster.markDivergent(r.id, `differs from the master at seq ${report.seq} in table(s) ${(r.tables ?? []).join(', ')}`);
    }
  }
}
