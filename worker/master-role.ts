/**
 * The master side of replication: one write at a time gets a seq, an oplog
 * entry and its data change; the entry is published to every slave with a
 * publisher confirm; only then is the client answered and the message acked.
 *
 * Stage 1 (build, store, apply) is strictly serial. Publishing is issued in
 * seq order at the end of stage 1 and its confirm awaited off the serial path,
 * so the next write does not wait for the previous confirm.
 */
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import { MongoServerError } from 'mongodb';
import { DbaasError } from '../common/errors.js';
import { decodeWrite, encode, type SyncEntry, WIRE_VERSION } from '../common/messages.js';
import { reply, reqIdOf, settle, type WorkerContext } from './context.js';
import { buildWrite } from './entry-builder.js';

/** A message that stage 1 deliberately did not process. */
class Skipped extends Error {}

interface Timings {
  at: number;
  lookupMs: number;
  buildMs: number;
  storeMs: number;
}

type Prepared = { entry: SyncEntry; confirmed: Promise<void>; timings?: Timings } | { error: DbaasError };

export class MasterRole {
  /** Last seq given out. */
  lastSeq = 0;
  /** Highest seq whose publish the broker confirmed. */
  private lastConfirmed = 0;
  private chain: Promise<unknown> = Promise.resolve();
  private pubCh: ConfirmChannel | undefined;
  private writeCh: Channel | undefined;
  private fenced = false;

  constructor(
    private readonly ctx: WorkerContext,
    public term: number,
  ) {}

  /** Continues from the data already here: replays the newest oplog entry, which a crash may have half-applied. */
  async recover(): Promise<void> {
    const last = await this.ctx.store.lastEntry();
    if (last) await this.ctx.store.applyOps(last.ops);
    this.lastSeq = last?._id ?? 0;
    this.lastConfirmed = this.lastSeq;
  }

  /** Continues after a promotion, from what this worker applied as a slave. */
  continueFrom(seq: number): void {
    this.lastSeq = seq;
    this.lastConfirmed = seq;
  }

  /** On a (new) connection: re-publish unconfirmed entries, then take writes. */
  async attach(conn: ChannelModel): Promise<void> {
    // Writes taken on a previous connection finish stage 1 first, so that the
    // re-publish below covers them and entries reach the slaves in seq order.
    await this.chain;
    const pubCh = await conn.createConfirmChannel();
    this.pubCh = pubCh;
    const unconfirmed = await this.ctx.store.entriesBetween(this.lastConfirmed, this.lastSeq);
    for (const doc of unconfirmed) {
      const { _id: _ignored, ...entry } = doc;
      await this.publish(pubCh, entry);
    }
    const writeCh = await conn.createChannel();
    await writeCh.prefetch(this.ctx.config.writePrefetch);
    this.writeCh = writeCh;
    await writeCh.consume(this.ctx.names.writeQueue, (msg) => {
      if (msg) this.enqueue(writeCh, pubCh, msg);
    });
  }

  /** Stops taking writes at once (fencing): used when this worker may no longer be the master. */
  async fence(): Promise<void> {
    this.fenced = true;
    await this.writeCh?.close().catch(() => undefined);
    this.writeCh = undefined;
  }

  private publish(ch: ConfirmChannel, entry: SyncEntry): Promise<void> {
    return new Promise((resolve, reject) => {
      ch.publish(this.ctx.names.syncExchange, '', encode(entry), { persistent: true, contentType: 'application/json' }, (err) => {
        if (err) {
          reject(new DbaasError('DBAAS_BROKER_UNAVAILABLE', 'the broker did not confirm the sync entry'));
          return;
        }
        this.lastConfirmed = Math.max(this.lastConfirmed, entry.seq);
        resolve();
      });
    });
  }

  private enqueue(writeCh: Channel, pubCh: ConfirmChannel, msg: ConsumeMessage): void {
    const prepared = this.chain.then(() => this.prepare(writeCh, pubCh, msg));
    this.chain = prepared.catch((err: unknown) => {
      if (!(err instanceof Skipped)) this.ctx.fail(`the write path is broken: ${(err as Error).message}`);
    });
    void prepared.then(
      async (p) => {
        const log = this.ctx.logger;
        if ('error' in p) {
          reply(writeCh, msg, { ok: false, error: p.error.toWire() });
          settle(writeCh, msg, 'ack');
          if (log.isLevelEnabled('debug')) log.debug({ reqId: reqIdOf(msg), code: p.error.code }, 'write refused');
          return;
        }
        await p.confirmed;
        reply(writeCh, msg, { ok: true, result: p.entry.result });
        settle(writeCh, msg, 'ack');
        if (log.isLevelEnabled('debug')) {
          const timings = p.timings ? { ...p.timings, confirmMs: Date.now() - p.timings.at } : { duplicate: true };
          log.debug({ reqId: reqIdOf(msg), requestId: p.entry.requestId, seq: p.entry.seq, ...timings }, 'write applied');
        }
      },
    ).catch((err: unknown) => {
      // No answer and no ack: the broker redelivers the write, and its requestId makes the retry safe.
      this.ctx.logger.warn({ err: (err as Error).message }, 'write left unanswered');
    });
  }

  /** Stage 1, serial: dedupe, build, store, apply, and issue the publish. */
  private async prepare(writeCh: Channel, pubCh: ConfirmChannel, msg: ConsumeMessage): Promise<Prepared> {
    if (this.fenced) throw new Skipped('fenced');
    const env = decodeWrite(msg.content);
    if (!env) {
      this.ctx.logger.error('poison message on the write queue: dead-lettered');
      settle(writeCh, msg, 'dead-letter');
      throw new Skipped('poison');
    }
    const store = this.ctx.store;
    const t0 = Date.now();
    const seen = await store.entryByRequestId(env.requestId);
    if (seen) {
      const { _id: _ignored, ...entry } = seen;
      // Publish again: if the first publish was never confirmed, slaves must still get it. They skip duplicates.
      return { entry, confirmed: this.publish(pubCh, entry) };
    }
    const t1 = Date.now();
    let built;
    try {
      built = await buildWrite(store, env.command);
    } catch (err) {
      if (err instanceof DbaasError) return { error: err };
      if (err instanceof MongoServerError) {
        return { error: new DbaasError('DBAAS_QUERY_INVALID', `the database refused the filter: ${err.message}`) };
      }
      throw err;
    }
    const t2 = Date.now();
    const seq = this.lastSeq + 1;
    const entry: SyncEntry = {
      v: WIRE_VERSION,
      seq,
      term: this.term,
      requestId: env.requestId,
      ts: Date.now(),
      ops: built.ops,
      result: { ...built.result, seq },
    };
    // The entry is stored before the data changes: a crash in between is repaired by replaying it.
    await store.recordEntry(entry);
    this.lastSeq = seq;
    await store.applyOps(entry.ops);
    const t3 = Date.now();
    return {
      entry,
      confirmed: this.publish(pubCh, entry),
      timings: { at: t3, lookupMs: t1 - t0, buildMs: t2 - t1, storeMs: t3 - t2 },
    };
  }

  /** Waits until every write taken so far has finished stage 1. */
  async idle(): Promise<void> {
    await this.chain;
  }
}
