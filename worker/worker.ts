/**
 * One worker: a single code base that is a slave or the master.
 *
 * Role machine (illegal transitions throw):
 *   starting → syncing → slave → promoting → master
 *   starting → master            (first master of a cluster, or a restart in place)
 *   slave → retiring → stopped   (scale-down)
 *   any → stopped
 *
 * The worker announces itself with an ephemeral znode `/<ns>/workers/<id>`; the
 * master also holds the ephemeral `/<ns>/master`. A master whose ZooKeeper
 * session expires stops taking writes at once and exits: the orchestrator has
 * already promoted someone else.
 */
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import { AmqpConnection } from '../common/amqp-connection.js';
import type { WorkerConfig } from '../common/config.js';
import { DbaasError, asDbaasError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { decodeControl, type ChecksumReply, type ControlMessage, type WorkerState, type WorkerStatus } from '../common/messages.js';
import { clusterNames, type ClusterNames } from '../common/names.js';
import { FENCE_CHECK_MS, selfFenceMs } from '../common/fencing.js';
import { assertTopology } from '../common/topology.js';
import { zkPaths, type ZkPaths } from '../coordination/paths.js';
import { claimMaster, EpochWatch, masterSeq, publishWorker, registerWorker, waitForMasterDbUrl } from '../coordination/registration.js';
import { readTerm, watchTerm } from '../coordination/term.js';
import { ZkSession } from '../coordination/zk-session.js';
import { ChecksumBook } from './checksum.js';
import { reply, reqIdOf, settle, type WorkerContext } from './context.js';
import { MasterRole } from './master-role.js';
import { SlaveRole } from './slave-role.js';
import { Store } from './store.js';

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

/**
 * Unacknowledged control messages in flight at once. Handlers run concurrently
 * (a checksum may wait a minute for its checkpoint), so this is not 1: a promote
 * must not queue behind a slow checksum.
 */
const CONTROL_PREFETCH = 16;

export class Worker implements WorkerContext {
  readonly names: ClusterNames;
  private readonly paths: ZkPaths;
  private currentState: WorkerState = 'starting';
  private storeRef: Store | undefined;
  private readonly zk: ZkSession;
  private readonly amqp: AmqpConnection;
  private slave: SlaveRole | undefined;
  private master: MasterRole | undefined;
  private readonly startedAt = new Date().toISOString();
  private statusTimer: NodeJS.Timeout | undefined;
  private trimTimer: NodeJS.Timeout | undefined;
  private fenceTimer: NodeJS.Timeout | undefined;
  private lastPublished = '';
  readonly checksums = new ChecksumBook();

  constructor(
    readonly config: WorkerConfig,
    readonly logger: Logger,
  ) {
    this.names = clusterNames(config.namespace);
    this.paths = zkPaths(config.namespace);
    this.zk = new ZkSession({ connect: config.zkConnect, sessionTimeoutMs: config.zkSessionTimeoutMs, stuckAfterMs: config.zkOutageToleranceMs, logger });
    this.epochWatch = new EpochWatch(this.zk, this.paths, () => this.currentState === 'stopped');
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
    void this.publishStatus();
  }

  private poisonMessages = 0;

  notePoison(queue: string): void {
    this.poisonMessages += 1;
    this.logger.warn({ queue, total: this.poisonMessages }, 'poison message dead-lettered');
  }

  fail(reason: string): never {
    this.logger.fatal({ reason }, 'worker giving up; the orchestrator will replace it');
    process.exit(EXIT_FAILED);
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
      ...this.slave?.statusFields(),
    };
  }

  async start(): Promise<void> {
    const { config } = this;
    this.storeRef = await Store.connect(config.mongoUrl, config.dbName, 30_000, config.requestIdTtlMs);
    this.storeRef.configureTrim({ maxEntries: config.oplogMaxEntries, maxAgeMs: config.oplogMaxAgeMs });
    this.zk.onSession(() => this.register());
    this.zk.on('expired', () => void this.onExpired());
    // After a reconnection, write the status again: an update may have been lost with the connection.
    this.zk.on('reconnected', () => {
      this.lastPublished = '';
      void this.publishStatus();
    });
    this.zk.start();
    await this.zk.waitUntilConnected(15_000);
    await this.epochWatch.start();

    if (config.role === 'master') {
      this.master = new MasterRole(this, config.term);
      await this.master.recover();
      await this.claimMaster(config.term);
      this.setState('master');
      await this.watchTerm(config.term);
    } else {
      this.slave = new SlaveRole(this);
      this.setState('syncing');
    }
    this.amqp.start();
    await this.amqp.waitUntilReady(30_000);

    if (this.slave) {
      const masterDbUrl = await this.findMasterDbUrl(30_000);
      await this.slave.snapshot(masterDbUrl);
      await this.slave.waitCaughtUp(120_000, () => this.masterSeq());
      this.setState('slave');
      await this.slave.startReads(this.connection());
    }
    this.statusTimer = setInterval(() => void this.publishStatus(), 500);
    this.fenceTimer = setInterval(() => this.checkZkContact(), FENCE_CHECK_MS);
    this.trimTimer = setInterval(() => void this.trimOplog(), 60_000);
    this.logger.info({ state: this.currentState }, 'worker ready');
  }

  private connection(): ChannelModel {
    const conn = this.amqp.connection;
    if (!conn) throw new DbaasError('DBAAS_BROKER_UNAVAILABLE');
    return conn;
  }

  /** Runs on every (re)connect to RabbitMQ. */
  private async setup(conn: ChannelModel): Promise<void> {
    await assertTopology(conn, this.names, this.config, (queue, why) => this.logger.warn({ queue, why }, 'queue kept with the arguments it was declared with'));
    const ctl = await conn.createChannel();
    const ctlQueue = this.names.controlQueue(this.config.workerId);
    await ctl.assertQueue(ctlQueue, {
      exclusive: true,
      autoDelete: true,
      arguments: { 'x-dead-letter-exchange': this.names.deadLetterExchange },
    });
    // Bounded like every consuming channel: a burst of control messages (checksums, reads of one replica) waits in the queue, not in memory.
    await ctl.prefetch(CONTROL_PREFETCH);
    await ctl.consume(ctlQueue, (msg) => {
      if (msg) void this.handleControl(ctl, msg);
    });
    if (this.slave) await this.slave.attach(conn);
    if (this.master && this.currentState === 'master') await this.master.attach(conn);
  }

  private async register(): Promise<void> {
    const data = await registerWorker(this.zk, this.paths, this.status());
    this.lastPublished = data.toString();
    if (this.slave && this.currentState === 'slave' && this.amqp.connection) await this.slave.startReads(this.amqp.connection);
    if (this.reclaimPending) await this.reclaimMaster();
  }

  /** Set when a master's session expired within the outage tolerance: the next session takes /master back, if it may. */
  private reclaimPending = false;

  private async onExpired(): Promise<void> {
    if (this.master) {
      // Stop taking writes at once: /master went with the session.
      await this.master.fence();
      const limit = selfFenceMs(this.config.zkSessionTimeoutMs, this.config.zkOutageToleranceMs);
      if (this.currentState !== 'master' || this.zk.contactAgeMs() > limit) {
        this.fail('ZooKeeper session lost while master, past the outage tolerance; another worker may have been promoted');
      }
      // A session that expired at the end of a ZooKeeper outage (the server forgot it, or took too
      // long to come back): the next session takes /master back if nobody moved the term (reclaimMaster).
      this.reclaimPending = true;
      return;
    }
    // A slave stops serving until it is registered again (the `session` callback resumes it).
    await this.slave?.stopReads();
  }

  /**
   * After a session expiry, the master takes /master back and writes again, but
   * only if the term is still its own: a failover moves the term (by CAS) before
   * it promotes anyone, and the orchestrator kills a master it replaces. The term
   * watch, lost with the old session, is armed again first.
   */
  private async reclaimMaster(): Promise<void> {
    const master = this.master;
    if (!master) return;
    try {
      const term = await readTerm(this.zk, this.paths);
      if (term !== master.term) this.fail(`the term moved to ${term} while this master (term ${master.term}) had lost its session`);
      await this.watchTerm(master.term);
      await this.claimMaster(master.term);
    } catch (err) {
      this.fail(`could not take /master back after a session expiry: ${(err as Error).message}`);
    }
    this.reclaimPending = false;
    master.resume();
    // Without a broker connection now, the next connection's set-up attaches the master.
    if (this.amqp.connection) await master.attach(this.amqp.connection);
    this.logger.warn({ term: master.term }, 'ZooKeeper session expired and was renewed; took /master back and writes again');
  }

  private publishing = false;

  /** Writes the status to the worker's znode when it changed; only a write that succeeded counts as published. */
  private async publishStatus(): Promise<void> {
    if (!this.zk.connected || this.publishing) return;
    const status = this.status();
    const data = JSON.stringify(status);
    if (data === this.lastPublished) return;
    this.publishing = true;
    try {
      await publishWorker(this.zk, this.paths, status);
      this.lastPublished = data;
    } catch {
      // retried by the next tick
    } finally {
      this.publishing = false;
    }
  }

  /** The master's newest seq as it last published it in its worker znode (at most half a second old). */
  private async masterSeq(): Promise<number | undefined> {
    return masterSeq(this.zk, this.paths);
  }

  private async findMasterDbUrl(timeoutMs: number): Promise<string> {
    return waitForMasterDbUrl(this.zk, this.paths, timeoutMs);
  }

  /** Creates the ephemeral master znode, waiting out a previous master's session. */
  private async claimMaster(term: number): Promise<void> {
    const me = { id: this.config.workerId, term, dbUrl: this.config.advertisedMongoUrl };
    await claimMaster(this.zk, this.paths, me, this.config.zkSessionTimeoutMs * 3 + 2000);
  }

  /**
   * A master keeps a watch on the term: once it has moved past `myTerm`, someone
   * else is (or is about to be) master, so this one fences itself and leaves.
   * Every master arms it, the first one and every promoted one, once it holds
   * the master znode. A check that fails (ZooKeeper unreachable) is retried
   * every second: a watch that is never re-armed would leave a master that can
   * no longer be deposed (the contact deadline in checkZkContact covers the gap).
   */
  private async watchTerm(myTerm: number): Promise<void> {
    await watchTerm(this.zk, this.paths, myTerm, {
      moved: async (term) => {
        await this.master?.fence();
        this.fail(`the term moved to ${term} while this master holds term ${myTerm}`);
      },
      stopped: () => this.currentState === 'stopped',
    });
  }

  /**
   * A master that has not heard from ZooKeeper for selfFenceMs stops taking
   * writes and leaves, before the orchestrator could promote another worker
   * (common/fencing.ts has the timing and why it is safe).
   */
  private checkZkContact(): void {
    if (!this.master || (this.currentState !== 'master' && this.currentState !== 'promoting')) return;
    const age = this.zk.contactAgeMs();
    const limit = selfFenceMs(this.config.zkSessionTimeoutMs, this.config.zkOutageToleranceMs);
    if (age <= limit) return;
    void this.master.fence().finally(() => this.fail(`no answer from ZooKeeper for ${age} ms (limit ${limit} ms); another master may be promoted`));
  }

  /** True while this master may still take writes (see checkZkContact). */
  masterLeaseValid(): boolean {
    return this.zk.contactAgeMs() <= selfFenceMs(this.config.zkSessionTimeoutMs, this.config.zkOutageToleranceMs);
  }

  private async handleControl(ch: Channel, msg: ConsumeMessage): Promise<void> {
    const control = decodeControl(msg.content);
    if (!control) {
      this.notePoison('control');
      settle(ch, msg, 'dead-letter');
      return;
    }
    try {
      const result = await this.control(control);
      reply(ch, msg, { ok: true, result });
      if (control.type === 'read' && this.logger.isLevelEnabled('debug')) this.logger.debug({ reqId: reqIdOf(msg), table: control.command.table }, 'read answered');
    } catch (err) {
      reply(ch, msg, { ok: false, error: asDbaasError(err).toWire() });
    }
    settle(ch, msg, 'ack');
    if (control.type === 'retire') {
      // Closing the channel first flushes the reply: a connection close may overtake frames still queued on a channel.
      await ch.close().catch(() => undefined);
      await this.stop(0);
    }
  }

  /**
   * The newest leader epoch (coordination/leader-election.ts), kept current by a
   * watch: a promote or retire sent by a former leader (paused, cut off) carries
   * an older one and is refused.
   */
  private readonly epochWatch: EpochWatch;

  private async checkEpoch(control: { type: string; epoch?: number }): Promise<void> {
    if (control.epoch === undefined) return;
    if (!(await this.epochWatch.admits(control.epoch))) {
      throw new DbaasError('DBAAS_CONTROL_STALE_EPOCH', `${control.type} from leader epoch ${control.epoch} refused: epoch ${this.epochWatch.current} leads now`);
    }
  }

  private async control(control: ControlMessage): Promise<unknown> {
    if (control.type === 'promote' || control.type === 'retire' || control.type === 'demote') await this.checkEpoch(control);
    if (control.type === 'demote') {
      if (!this.master || this.currentState !== 'master') throw new DbaasError('DBAAS_WORKER_NOT_READY', `cannot demote a worker in state ${this.currentState}`);
      // Stop consuming writes, and finish (store, apply, publish) the ones already taken.
      await this.master.fence();
      await this.master.idle();
      return this.status();
    }
    if (control.type === 'read') return this.store.read(control.command, this.config.requestTimeoutMs);
    if (control.type === 'checksum') return this.checksumAt(control.seq, control.waitMs);
    if (control.type === 'promote') await this.promote(control.term);
    if (control.type === 'retire') {
      this.setState('retiring');
      await this.slave?.stopReads();
    }
    return this.status();
  }

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
      await slave.drain();
      const master = new MasterRole(this, term);
      master.continueFrom(slave.appliedSeq);
      await this.claimMaster(term);
      this.master = master;
      // Armed before the first write is taken: a promoted master is deposed like the first one.
      await this.watchTerm(term);
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
    if (this.statusTimer) clearInterval(this.statusTimer);
    if (this.trimTimer) clearInterval(this.trimTimer);
    if (this.fenceTimer) clearInterval(this.fenceTimer);
    await this.slave?.stopReads().catch(() => undefined);
    if (this.master) {
      await this.master.fence();
      await this.master.idle();
    }
    if (this.currentState !== 'stopped') this.currentState = 'stopped';
    await this.amqp.close();
    this.zk.close();
    await this.storeRef?.close();
    process.exit(code);
  }
}
