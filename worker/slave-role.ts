/**
 * The slave side of replication: snapshot, in-order apply of sync entries, reads.
 *
 * Start-up order is what makes a new slave miss nothing: its durable sync queue
 * is bound first (so entries buffer), then the master's data is copied with the
 * master's seq at that moment, then buffered entries above it are applied, and
 * only then does the slave take reads.
 *
 * Entries are applied in runs: whatever the queue has delivered while the
 * previous run was being written is judged in seq order (sync-order.ts), its
 * data written coalesced (apply-plan.ts), its entries stored in one insert, and
 * only then is appliedSeq moved and the run acked. A crash in a run loses
 * nothing: the run was not acked, and this slave is replaced anyway.
 */
import type { Channel, ChannelModel, ConsumeMessage, Message } from 'amqplib';
import { MongoServerError } from 'mongodb';
import { DbaasError, asDbaasError } from '../common/errors.js';
import { decodeRead, decodeSync, type SyncEntry } from '../common/messages.js';
import { assertSyncQueue } from '../common/topology.js';
import { reply, reqIdOf, settle, type WorkerContext } from './context.js';
import { checkpointAfter } from './checksum.js';
import { judgeRun, positionAfterSnapshot, SNAPSHOT_REPLAY_ENTRIES, type SyncPosition } from './sync-order.js';
import { Store } from './store.js';

/**
 * Sync entries delivered ahead of the one being applied. Enough for long runs under
 * load; bounded because an entry can hold a thousand documents, and every
 * delivered entry sits in this process's memory until it is applied.
 */
const SYNC_PREFETCH = 128;
/** Bounds on one run: entries, and documents touched. */
const RUN_MAX_ENTRIES = 128;
const RUN_MAX_OPS = 4000;

interface Delivered {
  ch: Channel;
  msg: Message;
  entry: SyncEntry;
}

export class SlaveRole {
  private pos: SyncPosition = { appliedSeq: 0, jumpUpTo: 0, maxTerm: 0 };
  private readonly delivered: Delivered[] = [];
  private applying = false;
  private applied: Promise<void> = Promise.resolve();
  private readonly waiters = new Set<{ seq: number; resolve: () => void }>();

  private syncCh: Channel | undefined;
  private syncTag: string | undefined;
  private readCh: Channel | undefined;
  private readTag: string | undefined;
  private inFlightReads = 0;
  private snapshotDone = false;
  private readsWanted = false;
  /**
   * Entries up to this seq may already be (partly) in the data: the snapshot copy
   * was read while the master went on writing. They are applied without trusting
   * the `fresh` hint, so no delete of a copied document is ever skipped.
   */
  private fuzzyUpTo = 0;
  /** Interrupts the checksum being taken at a checkpoint (a promotion must not wait for it). */
  private checksumAbort: AbortController | undefined;
  /** Set once a promotion drains the queue: checkpoints met from then on are not hashed. */
  private promoting = false;

  constructor(private readonly ctx: WorkerContext) {}

  get syncQueue(): string {
    return this.ctx.names.syncQueue(this.ctx.config.workerId);
  }

  /** Binds the sync queue on a (new) connection and resumes consuming what the current state needs. */
  async attach(conn: ChannelModel): Promise<void> {
    this.syncCh = await conn.createChannel();
    await this.syncCh.prefetch(SYNC_PREFETCH);
    await assertSyncQueue(conn, this.ctx.names, this.ctx.config.workerId, this.ctx.config, (queue, why) =>
      this.ctx.logger.warn({ queue, why }, 'sync queue kept with the arguments it was declared with (no expiry)'),
    );
    this.syncTag = undefined;
    this.readCh = undefined;
    this.readTag = undefined;
    if (this.snapshotDone) await this.consumeSync();
    if (this.readsWanted) await this.startReads(conn);
  }

  /** Copies the master's data; `masterDbUrl` is where the master's database listens. */
  async snapshot(masterDbUrl: string): Promise<void> {
    const { store, logger } = this.ctx;
    const started = Date.now();
    await store.dropAll();
    const source = await Store.connect(masterDbUrl, this.ctx.config.dbName, 10_000);
    try {
      // The copy is fuzzy: the master may be half-way through writing the batch that holds S0
      // (entries from its `first` to S0) while the copy reads. Those entries are laid over the
      // copy as it is written, so every document is at least as new as S0; anything newer
      // comes again from the queue, which holds every entry above S0 (see Store.copyFrom).
      const copied = await store.copyFrom(source, SNAPSHOT_REPLAY_ENTRIES);
      const s0 = copied.last?.seq ?? 0;
      this.pos = positionAfterSnapshot(s0, copied.last?.term ?? 0);
      this.fuzzyUpTo = copied.fuzzyUpTo;
      logger.info({ seq: s0, fuzzyUpTo: copied.fuzzyUpTo, documents: copied.documents, entries: copied.entries, replayed: copied.replayed, ms: Date.now() - started }, 'snapshot copied from master');
    } finally {
      await source.close();
    }
    this.snapshotDone = true;
    await this.consumeSync();
  }

