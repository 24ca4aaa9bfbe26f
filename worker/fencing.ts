/**
 * Fencing, the worker's side: a master stops taking writes before anyone else
 * can be promoted.
 *
 * Invariant: at no moment do two masters take writes. A master here stops
 * taking writes (fences: `MasterRole.fence()` stops consuming writeQ, and
 * `leaseValid()` is checked before each batch) and, unless it may take its
 * place back, leaves, as soon as any of these holds:
 *   - the term moved past its own (the orchestrator moves it before it
 *     promotes anyone; {@link SelfFence.watchTerm}, armed by every master,
 *     first or promoted, before its first write);
 *   - ZooKeeper has not answered it for the self-fence deadline F
 *     (common/fencing.ts: F is chosen so that this happens before the
 *     orchestrator, which waits T + W after the znode vanished, can promote a
 *     successor of a master it cannot kill); checked every FENCE_CHECK_MS;
 *   - its session expired: `/master` went with it. Within the outage
 *     tolerance it takes `/master` back on the next session, but only if the
 *     term is still its own; otherwise it leaves.
 * The orchestrator's side (kill, remove the znodes, move the term under the
 * epoch guard, then promote) is orchestrator/failover.ts. Leaving is
 * `fail()`: the entry point exits and the orchestrator replaces the worker.
 * Tests: tests/unit/fencing.test.ts (the deadlines and the worker's
 * decisions), tests/integration/failover.test.ts ("a master whose ZooKeeper
 * session expires stops acting as master"), data-safety.test.ts (a moved term
 * deposes a promoted master), outages.test.ts (ZooKeeper outages).
 */
import type { ChannelModel } from 'amqplib';
import type { WorkerConfig } from '../common/config.js';
import { FENCE_CHECK_MS, selfFenceMs } from '../common/fencing.js';
import type { Logger } from '../common/logger.js';
import type { WorkerState } from '../common/messages.js';

/** The master role as fencing sees it. */
export interface FenceableMaster {
  readonly term: number;
  /** Stops taking writes (idempotent); writes already taken finish. */
  fence(): Promise<void>;
  /** Takes writes again (after /master was taken back). */
  resume(): void;
  attach(conn: ChannelModel): Promise<void>;
}

/** What fencing needs of the worker. */
export interface FencingHost {
  readonly config: WorkerConfig;
  readonly logger: Logger;
  state(): WorkerState;
  /** The master role, while this worker is (becoming) master. */
  master(): FenceableMaster | undefined;
  /** The broker connection, when there is one. */
  connection(): ChannelModel | undefined;
  /** Leave: the entry point exits and the orchestrator replaces this worker. */
  fail(reason: string): never;
  zk: {
    contactAgeMs(): number;
    readTerm(): Promise<number>;
    claimMaster(term: number): Promise<void>;
    watchTerm(myTerm: number, moved: (term: number) => Promise<void>): Promise<void>;
  };
}

/** What to do when the session expired while master: leave, or take /master back on the next session. */
export function onMasterSessionLost(state: WorkerState, contactAgeMs: number, limitMs: number): 'leave' | 'reclaim' {
  return state !== 'master' || contactAgeMs > limitMs ? 'leave' : 'reclaim';
}

export class SelfFence {
  /** Set when a master's session expired within the outage tolerance: the next session takes /master back, if it may. */
  private reclaimPending = false;
  /** The fence a session expiry started (a reclaim waits for it). */
  private fencing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly w: FencingHost) {}

  /** F: how long ZooKeeper may be silent before a master must stop (common/fencing.ts). */
  get limitMs(): number {
    return selfFenceMs(this.w.config.zkSessionTimeoutMs, this.w.config.zkOutageToleranceMs);
  }

  /** Checks the contact age every FENCE_CHECK_MS. Idempotent. */
  start(): void {
    this.timer ??= setInterval(() => this.checkContact(), FENCE_CHECK_MS);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** True while this master may still take writes (see checkContact). */
  leaseValid(): boolean {
    return this.w.zk.contactAgeMs() <= this.limitMs;
  }

  /**
   * A master keeps a watch on the term: once it has moved past `myTerm`, someone
   * else is (or is about to be) master, so this one fences itself and leaves.
   * Every master arms it, the first one and every promoted one, once it holds
   * the master znode. A check that fails (ZooKeeper unreachable) is retried
   * every second (coordination/term.ts); the contact deadline covers the gap.
   */
  watchTerm(myTerm: number): Promise<void> {
    return this.w.zk.watchTerm(myTerm, async (term) => {
      await this.w.master()?.fence();
      this.w.fail(`the term moved to ${term} while this master holds term ${myTerm}`);
    });
  }

  /** The session expired. True when this worker is a master (it fenced itself); a slave's reads are the caller's. */
  async sessionExpired(): Promise<boolean> {
    const master = this.w.master();
    if (!master) return false;
    const leave = onMasterSessionLost(this.w.state(), this.w.zk.contactAgeMs(), this.limitMs) === 'leave';
    // A session that expired at the end of a ZooKeeper outage (the server forgot it, or took too
    // long to come back): the next session takes /master back if nobody moved the term (reclaim).
    // Marked before the fence is awaited: the next session may register first (closing channels that
    // still send a big snapshot takes longer than the 100 ms before it), and it waits for the fence.
    if (!leave) this.reclaimPending = true;
    // Stop taking writes at once: /master went with the session.
    this.fencing = master.fence();
    await this.fencing;
    if (leave) this.w.fail('ZooKeeper session lost while master, past the outage tolerance; another worker may have been promoted');
    return true;
  }

  /** After registering on a new session: takes /master back (once the fence is done) when a session expiry left that pending. */
  async registered(): Promise<void> {
    if (!this.reclaimPending) return;
    await this.fencing;
    await this.reclaim();
  }

  /**
   * After a session expiry, the master takes /master back and writes again, but
   * only if the term is still its own: a failover moves the term (by CAS) before
   * it promotes anyone, and the orchestrator kills a master it replaces. The term
   * watch, lost with the old session, is armed again first.
   */
  private async reclaim(): Promise<void> {
    const master = this.w.master();
    if (!master) return;
    try {
      const term = await this.w.zk.readTerm();
      if (term !== master.term) this.w.fail(`the term moved to ${term} while this master (term ${master.term}) had lost its session`);
      await this.watchTerm(master.term);
      await this.w.zk.claimMaster(master.term);
    } catch (err) {
      this.w.fail(`could not take /master back after a session expiry: ${(err as Error).message}`);
    }
    this.reclaimPending = false;
    master.resume();
    // Without a broker connection now, the next connection's set-up attaches the master.
    const conn = this.w.connection();
    if (conn) await master.attach(conn);
    this.w.logger.warn({ term: master.term }, 'ZooKeeper session expired and was renewed; took /master back and writes again');
  }

  /**
   * A master that has not heard from ZooKeeper for F stops taking writes and
   * leaves, before the orchestrator could promote another worker
   * (common/fencing.ts has the timing and why it is safe).
   */
  private checkContact(): void {
    const master = this.w.master();
    const state = this.w.state();
    if (!master || (state !== 'master' && state !== 'promoting')) return;
    const age = this.w.zk.contactAgeMs();
    const limit = this.limitMs;
    if (age <= limit) return;
    void master.fence().finally(() => this.w.fail(`no answer from ZooKeeper for ${age} ms (limit ${limit} ms); another master may be promoted`));
  }
}
