/**
 * The JSON of every znode (paths.ts says where each lives): its type, how it is
 * written, and how it is read back. Every read goes through a decoder here, which
 * checks the shape and answers `undefined` for a znode that does not fit, so no
 * caller casts parsed JSON.
 *
 * Versioning: every schema here is version {@link ZNODE_SCHEMA_VERSION}. Version
 * 1 is implicit: the writers of this version write no `v` field (the format is
 * byte for byte what earlier releases wrote). A future incompatible change writes
 * `v: 2`, and the decoders of this version refuse a `v` they do not know rather
 * than misread it. Fields added compatibly within version 1 are optional, and
 * unknown fields are kept, so an older reader passes a newer writer's fields on.
 */
import type { WorkerState, WorkerStatus } from '../common/messages.js';

export const ZNODE_SCHEMA_VERSION = 1;

type Json = Record<string, unknown>;

/** The object a znode holds, or undefined when it is empty, not JSON, not an object, or of an unknown version. */
export function parseZnode(data: Buffer | undefined): Json | undefined {
  if (data === undefined || data.length === 0) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(data.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const obj = value as Json;
  if (obj.v !== undefined && obj.v !== ZNODE_SCHEMA_VERSION) return undefined;
  return obj;
}

export function encodeZnode(value: object): Buffer {
  return Buffer.from(JSON.stringify(value));
}

const str = (v: unknown): v is string => typeof v === 'string';
const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

// ------------------------------------------------------------- counters --

/** A persistent decimal counter (`/term`, `/epoch`); 0 when empty or unreadable. */
export function decodeCounter(data: Buffer | undefined): number {
  const n = Number(data?.toString() ?? '0');
  return Number.isFinite(n) ? n : 0;
}

export function encodeCounter(n: number): Buffer {
  return Buffer.from(String(n));
}

// -------------------------------------------------------------- workers --

const WORKER_STATES: readonly WorkerState[] = ['starting', 'syncing', 'slave', 'promoting', 'master', 'retiring', 'stopped'];

/**
 * `/<ns>/workers/<id>`: the worker's status, as its control replies also carry
 * it, plus optional fields the orchestrator may use to pick a promotion
 * candidate (added within version 1).
 */
export type WorkerZnode = WorkerStatus & {
  /** The oldest seq whose requestId this worker's request ledger still holds. */
  ledgerFrom?: number;
  /** The worker's own word on whether it may be promoted now (its ledger covers the retry horizon). */
  promotable?: boolean;
};

export function decodeWorkerZnode(data: Buffer | undefined): WorkerZnode | undefined {
  const o = parseZnode(data);
  if (!o) return undefined;
  if (!str(o.id) || (o.role !== 'master' && o.role !== 'slave') || !WORKER_STATES.includes(o.state as WorkerState)) return undefined;
  if (!num(o.pid) || !num(o.appliedSeq) || !num(o.term) || !str(o.startedAt) || !str(o.dbUrl)) return undefined;
  if (o.poisonMessages !== undefined && !num(o.poisonMessages)) return undefined;
  if (o.ledgerFrom !== undefined && !num(o.ledgerFrom)) return undefined;
  if (o.promotable !== undefined && typeof o.promotable !== 'boolean') return undefined;
  return o as unknown as WorkerZnode;
}

// --------------------------------------------------------------- master --

/** `/<ns>/master`: who the master is, in which term, and where new slaves copy their snapshot from. */
export interface MasterZnode {
  id: string;
  term: number;
  dbUrl: string;
}

export function decodeMasterZnode(data: Buffer | undefined): MasterZnode | undefined {
  const o = parseZnode(data);
  if (!o || !str(o.id) || !num(o.term) || !str(o.dbUrl)) return undefined;
  return { ...o, id: o.id, term: o.term, dbUrl: o.dbUrl };
}

export function encodeMasterZnode(m: MasterZnode): Buffer {
  return encodeZnode({ id: m.id, term: m.term, dbUrl: m.dbUrl });
}

// -------------------------------------------------------- orchestrators --

/** `/<ns>/orchestrators/o-N` (and, with `epoch`, `/<ns>/orchestrator`): what an orchestrator says about itself. */
export interface OrchestratorZnode {
  host: string;
  pid: number;
  port: number;
  /** Where other orchestrators reach its HTTP API (admin actions are forwarded there). */
  url: string;
  startedAt: string;
  /** Random per process: tells this one from another with the same pid on another host. */
  token: string;
  /** Only in the leader znode: the epoch of this leadership. */
  epoch?: number;
  /** Only in a member znode: reads a follower counted (autoscaling). */
  reads?: number;
}

/** What can be read of an orchestrator's znode: each field only when it has the right type ({} for garbage). */
export function decodeOrchestratorZnode(data: Buffer | undefined): Partial<OrchestratorZnode> {
  const o = parseZnode(data);
  if (!o) return {};
  const out: Partial<OrchestratorZnode> = {};
  if (str(o.host)) out.host = o.host;
  if (num(o.pid)) out.pid = o.pid;
  if (num(o.port)) out.port = o.port;
  if (str(o.url)) out.url = o.url;
  if (str(o.startedAt)) out.startedAt = o.startedAt;
  if (str(o.token)) out.token = o.token;
  if (num(o.epoch)) out.epoch = o.epoch;
  if (num(o.reads)) out.reads = o.reads;
  return out;
}

// -------------------------------------------------------------- cluster --

/** `/<ns>/cluster`: which worker's data is the master's, and where that data was. */
export interface ClusterRecord {
  masterId: string;
  dataDir?: string;
  host?: string;
}

export function decodeClusterRecord(data: Buffer | undefined): ClusterRecord | undefined {
  const o = parseZnode(data);
  if (!o || !str(o.masterId) || o.masterId === '') return undefined;
  return { masterId: o.masterId, ...(str(o.dataDir) ? { dataDir: o.dataDir } : {}), ...(str(o.host) ? { host: o.host } : {}) };
}

// ---------------------------------------------------------------- audit --

/** `/<ns>/audit/e-N`: one audit event (its seq is the znode's sequence number + 1), and who recorded it. */
export interface AuditZnode {
  at: string;
  kind: string;
  reason: string;
  durationMs?: number;
  details?: Record<string, unknown>;
  /** The orchestrator that recorded it. */
  by?: string;
}

export function decodeAuditZnode(data: Buffer | undefined): AuditZnode | undefined {
  const o = parseZnode(data);
  if (!o || !str(o.at) || !str(o.kind) || !str(o.reason)) return undefined;
  if (o.durationMs !== undefined && !num(o.durationMs)) return undefined;
  if (o.details !== undefined && (typeof o.details !== 'object' || o.details === null || Array.isArray(o.details))) return undefined;
  if (o.by !== undefined && !str(o.by)) return undefined;
  return o as unknown as AuditZnode;
}

/** The kinds of service the lifecycle manager watches. */
export const PLATFORM_SERVICE_KINDS = ['zookeeper', 'rabbitmq', 'orchestrator'] as const;
export type PlatformServiceKind = (typeof PLATFORM_SERVICE_KINDS)[number];
/**
 * `running` (alive, its probe answers), `starting` (started, its probe has not answered yet), `wedged` (alive, its
 * probe has failed several times in a row), `down` (no process), `restarting` (the manager is starting it again),
 * `failed` (down or wedged past the retry limit: the manager gave up), `stopped` (stopped on purpose).
 */
export const PLATFORM_SERVICE_STATES = ['running', 'starting', 'wedged', 'down', 'restarting', 'failed', 'stopped'] as const;
export type PlatformServiceState = (typeof PLATFORM_SERVICE_STATES)[number];

/** One supervised service, as the lifecycle manager last saw it (`/<ns>/platform/<name>`). */
export interface PlatformServiceZnode {
  name: string;
  kind: PlatformServiceKind;
  /** Where clients reach it: host:port, or the orchestrator's URL. */
  address: string;
  /** Its OS pid (on the manager's host), when it has one. */
  pid?: number;
  /** Its container, when an engine runs it (Docker). */
  containerId?: string;
  state: PlatformServiceState;
  /** Restarts by the manager (or the engine) since the manager started. */
  restarts: number;
  lastFailure?: { at: string; reason: string };
  /** Whether this manager restarts it (it was started by this `npm start`), or only watches it. */
  managed: boolean;
  /** The manager that wrote this: host:pid. */
  by: string;
  /** When the manager last wrote it (it rewrites every few seconds while it runs). */
  updatedAt: string;
}

export function decodePlatformServiceZnode(data: Buffer | undefined): PlatformServiceZnode | undefined {
  const o = parseZnode(data);
  if (!o || !str(o.name) || !str(o.address) || !str(o.by) || !str(o.updatedAt) || !num(o.restarts) || typeof o.managed !== 'boolean') return undefined;
  if (!(PLATFORM_SERVICE_KINDS as readonly unknown[]).includes(o.kind) || !(PLATFORM_SERVICE_STATES as readonly unknown[]).includes(o.state)) return undefined;
  if (o.pid !== undefined && !num(o.pid)) return undefined;
  if (o.containerId !== undefined && !str(o.containerId)) return undefined;
  const f = o.lastFailure as Json | undefined;
  if (f !== undefined && (typeof f !== 'object' || f === null || !str(f.at) || !str(f.reason))) return undefined;
  return o as unknown as PlatformServiceZnode;
}
