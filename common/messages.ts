/**
 * Message envelopes that cross RabbitMQ, and their decoding.
 *
 * Every message carries `v` (the wire version). A message that does not decode
 * is a poison message: the receiver rejects it to the dead-letter queue instead
 * of crashing or requeueing it forever.
 */
import type { BackupTarget, Doc, IndexDef, IndexSpec, ReadCommand, WriteCommand, WriteResult } from './commands.js';
import type { WireError } from './errors.js';
import { DATABASE_NAME, QUALIFIED_TABLE } from './databases.js';
import { isIndexSpec } from './index-spec.js';
import { checkBackupTarget, validateReadCommand, validateWriteCommand } from './validation.js';

export const WIRE_VERSION = 1;

/** Orchestrator → master, on writeQ. */
export interface WriteEnvelope {
  v: typeof WIRE_VERSION;
  requestId: string;
  command: WriteCommand;
  /**
   * When the orchestrator received this attempt, in ms since the epoch (optional,
   * added within v1): the master refuses a write older than the retry horizon
   * whose requestId it no longer remembers (common/request-time.ts).
   */
  at?: number;
  /**
   * When the write was first asked for, on the orchestrator's clock (optional, within
   * v1): its receive time less the age the client reported for the request
   * (`x-dbaas-request-age-ms`, measured on the client's own clock, so a client whose
   * clock is off is not taken for a late retry). Kept on redelivery.
   */
  askedAt?: number;
}

/** Orchestrator → any slave, on readQ. */
export interface ReadEnvelope {
  v: typeof WIRE_VERSION;
  command: ReadCommand;
}

/** Replies to RPCs: `{ok:true,result}` or `{ok:false,error}`. */
export type RpcReply<T = unknown> = { ok: true; result: T } | { ok: false; error: WireError };

/**
 * One replicated change, as resulting state: a document's full post-image, its
 * deletion, or the emptying of every table (of one database, when `database` is
 * given). `table` is the qualified name (common/databases.ts). Applying these in
 * order is idempotent.
 *
 * `fresh` (optional, added within v1; receivers that do not know it ignore it) says
 * that the document did not exist before this entry, so a replica can insert it
 * without first looking for it. It is a hint: a replica that finds the document
 * there anyway (a replay) replaces it.
 */
export type SyncOp =
  | { t: 'put'; table: string; doc: Doc & { _id: string }; fresh?: true }
  | { t: 'del'; table: string; id: string }
  /** `database` (optional, added within v1): empties only that database's tables (a drop, or a clear of one database). */
  | { t: 'clear'; database?: string }
  | IndexOp;

/**
 * Index definitions as replicated ops (issue 17, added within v1): create an index
 * (idempotent when it exists alike) or drop one by name (idempotent when it is
 * gone). Each is alone in its entry's batch, and a replica applies it in seq order
 * between the document changes before and after it.
 */
export type IndexOp = { t: 'index'; table: string; index: IndexSpec } | { t: 'dropIndex'; table: string; name: string };

/** Master → every slave, on the sync fanout; also what the oplog stores (`_id` = seq). */
export interface SyncEntry {
  v: typeof WIRE_VERSION;
  seq: number;
  term: number;
  requestId: string;
  /**
   * The write's {@link commandFingerprint} (optional, added within v1): a retry
   * must carry the same write; another write with this requestId is refused.
   */
  fingerprint?: string;
  /** Milliseconds since the epoch when the master applied it. */
  ts: number;
  ops: SyncOp[];
  /** The answer the write got, so a retried requestId answers the same. */
  result: WriteResult;
  /**
   * The seq of the first entry of the batch this entry was stored with (optional,
   * added within v1). The master stores a batch's entries before any of its data,
   * so after a crash, or in a copy taken meanwhile, at most the entries from
   * `first` to the newest can be half-applied. Absent: the entry was stored alone.
   */
  first?: number;
  /**
   * A replica-checksum checkpoint (optional, added within v1; a `verify` write, no
   * ops): every replica hashes its tables when its data is exactly this seq (see
   * worker/checksum.ts). Older receivers ignore the field and apply an empty entry.
   */
  checkpoint?: true;
  /** On a checkpoint (optional, added within v1): the slave named streams a backup at this seq (worker/backup.ts). */
  backup?: BackupTarget;
  /**
   * A void entry (optional, added within v1): the master's own database refused this
   * write, so nothing of it is applied anywhere (no ops) and no replica keeps a
   * request-ledger record of it (a retry is judged again). It keeps the seq so every
   * replica's seqs stay consecutive (worker/void-batch.ts).
   */
  void?: true;
}

