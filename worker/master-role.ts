/**
 * The master side of replication. Every write gets a seq and an oplog entry,
 * in queue order; its data changes; the entry is published to every slave with
 * a publisher confirm; only then is the client answered and the message acked.
 *
 * Writes are handled in batches (see write-batch.ts for which writes may share
 * one): whatever has arrived while the previous batch was being stored forms
 * the next, so a lone write is a batch of one and pays no wait. Stage 1 is
 * strictly serial, one batch at a time:
 *   1. recognise retries (requestId in the request ledger, or earlier in the batch),
 *      and refuse those asked for before the retry horizon (request-ledger.ts);
 *   2. build each write's post-images against the batch view, give it its seq;
 *   3. store all the batch's entries and ledger records (Store.recordEntries);
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
 *
 * Between two batches, when the data is exactly at `lastSeq`, the serial stage
 * also reads the pages new slaves ask for (servePage; the protocol and its
 * invariant are in snapshot.ts).
 */
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import { commandFingerprint, type IndexDef } from '../common/commands.js';
import { DbaasError } from '../common/errors.js';
import { decodeControl, decodeWrite, encode, type ControlMessage, type SnapshotPage, type SyncEntry, type SyncOp, type WriteEnvelope, WIRE_VERSION } from '../common/messages.js';
import { requestTime } from '../common/request-time.js';
import { assertSyncQueue } from '../common/topology.js';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type pg from 'pg';
import { reply, reqIdOf, settle, type WorkerContext } from './context.js';
import { queryError } from './storage-errors.js';
import { MasterCheckpoints } from './checkpoint-window.js';
import { BuildAlone, buildWrite } from './entry-builder.js';
import { TableQuota } from './table-quota.js';
import { judgeRetry, type LedgerRecord } from './request-ledger.js';
import type { OplogBatchDoc } from './oplog.js';
import { firstIrreversible, PreImages, refusedByStorage, storageRefusal, undoOps } from './void-batch.js';
import { PAGE_QUEUE_OPTIONS, pageQueue } from '../common/snapshot-request.js';
import { docsOfRows, PgSnapshot, UnsupportedDocument, type StreamRows } from './pg-snapshot.js';
import { replayFrom, republishFrom } from './sync-order.js';
import { BatchView, DEFAULT_BATCH_LIMITS, planBatch, type BatchLimits } from './write-batch.js';

interface Taken {
  msg: ConsumeMessage;
  env: WriteEnvelope;
  writeCh: Channel;
  pubCh: ConfirmChannel;
  /**
   * Built in a batch of its own: taken again after its batch was voided (void-batch.ts), or
   * because it cannot be taken back (no undo ops) and its batch held other writes.
   */
  alone?: true;
}

/** How stage 1 settled one write. */
type Outcome =
  | { kind: 'entry'; entry: SyncEntry; confirmed?: Promise<void> }
  /** A retry of a write recorded in the ledger: answered with its first result once its entry is confirmed. */
  | { kind: 'retry'; record: LedgerRecord; confirmed?: Promise<void> }
  | { kind: 'error'; error: DbaasError }
  /** Refused by the master's own database: answered with the error once its void entry is confirmed. */
  | { kind: 'void'; entry: SyncEntry; error: DbaasError; confirmed?: Promise<void> }
  /** The same requestId as an earlier write of the batch: answered as that one is. */
  | { kind: 'same'; as: number };

/** Documents per part of a stream copy (one RabbitMQ message each). */
const STREAM_PART_DOCS = 5000;

/** A page request waiting for the gap between two batches. */
type PageRequest = Extract<ControlMessage, { type: 'snapshot-page' }>;

/** A requestId already taken by a different write. */
function reused(requestId: string): DbaasError {
  return new DbaasError('DBAAS_WRITE_REQUEST_ID_REUSED', `requestId ${JSON.stringify(requestId)} was used for a different write; nothing was applied`);
}

