/**
 * The slave side of replication: snapshot, in-order apply of sync entries, reads.
 *
 * Start-up order is what makes a new slave miss nothing: its durable sync queue
 * is bound first (so entries buffer), then the master's data is copied with the
 * master's seq at that moment, then buffered entries above it are applied, and
 * only then does the slave take reads.
 */
import type { Channel, ChannelModel, ConsumeMessage, Message } from 'amqplib';
import { MongoServerError } from 'mongodb';
import { DbaasError, asDbaasError } from '../common/errors.js';
import { decodeRead, decodeSync } from '../common/messages.js';
import { assertSyncQueue } from '../common/topology.js';
import { reply, reqIdOf, settle, type WorkerContext } from './context.js';
import { judgeEntry, positionAfterSnapshot, SNAPSHOT_REPLAY_ENTRIES, type SyncPosition } from './sync-order.js';
import { Store } from './store.js';

const SYNC_PREFETCH = 512;

export class SlaveRole {
  private pos: SyncPosition = { appliedSeq: 0, jumpUpTo: 0, maxTerm: 0 };
  private chain: Promise<void> = Promise.resolve();
  private pendingSync = 0;
  private readonly waiters = new Set<{ seq: number; resolve: () => void }>();

  private syncCh: Channel | undefined;
  private syncTag: string | undefined;
  private readCh: Channel | undefined;
  private readTag: string | undefined;
  private inFlightReads = 0;
  private snapshotDone = false;
  private readsWanted = false;

  constructor(private readonly ctx: WorkerContext) {}

  get syncQueue(): string {
    return this.ctx.names.syncQueue(this.ctx.config.workerId);
  }

  /** Binds the sync queue on a (new) connection and resumes consuming what the current state needs. */
  async attach(conn: ChannelModel): Promise<void> {
    this.syncCh = await conn.createChannel();
    await this.syncCh.prefetch(SYNC_PREFETCH);
    await assertSyncQueue(this.syncCh, this.ctx.names, this.ctx.config.workerId);
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
      const last = await source.lastEntry();
      const s0 = last?._id ?? 0;
      const copied = await store.copyFrom(source, s0);
      // The copy is fuzzy: entry s0 may have been half-applied on the master when it was read.
      // Replaying the oplog's tail in order makes every document at least as new as s0;
      // anything newer comes again from the queue, which holds every entry above s0.
      for (const entry of await store.entriesBetween(Math.max(0, s0 - SNAPSHOT_REPLAY_ENTRIES), s0)) {
        await store.applyOps(entry.ops);
      }
      this.pos = positionAfterSnapshot(s0, last?.term ?? 0);
      logger.info({ seq: s0, documents: copied, ms: Date.now() - started }, 'snapshot copied from master');
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

  private enqueueSync(ch: Channel, msg: ConsumeMessage): void {
    this.pendingSync += 1;
    this.chain = this.chain
      .then(() => this.applySync(ch, msg))
      .catch((err: unknown) => this.ctx.fail(`cannot apply a sync entry: ${(err as Error).message}`))
      .finally(() => {
        this.pendingSync -= 1;
      });
  }

  private async applySync(ch: Channel, msg: Message): Promise<void> {
    const entry = decodeSync(msg.content);
    if (!entry) {
      this.ctx.logger.error('poison message on the sync queue: dead-lettered');
      settle(ch, msg, 'dead-letter');
      return;
    }
    const verdict = judgeEntry(this.pos, entry);
    if (verdict === 'gap') {
      this.ctx.fail(`sync gap: expected seq ${this.appliedSeq + 1}, got ${entry.seq}; a resync is needed`);
    }
    if (verdict === 'apply') {
      await this.ctx.store.applyOps(entry.ops);
      await this.ctx.store.recordEntry(entry);
      this.pos = { ...this.pos, appliedSeq: entry.seq, maxTerm: entry.term };
      this.wake();
    } else if (verdict === 'stale-term') {
      this.ctx.logger.warn({ seq: entry.seq, term: entry.term, maxTerm: this.pos.maxTerm }, 'refused an entry from a deposed master');
    }
    settle(ch, msg, 'ack');
  }

  /** Highest seq applied to this worker's data. */
  get appliedSeq(): number {
    return this.pos.appliedSeq;
  }

  /** Resolves once the sync queue is empty and everything taken from it is applied. */
  async waitCaughtUp(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ch = this.syncCh;
      if (ch && this.pendingSync === 0) {
        const { messageCount } = await ch.checkQueue(this.syncQueue);
        if (messageCount === 0 && this.pendingSync === 0) return;
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
        settle(ch, msg, 'dead-letter');
        return;
      }
      try {
        const { afterSeq } = env.command;
        if (afterSeq !== undefined && afterSeq > this.appliedSeq) await this.waitApplied(afterSeq);
        const result = await this.ctx.store.read(env.command);
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
    const ch = this.syncCh;
    if (!ch) throw new Error('no sync channel to drain');
    if (this.syncTag) await ch.cancel(this.syncTag);
    this.syncTag = undefined;
    await this.chain;
    for (;;) {
      const msg = await ch.get(this.syncQueue, { noAck: false });
      if (!msg) break;
      await this.applySync(ch, msg);
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

function readError(err: unknown): DbaasError {
  if (err instanceof DbaasError) return err;
  if (err instanceof MongoServerError) return new DbaasError('DBAAS_QUERY_INVALID', `the database refused the query: ${err.message}`);
  return asDbaasError(err);
}