/** Orchestrator → one worker, on its control queue. `read` asks that one replica (for checks). */
export type ControlMessage =
  /**
   * `epoch`: the sending leader's epoch (orchestrator/leader-election.ts); a worker
   * refuses a promote or retire from an older epoch than the newest it knows.
   * Absent from older orchestrators: accepted.
   */
  | { v: typeof WIRE_VERSION; type: 'promote'; term: number; epoch?: number }
  | { v: typeof WIRE_VERSION; type: 'retire'; epoch?: number }
  /** Planned switchover: the master stops taking writes and finishes the ones it took; it stays up until the leader kills it. */
  | { v: typeof WIRE_VERSION; type: 'demote'; epoch?: number }
  | { v: typeof WIRE_VERSION; type: 'status' }
  | { v: typeof WIRE_VERSION; type: 'read'; command: ReadCommand }
  /** The worker's tables with their document counts and indexes (issue 17): one table, or all when absent. */
  | { v: typeof WIRE_VERSION; type: 'tables'; table?: string }
  /** The replica checksum taken at checkpoint `seq`; waits up to `waitMs` for this worker to get there. */
  | { v: typeof WIRE_VERSION; type: 'checksum'; seq: number; waitMs: number }
  /**
   * A new slave asks the master for the next page of its snapshot (worker/snapshot.ts),
   * answered not on a reply queue but in the slave's own sync queue `queue`, between
   * two write batches, as a {@link SnapshotPage}. Added within v1: only new slaves send it.
   * `raw` (optional, added within v1): the slave writes a stream's documents as FerretDB's
   * PostgreSQL rows (worker/pg-layout.ts copyRows), so a stream's parts carry `rows`.
   */
  | { v: typeof WIRE_VERSION; type: 'snapshot-page'; id: string; queue: string; after?: { table: string; id: string }; limit: number; maxBytes: number; raw?: true };

/**
 * Master → one slave's sync queue, between two sync entries: the documents after
 * `after` in snapshot key order (worker/snapshot-key.ts) as they are at `atSeq`
 * exactly (the master read them between two write batches, after publishing entry
 * `atSeq` and before publishing `atSeq + 1`). `end` is the last key covered;
 * absent: the page reached the end of every table. Added within v1 (`kind`
 * tells it from an entry; entries have none).
 */
export interface SnapshotPage {
  v: typeof WIRE_VERSION;
  kind: 'page';
  /**
   * A part of a stream copy (worker/snapshot.ts "Stream"; optional, added within v1):
   * part 0 is the marker, read between two batches at `atSeq`; parts 1..n are read
   * from one consistent snapshot at `atSeq` while writes go on; `last` on the final
   * one; `failed` says the master could not read the rest (the slave asks again).
   */
  stream?: { part: number; last?: true; failed?: string };
  /** The request this answers. */
  id: string;
  term: number;
  atSeq: number;
  after?: { table: string; id: string };
  end?: { table: string; id: string };
  docs: Array<{ table: string; doc: Doc & { _id: string } }>;
  /**
   * A stream part's documents for a slave that asked `raw` (optional, added within v1;
   * `docs` is then empty): each as FerretDB/PostgreSQL stores it, its `_jsonb` text,
   * with its `_id` for the slave's touched-key rule (worker/snapshot.ts).
   */
  rows?: Array<{ table: string; id: string; jsonb: string }>;
  /**
   * Every secondary index of the master at `atSeq` (issue 17; optional, added within
   * v1): set on the first page, so a new slave has the indexes before it copies
   * documents; later entries carry index changes as {@link IndexOp}s.
   */
  indexes?: IndexDef[];
}

/** One table's checksum: its document count and an order-independent sum of document hashes (hex). */
export interface TableChecksum {
  count: number;
  sum: string;
}

/**
 * A worker's answer to `checksum`. `tables` holds only non-empty user tables, so a
 * missing table and an empty one compare equal. Not comparable: this worker did
 * not apply the checkpoint itself (it joined after it, from a snapshot, or the
 * result was evicted or failed).
 */
export type ChecksumReply =
  | { seq: number; comparable: true; tables: Record<string, TableChecksum>; documents: number; ms: number }
  | { seq: number; comparable: false; reason: string };

/** A worker's answer to `status`, and the data of its znode. */
export interface WorkerStatus {
  id: string;
  role: 'master' | 'slave';
  state: WorkerState;
  pid: number;
  appliedSeq: number;
  term: number;
  startedAt: string;
  dbUrl: string;
  /** Messages this worker refused as malformed and dead-lettered. */
  poisonMessages?: number;
  /**
   * Whether this worker's request ledger answers for the whole retry horizon
   * (worker/request-ledger.ts): only such a slave is a failover candidate
   * (orchestrator/reconcile.ts). Absent (older workers): taken as true.
   */
  promotable?: boolean;
  /**
   * While syncing: documents copied and entries applied so far, a number that
   * grows as long as the start progresses (the orchestrator waits while it does).
   */
  syncProgress?: number;
}

