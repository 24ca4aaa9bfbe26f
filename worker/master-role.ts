/**
 * The master side of replication. Every write gets a seq and an oplog entry,
 * in queue order; its data changes; the entry is published to every slave with
 * a publisher confirm; only then is the client answered and the message acked.
 *
 * Writes are handled in batches (see write-batch.ts for which writes may share
 * one): whatever has arrived while the previous batch was being stored forms
 * the next, so a lone write is a batch of one and pays no wait. Stage 1 is
 * strictly serial, one batch at a time:
 *   1. recognise retries (requestId already in the oplog, or earlier in the batch);
 *   2. build each write's post-images against the batch view, give it its seq;
 *   3. store all the batch's entries (one insert);
 *   4. publish the entries in seq order;
 *   5. apply all the batch's data (coalesced, new documents in bulk) while the
 *      broker confirms.
 * Confirms are awaited off the serial path, so the next batch does not wait for
 * them; each write is answered when its data is written and its own entry is
 * confirmed.
 *
 * Safety rests on step 3's order: a batch's entries are all stored before any of
 * its data is written, and a batch starts only after the previous one's data is
 * written. So after a crash, or in a copy of the data taken at any moment, only
 * the newest batch can be half-applied, and its entries (from `first`, which each
 * entry carries, to the newest) are in the oplog to be replayed.
 */
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import { MongoServerError } from 'mongodb';
import { commandFingerprint } from '../common/commands.js';
import { DbaasError } from '../common/errors.js';
import { decodeWrite, encode, type SyncEntry, type WriteEnvelope, WIRE_VERSION } from '../common/messages.js';
import { reply, reqIdOf, settle, type WorkerContext } from './context.js';
import { MasterCheckpoints } from './checkpoint-window.js';
import { buildWrite } from './entry-builder.js';
import { replayFrom, SNAPSHOT_REPLAY_ENTRIES } from './sync-order.js';
import { BatchView, DEFAULT_BATCH_LIMITS, planBatch, type BatchLimits } from './write-batch.js';

interface Taken {
  msg: ConsumeMessage;
  env: WriteEnvelope;
  writeCh: Channel;
  pubCh: ConfirmChannel;
}

/** How stage 1 settled one write. */
type Outcome =
  | { kind: 'entry'; entry: SyncEntry; confirmed?: Promise<void>; retry: boolean }
  | { kind: 'error'; error: DbaasError }
  /** The same requestId as an earlier write of the batch: answered as that one is. */
  | { kind: 'same'; as: number };

/** A requestId already taken by a different write. */
function reused(requestId: string): DbaasError {
  return new DbaasError('DBAAS_WRITE_REQUEST_ID_REUSED', `requestId ${JSON.stringify(requestId)} was used for a different write; nothing was applied`);
}

export class MasterRole {
  /** Last seq given out. */
  lastSeq = 0;
  /** Highest seq whose publish the broker confirmed. */
  private lastConfirmed = 0;
  private readonly inbox: Taken[] = [];
  private draining = false;
  private drained: Promise<void> = Promise.resolve();
  private pubCh: ConfirmChannel | undefined;
  private writeCh: Channel | undefined;
  private fenced = false;
  private checkpointsRef: MasterCheckpoints | undefined;

  constructor(
    private readonly ctx: WorkerContext,
    public term: number,
    private readonly limits: BatchLimits = DEFAULT_BATCH_LIMITS,
  ) {}

  /**
   * Continues from the data already here: replays the newest batch of oplog
   * entries, which a crash may have half-applied. The requestId index is loaded
   * in the background; until it is, every write asks the oplog whether it is a retry.
   */
  async recover(): Promise<void> {
    const store = this.ctx.store;
    const last = await store.lastEntry();
    if (last) {
      const entries = await store.entriesBetween(replayFrom(last) - 1, last._id);
      await store.replayOps(entries.flatMap((e) => e.ops));
    }
    this.lastSeq = last?._id ?? 0;
    this.ctx.checksums.settle(this.lastSeq);
    // Whether the newest entries reached the broker before the crash is unknown: attach() publishes
    // them again (slaves skip what they have), so no slave waits for a redelivery to see them.
    this.lastConfirmed = last ? replayFrom(last, SNAPSHOT_REPLAY_ENTRIES) - 1 : 0;
    const started = Date.now();
    void store.loadRequestIndex().then(
      () => this.ctx.logger.info({ requestIds: store.requests.size, ms: Date.now() - started }, 'requestId index loaded'),
      (err: unknown) => this.ctx.logger.warn({ err: (err as Error).message }, 'requestId index not loaded; retries are looked up in the oplog'),
    );
  }