  private async consumeSync(): Promise<void> {
    const ch = this.syncCh;
    if (!ch) return;
    const { consumerTag } = await ch.consume(this.syncQueue, (msg) => {
      if (msg) this.enqueueSync(ch, msg);
    });
    this.syncTag = consumerTag;
  }

  private enqueueSync(ch: Channel, msg: Message): void {
    const entry = decodeSync(msg.content);
    if (!entry) {
      this.ctx.logger.error('poison message on the sync queue: dead-lettered');
      this.ctx.notePoison('sync');
      settle(ch, msg, 'dead-letter');
      return;
    }
    this.delivered.push({ ch, msg, entry });
    if (!this.applying) {
      this.applying = true;
      this.applied = this.applyDelivered();
    }
  }

  /** Applies what has been delivered, run after run, until nothing is left. */
  private async applyDelivered(): Promise<void> {
    try {
      while (this.delivered.length > 0) {
        let n = 0;
        let ops = 0;
        while (n < this.delivered.length && n < RUN_MAX_ENTRIES && (n === 0 || ops < RUN_MAX_OPS)) {
          const { entry } = this.delivered[n] as Delivered;
          ops += entry.ops.length;
          n += 1;
          // A run ends at a checkpoint, so the data is hashed exactly at its seq (worker/checksum.ts).
          if (entry.checkpoint) break;
        }
        await this.applyRun(this.delivered.splice(0, n));
      }
    } catch (err) {
      this.ctx.fail(`cannot apply a sync entry: ${(err as Error).message}`);
    } finally {
      this.applying = false;
    }
  }

  private async applyRun(run: Delivered[]): Promise<void> {
    const judged = judgeRun(this.pos, run.map((d) => d.entry));
    if (judged.gap) {
      this.ctx.fail(`sync gap: expected seq ${judged.pos.appliedSeq + 1}, got ${judged.gap.seq}; a resync is needed`);
    }
    for (const entry of judged.stale) {
      this.ctx.logger.warn({ seq: entry.seq, term: entry.term, maxTerm: this.pos.maxTerm }, 'refused an entry from a deposed master');
    }
    if (judged.apply.length > 0) {
      const inWindow = judged.apply.filter((e) => e.seq <= this.fuzzyUpTo);
      const past = inWindow.length === judged.apply.length ? [] : judged.apply.slice(inWindow.length);
      if (inWindow.length > 0) await this.ctx.store.applyOps(inWindow.flatMap((e) => e.ops), false);
      if (past.length > 0) await this.ctx.store.applyOps(past.flatMap((e) => e.ops));
      await this.ctx.store.recordEntries(judged.apply);
      // Before appliedSeq moves: once it passes a checkpoint, that checkpoint's result is there (or never will be).
      await this.checkpoint(judged.apply);
      this.pos = judged.pos;
      this.wake();
    }
    ackRun(run);
  }

  /**
   * Hashes the data at a checkpoint that ends this run (checksum.ts): nothing is applied meanwhile.
   * A slave still catching up does not hash; a promotion interrupts the hashing.
   */
  private async checkpoint(applied: readonly SyncEntry[]): Promise<void> {
    const abort = applied.at(-1)?.checkpoint ? new AbortController() : undefined;
    this.checksumAbort = abort;
    try {
      await checkpointAfter(this.ctx.store, this.ctx.checksums, applied, this.ctx.logger, {
        fuzzyUpTo: this.fuzzyUpTo,
        ...(abort ? { signal: abort.signal } : {}),
        ...(this.ctx.state === 'syncing' ? { skipBecause: 'this slave was still catching up' } : {}),
        ...(this.promoting ? { skipBecause: 'this slave was being promoted' } : {}),
      });
    } finally {
      this.checksumAbort = undefined;
    }
  }

  /** Highest seq applied to this worker's data. */
  get appliedSeq(): number {
    return this.pos.appliedSeq;
  }