/**
 * The worker's role machine:
 * `syncing → slave → promoting → master`; `slave → retiring → stopped`; anything → `stopped`.
 */
export type WorkerState = 'starting' | 'syncing' | 'slave' | 'promoting' | 'master' | 'retiring' | 'stopped';

export function encode(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

function parseObject(buf: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(buf.toString('utf8'));
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // fall through: not JSON is the same as a bad shape here
  }
  return undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Runs a validator; a message whose command it refuses is a poison message. */
function checked<T>(validate: () => T): T | undefined {
  try {
    return validate();
  } catch {
    return undefined;
  }
}

export function decodeWrite(buf: Buffer): WriteEnvelope | undefined {
  const m = parseObject(buf);
  if (!m || m.v !== WIRE_VERSION || typeof m.requestId !== 'string' || m.requestId === '' || m.requestId.length > 256) return undefined;
  // The queue is not trusted: the command is checked as the orchestrator checked the body.
  const command = checked(() => validateWriteCommand(m.command));
  if (!command) return undefined;
  const time = (x: unknown): number | undefined => (typeof x === 'number' && Number.isSafeInteger(x) && x > 0 ? x : undefined);
  const at = time(m.at);
  const askedAt = time(m.askedAt);
  return { v: WIRE_VERSION, requestId: m.requestId, command, ...(at === undefined ? {} : { at }), ...(askedAt === undefined ? {} : { askedAt }) };
}

export function decodeRead(buf: Buffer): ReadEnvelope | undefined {
  const m = parseObject(buf);
  if (!m || m.v !== WIRE_VERSION) return undefined;
  const command = checked(() => validateReadCommand(m.command));
  return command ? { v: WIRE_VERSION, command } : undefined;
}

const TABLE = QUALIFIED_TABLE;

/** The shape of resulting-state ops (the master made them from checked commands; the queue is still not trusted). */
function validOps(ops: unknown[]): boolean {
  return ops.every((op) => {
    if (!isObject(op)) return false;
    if (op.t === 'clear') return op.database === undefined || (typeof op.database === 'string' && DATABASE_NAME.test(op.database));
    if (typeof op.table !== 'string' || !TABLE.test(op.table)) return false;
    if (op.t === 'del') return typeof op.id === 'string';
    if (op.t === 'index') return isIndexSpec(op.index);
    if (op.t === 'dropIndex') return typeof op.name === 'string';
    return op.t === 'put' && isObject(op.doc) && typeof op.doc._id === 'string';
  });
}

function isKey(k: unknown): k is { table: string; id: string } {
  return isObject(k) && typeof k.table === 'string' && typeof k.id === 'string';
}

/** A message of a slave's sync queue: an entry, or a snapshot page; undefined for a poison message. */
export function decodeSyncMessage(buf: Buffer): { kind: 'entry'; entry: SyncEntry } | { kind: 'page'; page: SnapshotPage } | undefined {
  const m = parseObject(buf);
  if (m?.kind === 'page') {
    if (m.stream !== undefined && !isStreamPart(m.stream)) return undefined;
    if (
      m.v !== WIRE_VERSION ||
      typeof m.id !== 'string' ||
      !Number.isSafeInteger(m.term) ||
      !Number.isSafeInteger(m.atSeq) ||
      (m.after !== undefined && !isKey(m.after)) ||
      (m.end !== undefined && !isKey(m.end)) ||
      !Array.isArray(m.docs) ||
      !m.docs.every((d) => isObject(d) && typeof d.table === 'string' && TABLE.test(d.table) && isObject(d.doc) && typeof d.doc._id === 'string') ||
      (m.rows !== undefined && !(Array.isArray(m.rows) && m.rows.every((r) => isObject(r) && typeof r.table === 'string' && TABLE.test(r.table) && typeof r.id === 'string' && typeof r.jsonb === 'string'))) ||
      (m.indexes !== undefined && !(Array.isArray(m.indexes) && m.indexes.every((i) => isObject(i) && typeof i.table === 'string' && TABLE.test(i.table) && isIndexSpec(i))))
    ) {
      return undefined;
    }
    return { kind: 'page', page: m as unknown as SnapshotPage };
  }
  const entry = decodeSync(buf);
  return entry ? { kind: 'entry', entry } : undefined;
}

export function decodeSync(buf: Buffer): SyncEntry | undefined {
  const m = parseObject(buf);
  if (
    !m ||
    m.v !== WIRE_VERSION ||
    !Number.isSafeInteger(m.seq) ||
    !Number.isSafeInteger(m.term) ||
    typeof m.requestId !== 'string' ||
    !Array.isArray(m.ops) ||
    !validOps(m.ops) ||
    !isObject(m.result) ||
    (m.fingerprint !== undefined && typeof m.fingerprint !== 'string') ||
    (m.first !== undefined && !(Number.isSafeInteger(m.first) && (m.first as number) >= 1 && (m.first as number) <= (m.seq as number))) ||
    (m.checkpoint !== undefined && m.checkpoint !== true) ||
    (m.void !== undefined && m.void !== true) ||
    (m.backup !== undefined && checked(() => checkBackupTarget(m.backup)) === undefined)
  ) {
    return undefined;
  }
  return m as unknown as SyncEntry;
}

export function decodeControl(buf: Buffer): ControlMessage | undefined {
  const m = parseObject(buf);
  if (!m || m.v !== WIRE_VERSION || typeof m.type !== 'string') return undefined;
  if (m.type === 'promote' && !Number.isSafeInteger(m.term)) return undefined;
  if (m.epoch !== undefined && !Number.isSafeInteger(m.epoch)) return undefined;
  if (m.type === 'read') {
    const command = checked(() => validateReadCommand(m.command));
    return command ? { v: WIRE_VERSION, type: 'read', command } : undefined;
  }
  if (m.type === 'checksum') {
    const { seq, waitMs } = m;
    if (!Number.isSafeInteger(seq) || (seq as number) < 1 || !Number.isSafeInteger(waitMs) || (waitMs as number) < 0 || (waitMs as number) > 600_000) return undefined;
    return { v: WIRE_VERSION, type: 'checksum', seq: seq as number, waitMs: waitMs as number };
  }
  if (m.type === 'snapshot-page') {
    const { id, queue, after, limit, maxBytes, raw } = m;
    if (typeof id !== 'string' || typeof queue !== 'string' || queue.length > 255 || (after !== undefined && !isKey(after))) return undefined;
    if (!Number.isSafeInteger(limit) || (limit as number) < 1 || !Number.isSafeInteger(maxBytes) || (maxBytes as number) < 1) return undefined;
    if (raw !== undefined && raw !== true) return undefined;
    return { v: WIRE_VERSION, type: 'snapshot-page', id, queue, ...(after === undefined ? {} : { after }), limit: limit as number, maxBytes: maxBytes as number, ...(raw ? { raw } : {}) };
  }
  if (m.type === 'tables') {
    if (m.table !== undefined && (typeof m.table !== 'string' || !TABLE.test(m.table))) return undefined;
    return { v: WIRE_VERSION, type: 'tables', ...(m.table === undefined ? {} : { table: m.table as string }) };
  }
  if (!['promote', 'retire', 'demote', 'status', 'read'].includes(m.type)) return undefined;
  return m as unknown as ControlMessage;
}

/** How every successful reply starts: workers answer with `encode({ok: true, result})`. */
const OK_PREFIX = '{"ok":true,"result":';

/**
 * The result of a successful reply as the JSON text the worker sent, without
 * parsing it; undefined for anything else (an error reply, another shape), which
 * {@link decodeReply} then reads. For answers passed straight on to an HTTP client.
 */
export function rawResult(buf: Buffer): string | undefined {
  if (buf.length <= OK_PREFIX.length + 1 || buf[buf.length - 1] !== 0x7d /* } */) return undefined;
  if (buf.toString('latin1', 0, OK_PREFIX.length) !== OK_PREFIX) return undefined;
  return buf.toString('utf8', OK_PREFIX.length, buf.length - 1);
}

export function decodeReply(buf: Buffer): RpcReply | undefined {
  const m = parseObject(buf);
  if (!m) return undefined;
  if (m.ok === true) return { ok: true, result: m.result };
  if (m.ok === false && isObject(m.error) && typeof m.error.code === 'string') {
    return { ok: false, error: { code: m.error.code, message: String(m.error.message ?? ''), ...(m.error.details === undefined ? {} : { details: m.error.details }) } };
  }
  return undefined;
}

/** The `stream` field of a snapshot page (worker/snapshot.ts "Stream"). */
function isStreamPart(p: unknown): boolean {
  return isObject(p) && Number.isSafeInteger(p.part) && (p.last === undefined || p.last === true) && (p.failed === undefined || typeof p.failed === 'string');
}
