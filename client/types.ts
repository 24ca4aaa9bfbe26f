/**
 * The shapes of the dbaas HTTP API (v1) as a TypeScript service sees them.
 * The reference is the OpenAPI document at `/docs/json`.
 */

/** A stored document: JSON, `_id` a string. */
export type Document = { _id?: string; [field: string]: unknown };

/**
 * A MongoDB filter restricted to field paths and `$eq $ne $gt $gte $lt $lte $in
 * $nin $exists $and $or $not $regex`.
 */
export type Filter = { [pathOrOperator: string]: unknown };

/** Update operators, or a plain object meaning `$set`. */
export type Update =
  | { $set?: Record<string, unknown>; $unset?: Record<string, unknown>; $inc?: Record<string, number>; $push?: Record<string, unknown>; $addToSet?: Record<string, unknown>; $pull?: Record<string, unknown> }
  | Record<string, unknown>;

/** The body of `POST /api/v1/db/write` (modern form). */
export type WriteBody =
  | { table: string; operation: 'insert'; data: Document | Document[]; requestId?: string }
  | { table: string; operation: 'update' | 'upsert'; where: Filter; data: Update; requestId?: string }
  | { table: string; operation: 'delete'; where: Filter; requestId?: string };

/** The answer to a write: the master applied it and it is durably queued for every slave. */
export interface WriteResult {
  ok: true;
  /** Pass it as `afterSeq` to read your own write (the client does so by itself). */
  seq: number;
  inserted: number;
  ids: string[];
  matched: number;
  modified: number;
  deleted: number;
}

export interface ReadOptions {
  where?: Filter;
  columns?: string[];
  sort?: Record<string, 1 | -1>;
  limit?: number;
  skip?: number;
  /**
   * Wait until the answering slave has applied this seq. By default the client
   * sends the highest seq its own writes got (read-your-writes); see
   * {@link DbaasClientOptions.readYourWrites}.
   */
  afterSeq?: number;
  /** `eventual`: send no afterSeq for this read, even in a session. */
  consistency?: 'session' | 'eventual';
}

export type WorkerRole = 'master' | 'slave';
export type WorkerState = 'starting' | 'syncing' | 'slave' | 'promoting' | 'master' | 'retiring' | 'stopped';

/** One entry of `GET /api/v1/workers`. */
export interface WorkerInfo {
  id: string;
  role: WorkerRole;
  pid: number;
  state: WorkerState;
  appliedSeq: number;
  /** Writes the master has applied that this worker has not. */
  lag: number;
  startedAt: string;
}

export type AuditKind = 'detection' | 'promotion' | 'replacement' | 'removal' | 'restart' | 'crash-drill' | 'scaling' | 'adoption' | 'error';

/** One entry of the audit log (`GET /api/v1/events`). */
export interface AuditEvent {
  seq: number;
  at: string;
  kind: AuditKind;
  reason: string;
  durationMs?: number;
  details?: Record<string, unknown>;
}

/** `GET /api/v1/scale`. */
export interface AutoscalerStatus {
  started: boolean;
  readsInWindow: number;
  windowOpenedAt: string | null;
  intervalMs: number;
  targetSlaves: number;
}

/** `GET /readyz` (the body comes with 200 and with 503). */
export interface Readiness {
  ready: boolean;
  broker: boolean;
  master: string | null;
  servingSlaves: number;
}
