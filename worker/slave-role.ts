/**
 * The slave side of replication: snapshot, in-order apply of sync entries, reads.
 *
 * Start-up order is what makes a new slave miss nothing: its durable sync queue
 * is bound first (so entries buffer), then the master's data is copied page by
 * page through that queue, each page read by the master between two write
 * batches (the protocol and its invariant: snapshot.ts), entries between pages
 * applied to the part already copied; the slave takes reads once its lag behind
 * the master is small, and copies the master's request ledger once it serves
 * (a failover candidate only once that is done: request-ledger.ts).
 *
 * Entries are applied in runs: whatever the queue has delivered while the
 * previous run was being written is judged in seq order (sync-order.ts), its
 * data written coalesced (apply-plan.ts), its entries stored in one insert, and
 * only then is appliedSeq moved and the run acked. A crash in a run loses
 * nothing: the run was not acked, and this slave is replaced anyway.
 */
import type { Channel, ChannelModel, ConsumeMessage, Message } from 'amqplib';
import { MongoNetworkError, MongoServerSelectionError } from 'mongodb';
import { DbaasError } from '../common/errors.js';
import { decodeRead, decodeSyncMessage, encode, WIRE_VERSION, type ControlMessage, type SnapshotPage, type SyncEntry, type SyncOp, type WorkerStatus } from '../common/messages.js';
import { assertSyncQueue } from '../common/topology.js';
import { reply, reqIdOf, settle, type WorkerContext } from './context.js';
import { TABLE_NOT_FOUND_HINT } from '../common/hints.js';
import { sendBackup } from './backup.js';
import { checkpointAfter } from './checksum.js';
import { judgeRun, positionAfterSnapshot, type SyncPosition } from './sync-order.js';
import { Store } from './store.js';
import { refusedByStorage } from './void-batch.js';
import { readError } from './storage-errors.js';
import { docsOfRows, type StreamDocs, type StreamRows } from './pg-snapshot.js';
import { RowCopier } from './pg-copy.js';
import { coverageAfter, coveredOps, judgePage, judgePart, noteTouched, untouchedDocs, untouchedRows, type Coverage, type StreamCopy } from './snapshot.js';
import { PAGE_MAX_BYTES, PAGE_QUEUE_OPTIONS, PAGE_REQUEST_TTL_MS, pageQueue, preAskedId } from '../common/snapshot-request.js';
import type { MasterZnode } from '../coordination/schemas.js';

/**
 * Sync entries delivered ahead of the one being applied. Enough for long runs under
 * load; bounded because an entry can hold a thousand documents, and every
 * delivered entry sits in this process's memory until it is applied.
 */
const SYNC_PREFETCH = 128;
/** Bounds on one run: entries, and documents touched. */
const RUN_MAX_ENTRIES = 128;
const RUN_MAX_OPS = 4000;

/** A new slave is caught up (takes reads) once it is at most this many entries behind the master's published seq. */
export const CAUGHT_UP_LAG = 50;
/** A page is written in parts of this many documents. */
const PAGE_APPLY_DOCS = 5000;
/** A stream part not come this long after the one before (or its marker) is asked for again (the master may have changed). */
const PAGE_WAIT_MS = 60_000;
/**
 * A request not answered at all this long after it was sent is asked again: it can no longer be answered (it
 * expired in the page queue, PAGE_REQUEST_TTL_MS, or went with a master that took it or with the queue). It was
 * asked again only after PAGE_WAIT_MS (60 s), later than the orchestrator gives a start without progress up (30 s).
 */
const PAGE_ANSWER_WAIT_MS = PAGE_REQUEST_TTL_MS + 2000;
/** A start that makes no progress for this long gives up (the orchestrator starts another slave). */
const STALL_MS = 120_000;
/** How long a run's write is tried again while the slave's database is out of reach (writeRun); then the slave leaves. */
const APPLY_RETRY_MS = 20_000;

/** The driver lost the database for now (connection interrupted or refused, no server to select), not a refusal. */
function outOfReach(err: unknown): boolean {
  return err instanceof MongoNetworkError || err instanceof MongoServerSelectionError;
}
/** How often a slave copying its snapshot looks whether another master holds /master (watchMaster). */
const MASTER_CHECK_MS = 1000;

