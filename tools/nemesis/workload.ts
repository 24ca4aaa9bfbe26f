/**
 * The nemesis clients: each one writes in a loop, one write at a time, over
 * real HTTP with the typed client. Every write carries a requestId and is
 * retried with that same requestId on 503/504/network errors until it is
 * acknowledged or its deadline passes (then its outcome is unknown: it may or
 * may not be applied, but never twice). Everything is recorded in the history.
 */
import { DbaasClient, DbaasClientError } from '../../client/dbaas-client.js';
import type { WriteBody, WriteResult } from '../../client/types.js';
import { FOREIGN_OWNER, ownerOf, TABLES, type OpKind, type OpRecord } from './history.js';
import { seededRandom } from './random.js';

export interface WorkloadOptions {
  url: string;
  adminToken?: string;
  clients: number;
  seed: number;
  /** How long one write is retried before its outcome is recorded as unknown. */
  writeDeadlineMs: number;
  /** How long one try may take before it is abandoned and retried. */
  tryTimeoutMs: number;
  /** Pause between two writes of one client (0: none). */
  thinkMs: number;
  /** Keys per client for accounts, counters and arrays. */
  keysPerClient: number;
}

/** Share of each kind in the mix (a delete with nothing to delete becomes an insert). */
const MIX: ReadonlyArray<[OpKind, number]> = [
  ['insert-id', 0.22],
  ['insert-auto', 0.12],
  ['delete', 0.17],
  ['upsert', 0.12],
  ['upsert-foreign', 0.03],
  ['inc', 0.18],
  ['push', 0.16],
];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface WorkloadStats {
  ok: number;
  unknown: number;
  refused: number;
  retries: number;
}

export class Workload {
  readonly history: OpRecord[] = [];
  private stopping = false;
  private running: Array<Promise<void>> = [];
  private retries = 0;
  private readonly runId: string;

  constructor(private readonly o: WorkloadOptions) {
    this.runId = `nm${o.seed.toString(36)}-${Date.now().toString(36)}`;
  }

  start(): void {
    this.running = Array.from({ length: this.o.clients }, (_, c) => this.client(c));
  }

