/**
 * The shapes of the dbaas HTTP API (v1) as a TypeScript service sees them.
 * The reference is the OpenAPI document at `/docs/json`.
 */

/** A stored document: JSON, `_id` a string. */
export type Document = { _id?: string; [field: string]: unknown };

/**
 * A MongoDB filter restricted to field paths and `$eq $ne $gt $gte $lt $lte $in
 * $nin $exists $and $or $not $regex`. Any other operator (`$elemMatch`, `$where`,
 * …) is refused by the server with 400 DBAAS_QUERY_OPERATOR_NOT_ALLOWED; the
 * type stays open because a nested plain object is an equality match on an
 * embedded document, which a closed type could not tell from an operator.
 */
export type Filter = { [pathOrOperator: string]: unknown };

/**
 * Update operators (only these: the server refuses any other `$` key with 400
 * DBAAS_UPDATE_INVALID), or a plain object meaning `$set`, whose keys may not
 * start with `$` (so `{ $rename: … }` does not type-check).
 */
export type Update =
  | { $set?: Record<string, unknown>; $unset?: Record<string, unknown>; $inc?: Record<string, number>; $push?: Record<string, unknown>; $addToSet?: Record<string, unknown>; $pull?: Record<string, unknown> }
  | ({ [operator: `$${string}`]: never } & Record<string, unknown>);

/** The body of `POST /api/v1/db/write` (modern form). */
export type WriteBody = (
  | { table: string; operation: 'insert'; data: Document | Document[]; requestId?: string }
  | { table: string; operation: 'update' | 'upsert'; where: Filter; data: Update; requestId?: string }
  | { table: string; operation: 'delete'; where: Filter; requestId?: string }
) & {
  /** The database (issue 20); default: the client's `database` option, else the server's `default`. */
  database?: string;
};

/** A database as `GET /api/v1/db/databases` lists it. */
export interface DatabaseInfo {
  name: string;
  /** Absent for `default`. */
  createdAt?: string;
}

/** A secondary index (issue 17): its name, keys in order (field path → 1 or -1), and whether it is unique. */
export interface IndexInfo {
  name: string;
  keys: Record<string, 1 | -1>;
  unique: boolean;
}

/** `createIndex`'s body: `keys` one field name or an object of field paths to 1 or -1; `name` defaults to MongoDB's (`a_1_b_-1`). */
export interface CreateIndexBody {
  table: string;
  database?: string;
  keys: string | Record<string, 1 | -1>;
  unique?: boolean;
  name?: string;
  requestId?: string;
}

/** One table of `GET /api/v1/db/tables`. `documents` is the storage's estimate when `exact` is false, null when not counted in time. */
export interface TableView {
  table: string;
  database: string;
  documents: number | null;
  exact: boolean;
  indexes: IndexInfo[];
}

/** The answer to a write: the master applied it and it is durably queued for every slave. Pass its `seq` as `afterSeq` to read your own write (the client does so by itself). */
export type { WriteResult } from '../common/commands.js';

export interface ReadOptions {
  /** The database (issue 20); default: the client's `database` option, else the server's `default`. */
  database?: string;
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

import type { WorkerRole } from '../common/config.js';
import type { WorkerState } from '../common/messages.js';

export type { WorkerRole, WorkerState };

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
  /** Malformed messages this worker dead-lettered. */
  poisonMessages: number;
}

/** The audit log (`GET /api/v1/events`) and the autoscaler's state (`GET /api/v1/scale`), as the server defines them. */
export type { AuditEvent, AuditKind } from '../orchestrator/audit-log.js';
export type { AutoscalerStatus } from '../orchestrator/autoscaler.js';
export type { ReplicaVerdict, VerifyReport, VerifyResult } from '../orchestrator/verify.js';

/** One service the lifecycle manager watches (`GET /api/v1/platform`); `stale` when its manager has not reported for 15 s. */
export type PlatformService = import('../coordination/schemas.js').PlatformServiceZnode & { stale: boolean };

/** `GET /api/v1/platform`: the platform mode and every supervised service. */
export interface PlatformView {
  platform: 'single' | 'ha';
  services: PlatformService[];
  /** Set when no lifecycle manager reported for the namespace. */
  note?: string;
}

/** `GET /readyz` (the body comes with 200 and with 503). */
export interface Readiness {
  ready: boolean;
  broker: boolean;
  master: string | null;
  servingSlaves: number;
}