interface Delivered {
  ch: Channel;
  msg: Message;
  entry?: SyncEntry;
  page?: SnapshotPage;
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
  /** The snapshot copy (snapshot.ts): which keys are copied, the page asked for, where the slave stands. */
  private coverage: Coverage = { kind: 'all' };
  private pendingPage: { id: string; limit: number; at: number } | undefined;
  private firstPageSeq: number | undefined;
  private seenBeforeFirst = 0;
  private pageTimer: NodeJS.Timeout | undefined;
  /** The term of the master holding /master when the pending request was sent (watchMaster), if known. */
  private askedOfTerm: number | undefined;
  /** A look at ZooKeeper found no /master since the pending request was sent (watchMaster). */
  private masterGoneSinceAsk = false;
  /** The stream being copied (snapshot.ts "Stream"), and whether one ever began (entries are then applied in full until the copy ends). */
  private stream: StreamCopy | undefined;
  private streamed = false;
  private copied: { resolve: () => void; reject: (err: Error) => void } | undefined;
  private masterDbUrl: string | undefined;
  /** Whether the data was marked complete when the start read it (prepareStore), and whether it was then emptied for a copy. */
  private completeAtStart: boolean | undefined;
  private clearedForCopy = false;
  /** The master's ledger records up to this seq are copied (the first page's seq, or a resumed slave's newest); the stream brings the newer ones. */
  private ledgerUpTo: number | undefined;
  private ledgerCopied: Promise<void> | undefined;
  /**
   * Entries up to this seq may already be partly in the data (a run applied but not
   * recorded before a restart): applied without trusting the `fresh` hint (apply-plan.ts).
   */
  private inexactUpTo = 0;
  /** Documents copied so far (status: syncProgress). */
  documentsCopied = 0;
  /** Of those, rows written below FerretDB (takePart; the rest went through the MongoDB wire, or were there already). */
  private rowsCopied = 0;
  private rowCopier: RowCopier | undefined;
  /** Whether this slave's request ledger answers for the whole retry horizon (request-ledger.ts). */
  get promotable(): boolean {
    return this.ctx.store.ledger.coversHorizon();
  }
  /** Interrupts the checksum being taken at a checkpoint (a promotion must not wait for it). */
  private checksumAbort: AbortController | undefined;
  /** Set once a promotion drains the queue: checkpoints met from then on are not hashed. */
  private promoting = false;

  constructor(
    private readonly ctx: WorkerContext,
    /** Notes a step of this worker's start (worker/start-timeline.ts; the first mark of a name counts). */
    private readonly mark: (step: string) => void = () => undefined,
    /** The master znode now (undefined: none); throws when ZooKeeper does not answer. */
    private readonly master: () => Promise<MasterZnode | undefined> = () => Promise.resolve(undefined),
  ) {}

  get syncQueue(): string {
    return this.ctx.names.syncQueue(this.ctx.config.workerId);
  }

  /**
   * Whether this worker's sync queue existed before this process declared it (first
   * attach only): then it holds every entry above what this worker's data last
   * recorded, and a complete database may resume from there (see resume()).
   */
  private queueExisted: boolean | undefined;

  /** Binds the sync queue on a (new) connection and resumes consuming what the current state needs. */
  async attach(conn: ChannelModel): Promise<void> {
    this.queueExisted ??= await queueExists(conn, this.syncQueue);
    this.syncCh = await conn.createChannel();
    await this.syncCh.prefetch(SYNC_PREFETCH);
    await assertSyncQueue(conn, this.ctx.names, this.ctx.config.workerId, this.ctx.config, (queue, why) =>
      this.ctx.logger.warn({ queue, why }, 'sync queue kept with the arguments it was declared with (no expiry)'),
    );
    this.mark('sync-queue-bound');
    this.syncTag = undefined;
    this.readCh = undefined;
    this.readTag = undefined;
    if (this.snapshotDone) await this.consumeSync();
    if (this.readsWanted) await this.startReads(conn);
  }

  /**
   * What a start does with its own database alone, while the broker and ZooKeeper
   * connect (worker.ts): reads whether the data is complete (resume()), and if it is
   * not, so no resume can follow, makes it the clean slate a copy starts from.
   */
  async prepareStore(): Promise<void> {
    this.completeAtStart = await this.ctx.store.isComplete();
    this.mark('completeness-read');
    if (this.completeAtStart) return;
    // The stream's rows are written below FerretDB (copyRows): that connection is made meanwhile too.
    this.copier()?.warm();
    await this.clearForCopy();
    this.mark('cleared-for-copy');
  }

  private async clearForCopy(): Promise<void> {
    const { store } = this.ctx;
    await store.dropAllUnlessNew();
    // Until the master's ledger is copied, this ledger answers only for what the stream brings from now on.
    await store.ledger.setCoveredSince(Date.now());
    this.clearedForCopy = true;
  }

