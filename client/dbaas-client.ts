/**
 * The typed client for services written in TypeScript.
 *
 * - Every write (and `clear`) carries a `requestId`, made up here when the
 *   caller gives none, and a retry sends the same one: the master applies a
 *   requestId at most once and answers a repeat with the first result, so
 *   retrying after a timeout, a 503 during failover or a dropped connection
 *   never applies a write twice.
 * - Retryable failures (see {@link isRetryable}) are retried with capped,
 *   jittered exponential backoff; everything else is thrown at once as a
 *   {@link DbaasClientError} with the server's stable `DBAAS_*` code.
 * - Read-your-writes: the client remembers the highest `seq` its writes got and
 *   sends it as `afterSeq` on its reads, so a read never misses a write this
 *   client has seen acknowledged. One client is one session; share it, or not.
 *
 * Uses the global `fetch` (Node 20+).
 */
import { REQUEST_AGE_HEADER, timedRequestId } from '../common/request-time.js';
import { CLIENT_INVALID_REQUEST, CLIENT_TIMEOUT, CLIENT_UNREACHABLE, DEFAULT_RETRY, isRetryable, parseRetryAfter, retryDelayMs, type RetryPolicy } from './retry.js';
import type { AuditEvent, AutoscalerStatus, DatabaseInfo, Document, Filter, PlatformView, ReadOptions, Readiness, Update, VerifyReport, WorkerInfo, WriteBody, WriteResult } from './types.js';
import type { CreateIndexBody, IndexInfo, TableView } from './types.js';

export interface DbaasClientOptions {
  /**
   * Base URL of the orchestrator, e.g. `http://127.0.0.1:8080`; or several,
   * comma-separated, of orchestrators of one namespace: a try that cannot reach
   * one (or finds it shutting down) moves on to the next.
   */
  url: string;
  /** Sent on data and cluster endpoints when the server has `DBAAS_API_KEYS`. */
  apiKey?: string;
  /** The database every read and write goes to unless the call names another (default: the server's `default`). */
  database?: string;
  /** Sent on admin endpoints (clear, crash drills, scale); also used for the rest when no apiKey is given. */
  adminToken?: string;
  /** How long one try may take before it is abandoned (and retried). Default 10000. */
  timeoutMs?: number;
  /** Retry policy; `{attempts: 1}` turns retries off. */
  retry?: Partial<RetryPolicy>;
  /** Send the session's seq as afterSeq on reads (default true). */
  readYourWrites?: boolean;
  /** Told of every retry, e.g. to log it. */
  onRetry?: (info: { method: string; path: string; attempt: number; delayMs: number; error: DbaasClientError }) => void;
  /** A fetch to use instead of the global one (tests, proxies). */
  fetch?: typeof fetch;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface WriteOptions extends CallOptions {
  /** The idempotency key; one is made up when absent. Reuse it to retry a write yourself. */
  requestId?: string;
}

/** A refusal or failure, with the server's code (or a client-side `DBAAS_CLIENT_*` code when no answer came). */
export class DbaasClientError extends Error {
  constructor(
    /** `DBAAS_*` from the server's catalogue, or `DBAAS_CLIENT_UNREACHABLE` / `DBAAS_CLIENT_TIMEOUT`. */
    readonly code: string,
    message: string,
    /** HTTP status; 0 when no answer came. */
    readonly status: number,
    /** Whether trying again may succeed (the client already did, up to its policy). */
    readonly retryable: boolean,
    /** The orchestrator's request id of the last try (`x-request-id`), to find its log lines. */
    readonly serverRequestId?: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'DbaasClientError';
  }
}

type Auth = 'data' | 'admin';

interface Request {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  body?: unknown;
  auth: Auth;
  /** May this request be sent again? (Not for crash drills: a retry would kill a second worker.) */
  idempotent: boolean;
  signal?: AbortSignal | undefined;
  /** A write: when its first attempt was made (performance.now()), sent as the request's age on every attempt. */
  firstAttemptAt?: number;
  /** How long one try may take, when not the client's `timeoutMs` (a verify waits for every replica). */
  timeoutMs?: number;
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

export class DbaasClient {
  private readonly bases: string[];
  private current = 0;

