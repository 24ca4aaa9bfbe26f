/**
 * The one catalogue of dbaas errors.
 *
 * Every error a client can see has a stable code `DBAAS_<AREA>_<WHAT>`, an HTTP
 * status and a retryable flag. Errors cross the RabbitMQ wire as
 * {@link WireError} and are rebuilt with {@link DbaasError.fromWire}, never by
 * `instanceof` on the far side. One place ({@link httpErrorBody}) turns them into
 * the HTTP body `{"error": {"code", "message"}}`.
 */

import { clientMessage } from './client-message.js';

interface CatalogueEntry {
  readonly status: number;
  readonly retryable: boolean;
  /** Default message, used when the thrower gives none. */
  readonly message: string;
}

export const ERROR_CATALOGUE = {
  // Request shape (400-range): nothing was queued, nothing changed.
  DBAAS_REQ_INVALID_JSON: { status: 400, retryable: false, message: 'the request body is not valid JSON' },
  DBAAS_REQ_BODY_TOO_LARGE: { status: 413, retryable: false, message: 'the request body is larger than allowed' },
  DBAAS_REQ_HEADERS_TOO_LARGE: { status: 431, retryable: false, message: 'the request line and headers are larger than allowed (16 KiB)' },
  DBAAS_REQ_TIMEOUT: { status: 408, retryable: false, message: 'the request did not arrive in time; the connection is closed' },
  DBAAS_REQ_INVALID: { status: 400, retryable: false, message: 'the request is malformed' },
  DBAAS_REQ_UNKNOWN_FIELD: { status: 400, retryable: false, message: 'the request has a field that is not allowed' },
  DBAAS_REQ_BAD_TABLE: { status: 400, retryable: false, message: 'table must match ^[A-Za-z][A-Za-z0-9_]{0,63}$' },
  DBAAS_REQ_BAD_DATABASE: { status: 400, retryable: false, message: 'database must match ^[a-z][a-z0-9_]{0,29}$' },
  DBAAS_REQ_BAD_OPERATION: { status: 400, retryable: false, message: 'operation must be insert, update, upsert or delete' },
  DBAAS_REQ_LIMIT_EXCEEDED: { status: 400, retryable: false, message: 'the request exceeds a size limit' },
  DBAAS_QUERY_OPERATOR_NOT_ALLOWED: { status: 400, retryable: false, message: 'the filter uses an operator that is not allowed' },
  DBAAS_QUERY_INVALID: { status: 400, retryable: false, message: 'the filter is malformed' },
  DBAAS_QUERY_REGEX_UNSAFE: { status: 400, retryable: false, message: 'the regular expression could take exponential time to match' },
  DBAAS_DOC_INVALID: { status: 400, retryable: false, message: 'the document is malformed' },
  DBAAS_UPDATE_INVALID: { status: 400, retryable: false, message: 'the update is malformed' },
  DBAAS_WRITE_MISSING_WHERE: { status: 400, retryable: false, message: 'update, upsert and delete need a where filter' },
  DBAAS_ROUTE_NOT_FOUND: { status: 404, retryable: false, message: 'no such route' },
  DBAAS_ROUTE_METHOD_NOT_ALLOWED: { status: 405, retryable: false, message: 'this route does not take that method' },

  // Secondary indexes (issue 17): nothing changed on any replica.
  DBAAS_WRITE_DUPLICATE_KEY: { status: 409, retryable: false, message: 'the write would give two documents the same key of a unique index' },
  DBAAS_INDEX_EXISTS: { status: 409, retryable: false, message: 'another index of that name exists on the table' },
  DBAAS_INDEX_NOT_FOUND: { status: 404, retryable: false, message: 'no index of that name on the table' },
  DBAAS_INDEX_KEY_TOO_LARGE: { status: 400, retryable: false, message: 'an indexed value is larger than an index entry may hold (1,024 bytes)' },

  // Conflicts with the current data (the write was refused whole, nothing changed).
  DBAAS_WRITE_DUPLICATE_ID: { status: 409, retryable: false, message: 'a document with this _id already exists' },
  DBAAS_WRITE_TYPE_CONFLICT: { status: 409, retryable: false, message: 'the update does not fit the stored document' },
  /** The master's own database refused the write's data (a value, size or key it does not take): nothing of it applied, its seq is a void entry. */
  DBAAS_WRITE_REFUSED_BY_STORAGE: { status: 422, retryable: false, message: 'the database refused the write; nothing of it was applied' },
  // An idempotency key reused with another body (as in the IETF Idempotency-Key draft: 422).
  DBAAS_WRITE_REQUEST_ID_REUSED: { status: 422, retryable: false, message: 'this requestId was used for a different write' },
  // A retry made after the retry horizon (DBAAS_REQUEST_ID_TTL_MS): whether it was applied can no longer be told, so it is not applied again.
  DBAAS_WRITE_REQUEST_ID_EXPIRED: { status: 409, retryable: false, message: 'this requestId is older than the retry horizon; the write was not applied again' },

  // Databases (issue 20).
  DBAAS_DATABASE_NOT_FOUND: { status: 404, retryable: false, message: 'no database of that name; an admin creates it with POST /api/v1/db/databases' },
  DBAAS_DATABASE_EXISTS: { status: 409, retryable: false, message: 'a database of that name already exists' },
  DBAAS_DATABASE_PROTECTED: { status: 409, retryable: false, message: 'the default database cannot be created or dropped' },
  DBAAS_DATABASE_LIMIT_REACHED: { status: 409, retryable: false, message: 'there are as many databases as DBAAS_MAX_DATABASES allows; drop one first' },
  /** A write would create a table in a database that holds DBAAS_MAX_TABLES already: nothing changed. */
  DBAAS_TABLE_LIMIT_REACHED: { status: 409, retryable: false, message: 'the database holds as many tables as DBAAS_MAX_TABLES allows' },

  // Backups (issue 20): what the slave taking one answers.
  DBAAS_BACKUP_OPLOG_TRIMMED: { status: 409, retryable: false, message: "the slave's oplog no longer holds every entry after oplogAfter; take a full backup, or one with a later oplogAfter" },
  DBAAS_BACKUP_FAILED: { status: 503, retryable: true, message: 'the slave taking the backup failed; another try may succeed' },

  // Fault drills.
  DBAAS_CRASH_NOTHING_TO_KILL: { status: 409, retryable: false, message: 'there is no worker of that role to kill' },

  // Authentication.
  DBAAS_AUTH_MISSING: { status: 401, retryable: false, message: 'this endpoint needs Authorization: Bearer <token>' },
  DBAAS_AUTH_INVALID: { status: 403, retryable: false, message: 'the token is not valid for this endpoint' },
  // A valid API key asked for a database it is not bound to, or to write with a read-only key.
  DBAAS_AUTH_SCOPE_DENIED: { status: 403, retryable: false, message: 'this API key is not allowed this database or this kind of access' },

  // Availability (503/504): safe to retry; writes with the same requestId apply at most once.
  DBAAS_CLUSTER_NO_MASTER: { status: 503, retryable: true, message: 'no master is available to take writes' },
  DBAAS_CLUSTER_NO_SLAVE: { status: 503, retryable: true, message: 'no caught-up slave is available to answer reads' },
  DBAAS_BROKER_UNAVAILABLE: { status: 503, retryable: true, message: 'the message broker is unavailable' },
  DBAAS_SHUTTING_DOWN: { status: 503, retryable: true, message: 'the service is shutting down' },
  DBAAS_WORKER_NOT_READY: { status: 503, retryable: true, message: 'the worker is not ready' },
  DBAAS_WORKER_DB_UNAVAILABLE: { status: 503, retryable: true, message: 'the worker cannot reach its database' },
  DBAAS_RPC_TIMEOUT: { status: 504, retryable: true, message: 'the worker did not answer in time' },
  DBAAS_READ_SEQ_TIMEOUT: { status: 504, retryable: true, message: 'no slave reached the requested afterSeq in time' },

  // Start-up refusals (never seen by a data request): the process exits with the message.
  // Control plane.
  DBAAS_CONTROL_STALE_EPOCH: { status: 409, retryable: false, message: 'a control message from a former leader was refused' },
  DBAAS_CLUSTER_NO_LEADER: { status: 503, retryable: true, message: 'no orchestrator leads this namespace right now' },
  DBAAS_LEADER_TIMEOUT: { status: 504, retryable: true, message: 'the leading orchestrator did not answer a forwarded request in time' },
  DBAAS_COORDINATION_UNAVAILABLE: { status: 503, retryable: true, message: 'ZooKeeper did not answer' },
  DBAAS_SWITCHOVER_BUSY: { status: 409, retryable: false, message: 'a switchover is already under way' },
  DBAAS_SWITCHOVER_NO_TARGET: { status: 409, retryable: false, message: 'there is no caught-up slave to switch over to' },
  DBAAS_CLUSTER_DATA_MISSING: { status: 409, retryable: false, message: "the recorded master's data is missing; refusing to start an empty cluster" },

  DBAAS_SERVER_INTERNAL: { status: 500, retryable: false, message: 'internal error' },
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** The form in which an error crosses RabbitMQ. */
export interface WireError {
  code: string;
  message: string;
  details?: unknown;
}

export function isErrorCode(code: string): code is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_CATALOGUE, code);
}

