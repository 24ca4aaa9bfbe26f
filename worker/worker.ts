/**
 * One worker: a single code base that is a slave or the master.
 *
 * Role machine (illegal transitions throw):
 *   starting → syncing → slave → promoting → master
 *   starting → master            (first master of a cluster, or a restart in place)
 *   slave → retiring → stopped   (scale-down)
 *   any → stopped
 *
 * The worker announces itself with an ephemeral znode `/<ns>/workers/<id>`
 * (registration.ts); the master also holds the ephemeral `/<ns>/master`.
 * Fencing, the master's half of "never two masters", is fencing.ts; the
 * control queue the orchestrator drives it through is control-server.ts;
 * promotion is {@link Worker.promote} here.
 *
 * The worker never ends the process itself: `fail()` and `stop()` hand the
 * exit code to the entry point (worker/main.ts), which alone exits.
 */
import type { ChannelModel } from 'amqplib';
import { AmqpConnection } from '../common/amqp-connection.js';
import type { ReadCommand } from '../common/commands.js';
import type { WorkerConfig } from '../common/config.js';
import { DbaasError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { ChecksumReply, WorkerState, WorkerStatus } from '../common/messages.js';
import { clusterNames, type ClusterNames } from '../common/names.js';
import { assertTopology } from '../common/topology.js';
import { ChecksumBook } from './checksum.js';
import type { WorkerContext } from './context.js';
import { ControlServer } from './control-server.js';
import { SelfFence } from './fencing.js';
import { MasterRole } from './master-role.js';
import { SlaveRole } from './slave-role.js';
import { Registration } from './registration.js';
import { Store } from './store.js';
import { StartTimeline } from './start-timeline.js';
import { untilListening } from '../common/probes.js';

const TRANSITIONS: Record<WorkerState, readonly WorkerState[]> = {
  starting: ['syncing', 'master', 'stopped'],
  syncing: ['slave', 'stopped'],
  slave: ['promoting', 'retiring', 'stopped'],
  promoting: ['master', 'stopped'],
  master: ['stopped'],
  retiring: ['stopped'],
  stopped: [],
};

/** Exit codes the runtime can tell apart. */
export const EXIT_FAILED = 1;

/** Ends the process with a code: given by the entry point (worker/main.ts), the only place that exits. */
export type ExitProcess = (code: number) => never;

export class Worker implements WorkerContext {
  readonly names: ClusterNames;
  private currentState: WorkerState = 'starting';
  private storeRef: Store | undefined;
  private readonly registration: Registration;
  private readonly fencing: SelfFence;
  private readonly control: ControlServer;
  private readonly amqp: AmqpConnection;
  private slave: SlaveRole | undefined;
  private master: MasterRole | undefined;
  private readonly startedAt = new Date().toISOString();
  private trimTimer: NodeJS.Timeout | undefined;
  readonly checksums = new ChecksumBook();
  /** Where this worker's start went (logged with `worker ready`). */
  private readonly timeline = new StartTimeline();

  constructor(
    readonly config: WorkerConfig,
    readonly logger: Logger,
    private readonly exit: ExitProcess,
  ) {
    this.names = clusterNames(config.namespace);
    this.registration = new Registration(config, logger, {
      status: () => this.status(),
      registered: () => this.registered(),
      expired: () => this.sessionExpired(),
      stopped: () => this.currentState === 'stopped',
    });
    const registration = this.registration;
    this.fencing = new SelfFence({
      config,
      logger,
      state: () => this.currentState,
      master: () => this.master,
      connection: () => this.amqp.connection,
      fail: (reason) => this.fail(reason),
      zk: registration,
    });
    this.control = new ControlServer(config, this.names, logger, {
      status: () => this.status(),
      promote: (term) => this.promote(term),
      demote: () => this.demote(),
      retire: () => this.retire(),
      read: (command) => this.read(command),
      checksumAt: (seq, waitMs) => this.checksumAt(seq, waitMs),
      tables: (table) => this.store.tables.describe(table),
      stop: (code) => this.stop(code),
      notePoison: (queue) => this.notePoison(queue),
      admitsEpoch: (epoch) => registration.admitsEpoch(epoch),
      get epoch() {
        return registration.epoch;
      },
    });
    this.amqp = new AmqpConnection({
      url: config.amqpUrl,
      name: `dbaas-worker-${config.workerId}`,
      logger,
      setup: (conn) => this.setup(conn),
    });
  }

  get state(): WorkerState {
    return this.currentState;
  }

  get store(): Store {
    if (!this.storeRef) throw new Error('store not connected');
    return this.storeRef;
  }

  setState(next: WorkerState): void {
    if (!TRANSITIONS[this.currentState].includes(next)) {
      throw new Error(`illegal worker transition ${this.currentState} → ${next}`);
    }
    this.logger.info({ from: this.currentState, to: next }, 'worker state');
    this.currentState = next;
    void this.registration.publish();
  }

  private poisonMessages = 0;

  notePoison(queue: string): void {
    this.poisonMessages += 1;
    this.logger.warn({ queue, total: this.poisonMessages }, 'poison message dead-lettered');
  }

  fail(reason: string): never {
    this.logger.fatal({ reason }, 'worker giving up; the orchestrator will replace it');
    return this.exit(EXIT_FAILED);
  }

  status(): WorkerStatus {
    return {
      id: this.config.workerId,
      role: this.master ? 'master' : 'slave',
      state: this.currentState,
      pid: process.pid,
      appliedSeq: this.master ? this.master.lastSeq : (this.slave?.appliedSeq ?? 0),
      term: this.master?.term ?? 0,
      startedAt: this.startedAt,
      dbUrl: this.config.advertisedMongoUrl,
      poisonMessages: this.poisonMessages,
      // A slave's status fields read its database, which a starting slave may not have connected yet.
      ...(this.storeRef ? this.slave?.statusFields() : {}),
    };
  }

  async start(): Promise<void> {
    const { config, timeline } = this;
    timeline.mark('modules-loaded');
    // A slave connects to its database, ZooKeeper and the broker (whose set-up binds its sync queue) at once: each
    // is a few round trips spent waiting on another process (issue 16: a new slave's start). A master recovers from
    // its database and claims /master before it takes anything from the broker.
    if (config.role !== 'master') this.slave = new SlaveRole(this, (step) => timeline.mark(step), () => this.registration.master());
    const database = this.connectStore().then(async () => {
      timeline.mark('database-connected');
      // Whether a slave can resume, and if not its database emptied for a copy, meanwhile too.
      await this.slave?.prepareStore();
    });
    this.registration.zk.once('session', () => timeline.mark('znode-created'));
    const zk = this.registration.start(15_000).then(() => timeline.mark('registered'));
    if (this.slave) {
      this.amqp.start();
      await allOrFirstError([database, zk, this.amqp.waitUntilReady(30_000).then(() => timeline.mark('broker-ready'))]);
      this.setState('syncing');
    } else {
      await allOrFirstError([database, zk]);
      this.store.tables.readByWriterOnly = true;
      this.master = new MasterRole(this, config.term);
      await this.master.recover();
      await this.registration.claimMaster(config.term);
      this.setState('master');
      await this.fencing.watchTerm(config.term);
      this.amqp.start();
      await this.amqp.waitUntilReady(30_000);
      timeline.mark('broker-ready');
    }

    if (this.slave) {
      const masterDbUrl = this.registration.masterDbUrl(30_000);
      // Awaited by snapshot() only when needed (a slave asking for its own first page, the ledger copy).
      masterDbUrl.then(() => timeline.mark('master-found')).catch(() => undefined);
      await this.slave.snapshot(masterDbUrl);
      timeline.mark('copied');
      await this.slave.waitCaughtUp(120_000, () => this.registration.masterSeq());
      timeline.mark('caught-up');
      this.setState('slave');
      await this.slave.startReads(this.connection());
      // Promotable once the master's request ledger is copied too: said at once, not at the next status tick.
      this.slave.startLedgerCopy(() => void this.registration.publish());
    }
    this.registration.startPublishing();
    this.fencing.start();
    this.trimTimer = setInterval(() => void this.trimOplog(), 60_000);
    timeline.mark('ready');
    this.logger.info({ state: this.currentState, ...timeline.fields() }, 'worker ready');
  }

  /** Connects to this worker's own database once it listens. */
  private async connectStore(): Promise<void> {
    const { config } = this;
    // The process runtime starts this process while its database starts (orchestrator/runtimes/process-runtime.ts):
    // the driver's first connect to a port not yet listening would wait out its server selection (2 s).
    await untilListening(config.mongoUrl, 30_000);
    this.timeline.mark('database-port-open');
    const store = await Store.connect(config.mongoUrl, config.dbName, 30_000, config.requestIdTtlMs, () => this.timeline.mark('database-answered'));
    store.pgUrl = config.pgUrl;
    store.log = this.logger;
    store.configureTrim({ maxEntries: config.oplogMaxEntries, maxAgeMs: config.oplogMaxAgeMs });
    this.storeRef = store;
  }

  private connection(): ChannelModel {
    const conn = this.amqp.connection;
    if (!conn) throw new DbaasError('DBAAS_BROKER_UNAVAILABLE');
    return conn;
  }

  /** Runs on every (re)connect to RabbitMQ. */
  private async setup(conn: ChannelModel): Promise<void> {
    this.timeline.mark('broker-connected');
    await assertTopology(conn, this.names, this.config, (queue, why) => this.logger.warn({ queue, why }, 'queue kept with the arguments it was declared with'));
    this.timeline.mark('topology-asserted');
    await this.control.attach(conn);
    this.timeline.mark('control-attached');
    if (this.slave) await this.slave.attach(conn);
    if (this.master && this.currentState === 'master') await this.master.attach(conn);
  }

  /** After each registration on a new session: a serving slave takes reads again; a master may take /master back (fencing.ts). */
  private async registered(): Promise<void> {
    if (this.slave && this.currentState === 'slave' && this.amqp.connection) await this.slave.startReads(this.amqp.connection);
    await this.fencing.registered();
  }

  /** The ZooKeeper session was lost: a master fences itself (fencing.ts); a slave stops serving until it is registered again. */
  private async sessionExpired(): Promise<void> {
    if (await this.fencing.sessionExpired()) return;
    await this.slave?.stopReads();
  }

  /** True while this master may still take writes (fencing.ts). */
  masterLeaseValid(): boolean {
    return this.fencing.leaseValid();
  }

  /** Control `demote`: stop consuming writes, and finish (store, apply, publish) the ones already taken. */
  private async demote(): Promise<void> {
    if (!this.master || this.currentState !== 'master') throw new DbaasError('DBAAS_WORKER_NOT_READY', `cannot demote a worker in state ${this.currentState}`);
    await this.master.fence();
    await this.master.idle();
    // So that this worker can rejoin as a slave from its own data (issue 15.6).
    const conn = this.amqp.connection;
    if (conn) await this.master.prepareRejoin(conn).catch((err: unknown) => this.logger.warn({ err: (err as Error).message }, 'could not prepare a rejoin; a fresh slave will take this place'));
  }

  /** Control `retire` (scale-down): stop taking reads; the control server stops the worker once it has answered. */
  private async retire(): Promise<void> {
    this.setState('retiring');
    await this.slave?.stopReads();
  }

  /** Control `read`: this one replica's answer (for checking replicas). */
  private read(command: ReadCommand): Promise<unknown> {
    return this.store.read(command, this.config.requestTimeoutMs);
  }

  /**
   * Promotion, the candidate's side (the orchestrator's side, which fences the
   * old master and moves the term first, is orchestrator/failover.ts).
   * Invariant: a promoted master takes its first write only after it has
   * (1) stopped taking reads, (2) drained its sync queue, so it holds every
   * entry the old master had confirmed and their requestIds, (3) continued
   * `seq` from there, (4) claimed `/<ns>/master` and (5) armed its term watch;
   * its sync queue is deleted and only then is writeQ consumed. Any failure
   * on the way leaves the worker (the orchestrator tries another candidate).
   * Idempotent for the same term.
   */
  private async promote(term: number): Promise<void> {
    if (this.currentState === 'master' && this.master?.term === term) return;
    const slave = this.slave;
    if (!slave || this.currentState !== 'slave') {
      throw new DbaasError('DBAAS_WORKER_NOT_READY', `cannot promote a worker in state ${this.currentState}`);
    }
    const started = Date.now();
    this.setState('promoting');
    try {
      await slave.stopReads();
      // No client reads this database from now on: a wide write may replace its documents a chunk at a time (tables.ts).
      this.store.tables.readByWriterOnly = true;
      await slave.drain();
      const master = new MasterRole(this, term);
      master.continueFrom(slave.appliedSeq);
      await this.registration.claimMaster(term);
      this.master = master;
      // Armed before the first write is taken: a promoted master is deposed like the first one.
      await this.fencing.watchTerm(term);
      await slave.dropSyncQueue();
      this.slave = undefined;
      this.setState('master');
      await master.attach(this.connection());
      this.logger.info({ term, seq: master.lastSeq, ms: Date.now() - started }, 'promoted to master');
    } catch (err) {
      this.fail(`promotion failed: ${(err as Error).message}`);
    }
  }

  /** The replica checksum at checkpoint `seq` (see checksum.ts); a slave's applied seq also counts as settled. */
  private checksumAt(seq: number, waitMs: number): Promise<ChecksumReply> {
    return this.checksums.await(seq, waitMs, () => this.slave?.appliedSeq ?? 0);
  }

  private async trimOplog(): Promise<void> {
    await this.storeRef?.trimOplog(this.config.oplogMaxEntries, this.config.oplogMaxAgeMs).catch((err: unknown) => {
      this.logger.warn({ err: (err as Error).message }, 'oplog trim failed');
    });
  }

  /** Graceful stop: stop taking work, finish what is in flight, leave. Idempotent. */
  async stop(code: number): Promise<never> {
    this.registration.stopPublishing();
    if (this.trimTimer) clearInterval(this.trimTimer);
    this.fencing.stop();
    await this.slave?.stopReads().catch(() => undefined);
    if (this.master) {
      await this.master.fence();
      await this.master.idle();
    }
    if (this.currentState !== 'stopped') this.currentState = 'stopped';
    await this.amqp.close();
    this.registration.close();
    await this.storeRef?.close();
    return this.exit(code);
  }
}

/** Waits for every step; rejects with the first failure once all have settled (none is left running unobserved). */
async function allOrFirstError(steps: ReadonlyArray<Promise<unknown>>): Promise<void> {
  const failed = (await Promise.allSettled(steps)).find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}