  /** The orchestrator the next try goes to. */
  private get base(): string {
    return this.bases[this.current] as string;
  }
  private readonly policy: RetryPolicy;
  private readonly timeoutMs: number;
  private readonly fetchFn: typeof fetch;
  private sessionSeq = 0;

  constructor(private readonly opts: DbaasClientOptions) {
    this.bases = opts.url
      .split(',')
      .map((u) => u.trim().replace(/\/+$/, ''))
      .filter((u) => u !== '');
    if (this.bases.length === 0) throw new DbaasClientError(CLIENT_INVALID_REQUEST, 'DbaasClient needs a url', 0, false);
    // A URL that is not one fails here, once, not as "unreachable" after every retry.
    for (const base of this.bases) {
      const url = URL.canParse(base) ? new URL(base) : undefined;
      if (url?.protocol !== 'http:' && url?.protocol !== 'https:') throw new DbaasClientError(CLIENT_INVALID_REQUEST, `not an http(s) URL: ${JSON.stringify(base)}`, 0, false);
    }
    this.policy = { ...DEFAULT_RETRY, ...opts.retry };
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** The highest seq this client's writes got; its reads wait for it. */
  get lastSeq(): number {
    return this.sessionSeq;
  }

  /** Forgets the session (the next reads are eventually consistent until the next write). */
  resetSession(): void {
    this.sessionSeq = 0;
  }

  // ----------------------------------------------------------------- data --

  /** Any write; retried safely with one requestId. */
  async write(body: WriteBody, opts: WriteOptions = {}): Promise<WriteResult> {
    const given = opts.requestId ?? body.requestId;
    const requestId = given ?? newRequestId();
    // Only for a requestId made here: one the caller gives may be a retry of a call made long before.
    const age = given === undefined ? { firstAttemptAt: performance.now() } : {};
    const database = body.database ?? this.opts.database;
    const result = await this.call<WriteResult>({ method: 'POST', path: '/api/v1/db/write', body: { ...body, ...(database ? { database } : {}), requestId }, auth: 'data', idempotent: true, signal: opts.signal, ...age });
    this.observeSeq(result.seq);
    return result;
  }

  /**
   * Takes a backup (admin, issue 20): the archive of common/backup-format.ts as a
   * byte stream, and the seq it was taken at. Not retried: a retry would be
   * another backup. The answer's headers must come within the client's timeout;
   * the archive then streams for as long as it takes.
   */
  async backup(opts: CallOptions & { oplogAfter?: number } = {}): Promise<{ seq: number; body: ReadableStream<Uint8Array> }> {
    const headers: Record<string, string> = { accept: 'application/gzip, application/json', 'content-type': 'application/json' };
    const token = this.token('admin');
    if (token) headers['authorization'] = `Bearer ${token}`;
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), this.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, ctl.signal]) : ctl.signal;
    let res: Response | undefined;
    try {
      const body = JSON.stringify(opts.oplogAfter === undefined ? {} : { oplogAfter: opts.oplogAfter });
      // An orchestrator that refuses the connection never saw the request: the next one is asked (E's fault run:
      // with one of two orchestrators down, `dbaas backup --url a,b` failed at once).
      for (let tried = 1; res === undefined; tried++) {
        try {
          res = await this.fetchFn(`${this.base}/api/v1/backup`, { method: 'POST', headers, body, signal });
        } catch (err) {
          if (ctl.signal.aborted || !connectionRefused(err) || tried >= this.bases.length) {
            throw new DbaasClientError(ctl.signal.aborted ? CLIENT_TIMEOUT : CLIENT_UNREACHABLE, `backup: no answer from ${this.base}: ${describeFetchError(err)}`, 0, true);
          }
          this.nextOrchestrator();
        }
      }
    } finally {
      clearTimeout(timer);
    }
    if (!res.ok || !res.body) {
      const text = await res.text().catch(() => '');
      let body: { error?: { code?: string; message?: string } } = {};
      try {
        body = JSON.parse(text) as typeof body;
      } catch {
        // not JSON
      }
      const code = body.error?.code ?? `HTTP_${res.status}`;
      throw new DbaasClientError(code, body.error?.message ?? `POST /api/v1/backup answered ${res.status}`, res.status, isRetryable(code, res.status));
    }
    return { seq: Number(res.headers.get('x-dbaas-backup-seq')), body: res.body };
  }