  /**
   * Resolves once this slave has applied what the master had written when the
   * wait began (`masterSeq`, as the master last published it), or its queue is
   * empty with nothing being applied. Under a steady stream of writes the queue
   * is never empty (and its message count leaves out deliveries not yet acked),
   * so the seq is what tells "caught up".
   */
  async waitCaughtUp(timeoutMs: number, masterSeq: () => Promise<number | undefined>): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let target: number | undefined;
    for (;;) {
      target ??= await masterSeq().catch(() => undefined);
      if (target !== undefined && this.snapshotDone && this.pos.appliedSeq >= target) return;
      const ch = this.syncCh;
      if (ch && !this.applying) {
        const { messageCount } = await ch.checkQueue(this.syncQueue);
        if (messageCount === 0 && !this.applying && this.delivered.length === 0) return;
      }
      if (Date.now() > deadline) throw new Error(`not caught up after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Starts answering reads (state must be `slave`). */
  async startReads(conn: ChannelModel): Promise<void> {
    this.readsWanted = true;
    if (this.readTag) return;
    const ch = await conn.createChannel();
    await ch.prefetch(this.ctx.config.readPrefetch);
    this.readCh = ch;
    const { consumerTag } = await ch.consume(this.ctx.names.readQueue, (msg) => {
      if (msg) void this.handleRead(ch, msg);
    });
    this.readTag = consumerTag;
  }

  /** Stops taking new reads and waits for the ones in flight to be answered. */
  async stopReads(): Promise<void> {
    this.readsWanted = false;
    const ch = this.readCh;
    const tag = this.readTag;
    this.readTag = undefined;
    if (ch && tag) await ch.cancel(tag).catch(() => undefined);
    while (this.inFlightReads > 0) await new Promise((r) => setTimeout(r, 5));
    if (ch) await ch.close().catch(() => undefined);
    this.readCh = undefined;
  }

  private async handleRead(ch: Channel, msg: ConsumeMessage): Promise<void> {
    this.inFlightReads += 1;
    try {
      const env = decodeRead(msg.content);
      if (!env) {
        this.ctx.logger.error('poison message on the read queue: dead-lettered');
        this.ctx.notePoison('read');
        settle(ch, msg, 'dead-letter');
        return;
      }
      try {
        const { afterSeq } = env.command;
        if (afterSeq !== undefined && afterSeq > this.appliedSeq) await this.waitApplied(afterSeq);
        // The orchestrator answers 504 after DBAAS_REQUEST_TIMEOUT_MS: the query need not outlive that.
        const result = await this.ctx.store.read(env.command, this.ctx.config.requestTimeoutMs);
        reply(ch, msg, { ok: true, result });
        if (this.ctx.logger.isLevelEnabled('debug')) this.ctx.logger.debug({ reqId: reqIdOf(msg), table: env.command.table }, 'read answered');
      } catch (err) {
        const error = readError(err);
        reply(ch, msg, { ok: false, error: error.toWire() });
        if (this.ctx.logger.isLevelEnabled('debug')) this.ctx.logger.debug({ reqId: reqIdOf(msg), code: error.code }, 'read failed');
      }
      settle(ch, msg, 'ack');
    } catch (err) {
      // The channel died under us: the broker requeues the read for another slave.
      this.ctx.logger.warn({ err: (err as Error).message }, 'read channel failed');
    } finally {
      this.inFlightReads -= 1;
    }
  }

  private waitApplied(seq: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const waiter = {
        seq,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new DbaasError('DBAAS_READ_SEQ_TIMEOUT', `this slave has applied seq ${this.appliedSeq}, not ${seq}, after ${this.ctx.config.afterSeqWaitMs} ms`));
      }, this.ctx.config.afterSeqWaitMs);
      this.waiters.add(waiter);
    });
  }

  private wake(): void {
    for (const w of this.waiters) {
      if (w.seq <= this.appliedSeq) {
        this.waiters.delete(w);
        w.resolve();
      }
    }
  }

  /** For promotion: stop the consumer and apply everything left in the queue. The old master must be dead. */
  async drain(): Promise<void> {
    this.promoting = true;
    this.checksumAbort?.abort();
    const ch = this.syncCh;
    if (!ch) throw new Error('no sync channel to drain');
    if (this.syncTag) await ch.cancel(this.syncTag);
    this.syncTag = undefined;
    while (this.applying) await this.applied;
    for (;;) {
      let got = 0;
      for (; got < RUN_MAX_ENTRIES; got++) {
        const msg = await ch.get(this.syncQueue, { noAck: false });
        if (!msg) break;
        this.enqueueSync(ch, msg);
      }
      while (this.applying) await this.applied;
      if (got < RUN_MAX_ENTRIES) break;
    }
  }

  /** After promotion the sync queue has no reader: delete it. */
  async dropSyncQueue(): Promise<void> {
    const ch = this.syncCh;
    this.syncCh = undefined;
    if (!ch) return;
    await ch.deleteQueue(this.syncQueue).catch(() => undefined);
    await ch.close().catch(() => undefined);
  }
}

/** MongoDB's (and FerretDB's) error code for a query stopped by its maxTimeMS. */
const MAX_TIME_MS_EXPIRED = 50;

function readError(err: unknown): DbaasError {
  if (err instanceof DbaasError) return err;
  if (err instanceof MongoServerError && err.code === MAX_TIME_MS_EXPIRED) {
    return new DbaasError('DBAAS_RPC_TIMEOUT', `the read ran longer than DBAAS_REQUEST_TIMEOUT_MS on the database and was stopped`);
  }
  if (err instanceof MongoServerError) return new DbaasError('DBAAS_QUERY_INVALID', `the database refused the query: ${err.message}`);
  return asDbaasError(err);
}

/** Acks a run: per channel, one ack of its newest delivery covers the older ones (all handled, in order). */
function ackRun(run: readonly Delivered[]): void {
  const newest = new Map<Channel, Message>();
  for (const { ch, msg } of run) newest.set(ch, msg);
  for (const [ch, msg] of newest) {
    try {
      ch.ack(msg, true);
    } catch {
      // channel closed: the broker has requeued the run, and applying it again is idempotent
    }
  }
}