  /**
   * Copies the master's data through the sync queue (snapshot.ts); resolves once
   * every key is covered. The master's request ledger (at `masterDbUrl`) is
   * copied once this slave serves ({@link startLedgerCopy}).
   */
  async snapshot(masterDbUrl: Promise<string>): Promise<void> {
    const { logger } = this.ctx;
    const started = Date.now();
    // The orchestrator asked for the first page before this process ran (common/snapshot-request.ts), after
    // binding this queue: the answer is in the queue or on its way. Without the queue there, that ask failed
    // or came too late (its answer is then ignored): this slave asks, once a master is registered.
    const asked = this.ctx.config.snapshotAsked && this.queueExisted === true;
    // A slave resuming from its own data needs no master (only its ledger copy does, later): it resumes at once.
    // Waiting here held a slave restarted in place up to 30 s while no master was registered (a master being
    // replaced), and then failed its start.
    if (await this.resume()) {
      void masterDbUrl.then((url) => (this.masterDbUrl ??= url)).catch(() => undefined);
      return;
    }
    if (!asked) this.masterDbUrl = await masterDbUrl;
    if (!this.clearedForCopy) await this.clearForCopy();
    this.coverage = { kind: 'none' };
    this.pos = { appliedSeq: 0, jumpUpTo: 0, maxTerm: 0 };
    const done = new Promise<void>((resolve, reject) => {
      this.copied = { resolve, reject };
    });
    this.snapshotDone = true;
    // Expected before the queue is consumed: its answer may be there already.
    if (asked) {
      // Asked before this process was spawned: its TTL runs since then, so the wait for it is shorter by this process's age.
      this.expectPage(preAskedId(this.ctx.config.workerId), this.ctx.config.snapshotPageDocs, Math.round(process.uptime() * 1000));
      logger.info({ id: this.pendingPage?.id }, 'snapshot asked for by the orchestrator; waiting for its answer in the sync queue');
    }
    await this.consumeSync();
    if (!asked) await this.askPage();
    const stopWatching = this.watchMaster();
    try {
      await done;
    } finally {
      stopWatching();
      if (this.pageTimer) clearTimeout(this.pageTimer);
      this.pageTimer = undefined;
    }
    // For the ledger copy once this slave serves.
    this.masterDbUrl ??= await masterDbUrl;
    logger.info({ fromSeq: this.firstPageSeq, seq: this.pos.appliedSeq, documents: this.documentsCopied, rowsWritten: this.rowsCopied, ms: Date.now() - started }, 'snapshot copied from master');
  }