/** An error with a catalogue code. Everything else that escapes is reported as DBAAS_SERVER_INTERNAL. */
export class DbaasError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly details: unknown;

  constructor(code: ErrorCode, message?: string, details?: unknown) {
    const entry = ERROR_CATALOGUE[code];
    super(message ?? entry.message);
    this.name = 'DbaasError';
    this.code = code;
    this.status = entry.status;
    this.retryable = entry.retryable;
    this.details = details;
  }

  toWire(): WireError {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }

  /** Rebuilds an error that crossed the wire; an unknown code becomes DBAAS_SERVER_INTERNAL. */
  static fromWire(wire: WireError): DbaasError {
    if (isErrorCode(wire.code)) return new DbaasError(wire.code, wire.message, wire.details);
    return new DbaasError('DBAAS_SERVER_INTERNAL', `${wire.code}: ${wire.message}`);
  }
}

/** Turns anything thrown into a DbaasError; non-catalogue errors become DBAAS_SERVER_INTERNAL with a generic message. */
export function asDbaasError(err: unknown): DbaasError {
  if (err instanceof DbaasError) return err;
  return new DbaasError('DBAAS_SERVER_INTERNAL');
}

/**
 * The HTTP body for an error. Never carries a stack trace. An error answering a
 * write also names the write's `requestId`, the key for retrying it safely.
 */
export function httpErrorBody(
  err: DbaasError,
  extra?: { requestId?: string },
): { error: { code: string; message: string; details?: unknown; requestId?: string } } {
  // The client is told the cause in words, not internal addresses or names (clientMessage); the log keeps the full text.
  const error = { ...err.toWire(), message: clientMessage(err.message) };
  return extra?.requestId === undefined ? { error } : { error: { ...error, requestId: extra.requestId } };
}