export class MasterRole {
  /** Last seq given out. */
  lastSeq = 0;
  /** Highest seq whose publish the broker confirmed. */
  private lastConfirmed = 0;
  /**
   * Entries published and not confirmed yet, by seq, in publish (seq) order: what
   * attach() and a retry publish again without reading the oplog (a range read
   * there took 0.5-3 s on FerretDB with a long oplog under load, the pauses of
   * docs/FAILOVER.md). Dropped once confirmed.
   */
  private readonly inFlight = new Map<number, SyncEntry>();
  private readonly inbox: Taken[] = [];
  private readonly pageRequests: PageRequest[] = [];
  /** The snapshot connection of a first page request on PostgreSQL, made as soon as it comes (PgSnapshot.connect). */
  private readonly snapshotClients = new Map<PageRequest, Promise<pg.Client>>();
  /** When each page request came (performance.now()), for the log line of its read: how long it waited for the write stage. */
  private readonly pageRequestedAt = new WeakMap<PageRequest, number>();
  private draining = false;
  private drained: Promise<void> = Promise.resolve();
  private pubCh: ConfirmChannel | undefined;
  /** The connection attach() last ran on, and the confirm channel already given up on (see publish). */
  private conn: ChannelModel | undefined;
  private abandonedCh: ConfirmChannel | undefined;
  private writeCh: Channel | undefined;
  private pageCh: Channel | undefined;
  /** A document PostgreSQL snapshots cannot carry was met: copies go through the MongoDB wire from then on. */
  private pgRefused = false;
  /** Stream copies being read (their transactions are open). */
  private readonly streams = new Set<PgSnapshot>();
  private fenced = false;
  private checkpointsRef: MasterCheckpoints | undefined;
  /** DBAAS_MAX_TABLES, counted as writes create tables (table-quota.ts). */
  private tableQuotaRef: TableQuota | undefined;

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
    await store.openLedger();
    const last = await store.lastEntry();
    if (last) await this.repairNewestBatch(await store.batchBetween(replayFrom(last) - 1, last._id));
    this.lastSeq = last?._id ?? 0;
    this.ctx.checksums.settle(this.lastSeq);
    // Whether the newest entries reached the broker before the crash is unknown: attach() publishes
    // them again (slaves skip what they have), so no slave waits for a redelivery to see them.
    this.lastConfirmed = last ? republishFrom(last) - 1 : 0;
    const started = Date.now();
    void store.ledger.load().then(
      () => this.ctx.logger.info({ requestIds: store.requests.size, ms: Date.now() - started }, 'requestId index loaded'),
      (err: unknown) => this.ctx.logger.warn({ err: (err as Error).message }, 'requestId index not loaded; retries are looked up in the ledger'),
    );
  }

  /** Crash repair of the newest batch (Store.repairBatch): replayed, or voided if it was being voided or is refused again. */
  private async repairNewestBatch(entries: OplogBatchDoc[]): Promise<void> {
    const how = await this.ctx.store.repairBatch(entries);
    const log = how === 'replayed' ? this.ctx.logger.info.bind(this.ctx.logger) : this.ctx.logger.warn.bind(this.ctx.logger);
    log({ first: entries[0]?.seq, last: entries.at(-1)?.seq, how }, how === 'replayed' ? 'newest batch replayed' : 'newest batch voided by crash repair; its writes are judged again when they come back');
  }

  /** Replica checksums at checkpoints, taken beside the writes (see checkpoint-window.ts). */
  private get checkpoints(): MasterCheckpoints {
    this.checkpointsRef ??= new MasterCheckpoints(this.ctx.store, this.ctx.checksums, this.ctx.logger);
    return this.checkpointsRef;
  }

  private get tableQuota(): TableQuota {
    this.tableQuotaRef ??= new TableQuota(this.ctx.config.maxTables, (database) => this.ctx.store.tables.tablesOf(database));
    return this.tableQuotaRef;
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
    const setupStarted = performance.now();
    await this.idle();
    const pubCh = await conn.createConfirmChannel();
    this.conn = conn;
    this.pubCh = pubCh;
    const t1 = performance.now();
    const unconfirmed = await this.unconfirmedEntries();
    const tRead = performance.now();
    await this.republishAll(pubCh, unconfirmed);
    const t2 = performance.now();
    const writeCh = await conn.createChannel();
    await writeCh.prefetch(this.ctx.config.writePrefetch);
    this.writeCh = writeCh;
    await writeCh.consume(this.ctx.names.writeQueue, (msg) => {
      if (msg) this.take(writeCh, pubCh, msg);
    });
    const t3 = performance.now();
    // Where a slow set-up waited (a reconnect is rare: one line each).
    this.ctx.logger.info({ idleMs: ms(t1 - setupStarted), republished: unconfirmed.length, readMs: ms(tRead - t1), confirmMs: ms(t2 - tRead), consumeMs: ms(t3 - t2) }, 'master set up on the connection');
    // New slaves' snapshot page requests (snapshot.ts), read between two batches.
    const pageCh = await conn.createChannel();
    this.pageCh = pageCh;
    const queue = pageQueue(this.ctx.config.namespace);
    await pageCh.assertQueue(queue, PAGE_QUEUE_OPTIONS);
    await pageCh.consume(
      queue,
      (msg) => {
        if (!msg) return;
        const req = decodeControl(msg.content);
        if (req?.type === 'snapshot-page') this.servePage(req);
        else this.ctx.logger.warn('a message on the snapshot page queue that is not a page request: dropped');
      },
      { noAck: true },
    );
  }

  /**
   * Publishes the unconfirmed entries again, all at once (in seq order, on the one
   * channel), and waits for their confirms. Throws DBAAS_BROKER_UNAVAILABLE when
   * no confirm has come for {@link REPUBLISH_STALL_MS}: the set-up then fails and
   * is retried on a fresh connection (common/amqp-connection.ts), instead of
   * waiting on a channel whose quorum-queue publishes may wait for seconds, or
   * for good, on a queue leader that died (docs/FAILOVER.md). Publishing an entry
   * twice is harmless: slaves skip what they have.
   */
  private async republishAll(ch: ConfirmChannel, docs: readonly SyncEntry[]): Promise<void> {
    if (docs.length === 0) return;
    let lastProgress = performance.now();
    const all = Promise.all(
      docs.map((entry) =>
        this.publish(ch, entry).then(() => {
          lastProgress = performance.now();
        }),
      ),
    );
    let watchdog: NodeJS.Timeout | undefined;
    const stalled = new Promise<never>((_resolve, reject) => {
      watchdog = setInterval(() => {
        if (performance.now() - lastProgress < REPUBLISH_STALL_MS) return;
        reject(new DbaasError('DBAAS_BROKER_UNAVAILABLE', `no confirm for ${REPUBLISH_STALL_MS} ms while publishing ${docs.length} unconfirmed sync entries again`));
      }, REPUBLISH_STALL_MS / 4);
    });
    try {
      await Promise.race([all, stalled]);
    } finally {
      clearInterval(watchdog);
      all.catch(() => undefined);
    }
  }

  /**
   * The entries after lastConfirmed up to lastSeq, in seq order: from memory when
   * this process published every one of them, else (after a restart: recover())
   * from the oplog.
   */
  private async unconfirmedEntries(): Promise<SyncEntry[]> {
    const want = this.lastSeq - this.lastConfirmed;
    if (want <= 0) return [];
    const held = [...this.inFlight.values()].filter((e) => e.seq > this.lastConfirmed && e.seq <= this.lastSeq).sort((a, b) => a.seq - b.seq);
    if (held.length === want) return held;
    return (await this.ctx.store.entriesBetween(this.lastConfirmed, this.lastSeq)).map(({ _id: _ignored, ...entry }) => entry);
  }

  /** Stops taking writes at once (fencing): used when this worker may no longer be the master. */
  async fence(): Promise<void> {
    this.fenced = true;
    await this.writeCh?.close().catch(() => undefined);
    this.writeCh = undefined;
    await this.pageCh?.close().catch(() => undefined);
    this.pageCh = undefined;
  }

  /**
   * After a demote (fenced, idle: the data is exactly lastSeq): binds this worker's
   * own durable sync queue, so every entry the next master publishes waits there,
   * and marks the data complete, so this worker can rejoin as a slave resuming from
   * its own data (SlaveRole.resume) instead of copying a snapshot.
   */
  async prepareRejoin(conn: ChannelModel): Promise<void> {
    await assertSyncQueue(conn, this.ctx.names, this.ctx.config.workerId, this.ctx.config, (queue, why) =>
      this.ctx.logger.warn({ queue, why }, 'sync queue kept with the arguments it was declared with'),
    );
    await this.ctx.store.markComplete(true);
    this.ctx.logger.info({ seq: this.lastSeq }, 'demoted: own sync queue bound, data marked complete for a rejoin as a slave');
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
    if (entry.seq > this.lastConfirmed) this.inFlight.set(entry.seq, entry);
    return new Promise((resolve, reject) => {
      try {
        ch.publish(this.ctx.names.syncExchange, '', encode(entry), { persistent: true, contentType: 'application/json' }, (err) => {
          if (err) {
            if (err.message === 'message nacked') this.abandon(ch);
            reject(new DbaasError('DBAAS_BROKER_UNAVAILABLE', 'the broker did not confirm the sync entry'));
            return;
          }
          this.lastConfirmed = Math.max(this.lastConfirmed, entry.seq);
          // Confirms come in publish order: everything up to lastConfirmed is there.
          for (const seq of this.inFlight.keys()) {
            if (seq > this.lastConfirmed) break;
            this.inFlight.delete(seq);
          }
          resolve();
        });
      } catch {
        // The channel is gone: attach() re-publishes on the next connection; this write stays unanswered.
        reject(new DbaasError('DBAAS_BROKER_UNAVAILABLE', 'the sync channel closed before the entry was published'));
      }
    });
  }

  /**
   * A nacked sync entry: the broker refused it on this channel. On a RabbitMQ
   * cluster a channel opened while a quorum queue was electing a new leader
   * keeps the dead leader and has every publish to that queue nacked until the
   * old node is back (RabbitMQ 3.10; a channel opened after the election is
   * fine). So the connection is closed once: the usual reconnect (to the next
   * broker of the list) runs attach() again, which re-publishes every
   * unconfirmed entry in seq order on a fresh channel, and the refused writes,
   * requeued, are answered from their stored entries.
   */
  private abandon(ch: ConfirmChannel): void {
    if (this.pubCh !== ch || this.abandonedCh === ch) return;
    this.abandonedCh = ch;
    this.ctx.logger.warn('the broker refused a sync entry (nack): reconnecting for a fresh channel');
    void this.conn?.close().catch(() => undefined);
  }

  /**
   * Makes sure a retried write's entry reached the broker: confirmed already (the
   * usual case), or published again from the oplog tail. An entry no longer in the
   * tail is older than every unconfirmed one (attach() re-publishes those).
   */
  private async republish(ch: ConfirmChannel, seq: number): Promise<void> {
    if (seq <= this.lastConfirmed) return;
    const held = this.inFlight.get(seq);
    if (held) return this.publish(ch, held);
    const [doc] = await this.ctx.store.entriesBetween(seq - 1, seq);
    if (!doc) return;
    const { _id: _ignored, ...entry } = doc;
    await this.publish(ch, entry);
  }

  /**
   * A new slave asks for the next page of its snapshot (snapshot.ts): read between
   * two batches, in the serial stage. Ignored when this worker takes no writes now
   * (fenced, no channel): the slave asks again.
   */
  servePage(req: PageRequest): void {
    if (this.fenced) return;
    this.pageRequestedAt.set(req, performance.now());
    if (this.streamable(req)) {
      const client = PgSnapshot.connect(this.ctx.config.pgUrl as string);
      client.catch(() => undefined); // startStream sees the failure
      this.snapshotClients.set(req, client);
    }
    this.pageRequests.push(req);
    if (!this.draining) {
      this.draining = true;
      this.drained = this.drain();
    }
  }

  /** Every secondary index at lastSeq, for a snapshot's first page (issue 17): read in the serial stage. */
  private async firstPageIndexes(): Promise<IndexDef[]> {
    const tables = this.ctx.store.tables;
    return tables.indexes.all(await tables.userTables());
  }

  private async readPage(req: PageRequest): Promise<void> {
    const ch = this.pubCh;
    const client = this.snapshotClients.get(req);
    this.snapshotClients.delete(req);
    if (!ch || !this.streamable(req)) void client?.then((c) => c.end()).catch(() => undefined);
    if (!ch) return;
    const started = performance.now();
    // On PostgreSQL a whole copy is one consistent read beside the writes (pg-snapshot.ts); only its start waits here.
    if (this.streamable(req) && (await this.startStream(req, ch, client ?? PgSnapshot.connect(this.ctx.config.pgUrl as string)))) return;
    const { docs, end } = await this.ctx.store.tables.page(req.after, req.limit, req.maxBytes);
    const page: SnapshotPage = {
      v: WIRE_VERSION,
      kind: 'page',
      id: req.id,
      term: this.term,
      atSeq: this.lastSeq,
      ...(req.after === undefined ? {} : { after: req.after }),
      ...(end === undefined ? {} : { end }),
      docs,
      ...(req.after === undefined ? { indexes: await this.firstPageIndexes() } : {}),
    };
    try {
      // On the channel the entries go on, after entry lastSeq and before the next: the page's place in the slave's queue.
      ch.sendToQueue(req.queue, encode(page), { persistent: true, contentType: 'application/json' });
    } catch {
      // The channel is gone: the slave asks again.
    }
    this.ctx.logger.info({ queue: req.queue, id: req.id, atSeq: page.atSeq, after: req.after, end, documents: docs.length, last: end === undefined, ms: ms(performance.now() - started) }, 'snapshot page served between two batches');
  }

  /** A first page request this master answers with a stream copy (on PostgreSQL, unless a document refused it). */
  private streamable(req: PageRequest): boolean {
    return req.after === undefined && this.ctx.config.pgUrl !== undefined && !this.pgRefused;
  }

  /**
   * The stream copy (snapshot.ts "Stream"): between two batches, opens a REPEATABLE READ
   * transaction on this worker's PostgreSQL database and publishes the marker (part 0)
   * at lastSeq; the parts are read and published from that transaction off the serial
   * stage. False when the transaction cannot be opened (the caller serves the page the
   * usual way).
   */
  private async startStream(req: PageRequest, ch: ConfirmChannel, client: Promise<pg.Client>): Promise<boolean> {
    const started = performance.now();
    let snap: PgSnapshot;
    let connectedMs: number | undefined;
    try {
      const connected = await client;
      connectedMs = ms(performance.now() - started);
      snap = await PgSnapshot.begin(connected, this.ctx.config.dbName);
    } catch (err) {
      this.ctx.logger.warn({ err: (err as Error).message }, 'could not open a PostgreSQL snapshot; this page is read the usual way');
      return false;
    }
    this.streams.add(snap);
    const atSeq = this.lastSeq;
    const base = { v: WIRE_VERSION, kind: 'page', id: req.id, term: this.term, atSeq } as const;
    const send = (page: SnapshotPage): boolean => {
      try {
        return ch.sendToQueue(req.queue, encode(page), { persistent: true, contentType: 'application/json' });
      } catch {
        throw new Error('the channel closed');
      }
    };
    try {
      send({ ...base, docs: [], stream: { part: 0 }, indexes: await this.firstPageIndexes() });
    } catch {
      this.streams.delete(snap);
      await snap.close();
      return true;
    }
    // queuedMs: the request's wait for the write stage (a batch under way); connectWaitMs: of the stage's pause, the wait for its PostgreSQL connection.
    const requested = this.pageRequestedAt.get(req);
    const queuedMs = requested === undefined ? undefined : ms(started - requested);
    this.ctx.logger.info({ queue: req.queue, id: req.id, atSeq, tables: snap.tables.length, queuedMs, connectWaitMs: connectedMs, ms: ms(performance.now() - started) }, 'snapshot stream opened between two batches');
    void this.streamParts(snap, req, ch, base, send);
    return true;
  }

  private async streamParts(snap: PgSnapshot, req: PageRequest, ch: ConfirmChannel, base: Omit<SnapshotPage, 'docs'>, send: (p: SnapshotPage) => boolean): Promise<void> {
    const started = performance.now();
    let part = 0;
    let documents = 0;
    // The longest the event loop was held while this stream was read (a held loop loses the ZooKeeper session).
    const stalls = monitorEventLoopDelay({ resolution: 20 });
    stalls.enable();
    try {
      // A slave that asked `raw` writes FerretDB's rows as they are (pg-layout.ts copyRows); others get documents.
      const body = (rows: StreamRows): Pick<SnapshotPage, 'docs' | 'rows'> => (req.raw ? { docs: [], rows } : { docs: docsOfRows(rows) });
      let previous: StreamRows | undefined;
      // One part behind, so the last one can say it is last.
      for await (const rows of snap.parts(Math.min(req.limit, STREAM_PART_DOCS), req.maxBytes)) {
        if (previous) await this.sendPart(ch, send, { ...base, ...body(previous), stream: { part: ++part } });
        previous = rows;
        documents += rows.length;
        if (this.fenced) throw new Error('this worker was fenced');
      }
      await this.sendPart(ch, send, { ...base, ...body(previous ?? []), stream: { part: ++part, last: true } });
      this.ctx.logger.info({ queue: req.queue, id: req.id, atSeq: base.atSeq, parts: part, documents, ms: ms(performance.now() - started), maxStallMs: ms(stalls.max / 1e6) }, 'snapshot stream read beside the writes');
    } catch (err) {
      const why = (err as Error).message;
      if (err instanceof UnsupportedDocument) this.pgRefused = true;
      this.ctx.logger.warn({ queue: req.queue, id: req.id, part, err: why }, 'snapshot stream broken; the slave asks again');
      try {
        send({ ...base, docs: [], stream: { part: part + 1, failed: why } });
      } catch {
        // The channel is gone: the slave's timer asks again.
      }
    } finally {
      stalls.disable();
      this.streams.delete(snap);
      await snap.close();
    }
  }

  /**
   * Ends every stream copy being read: its transaction holds locks that a DROP (a `clear`,
   * a dropped index) waits for, which would stall the write path for the rest of the copy.
   */
  private async closeStreams(why: string): Promise<void> {
    this.ctx.logger.info({ streams: this.streams.size, why }, 'closing the snapshot streams being read');
    await Promise.all([...this.streams].map((s) => s.close()));
  }

  /** Publishes a part, waiting for the channel to drain when its buffer is full. */
  private async sendPart(ch: ConfirmChannel, send: (p: SnapshotPage) => boolean, page: SnapshotPage): Promise<void> {
    if (!send(page)) await new Promise<void>((resolve) => ch.once('drain', () => resolve()));
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
      while ((this.inbox.length > 0 || this.pageRequests.length > 0) && !this.fenced) {
        // Between two batches the data is exactly at lastSeq: the moment a snapshot page is read at.
        for (const req of this.pageRequests.splice(0)) await this.readPage(req);
        if (this.inbox.length === 0) continue;
        if (!this.ctx.masterLeaseValid()) {
          // Between two checks of the fence timer: nothing more is stored or published (common/fencing.ts).
          await this.fence();
          this.ctx.fail('no recent answer from ZooKeeper; this master stops before another can be promoted');
        }
        const window = this.inbox.slice(0, this.limits.maxWrites);
        // A write taken back from a voided batch, or one that cannot be taken back, is built alone (void-batch.ts).
        const alone = window.findIndex((t) => t.alone);
        const size = alone === 0 ? 1 : planBatch((alone < 0 ? window : window.slice(0, alone)).map((t) => t.env.command), this.limits);
        const batch = this.inbox.splice(0, size);
        await this.stage1(batch);
      }
      // Fenced: what is left is never acked, so the broker hands it to the next master.
      if (this.fenced) {
        this.inbox.length = 0;
        this.pageRequests.length = 0;
        for (const client of this.snapshotClients.values()) void client.then((c) => c.end()).catch(() => undefined);
        this.snapshotClients.clear();
      }
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
    // What the build reads is kept, so the batch can be taken back if this database refuses it (void-batch.ts).
    const pre = new PreImages(source);
    const view = new BatchView(pre);
    // The documents the batch addresses by `_id`, read together up front (issue 17: updates).
    await view.prefetch(batch.map((t) => t.env.command));
    const tRead = performance.now();
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
      const verdict = judgeRetry(await store.lookupRequest(env.requestId), requestTime(env.requestId, env.at, env.askedAt), store.ledger.horizon());
      if (verdict.kind === 'retry') {
        // Records written before fingerprints existed have none: answered as retries.
        const same = verdict.record.fingerprint === undefined || verdict.record.fingerprint === fingerprint;
        outcomes.push(same ? { kind: 'retry', record: verdict.record } : { kind: 'error', error: reused(env.requestId) });
        continue;
      }
      if (verdict.kind === 'expired') {
        outcomes.push({ kind: 'error', error: expired(env.requestId, verdict.horizon) });
        continue;
      }
      try {
        // A wide delete that cannot be taken back stops its build, and the batch is taken again with it alone.
        const built = await buildWrite(view, env.command, batch.length === 1).catch((err: unknown) => (err instanceof BuildAlone ? undefined : Promise.reject(err)));
        if (built === undefined) {
          this.takeAgain(batch, i);
          return;
        }
        await this.tableQuota.admit(built.ops);
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
          ...(env.command.kind === 'verify' ? { checkpoint: true as const, ...(env.command.backup ? { backup: env.command.backup } : {}) } : {}),
        };
        entries.push(entry);
        outcomes.push({ kind: 'entry', entry });
      } catch (err) {
        // The database refusing the filter is a 400; the database out of reach a 503 to retry (storage-errors.ts).
        const error = err instanceof DbaasError ? err : queryError(err, 'filter');
        if (!error) throw err;
        outcomes.push({ kind: 'error', error });
      }
    }
    const t1 = performance.now();
    await this.checkpoints.beforeApply(entries, source);
    const first = entries[0]?.seq;
    if (entries.length > 1) for (const e of entries) e.first = first;
    // The entries are stored before the data changes: a crash in between is repaired by replaying them
    // (or, if this database refuses them, by voiding them with their undo ops).
    const undo = undoOps(entries, pre);
    // A write that cannot be taken back (a wide delete reads only `_id`s: entry-builder.ts) is built again
    // alone, before anything of this batch is stored: a batch is voided whole when its data is refused.
    const lone = batch.length > 1 ? firstIrreversible(outcomes, entries, undo) : -1;
    if (lone >= 0) {
      this.takeAgain(batch, lone);
      return;
    }
    const ops = entries.flatMap((e) => e.ops);
    // A batch of inserts or updates on PostgreSQL: stored and applied in one statement, one commit instead of two (issue 17; inserts: session 7).
    // With the highest confirmed seq (`acked`): a restarted master publishes every entry above it again (sync-order.ts republishFrom).
    const acked = this.lastConfirmed;
    const together = await store.recordAndWrite(entries, undo, ops, acked);
    if (!together) await store.recordEntries(entries, undo, acked);
    if (entries.length > 0) this.lastSeq = seq;
    const t2 = performance.now();

    // A table dropped (clear, dropIndex) would wait for an open stream's transaction: the streams go first (the slaves ask again).
    if (this.streams.size > 0 && ops.some((op) => op.t !== 'put' && op.t !== 'del')) await this.closeStreams('a table is being dropped or changed');
    try {
      if (!together) await store.applyOps(ops);
    } catch (err) {
      if (!refusedByStorage(err)) throw err;
      await this.voidBatch(batch, outcomes, entries, undo, err, acked);
      return;
    }
    // A checkpoint is alone in its batch: the data is exactly its seq now; its checksum runs beside the next batches.
    await this.checkpoints.afterApply(entries);
    const t3 = performance.now();

    // Published only once this database has taken the data: an entry it refuses never reaches a slave
    // (void-batch.ts). No write is answered before its confirm. Retries first: their entries are older
    // than this batch's. A retry's entry is published again only if its first publish was never
    // confirmed (a crash in between); slaves skip what they already applied.
    for (const [i, o] of outcomes.entries()) {
      if (o.kind !== 'retry') continue;
      o.confirmed = this.republish((batch[i] as Taken).pubCh, o.record.seq);
      o.confirmed.catch(() => undefined);
    }
    outcomes.forEach((o, i) => {
      if (o.kind !== 'entry') return;
      o.confirmed = this.publish((batch[i] as Taken).pubCh, o.entry);
      // Answered (or left unanswered) in answer(); a failed confirm must not go unhandled meanwhile.
      o.confirmed.catch(() => undefined);
    });

    const log = this.ctx.logger;
    const timing = { writes: batch.length, entries: entries.length, readMs: ms(tRead - t0), buildMs: ms(t1 - tRead), storeMs: ms(t2 - t1), applyMs: ms(t3 - t2), publishMs: ms(performance.now() - t3) };
    // Every write waits for the batch before it: a slow one is worth a line at any level.
    if (t3 - t0 > SLOW_BATCH_MS) log.warn(timing, 'slow write batch');
    else if (log.isLevelEnabled('debug')) log.debug(timing, 'write batch stored');
    batch.forEach((taken, i) => void this.answer(taken, outcomes, i, t3));
  }

  /** Puts a batch, of which nothing was stored, back at the head of the queue, with its write `i` to be built alone. */
  private takeAgain(batch: Taken[], i: number): void {
    this.inbox.unshift(...batch.map((t, j) => (j === i ? { ...t, alone: true as const } : t)));
  }

  /**
   * This database refused the batch's data (void-batch.ts). Nothing of the batch is
   * published or answered yet: its entries become void entries at their seqs, its
   * documents are put back, and the void entries are published (slaves keep their
   * seqs consecutive). A write alone in its batch is answered with the refusal; the
   * writes of a larger batch are taken again, each alone, ahead of the queue.
   */
  private async voidBatch(batch: Taken[], outcomes: Outcome[], entries: SyncEntry[], undo: Array<SyncOp[] | undefined>, err: Error, acked: number): Promise<void> {
    const voids = await this.ctx.store.voidBatch(entries.map((e, i) => ({ ...e, _id: e.seq, acked, ...(undo[i] ? { undo: undo[i] } : {}) })));
    await this.checkpoints.afterApply(voids);
    const error = storageRefusal(err);
    const pubCh = (batch[0] as Taken).pubCh;
    const confirmed = voids.map((v) => {
      const c = this.publish(pubCh, v);
      c.catch(() => undefined);
      return c;
    });
    const single = batch.length === 1 && outcomes[0]?.kind === 'entry';
    this.ctx.logger.warn({ first: entries[0]?.seq, last: entries.at(-1)?.seq, writes: batch.length, err: error.message }, single ? 'this database refused the write: its seq is a void entry' : 'this database refused a write of the batch: the batch is void, its writes are taken again one by one');
    if (single) {
      const entry = voids[0] as SyncEntry;
      const o: Outcome = { kind: 'void', entry, error, ...(confirmed[0] ? { confirmed: confirmed[0] } : {}) };
      void this.answer(batch[0] as Taken, [o], 0, performance.now());
      return;
    }
    this.inbox.unshift(...batch.map((t) => ({ ...t, alone: true as const })));
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
      if (o.kind === 'void') {
        reply(writeCh, msg, { ok: false, error: o.error.toWire() });
        settle(writeCh, msg, 'ack');
        return;
      }
      const { requestId, seq, result } = o.kind === 'entry' ? o.entry : o.record;
      reply(writeCh, msg, { ok: true, result });
      settle(writeCh, msg, 'ack');
      if (log.isLevelEnabled('debug')) {
        log.debug({ reqId: reqIdOf(msg), requestId, seq, duplicate: o.kind === 'retry' || outcomes[i]?.kind === 'same', confirmMs: ms(performance.now() - storedAt) }, 'write applied');
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

/**
 * How long attach() waits for the next confirm of the entries it publishes again
 * before it gives the connection up (and the set-up is retried on a fresh one).
 */
const REPUBLISH_STALL_MS = 500;

/** How long a write whose sync entry the broker did not confirm waits before it is handed back to the queue. */
const REQUEUE_DELAY_MS = 1000;

/** A retry asked for before the oldest time the ledger answers for. */
function expired(requestId: string, horizon: number): DbaasError {
  return new DbaasError(
    'DBAAS_WRITE_REQUEST_ID_EXPIRED',
    `requestId ${JSON.stringify(requestId)} was first asked for before ${new Date(horizon).toISOString()}, the retry horizon (DBAAS_REQUEST_ID_TTL_MS); whether it was applied can no longer be told, so it was not applied again`,
  );
}

function ms(x: number): number {
  return Math.round(x * 100) / 100;
}