  /** Replica checksums at checkpoints, taken beside the writes (see checkpoint-window.ts). */
  private get checkpoints(): MasterCheckpoints {
    this.checkpointsRef ??= new MasterCheckpoints(this.ctx.store, this.ctx.checksums, this.ctx.logger);
    return this.checkpointsRef;
  }

  /** Continues after a promotion, from what this worker applied as a slave (its requestId index is already complete). */
  continueFrom(seq: number): void {
    this.lastSeq = seq;
    this.lastConfirmed = seq;
  }

  /** On a (new) connection: re-publish unconfirmed entries, then take writes. */
  async attach(conn: ChannelModel): Promise<void> {
    // Writes taken on a previous connection finish stage 1 first, so that the
    // re-publish below covers them and entries reach the slaves in seq order.
    await this.idle();
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
      if (msg) this.take(writeCh, pubCh, msg);
    });
  }

  /** Stops taking writes at once (fencing): used when this worker may no longer be the master. */
  async fence(): Promise<void> {
    this.fenced = true;
    await this.writeCh?.close().catch(() => undefined);
    this.writeCh = undefined;
  }

  /** Takes writes again after a fence that turned out not to be needed (the master took its znode back); attach() then consumes. */
  resume(): void {
    this.fenced = false;
  }

  /** Waits until every write taken so far has finished stage 1. */
  async idle(): Promise<void> {
    while (this.draining) await this.drained;
  }

  private publish(ch: ConfirmChannel, entry: SyncEntry): Promise<void> {
    return new Promise((resolve, reject) => {
      try {
        ch.publish(this.ctx.names.syncExchange, '', encode(entry), { persistent: true, contentType: 'application/json' }, (err) => {
          if (err) {
            reject(new DbaasError('DBAAS_BROKER_UNAVAILABLE', 'the broker did not confirm the sync entry'));
            return;
          }
          this.lastConfirmed = Math.max(this.lastConfirmed, entry.seq);
          resolve();
        });
      } catch {
        // The channel is gone: attach() re-publishes on the next connection; this write stays unanswered.
        reject(new DbaasError('DBAAS_BROKER_UNAVAILABLE', 'the sync channel closed before the entry was published'));
      }
    });
  }

  private take(writeCh: Channel, pubCh: ConfirmChannel, msg: ConsumeMessage): void {
    const env = decodeWrite(msg.content);
    if (!env) {
      this.ctx.logger.error('poison message on the write queue: dead-lettered');
      this.ctx.notePoison('write');
      settle(writeCh, msg, 'dead-letter');
      return;
    }
    this.inbox.push({ msg, env, writeCh, pubCh });
    if (!this.draining) {
      this.draining = true;
      this.drained = this.drain();
    }
  }

  /** Stage 1: batch after batch until the inbox is empty. */
  private async drain(): Promise<void> {
    try {
      while (this.inbox.length > 0 && !this.fenced) {
        if (!this.ctx.masterLeaseValid()) {
          // Between two checks of the fence timer: nothing more is stored or published (common/fencing.ts).
          await this.fence();
          this.ctx.fail('no recent answer from ZooKeeper; this master stops before another can be promoted');
        }
        const window = this.inbox.slice(0, this.limits.maxWrites);
        const batch = this.inbox.splice(0, planBatch(window.map((t) => t.env.command), this.limits));
        await this.stage1(batch);
      }
      // Fenced: what is left is never acked, so the broker hands it to the next master.
      if (this.fenced) this.inbox.length = 0;
    } catch (err) {
      this.ctx.fail(`the write path is broken: ${(err as Error).message}`);
    } finally {
      this.draining = false;
    }
  }

  private async stage1(batch: Taken[]): Promise<void> {
    const store = this.ctx.store;
    const t0 = performance.now();
    // While a checkpoint's checksum runs, the batch's reads are recorded (checkpoint-window.ts).
    const source = this.checkpoints.source();
    const view = new BatchView(source);
    const outcomes: Outcome[] = [];
    const firstOfRequest = new Map<string, number>();
    const entries: SyncEntry[] = [];
    let seq = this.lastSeq;
    const fingerprints: string[] = [];
    for (const [i, { env }] of batch.entries()) {
      const fingerprint = commandFingerprint(env.command);
      fingerprints.push(fingerprint);
      const earlier = firstOfRequest.get(env.requestId);
      if (earlier !== undefined) {
        outcomes.push(fingerprints[earlier] === fingerprint ? { kind: 'same', as: earlier } : { kind: 'error', error: reused(env.requestId) });
        continue;
      }
      firstOfRequest.set(env.requestId, i);
      const seen = await store.entryByRequestId(env.requestId);
      if (seen) {
        const { _id: _ignored, ...entry } = seen;
        // Entries recorded before fingerprints existed have none: answered as retries.
        const same = entry.fingerprint === undefined || entry.fingerprint === fingerprint;
        outcomes.push(same ? { kind: 'entry', entry, retry: true } : { kind: 'error', error: reused(env.requestId) });
        continue;
      }
      try {
        const built = await buildWrite(view, env.command);
        view.record(built.ops);
        seq += 1;
        const entry: SyncEntry = {
          v: WIRE_VERSION,
          seq,
          term: this.term,
          requestId: env.requestId,
          fingerprint,
          ts: Date.now(),
          ops: built.ops,
          result: { ...built.result, seq },
          ...(env.command.kind === 'verify' ? { checkpoint: true as const } : {}),
        };
        entries.push(entry);
        outcomes.push({ kind: 'entry', entry, retry: false });
      } catch (err) {
        if (err instanceof DbaasError) outcomes.push({ kind: 'error', error: err });
        else if (err instanceof MongoServerError) {
          outcomes.push({ kind: 'error', error: new DbaasError('DBAAS_QUERY_INVALID', `the database refused the filter: ${err.message}`) });
        } else throw err;
      }
    }
    const t1 = performance.now();
    this.checkpoints.beforeApply(entries, source);
    const first = entries[0]?.seq;
    if (entries.length > 1) for (const e of entries) e.first = first;
    // The entries are stored before the data changes: a crash in between is repaired by replaying them.
    await store.recordEntries(entries);
    if (entries.length > 0) this.lastSeq = seq;
    const t2 = performance.now();

    // Published as soon as they are stored, so the broker's confirm overlaps the data writes; no
    // write is answered before both. Retries first: their entries are older than this batch's.
    // Slaves skip what they already applied.
    for (const retries of [true, false]) {
      outcomes.forEach((o, i) => {
        if (o.kind !== 'entry' || o.retry !== retries) return;
        o.confirmed = this.publish((batch[i] as Taken).pubCh, o.entry);
        // Answered (or left unanswered) in answer(); a failed confirm must not go unhandled meanwhile.
        o.confirmed.catch(() => undefined);
      });
    }
    await store.applyOps(entries.flatMap((e) => e.ops));
    // A checkpoint is alone in its batch: the data is exactly its seq now; its checksum runs beside the next batches.
    this.checkpoints.afterApply(entries);
    const t3 = performance.now();

    const log = this.ctx.logger;
    const timing = { writes: batch.length, entries: entries.length, buildMs: ms(t1 - t0), storeMs: ms(t2 - t1), applyMs: ms(t3 - t2) };
    // Every write waits for the batch before it: a slow one is worth a line at any level.
    if (t3 - t0 > SLOW_BATCH_MS) log.warn(timing, 'slow write batch');
    else if (log.isLevelEnabled('debug')) log.debug(timing, 'write batch stored');
    batch.forEach((taken, i) => void this.answer(taken, outcomes, i, t3));
  }

  /** Answers one write once its entry is confirmed (refusals at once), then acks it. */
  private async answer(taken: Taken, outcomes: Outcome[], i: number, storedAt: number): Promise<void> {
    const { msg, writeCh } = taken;
    const log = this.ctx.logger;
    let o = outcomes[i];
    if (o?.kind === 'same') o = outcomes[o.as];
    try {
      if (!o || o.kind === 'same') throw new Error('no outcome');
      if (o.kind === 'error') {
        reply(writeCh, msg, { ok: false, error: o.error.toWire() });
        settle(writeCh, msg, 'ack');
        if (log.isLevelEnabled('debug')) log.debug({ reqId: reqIdOf(msg), code: o.error.code }, 'write refused');
        return;
      }
      await o.confirmed;
      reply(writeCh, msg, { ok: true, result: o.entry.result });
      settle(writeCh, msg, 'ack');
      if (log.isLevelEnabled('debug')) {
        log.debug({ reqId: reqIdOf(msg), requestId: o.entry.requestId, seq: o.entry.seq, duplicate: o.retry || outcomes[i]?.kind === 'same', confirmMs: ms(performance.now() - storedAt) }, 'write applied');
      }
    } catch (err) {
      // No answer: handed back to the queue, where its requestId makes the retry safe (it is answered
      // from its stored entry, published again). Left unacked on a live channel, it would wait there
      // until the channel closed. After a pause, so a broker refusing confirms is not asked in a loop.
      log.warn({ err: (err as Error).message }, 'write not confirmed; requeued');
      setTimeout(() => settle(writeCh, msg, 'requeue'), REQUEUE_DELAY_MS).unref();
    }
  }
}

/** A batch slower than this is logged as a warning (with where its time went). */
const SLOW_BATCH_MS = 500;

/** How long a write whose sync entry the broker did not confirm waits before it is handed back to the queue. */
const REQUEUE_DELAY_MS = 1000;

function ms(x: number): number {
  return Math.round(x * 100) / 100;
}