  insert(table: string, data: Document | Document[], opts?: WriteOptions): Promise<WriteResult> {
    return this.write({ table, operation: 'insert', data }, opts);
  }

  update(table: string, where: Filter, data: Update, opts?: WriteOptions): Promise<WriteResult> {
    return this.write({ table, operation: 'update', where, data }, opts);
  }

  upsert(table: string, where: Filter, data: Update, opts?: WriteOptions): Promise<WriteResult> {
    return this.write({ table, operation: 'upsert', where, data }, opts);
  }

  delete(table: string, where: Filter, opts?: WriteOptions): Promise<WriteResult> {
    return this.write({ table, operation: 'delete', where }, opts);
  }

  /** Documents of `table` matching `opts.where` (every document when absent). */
  async read<T extends object = Document>(table: string, opts: ReadOptions & CallOptions = {}): Promise<T[]> {
    return this.call<T[]>({ method: 'POST', path: '/api/v1/db/read', body: this.readBody(table, opts, false), auth: 'data', idempotent: true, signal: opts.signal });
  }

  /** How many documents of `table` match `where`. */
  async count(table: string, where: Filter = {}, opts: Omit<ReadOptions, 'where'> & CallOptions = {}): Promise<number> {
    const body = this.readBody(table, { ...opts, where }, true);
    const result = await this.call<{ count: number }>({ method: 'POST', path: '/api/v1/db/read', body, auth: 'data', idempotent: true, signal: opts.signal });
    return result.count;
  }

  /**
   * Empties the tables of `opts.database`, else of the client's `database`, on every
   * worker; with neither, every table of every database (admin). Retried safely with one requestId.
   */
  async clear(opts: WriteOptions & { database?: string } = {}): Promise<{ ok: true; seq: number }> {
    const requestId = opts.requestId ?? newRequestId();
    const age = opts.requestId === undefined ? { firstAttemptAt: performance.now() } : {};
    const database = opts.database ?? this.opts.database;
    const body = { requestId, ...(database ? { database } : {}) };
    const result = await this.call<{ ok: true; seq: number }>({ method: 'POST', path: '/api/v1/db/clear', body, auth: 'admin', idempotent: true, signal: opts.signal, ...age });
    this.observeSeq(result.seq);
    return result;
  }

  /** The databases (a scoped key sees only its own). */
  async databases(opts: CallOptions = {}): Promise<DatabaseInfo[]> {
    const r = await this.call<{ databases: DatabaseInfo[] }>({ method: 'GET', path: '/api/v1/db/databases', auth: 'data', idempotent: true, signal: opts.signal });
    return r.databases;
  }

  /** Creates a database, empty on every replica (admin). */
  createDatabase(name: string, opts: CallOptions = {}): Promise<DatabaseInfo> {
    return this.call({ method: 'POST', path: '/api/v1/db/databases', body: { name }, auth: 'admin', idempotent: false, signal: opts.signal });
  }

  /** Drops a database: refused from then on, emptied on every replica (admin). */
  dropDatabase(name: string, opts: CallOptions = {}): Promise<{ ok: true; seq: number; dropped: string }> {
    return this.call({ method: 'DELETE', path: `/api/v1/db/databases/${encodeURIComponent(name)}`, auth: 'admin', idempotent: false, signal: opts.signal });
  }

  // -------------------------------------------------------------- indexes --