  /**
   * Resumes from this worker's own data instead of copying a snapshot, when that is
   * sound: the database is marked complete (a finished snapshot, or a master's data
   * after a demote, Store.markComplete) and the durable sync queue existed before
   * this start, so it holds every entry above the oplog's newest (the queue was
   * bound before the data got there, and only this worker consumes it; a queue
   * deleted meanwhile would be absent, not re-created). Time is proportional to what
   * was missed: those entries, applied in order. The newest run may have been
   * applied without being recorded, so entries up to one run past the newest are
   * applied without trusting the `fresh` hint.
   */
  private async resume(): Promise<boolean> {
    const { store, logger } = this.ctx;
    if (!this.queueExisted || !(this.completeAtStart ?? (await store.isComplete()))) return false;
    const last = await store.lastEntry();
    if (!last) return false;
    if (!(await store.ledger.open())) await store.ledger.setCoveredSince(Date.now());
    // A ledger that does not cover the horizon (its copy had not ended before the restart) is copied again, up to
    // what this data holds: the stream brings the newer records (startLedgerCopy).
    if (!store.ledger.coversHorizon()) this.ledgerUpTo = last.seq;
    void store.ledger.load().catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'requestId index not loaded; retries are looked up in the ledger'));
    this.pos = { appliedSeq: last.seq, jumpUpTo: last.seq, maxTerm: last.term };
    this.inexactUpTo = last.seq + RUN_MAX_ENTRIES;
    this.coverage = { kind: 'all' };
    this.snapshotDone = true;
    await this.consumeSync();
    logger.info({ seq: last.seq, term: last.term, promotable: this.promotable }, 'resumed from its own data and sync queue (no snapshot)');
    return true;
  }

  /**
   * While the copy goes on, asks again at once when another master holds /master (a failover), the
   * same worker in a new term (restarted from its data), or the same master again after a look found no
   * /master (it took it back after a session expiry, fenced meanwhile): the request being answered, or the stream
   * being sent, went with the old master (a request it had taken, or one waiting in the page queue,
   * which is deleted with its last consumer). The page timer would ask only after PAGE_WAIT_MS, and
   * before the first page nothing progresses, so the orchestrator gave the start up after
   * DBAAS_WORKER_START_TIMEOUT_MS (30 s) and started another slave from zero (session 8: a master
   * killed while a new slave copied). Every new master moves the term, so the term of the master asked
   * is what is compared: the orchestrator names it for the first page it asked for ahead
   * (DBAAS_WORKER_TERM); else the one read when the page was asked (askPage; the first master seen used to
   * be the baseline, so a failover within the first second went unseen: E9's swarm run). The ledger is
   * copied from the master of the end.
   */
  private watchMaster(): () => void {
    const { config } = this.ctx;
    if (config.snapshotAsked && config.term > 0) this.askedOfTerm ??= config.term;
    let looking = false;
    const timer = setInterval(() => {
      if (looking) return;
      looking = true;
      void this.master()
        .then(async (m) => {
          if (!m) {
            // The master asked lost /master (a session expiry, a failover under way): the request may be gone with it.
            this.masterGoneSinceAsk = true;
            return;
          }
          this.masterDbUrl = m.dbUrl;
          const moved = this.askedOfTerm !== undefined && m.term > this.askedOfTerm;
          // Taken back in the same term after a session expiry: fenced meanwhile, the master dropped the requests it
          // took and closed its page channel, and the page queue went with its last consumer (E9's paused master).
          const back = this.masterGoneSinceAsk;
          this.askedOfTerm ??= m.term;
          if ((!moved && !back) || this.copied === undefined) return;
          this.ctx.logger.info({ master: m.id, term: m.term, askedOfTerm: this.askedOfTerm }, moved ? 'another master while the snapshot was copied: asking it again' : 'the master took /master back while the snapshot was copied: asking it again');
          await this.askPage();
        })
        // ZooKeeper not answering: looked at again on the next tick.
        .catch(() => undefined)
        .finally(() => (looking = false));
    }, MASTER_CHECK_MS);
    timer.unref();
    return () => clearInterval(timer);
  }

  /**
   * Copies the master's ledger records up to the first page's seq, or a resumed slave's
   * newest seq (the records above come with the stream), once this slave serves: the copy makes
   * the slave promotable, not able to serve, so it does not compete with the data copy
   * and the catch-up for this worker's database (issue 16: 20,000 records held serving
   * up by half a second). `copied` is called once it is done. Idempotent.
   */
  startLedgerCopy(copied: () => void): void {
    if (this.ledgerCopied || this.ledgerUpTo === undefined) return;
    this.ledgerCopied = this.copyLedgerUntilDone().then(copied);
  }

  /** Copies the ledger, trying again after a failure (the master may be changing) until it is done or this worker stops. */
  private async copyLedgerUntilDone(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.copyLedger();
        return;
      } catch (err) {
        this.ctx.logger.warn({ attempt, err: (err as Error).message }, 'copying the request ledger failed; trying again');
        if (this.ctx.state === 'stopped' || this.ctx.state === 'promoting' || this.ctx.state === 'master') return;
        await new Promise((r) => setTimeout(r, Math.min(10_000, 500 * attempt)));
        // From the master there is now: the one read at the start may be gone (a failover, a restart on another port).
        this.masterDbUrl = (await this.master().catch(() => undefined))?.dbUrl ?? this.masterDbUrl;
      }
    }
  }

  /** Asks the master for the page after the covered keys (again, after a page that did not come or came out of place). */
  private async askPage(): Promise<void> {
    if (this.coverage.kind === 'all') return;
    const ch = this.syncCh;
    const limit = this.ctx.config.snapshotPageDocs;
    const id = `${this.ctx.config.workerId}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    // Read before it is sent: should the master change after, watchMaster sees a newer term and asks again. A
    // ZooKeeper that does not answer within a second holds no ask up (watchMaster then takes the first term it sees).
    const unanswered = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 1000).unref());
    const master = await Promise.race([this.master(), unanswered]).catch(() => undefined);
    this.askedOfTerm = master?.term;
    this.masterGoneSinceAsk = false;
    this.expectPage(id, limit);
    try {
      if (!ch) throw new Error('no sync channel');
      const after = this.coverage.kind === 'upTo' ? { after: this.coverage.key } : {};
      // On PostgreSQL a stream's parts come as FerretDB's rows, written below it (takePart).
      const raw = this.ctx.config.pgUrl === undefined ? {} : { raw: true as const };
      const req: ControlMessage = { v: WIRE_VERSION, type: 'snapshot-page', id, queue: this.syncQueue, ...after, limit, maxBytes: PAGE_MAX_BYTES, ...raw };
      const queue = pageQueue(this.ctx.config.namespace);
      await ch.assertQueue(queue, PAGE_QUEUE_OPTIONS);
      ch.sendToQueue(queue, encode(req));
      this.mark('page-asked');
    } catch (err) {
      // No master or no channel now: the timer asks again.
      this.ctx.logger.warn({ err: (err as Error).message }, 'could not ask the master for a snapshot page');
    }
  }

  /** From now on request `id` is the one answered (an answer to any other is ignored); asked again if it does not come. */
  private expectPage(id: string, limit: number, askedAgoMs = 0): void {
    this.pendingPage = { id, limit, at: Date.now() };
    this.stream = undefined;
    this.armPageTimer(Math.max(1000, PAGE_ANSWER_WAIT_MS - askedAgoMs));
  }

  /** Asks again if no answer (a page, a stream's marker or part) comes within `waitMs`. */
  private armPageTimer(waitMs: number): void {
    if (this.pageTimer) clearTimeout(this.pageTimer);
    this.pageTimer = setTimeout(() => {
      this.ctx.logger.warn({ waitedMs: waitMs }, 'snapshot page did not come; asking again');
      void this.askPage().catch((err: unknown) => this.copied?.reject(err as Error));
    }, waitMs);
    this.pageTimer.unref();
  }

  /** A page met in the queue, in order with the entries (snapshot.ts judgePage). */
  private async takePage(page: SnapshotPage): Promise<void> {
    if (page.stream && page.stream.part > 0) {
      await this.takePart(page);
      return;
    }
    if (this.streamed && !page.stream) {
      // A master without the stream path (after a failover) answers by key ranges, which need a slave holding only covered keys.
      this.ctx.fail('a page by key range came after a stream copy began; this slave is replaced by a fresh one');
    }
    const verdict = judgePage(
      { coverage: this.coverage, pendingId: this.pendingPage?.id, appliedSeq: this.firstPageSeq === undefined ? undefined : this.pos.appliedSeq, seenBeforeFirst: this.seenBeforeFirst },
      page,
    );
    if (verdict.kind === 'ignore') {
      this.ctx.logger.debug({ id: page.id, why: verdict.why }, 'snapshot page ignored');
      // An answer to an earlier request of this slave, asked again after PAGE_ANSWER_WAIT_MS: the master is slow, not
      // gone, and answers in order, so the pending one comes next; asking again at every wait would never end.
      if (page.id !== this.pendingPage?.id && page.id.startsWith(`${this.ctx.config.workerId}-`) && this.stream === undefined) this.armPageTimer(PAGE_WAIT_MS);
      return;
    }
    if (verdict.kind === 'ask-again') {
      this.ctx.logger.info({ id: page.id, why: verdict.why }, 'snapshot page out of place; asking for the same range again');
      await this.askPage();
      return;
    }
    if (this.firstPageSeq === undefined) {
      this.firstPageSeq = page.atSeq;
      this.ledgerUpTo = page.atSeq;
      this.pos = positionAfterSnapshot(page.atSeq, page.term);
    }
    // The master's indexes at the first page's seq (issue 17), before any document is copied.
    if (page.indexes) await this.ctx.store.tables.indexes.ensure(page.indexes);
    if (page.stream) {
      // The marker: from here every entry is applied in full, and the parts fill in what they did not touch.
      this.stream = { id: page.id, atSeq: page.atSeq, next: 1, touched: new Set() };
      this.streamed = true;
      this.armPageTimer(PAGE_WAIT_MS);
      this.mark('marker-met');
      this.ctx.logger.info({ id: page.id, atSeq: page.atSeq }, 'snapshot stream started');
      return;
    }
    // In parts, so the progress the orchestrator watches (syncProgress) moves during a large page.
    for (let i = 0; i < page.docs.length; i += PAGE_APPLY_DOCS) {
      const part = page.docs.slice(i, i + PAGE_APPLY_DOCS);
      await this.ctx.store.applyOps(part.map(({ table, doc }) => ({ t: 'put', table, doc, fresh: true })));
      this.documentsCopied += part.length;
    }
    this.coverage = coverageAfter(page);
    this.pendingPage = undefined;
    if (this.ctx.logger.isLevelEnabled('debug')) this.ctx.logger.debug({ id: page.id, atSeq: page.atSeq, after: page.after, end: page.end, documents: page.docs.length }, 'snapshot page applied');
    if (this.coverage.kind === 'all') {
      // From now on a restart may resume from this data (resume()).
      await this.copyDone();
    } else {
      await this.askPage();
    }
  }

  /** A part of the stream being copied (snapshot.ts judgePart, untouchedDocs). */
  private async takePart(page: SnapshotPage): Promise<void> {
    const stream = this.stream;
    const verdict = judgePart(stream, page);
    if (verdict.kind === 'ignore' || !stream) {
      this.ctx.logger.debug({ id: page.id, part: page.stream?.part, why: verdict.kind === 'ignore' ? verdict.why : 'no stream' }, 'snapshot part ignored');
      return;
    }
    if (verdict.kind === 'restart') {
      this.ctx.logger.warn({ id: page.id, why: verdict.why }, 'snapshot stream broken; asking for a new one');
      await this.askPage();
      return;
    }
    this.armPageTimer(PAGE_WAIT_MS);
    this.mark('part-met');
    const started = performance.now();
    const docs = untouchedDocs(stream, page.docs);
    if (page.rows) docs.push(...(await this.copyRows(untouchedRows(stream, page.rows))));
    this.mark('part-written');
    for (let i = 0; i < docs.length; i += PAGE_APPLY_DOCS) {
      const part = docs.slice(i, i + PAGE_APPLY_DOCS);
      // `fresh`: a bulk insert; a document already there (from an earlier stream) is replaced instead (Tables.writeTable).
      await this.ctx.store.applyOps(part.map(({ table, doc }) => ({ t: 'put', table, doc, fresh: true })));
      this.documentsCopied += part.length;
    }
    if (this.ctx.logger.isLevelEnabled('debug')) {
      this.ctx.logger.debug({ id: page.id, part: page.stream?.part, rows: page.rows?.length, docs: page.docs.length, ms: Math.round(performance.now() - started) }, 'snapshot part applied');
    }
    stream.next += 1;
    if (page.stream?.last) {
      this.stream = undefined;
      this.streamed = false;
      this.coverage = { kind: 'all' };
      this.pendingPage = undefined;
      await this.copyDone();
    }
  }

  /**
   * A part's rows written below FerretDB (pg-copy.ts RowCopier: ids already there
   * are skipped, which a row no entry touched may be only with the same value, see
   * snapshot.ts). If PostgreSQL fails, the rows come back as documents for the
   * MongoDB wire.
   */
  private async copyRows(rows: StreamRows): Promise<StreamDocs> {
    try {
      const copier = this.copier();
      if (copier) {
        this.rowsCopied += await copier.copy(rows);
        this.documentsCopied += rows.length;
        return [];
      }
    } catch (err) {
      this.ctx.logger.warn({ err: (err as Error).message, rows: rows.length }, 'writing snapshot rows into PostgreSQL failed; writing them through FerretDB');
    }
    return docsOfRows(rows);
  }

  /** Where a stream's rows are written below FerretDB (on PostgreSQL only). */
  private copier(): RowCopier | undefined {
    const { config, store } = this.ctx;
    if (config.pgUrl === undefined) return undefined;
    this.rowCopier ??= new RowCopier(config.pgUrl, config.dbName, (table) => store.tables.ensureTable(table));
    return this.rowCopier;
  }

  /** Every key is copied: a restart may resume from this data, and the caller of snapshot() goes on. */
  private async copyDone(): Promise<void> {
    if (this.pageTimer) clearTimeout(this.pageTimer);
    await this.rowCopier?.close();
    await this.ctx.store.markComplete(true);
    this.copied?.resolve();
    this.copied = undefined;
    this.wake();
  }

  /**
   * Copies the master's ledger records up to {@link ledgerUpTo} (the stream
   * brings the newer ones), then takes the master's coverage: from then on this
   * slave answers retries over the whole horizon and may be promoted. Runs once
   * the slave serves reads (startLedgerCopy).
   */
  async copyLedger(): Promise<void> {
    const { store, logger, config } = this.ctx;
    const upTo = this.ledgerUpTo;
    if (upTo === undefined) return;
    // A resumed slave may not know a master yet: copyLedgerUntilDone asks ZooKeeper again and retries.
    const dbUrl = this.masterDbUrl;
    if (dbUrl === undefined) throw new Error('no master known yet to copy the request ledger from');
    const started = Date.now();
    const source = await Store.connect(dbUrl, config.dbName, 10_000, config.requestIdTtlMs);
    let records = 0;
    try {
      const hasLedger = await source.ledger.open();
      let batch: Parameters<typeof store.ledger.copyIn>[0][number][] = [];
      for await (const doc of source.ledger.recordsUpTo(upTo)) {
        batch.push(doc);
        if (batch.length >= 5000) {
          await store.ledger.copyIn(batch);
          records += batch.length;
          batch = [];
        }
      }
      await store.ledger.copyIn(batch);
      records += batch.length;
      // A master without a ledger meta (none yet): then it covers from its own start, which this slave cannot tell: keep ours.
      if (hasLedger) await store.ledger.setCoveredSince(Math.min(store.ledger.coveredSince, source.ledger.coveredSince));
    } finally {
      await source.close();
    }
    logger.info({ records, upTo, coveredSince: store.ledger.coveredSince, promotable: this.promotable, ms: Date.now() - started }, 'request ledger copied from master');
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
    const decoded = decodeSyncMessage(msg.content);
    if (!decoded) {
      this.ctx.logger.error('poison message on the sync queue: dead-lettered');
      this.ctx.notePoison('sync');
      settle(ch, msg, 'dead-letter');
      return;
    }
    this.delivered.push(decoded.kind === 'entry' ? { ch, msg, entry: decoded.entry } : { ch, msg, page: decoded.page });
    if (!this.applying) {
      this.applying = true;
      this.applied = this.applyDelivered();
    }
  }

  /** Applies what has been delivered, run after run, until nothing is left. */
  private async applyDelivered(): Promise<void> {
    try {
      while (this.delivered.length > 0) {
        const head = this.delivered[0] as Delivered;
        if (head.page) {
          // A page is taken alone, at its place between the entries.
          this.delivered.shift();
          await this.takePage(head.page);
          ackRun([head]);
          continue;
        }
        let n = 0;
        let ops = 0;
        while (n < this.delivered.length && n < RUN_MAX_ENTRIES && (n === 0 || ops < RUN_MAX_OPS)) {
          const { entry } = this.delivered[n] as Delivered;
          if (!entry) break;
          ops += entry.ops.length;
          n += 1;
          // A run ends at a checkpoint, so the data is hashed exactly at its seq (worker/checksum.ts).
          if (entry.checkpoint) break;
        }
        await this.applyRun(this.delivered.splice(0, n));
      }
    } catch (err) {
      // The master applied this entry, so this replica differs (another storage, a full disk): a restart in
      // place must not replay the entry in a loop from its own data, but copy a snapshot (resume() refuses).
      if (refusedByStorage(err)) await this.ctx.store.markComplete(false).catch(() => undefined);
      this.ctx.fail(`cannot apply a sync entry: ${(err as Error).message}`);
    } finally {
      this.applying = false;
    }
  }

  private async applyRun(run: Delivered[]): Promise<void> {
    const entries = run.flatMap((d) => (d.entry ? [d.entry] : []));
    if (this.coverage.kind !== 'all' && this.firstPageSeq === undefined) {
      // Before the first page: nothing is copied yet, and these entries' records come with the ledger copy.
      for (const e of entries) this.seenBeforeFirst = Math.max(this.seenBeforeFirst, e.seq);
      ackRun(run);
      return;
    }
    const judged = judgeRun(this.pos, entries);
    if (judged.gap) {
      this.ctx.fail(`sync gap: expected seq ${judged.pos.appliedSeq + 1}, got ${judged.gap.seq}; a resync is needed`);
    }
    for (const entry of judged.stale) {
      this.ctx.logger.warn({ seq: entry.seq, term: entry.term, maxTerm: this.pos.maxTerm }, 'refused an entry from a deposed master');
    }
    if (judged.apply.length > 0) {
      // While the copy goes on, only the keys already copied are written (snapshot.ts); the ledger gets every record.
      // Once a stream began, every op is written (inexact: a document may not be copied yet) and its keys noted.
      const ops = judged.apply.flatMap((e) => (this.streamed ? e.ops : coveredOps(this.coverage, e.ops)));
      const restart = this.stream !== undefined && noteTouched(this.stream, ops);
      const exact = !this.streamed && judged.apply[0] !== undefined && judged.apply[0].seq > this.inexactUpTo;
      await this.writeRun(judged.apply, ops, exact);
      // Before appliedSeq moves: once it passes a checkpoint, that checkpoint's result is there (or never will be).
      await this.checkpoint(judged.apply);
      this.pos = judged.pos;
      this.wake();
      if (restart) {
        this.ctx.logger.info({ seq: this.pos.appliedSeq }, 'a clear during the snapshot stream: asking for a new one');
        await this.askPage();
      }
    }
    ackRun(run);
  }

  /**
   * Writes a run: data first, then the entries and records, so the oplog's newest seq never runs ahead of the data
   * (a resume starts there); on PostgreSQL a run of inserts and updates is written with its entries in one statement
   * (Store.recordAndWrite, session 7). A database out of reach for a moment (its connection interrupted: a 3 s pause
   * of a slave's database container made the slave exit, E9) is waited out for up to {@link APPLY_RETRY_MS}: the
   * run is written again whole, in order, and inexactly (no `fresh` insert), which gives the same data however much
   * of it the failed try wrote (every op sets a state), and entries and records are stored skipping those there.
   */
  private async writeRun(apply: readonly SyncEntry[], ops: readonly SyncOp[], exact: boolean): Promise<void> {
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      const first = attempt === 1;
      try {
        if (!(exact && first && (await this.ctx.store.recordAndWrite(apply, [], ops)))) {
          if (ops.length > 0) await this.ctx.store.applyOps(ops, exact && first);
          await this.ctx.store.recordEntries(apply);
        }
        if (!first) this.ctx.logger.info({ seq: apply.at(-1)?.seq, attempts: attempt, ms: Date.now() - started }, 'sync entries written after the database was back');
        return;
      } catch (err) {
        if (!outOfReach(err) || Date.now() - started >= APPLY_RETRY_MS) throw err;
        this.ctx.logger.warn({ seq: apply[0]?.seq, attempt, err: (err as Error).message }, 'writing sync entries failed: the database is out of reach; trying again');
        await new Promise((r) => setTimeout(r, Math.min(1000, 100 * 2 ** attempt)));
      }
    }
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
        ...(abort ? { signal: abort.signal } : {}),
        ...(this.ctx.state === 'syncing' ? { skipBecause: 'this slave was still catching up' } : {}),
        ...(this.promoting ? { skipBecause: 'this slave was being promoted' } : {}),
      });
      // A backup at this checkpoint, asked of this slave (issue 20): sent while nothing newer is applied.
      const last = applied.at(-1);
      if (last?.backup?.worker === this.ctx.config.workerId && this.syncCh) await sendBackup(this.ctx.store, last, this.syncCh, this.ctx.config.workerId, this.ctx.logger);
    } finally {
      this.checksumAbort = undefined;
    }
  }

  /** Highest seq applied to this worker's data. */
  get appliedSeq(): number {
    return this.pos.appliedSeq;
  }

  /**
   * Resolves once this slave is at most {@link CAUGHT_UP_LAG} entries behind the
   * master's newest seq as the master last published it, or its queue is empty
   * with nothing being applied. Under a steady stream of writes the queue is never
   * empty, so the lag is what tells "caught up". There is no deadline while the
   * slave progresses; it gives up after {@link STALL_MS} without progress.
   */
  async waitCaughtUp(_legacyTimeoutMs: number, masterSeq: () => Promise<number | undefined>): Promise<void> {
    let progress = this.progress;
    let progressAt = Date.now();
    for (;;) {
      const target = await masterSeq().catch(() => undefined);
      let caughtUp = target !== undefined && this.snapshotDone && this.coverage.kind === 'all' && target - this.pos.appliedSeq <= CAUGHT_UP_LAG;
      const ch = this.syncCh;
      if (!caughtUp && ch && !this.applying && this.coverage.kind === 'all') {
        const { messageCount } = await ch.checkQueue(this.syncQueue);
        caughtUp = messageCount === 0 && !this.applying && this.delivered.length === 0;
      }
      if (caughtUp) return;
      if (this.progress !== progress) {
        progress = this.progress;
        progressAt = Date.now();
      } else if (Date.now() - progressAt > STALL_MS) {
        throw new Error(`no progress for ${STALL_MS} ms while catching up (applied seq ${this.pos.appliedSeq})`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** What a slave adds to its status (its znode): whether it may be promoted, and while it syncs, its progress. */
  statusFields(): Pick<WorkerStatus, 'promotable' | 'syncProgress'> {
    return { promotable: this.promotable, ...(this.ctx.state === 'syncing' ? { syncProgress: this.progress } : {}) };
  }

  /** Grows while a start progresses: documents copied plus entries applied. */
  get progress(): number {
    return this.documentsCopied + this.pos.appliedSeq;
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
        // Nothing found: say whether the table is there at all (issue 17; one more round trip, only then).
        const empty = Array.isArray(result) ? result.length === 0 : result.count === 0;
        const hint = empty && !(await this.ctx.store.tables.exists(env.command.table)) ? TABLE_NOT_FOUND_HINT : undefined;
        reply(ch, msg, { ok: true, result }, hint);
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

/** Whether a queue exists, asked passively on a channel of its own (a miss closes the channel). */
async function queueExists(conn: ChannelModel, queue: string): Promise<boolean> {
  const ch = await conn.createChannel();
  ch.on('error', () => undefined);
  try {
    await ch.checkQueue(queue);
    return true;
  } catch {
    return false;
  } finally {
    await ch.close().catch(() => undefined);
  }
}
