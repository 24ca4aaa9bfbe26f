/**
 * The worker's presence in ZooKeeper, through the recipes of coordination/:
 * one session that survives expiry, the worker's ephemeral znode (registered
 * again on every new session, its status written when it changes, at most
 * every 500 ms), the master znode it claims as master, what a new slave reads
 * of the master, the term it watches as master, and the leader epoch that
 * control messages are checked against.
 */
import type { WorkerConfig } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import type { WorkerStatus } from '../common/messages.js';
import { zkPaths, type ZkPaths } from '../coordination/paths.js';
import { claimMaster, EpochWatch, masterSeq, publishWorker, readMaster, registerWorker, waitForMasterDbUrl } from '../coordination/registration.js';
import type { MasterZnode } from '../coordination/schemas.js';
import { readTerm, watchTerm } from '../coordination/term.js';
import { ZkSession } from '../coordination/zk-session.js';

export interface RegistrationHooks {
  /** What the worker's znode says now. */
  status(): WorkerStatus;
  /** After each (re)registration on a new session. */
  registered(): Promise<void>;
  /** The session was lost: ephemeral znodes are gone. */
  expired(): Promise<void>;
  /** The worker is stopping: watches are not re-armed. */
  stopped(): boolean;
}

const PUBLISH_EVERY_MS = 500;

export class Registration {
  readonly zk: ZkSession;
  private readonly paths: ZkPaths;
  private readonly epochWatch: EpochWatch;
  private lastPublished = '';
  private publishing = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: WorkerConfig,
    logger: Logger,
    private readonly hooks: RegistrationHooks,
  ) {
    this.paths = zkPaths(config.namespace);
    this.zk = new ZkSession({ connect: config.zkConnect, sessionTimeoutMs: config.zkSessionTimeoutMs, stuckAfterMs: config.zkOutageToleranceMs, logger });
    this.epochWatch = new EpochWatch(this.zk, this.paths, hooks.stopped);
  }

  /** Starts the session, registers, and arms the epoch watch; resolves once connected (rejects after `timeoutMs`). */
  async start(timeoutMs = 15_000): Promise<void> {
    this.zk.onSession(() => this.register());
    this.zk.on('expired', () => void this.hooks.expired());
    // After a reconnection, write the status again: an update may have been lost with the connection.
    this.zk.on('reconnected', () => {
      this.lastPublished = '';
      void this.publish();
    });
    this.zk.start();
    await this.zk.waitUntilConnected(timeoutMs);
    await this.epochWatch.start();
  }

  /** Writes the status every 500 ms when it changed. */
  startPublishing(): void {
    this.timer ??= setInterval(() => void this.publish(), PUBLISH_EVERY_MS);
  }

  private async register(): Promise<void> {
    const data = await registerWorker(this.zk, this.paths, this.hooks.status());
    this.lastPublished = data.toString();
    await this.hooks.registered();
  }

  /** Writes the status to the worker's znode when it changed; only a write that succeeded counts as published. */
  async publish(): Promise<void> {
    if (!this.zk.connected || this.publishing) return;
    const status = this.hooks.status();
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

  /** Creates the ephemeral master znode, waiting out a previous master's session. */
  claimMaster(term: number): Promise<void> {
    const me = { id: this.config.workerId, term, dbUrl: this.config.advertisedMongoUrl };
    return claimMaster(this.zk, this.paths, me, this.config.zkSessionTimeoutMs * 3 + 2000);
  }

  /** The master's newest seq as it last published it in its worker znode (at most half a second old). */
  masterSeq(): Promise<number | undefined> {
    return masterSeq(this.zk, this.paths);
  }

  /** The master znode now (undefined while there is none). */
  master(): Promise<MasterZnode | undefined> {
    return readMaster(this.zk, this.paths);
  }

  /** Where the master's database is, waiting up to `timeoutMs` for a master. */
  masterDbUrl(timeoutMs: number): Promise<string> {
    return waitForMasterDbUrl(this.zk, this.paths, timeoutMs);
  }

  readTerm(): Promise<number> {
    return readTerm(this.zk, this.paths);
  }

  /** Calls `moved(term)` once the term passes `myTerm` (coordination/term.ts); resolves once armed. */
  watchTerm(myTerm: number, moved: (term: number) => Promise<void>): Promise<void> {
    return watchTerm(this.zk, this.paths, myTerm, { moved, stopped: this.hooks.stopped });
  }

  /** Whether a control message of leader epoch `epoch` may act (a newer leader refuses an older one's). */
  admitsEpoch(epoch: number): Promise<boolean> {
    return this.epochWatch.admits(epoch);
  }

  /** The newest leader epoch known. */
  get epoch(): number {
    return this.epochWatch.current;
  }

  /** Milliseconds since ZooKeeper last answered this worker. */
  contactAgeMs(): number {
    return this.zk.contactAgeMs();
  }

  get connected(): boolean {
    return this.zk.connected;
  }

  /** Stops writing the status (a stopping worker's last states are not published). Idempotent. */
  stopPublishing(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Stops publishing and closes the session (the znodes go at once). Idempotent. */
  close(): void {
    this.stopPublishing();
    this.zk.close();
  }
}