  /**
   * Creates a secondary index on every replica, through the write path (issue 17):
   * retried safely with one requestId; the same index again changes nothing.
   * A unique index over data that holds a key twice is refused (409 DBAAS_WRITE_DUPLICATE_KEY).
   */
  async createIndex(body: CreateIndexBody, opts: CallOptions = {}): Promise<WriteResult & { table: string; database: string; index: IndexInfo }> {
    const requestId = body.requestId ?? newRequestId();
    const database = body.database ?? this.opts.database;
    const result = await this.call<WriteResult & { table: string; database: string; index: IndexInfo }>({
      method: 'POST',
      path: '/api/v1/db/indexes',
      body: { ...body, ...(database ? { database } : {}), requestId },
      auth: 'data',
      idempotent: true,
      signal: opts.signal,
    });
    this.observeSeq(result.seq);
    return result;
  }

  /** Drops a secondary index by name on every replica (404 DBAAS_INDEX_NOT_FOUND when there is none). */
  async dropIndex(table: string, name: string, opts: WriteOptions & { database?: string } = {}): Promise<WriteResult & { table: string; name: string }> {
    const database = opts.database ?? this.opts.database;
    const body = { table, name, requestId: opts.requestId ?? newRequestId(), ...(database ? { database } : {}) };
    const result = await this.call<WriteResult & { table: string; name: string }>({ method: 'DELETE', path: '/api/v1/db/indexes', body, auth: 'data', idempotent: true, signal: opts.signal });
    this.observeSeq(result.seq);
    return result;
  }

  /** A table's secondary indexes (the `_id` index not listed). */
  indexes(table: string, opts: CallOptions & { database?: string } = {}): Promise<IndexInfo[]> {
    const database = opts.database ?? this.opts.database;
    const query = new URLSearchParams({ table, ...(database ? { database } : {}) });
    return this.call({ method: 'GET', path: `/api/v1/db/indexes?${query.toString()}`, auth: 'data', idempotent: true, signal: opts.signal });
  }

  /** The tables of a database (default: the client's), with document counts and indexes. */
  tables(opts: CallOptions & { database?: string } = {}): Promise<TableView[]> {
    const database = opts.database ?? this.opts.database;
    return this.call({ method: 'GET', path: `/api/v1/db/tables${database ? `?database=${encodeURIComponent(database)}` : ''}`, auth: 'data', idempotent: true, signal: opts.signal });
  }

  // -------------------------------------------------------------- cluster --

  workers(opts: CallOptions = {}): Promise<WorkerInfo[]> {
    return this.call({ method: 'GET', path: '/api/v1/workers', auth: 'data', idempotent: true, signal: opts.signal });
  }

  /** Sorted pids of the live workers (`GET /api/v1/workers/list`). */
  pids(opts: CallOptions = {}): Promise<number[]> {
    return this.call({ method: 'GET', path: '/api/v1/workers/list', auth: 'data', idempotent: true, signal: opts.signal });
  }

  /** The audit log, oldest first; only events after `after` when given. */
  events(after = 0, opts: CallOptions = {}): Promise<AuditEvent[]> {
    const query = after > 0 ? `?after=${after}` : '';
    return this.call({ method: 'GET', path: `/api/v1/events${query}`, auth: 'data', idempotent: true, signal: opts.signal });
  }

  autoscaler(opts: CallOptions = {}): Promise<AutoscalerStatus> {
    return this.call({ method: 'GET', path: '/api/v1/scale', auth: 'data', idempotent: true, signal: opts.signal });
  }

  /** Readiness; answers (does not throw) when the cluster is not ready. Not retried. */
  async readiness(opts: CallOptions = {}): Promise<Readiness> {
    try {
      return await this.call<Readiness>({ method: 'GET', path: '/readyz', auth: 'data', idempotent: false, signal: opts.signal });
    } catch (err) {
      if (err instanceof DbaasClientError && err.status === 503 && isReadiness(err.details)) return err.details;
      throw err;
    }
  }