  /** Lets each client finish the write it is on (until acknowledged or its deadline), then returns. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.running);
  }

  stats(): WorkloadStats {
    const s: WorkloadStats = { ok: 0, unknown: 0, refused: 0, retries: this.retries };
    for (const r of this.history) s[r.outcome]++;
    return s;
  }

  private async client(c: number): Promise<void> {
    const random = seededRandom(this.o.seed * 1000 + c + 1);
    let lastTry: { status: number; code: string | undefined } = { status: 0, code: undefined };
    let attempts = 0;
    let retried: Record<string, number> = {};
    const api = new DbaasClient({
      url: this.o.url,
      ...(this.o.adminToken ? { adminToken: this.o.adminToken } : {}),
      timeoutMs: this.o.tryTimeoutMs,
      // Retries end at the write's deadline (its abort signal), not after a count.
      retry: { attempts: Number.MAX_SAFE_INTEGER, baseDelayMs: 50, maxDelayMs: 1000 },
      readYourWrites: false,
      onRetry: ({ error }) => {
        attempts++;
        this.retries++;
        lastTry = { status: error.status, code: error.code };
        retried[error.code] = (retried[error.code] ?? 0) + 1;
      },
    });
    const owner = ownerOf(c);
    const live: string[] = []; // acknowledged nm_docs ids not yet deleted
    const accounts = new Set<string>(); // accounts with an acknowledged upsert
    const keyOf = (prefix: string): string => `${prefix}-${c}-${Math.floor(random() * this.o.keysPerClient)}`;

    for (let i = 0; !this.stopping; i++) {
      let kind = chooseKind(random());
      if (kind === 'delete' && live.length === 0) kind = 'insert-id';
      if (kind === 'upsert-foreign' && accounts.size === 0) kind = 'upsert';
      let key: string;
      let value: string | number | undefined;
      let recordOwner: string | undefined;
      let body: WriteBody;
      switch (kind) {
        case 'insert-id':
          key = `d-${c}-${i}`;
          body = { table: TABLES.docs, operation: 'insert', data: { _id: key, c, i } };
          break;
        case 'insert-auto':
          key = `a-${c}-${i}`;
          body = { table: TABLES.auto, operation: 'insert', data: { key, c, i } };
          break;
        case 'delete': {
          // Mostly the newest document: a delete right after its insert is what a fuzzy snapshot loses.
          const at = random() < 0.6 ? live.length - 1 : Math.floor(random() * live.length);
          key = live.splice(at, 1)[0] as string;
          body = { table: TABLES.docs, operation: 'delete', where: { _id: key } };
          break;
        }
        case 'upsert':
          key = keyOf('acct');
          value = `n${i}`;
          recordOwner = owner;
          body = { table: TABLES.accounts, operation: 'upsert', where: { _id: key, owner }, data: { $set: { note: value } } };
          break;
        case 'upsert-foreign':
          key = [...accounts][Math.floor(random() * accounts.size)] as string;
          value = `x${i}`;
          recordOwner = FOREIGN_OWNER;
          body = { table: TABLES.accounts, operation: 'upsert', where: { _id: key, owner: FOREIGN_OWNER }, data: { $set: { note: value } } };
          break;
        case 'inc':
          key = keyOf('ctr');
          value = 1 + Math.floor(random() * 3);
          body = { table: TABLES.counters, operation: 'upsert', where: { _id: key }, data: { $inc: { n: value } } };
          break;
        case 'push':
          key = keyOf('arr');
          value = `${c}-${i}`;
          body = { table: TABLES.arrays, operation: 'upsert', where: { _id: key }, data: { $push: { items: value } } };
          break;
      }
      const requestId = `${this.runId}-${c}-${i}`;
      attempts = 1;
      retried = {};
      lastTry = { status: 0, code: undefined };
      const startMs = Date.now();
      const record: OpRecord = { kind, client: c, key, requestId, outcome: 'unknown', status: 0, attempts: 1, startMs, endMs: startMs };
      if (value !== undefined) record.value = value;
      if (recordOwner !== undefined) record.owner = recordOwner;
      try {
        const result: WriteResult = await api.write(body, { requestId, signal: AbortSignal.timeout(this.o.writeDeadlineMs) });
        record.outcome = 'ok';
        record.status = 200;
        record.ids = result.ids;
        record.inserted = result.inserted;
        record.matched = result.matched;
        record.deleted = result.deleted;
      } catch (err) {
        if (err instanceof DbaasClientError) {
          record.status = err.status;
          record.code = err.code;
          // A definite refusal on the first try changed nothing. After an unanswered try, a 4xx may be the
          // answer to a write that the first try applied (a lost requestId): its effect is unknown.
          record.outcome = err.status >= 400 && err.status < 500 && attempts === 1 ? 'refused' : 'unknown';
        } else {
          // The write's deadline passed while it was still being retried.
          record.status = lastTry.status;
          record.code = `DEADLINE (last: ${lastTry.code ?? 'none'})`;
          record.outcome = 'unknown';
        }
      }
      record.attempts = attempts;
      if (attempts > 1) record.retried = retried;
      record.endMs = Date.now();
      this.history.push(record);
      if (record.outcome === 'ok' && kind === 'insert-id') live.push(key);
      if (record.outcome === 'ok' && kind === 'upsert') accounts.add(key);
      if (this.o.thinkMs > 0) await sleep(this.o.thinkMs);
    }
  }
}

function chooseKind(r: number): OpKind {
  let acc = 0;
  for (const [kind, share] of MIX) {
    acc += share;
    if (r < acc) return kind;
  }
  return 'insert-id';
}

export interface ReadStats {
  ok: number;
  /** Reads that failed after the typed client's own retries. */
  failed: number;
  /** Error codes of the failed reads, with counts. */
  errors: Record<string, number>;
}

/**
 * Readers beside the writers, for a mixed load: each reads one of the
 * workload's tables at a time (the typed client's retries and read-your-writes
 * off, as a plain service would), and counts what failed. Reads are not in the
 * history: what they see is not checked, only that they are served.
 */
export class Readers {
  private stopping = false;
  private running: Array<Promise<void>> = [];
  private readonly counts: ReadStats = { ok: 0, failed: 0, errors: {} };

  constructor(private readonly o: { url: string; readers: number; seed: number; tryTimeoutMs: number }) {}

  start(): void {
    this.running = Array.from({ length: this.o.readers }, (_, r) => this.reader(r));
  }

  private async reader(r: number): Promise<void> {
    const random = seededRandom(this.o.seed * 1000 + 500 + r);
    const tables = Object.values(TABLES);
    const api = new DbaasClient({ url: this.o.url, timeoutMs: this.o.tryTimeoutMs, readYourWrites: false });
    while (!this.stopping) {
      try {
        await api.read(tables[Math.floor(random() * tables.length)] as string, { where: {}, limit: 20 });
        this.counts.ok++;
      } catch (err) {
        this.counts.failed++;
        const code = err instanceof DbaasClientError ? err.code : (err as Error).name;
        this.counts.errors[code] = (this.counts.errors[code] ?? 0) + 1;
        await sleep(100);
      }
    }
  }

  stats(): ReadStats {
    return { ...this.counts, errors: { ...this.counts.errors } };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.running);
  }
}