  /** Fault drill (admin): kills the master or the highest-pid slave; answers its pid. Never retried. */
  async crash(role: 'master' | 'slave', opts: CallOptions = {}): Promise<number> {
    const [pid] = await this.call<string[]>({ method: 'POST', path: `/api/v1/crash/${role}`, auth: 'admin', idempotent: false, signal: opts.signal });
    return Number(pid);
  }

  /** Sets the slave target by hand (admin); answers the target set. */
  async scale(slaves: number, opts: CallOptions = {}): Promise<number> {
    const result = await this.call<{ targetSlaves: number }>({ method: 'POST', path: '/api/v1/scale', body: { slaves }, auth: 'admin', idempotent: true, signal: opts.signal });
    return result.targetSlaves;
  }

  /**
   * Replica checksums (admin): every replica hashes each table at one seq and is
   * compared with the master; divergent slaves are replaced by the cluster. Running
   * it again is harmless, so it is retried.
   */
  verify(opts: CallOptions & { timeoutMs?: number } = {}): Promise<VerifyReport> {
    return this.call({ method: 'GET', path: '/api/v1/verify', auth: 'admin', idempotent: true, signal: opts.signal, ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }) });
  }

  /**
   * Planned switchover (admin): the master hands over to a caught-up slave (the
   * lowest-pid one, or `target`: a worker id or pid). Not retried: a second one
   * would move the master again.
   */
  switchover(target?: string, opts: CallOptions = {}): Promise<{ from: string; to: string; toPid: number; durationMs: number }> {
    return this.call({ method: 'POST', path: '/api/v1/switchover', body: target === undefined ? {} : { target }, auth: 'admin', idempotent: false, signal: opts.signal });
  }

  /** Every orchestrator of the namespace, which one leads, and its epoch. */
  orchestrators(opts: CallOptions = {}): Promise<{ leader: { url: string; pid: number; host: string; epoch: number } | null; orchestrators: Array<{ url: string; host: string; pid: number; port: number; startedAt: string; leader: boolean; self: boolean }> }> {
    return this.call({ method: 'GET', path: '/api/v1/orchestrators', auth: 'data', idempotent: true, signal: opts.signal });
  }

  /** Every platform service and orchestrator the lifecycle manager watches: kind, address, pid, state, restarts, last failure. */
  platform(opts: CallOptions = {}): Promise<PlatformView> {
    return this.call({ method: 'GET', path: '/api/v1/platform', auth: 'data', idempotent: true, signal: opts.signal });
  }

  // ------------------------------------------------------------ internals --

  private observeSeq(seq: number): void {
    if (Number.isSafeInteger(seq) && seq > this.sessionSeq) this.sessionSeq = seq;
  }

  private readBody(table: string, opts: ReadOptions, count: boolean): Record<string, unknown> {
    const { consistency, afterSeq, signal: _signal, ...rest } = opts as ReadOptions & CallOptions;
    const database = rest.database ?? this.opts.database;
    const body: Record<string, unknown> = { table, ...rest, ...(database ? { database } : {}) };
    if (count) body['count'] = true;
    const session = (this.opts.readYourWrites ?? true) && consistency !== 'eventual' ? this.sessionSeq : 0;
    const wanted = Math.max(afterSeq ?? 0, session);
    if (wanted > 0) body['afterSeq'] = wanted;
    return body;
  }

  private token(auth: Auth): string | undefined {
    if (auth === 'admin') return this.opts.adminToken ?? this.opts.apiKey;
    return this.opts.apiKey ?? this.opts.adminToken;
  }

  private async call<T>(req: Request): Promise<T> {
    const attempts = req.idempotent ? Math.max(1, this.policy.attempts) : 1;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once<T>(req);
      } catch (err) {
        if (!(err instanceof Retry) || attempt >= attempts) throw err instanceof Retry ? err.error : err;
        const delayMs = retryDelayMs(attempt, this.policy, err.retryAfterMs);
        this.opts.onRetry?.({ method: req.method, path: req.path, attempt, delayMs, error: err.error });
        await sleep(delayMs, req.signal);
      }
    }
  }

  /** With several URLs: the next try goes to the next orchestrator. */
  private nextOrchestrator(): void {
    this.current = (this.current + 1) % this.bases.length;
  }

  /** One try: the parsed answer, or throws a DbaasClientError (wrapped in {@link Retry} when it may be retried). */
  private async once<T>(req: Request): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (req.body !== undefined) headers['content-type'] = 'application/json';
    // How long ago this write was first tried, on this process's monotonic clock: the server dates the
    // request by it rather than by the time in the requestId, so a wrong wall clock here does no harm.
    if (req.firstAttemptAt !== undefined) headers[REQUEST_AGE_HEADER] = String(Math.max(0, Math.round(performance.now() - req.firstAttemptAt)));
    const token = this.token(req.auth);
    if (token) headers['authorization'] = `Bearer ${token}`;
    // A body JSON cannot carry (a BigInt, a cycle) is the caller's mistake: thrown at once, never sent, never retried.
    let payload: string | undefined;
    try {
      payload = req.body === undefined ? undefined : JSON.stringify(req.body);
    } catch (err) {
      throw new DbaasClientError(CLIENT_INVALID_REQUEST, `${req.method} ${req.path}: the body cannot be sent as JSON: ${((err as Error).message ?? String(err)).split('\n')[0]}`, 0, false);
    }
    const timeoutMs = req.timeoutMs ?? this.timeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
    let res: Response;
    let text: string;
    try {
      res = await this.fetchFn(`${this.base}${req.path}`, {
        method: req.method,
        headers,
        ...(payload === undefined ? {} : { body: payload }),
        signal,
      });
      text = await res.text();
    } catch (err) {
      if (req.signal?.aborted) throw req.signal.reason;
      const timedOut = timeout.aborted;
      const error = timedOut
        ? new DbaasClientError(CLIENT_TIMEOUT, `no answer from ${this.base} within ${timeoutMs} ms (${req.method} ${req.path})`, 0, true)
        : new DbaasClientError(CLIENT_UNREACHABLE, `cannot reach ${this.base}: ${describeFetchError(err)}`, 0, true);
      this.nextOrchestrator();
      throw new Retry(error, 0);
    }
    const serverRequestId = res.headers.get('x-request-id') ?? undefined;
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (res.ok) return parsed as T;
    const body = (parsed ?? {}) as { error?: { code?: unknown; message?: unknown; details?: unknown } };
    const code = typeof body.error?.code === 'string' ? body.error.code : `HTTP_${res.status}`;
    const message = typeof body.error?.message === 'string' ? body.error.message : `${req.method} ${req.path} answered ${res.status}`;
    const retryable = isRetryable(code, res.status);
    // A 503 from /readyz has no error body: keep what it said.
    const details = body.error ? body.error.details : parsed;
    const error = new DbaasClientError(code, message, res.status, retryable, serverRequestId, details);
    // An orchestrator that is stopping sends the next try elsewhere (the others serve the same API).
    if (code === 'DBAAS_SHUTTING_DOWN') this.nextOrchestrator();
    if (retryable) throw new Retry(error, parseRetryAfter(res.headers.get('retry-after')));
    throw error;
  }
}

/** Marks an error the caller may retry. */
class Retry extends Error {
  constructor(
    readonly error: DbaasClientError,
    readonly retryAfterMs: number,
  ) {
    super(error.message);
  }
}

function isReadiness(value: unknown): value is Readiness {
  return typeof value === 'object' && value !== null && 'ready' in value;
}

function describeFetchError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message ?? String(err);
}

/** The connection was refused: the request never reached a server (safe to send elsewhere, whatever it is). */
function connectionRefused(err: unknown): boolean {
  return (err as { cause?: { code?: string } }).cause?.code === 'ECONNREFUSED';
}

/** A fresh idempotency key (allowed characters: A-Z a-z 0-9 _ . : -). */
export function newRequestId(): string {
  // The time of the first attempt travels with every retry: past the retry horizon the server refuses the write instead of applying it again.
  return timedRequestId();
}
