/**
 * Several orchestrators per namespace, one leader: membership, election and the
 * leader's epoch, all in ZooKeeper.
 *
 * - Every orchestrator registers an ephemeral sequential znode under
 *   `/<ns>/orchestrators` (host, pid, port, URL, start time), again on every new
 *   session, so `GET /api/v1/orchestrators` can list them.
 * - The leader holds the ephemeral `/<ns>/orchestrator`. The others watch it and
 *   try to take it when it goes (a stopped leader deletes it at once; a killed
 *   or partitioned one loses it with its session, one session timeout later).
 * - Each leadership bumps `/<ns>/epoch` by compare-and-set and writes it into
 *   the leader znode. The epoch is the leader's fencing token: control messages
 *   carry it and workers refuse an older one, and the term bump of a failover
 *   is a transaction that checks the epoch is still the one this leader set.
 *   So a former leader that was paused or cut off and wakes up can neither
 *   promote a worker nor start a failover.
 *
 * Invariant: at most one orchestrator believes it leads while it can still
 * act: `confirm()` (a ZooKeeper read of the leader znode) is checked before
 * every control action, and losing the session or the znode deposes at once.
 * Only the leader starts, kills, promotes, retires or removes workers;
 * followers serve the data API and forward admin actions to the leader.
 */
import { EventEmitter } from 'node:events';
import os from 'node:os';
import type { Logger } from '../common/logger.js';
import { bumpCounter } from './term.js';
import type { ZkPaths } from './paths.js';
import { decodeOrchestratorZnode, encodeZnode, type OrchestratorZnode } from './schemas.js';
import { CreateMode, isNodeExists, isNoNode, readZnode, type ZkStore } from './zk-session.js';

/** What an orchestrator's znodes say about it. */
export type OrchestratorInfo = Omit<OrchestratorZnode, 'reads'>;

/** An orchestrator znode's fields that have the right type. */
export const parseInfo = decodeOrchestratorZnode;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function describeInfo(h: Partial<OrchestratorInfo>): string {
  return `pid ${h.pid ?? '?'} on ${h.host ?? '?'}, port ${h.port ?? '?'}, since ${h.startedAt ?? '?'}`;
}

export interface ElectionHooks {
  /** This orchestrator now leads with `epoch`; resolves once it has taken charge. */
  onElected(epoch: number): Promise<void>;
  /** This orchestrator no longer leads (its session or the leader znode was lost). */
  onDeposed(why: string): void;
}

export class LeaderElection extends EventEmitter {
  private leading = false;
  private currentEpoch = 0;
  private currentEpochVersion = -1;
  private started = false;
  private closed = false;
  private campaigning = false;
  readonly me: OrchestratorInfo;

  constructor(
    private readonly zk: ZkStore,
    private readonly paths: ZkPaths,
    me: { port: number; url: string },
    private readonly logger: Logger,
    private readonly hooks: ElectionHooks,
  ) {
    super();
    this.me = { host: os.hostname(), pid: process.pid, port: me.port, url: me.url, startedAt: new Date().toISOString(), token: Math.random().toString(36).slice(2) };
    // A new session has lost both ephemeral znodes: register again, and a leader is a leader no more.
    zk.onSession(async () => {
      await this.register();
      if (this.leading) this.depose('its ZooKeeper session was lost');
      if (this.started && !this.closed) void this.campaign();
    });
  }

  /** True while this orchestrator leads. */
  get isLeader(): boolean {
    return this.leading;
  }

  /** The epoch of this orchestrator's leadership (0 while it has never led). */
  get epoch(): number {
    return this.currentEpoch;
  }

  /** The epoch znode's version this leadership set (a term bump checks it). */
  get epochVersion(): number {
    return this.currentEpochVersion;
  }

  /**
   * Joins the election once the orchestrator can act: tries to lead at once, and
   * else follows (campaigning in the background) and resolves 'follower'. A
   * leader znode left by a dead orchestrator of this host (its pid is gone) is
   * waited out for up to `waitDeadMs`, so that a restart after a crash leads.
   */
  async start(waitDeadMs: number): Promise<'leader' | 'follower'> {
    this.started = true;
    if (await this.tryLead()) return 'leader';
    const holder = await this.leader().catch(() => undefined);
    if (holder && holder.host === this.me.host && typeof holder.pid === 'number' && !pidAlive(holder.pid)) {
      this.logger.info({ holder: describeInfo(holder) }, 'waiting for the leader znode of a dead orchestrator to expire');
      const deadline = Date.now() + waitDeadMs;
      while (Date.now() < deadline && !this.closed) {
        await this.waitForLeaderChange(Math.max(1, Math.min(1000, deadline - Date.now())));
        if (await this.tryLead()) return 'leader';
      }
    }
    void this.campaign();
    return 'follower';
  }

  private memberPath: string | undefined;

  private async register(): Promise<void> {
    await this.zk.mkdirp(this.paths.orchestrators);
    this.memberPath = await this.zk.create(this.paths.orchestratorPrefix, encodeZnode(this.me), CreateMode.EPHEMERAL_SEQUENTIAL);
  }

  /** Where this orchestrator's API listens, once it does (admin actions are forwarded there while it leads). */
  async advertise(url: string): Promise<void> {
    this.me.url = url;
    if (this.memberPath) await this.zk.setData(this.memberPath, encodeZnode(this.me)).catch(() => undefined);
    if (this.leading) await this.zk.setData(this.paths.leader, encodeZnode({ ...this.me, epoch: this.currentEpoch })).catch(() => undefined);
  }

  /**
   * Tries to lead until it does, or until closed: takes the leader znode when
   * it is free, else waits for it to go (a watch, and a check every second).
   */
  async campaign(): Promise<void> {
    if (this.campaigning || this.leading || this.closed) return;
    this.campaigning = true;
    try {
      while (!this.closed && !this.leading) {
        try {
          if (await this.tryLead()) return;
          await this.waitForLeaderChange(1000);
        } catch (err) {
          this.logger.warn({ err: (err as Error).message }, 'election attempt failed; retrying');
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    } finally {
      this.campaigning = false;
    }
  }

  private async tryLead(): Promise<boolean> {
    await this.zk.mkdirp(this.paths.root);
    try {
      await this.zk.create(this.paths.leader, encodeZnode(this.me), CreateMode.EPHEMERAL);
    } catch (err) {
      if (isNodeExists(err)) return false;
      throw err;
    }
    const { epoch, version } = await this.bumpEpoch();
    this.currentEpoch = epoch;
    this.currentEpochVersion = version;
    await this.zk.setData(this.paths.leader, encodeZnode({ ...this.me, epoch }));
    this.leading = true;
    this.readsBaselineTaken = false;
    this.logger.info({ epoch }, 'elected leader');
    try {
      await this.hooks.onElected(epoch);
    } catch (err) {
      // It could not take charge (say the cluster's data is missing): give the leadership up.
      await this.resign();
      throw err;
    }
    this.emit('elected', epoch);
    return true;
  }

  /*
   * The waits for a change of the leader znode share one watcher function: the
   * client keeps every distinct function it is given until the znode changes,
   * so a new closure per wait (one a second while a follower campaigns under a
   * steady leader) would pile up without bound.
   */
  private readonly leaderWaiters = new Set<() => void>();
  private readonly leaderWatcher = (): void => {
    const waiters = [...this.leaderWaiters];
    this.leaderWaiters.clear();
    for (const w of waiters) w();
  };

  private async waitForLeaderChange(maxMs: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.leaderWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, maxMs);
      this.leaderWaiters.add(done);
      void this.zk
        .exists(this.paths.leader, this.leaderWatcher)
        .then((stat) => {
          if (!stat) done();
        })
        .catch(() => undefined);
    });
  }

  /** Increments the persistent epoch counter (compare-and-set). */
  private async bumpEpoch(): Promise<{ epoch: number; version: number }> {
    const { value, version } = await bumpCounter(this.zk, this.paths.epoch);
    return { epoch: value, version: version ?? -1 };
  }

  /**
   * Whether this orchestrator still leads, asked of ZooKeeper (the leader znode
   * is ours and carries our epoch). A leader that finds it does not is deposed.
   */
  async confirm(): Promise<boolean> {
    if (!this.leading) return false;
    try {
      const [{ data }, epoch] = await Promise.all([this.zk.getData(this.paths.leader), this.zk.getData(this.paths.epoch)]);
      const holder = parseInfo(data);
      if (holder.token !== this.me.token || holder.epoch !== this.currentEpoch) {
        this.depose(`the leader znode now belongs to ${describeInfo(holder)}`);
      } else if (epoch.stat.version !== this.currentEpochVersion) {
        this.depose(`the epoch moved on to ${epoch.data?.toString() ?? '?'} (another orchestrator was elected)`);
      } else return true;
    } catch (err) {
      if (isNoNode(err)) this.depose('the leader znode is gone');
      // ZooKeeper unreachable: not confirmed, but not deposed either (the session may still hold).
    }
    return false;
  }

  private depose(why: string): void {
    if (!this.leading) return;
    this.leading = false;
    this.logger.warn({ why, epoch: this.currentEpoch }, 'no longer the leader');
    this.hooks.onDeposed(why);
    this.emit('deposed', why);
  }

  /** The leader as its znode describes it, or undefined while there is none. */
  leader(): Promise<Partial<OrchestratorInfo> | undefined> {
    return readZnode(this.zk, this.paths.leader, parseInfo);
  }

  /** Every registered orchestrator, oldest first. */
  async members(): Promise<Array<Partial<OrchestratorZnode>>> {
    const children = await this.zk.getChildren(this.paths.orchestrators).catch((err: unknown) => (isNoNode(err) ? [] : Promise.reject(err)));
    const out: Array<Partial<OrchestratorZnode>> = [];
    for (const child of children.sort()) {
      try {
        out.push(parseInfo((await this.zk.getData(`${this.paths.orchestrators}/${child}`)).data));
      } catch {
        // gone meanwhile
      }
    }
    return out;
  }

  /** Other orchestrators registered now (a leader that stops hands over to one of them). */
  async others(): Promise<number> {
    return (await this.members()).filter((m) => m.token !== this.me.token).length;
  }

  private publishedReads = -1;
  private readonly seenReads = new Map<string, number>();
  /** Whether this leadership's first collect took every member's count as its baseline (reset when elected). */
  private readsBaselineTaken = false;

  /** A follower tells the leader how many reads it has counted (in its member znode, at most once a call). */
  async publishReads(cumulative: number): Promise<void> {
    if (cumulative === this.publishedReads || !this.memberPath) return;
    await this.zk.setData(this.memberPath, encodeZnode({ ...this.me, reads: cumulative }));
    this.publishedReads = cumulative;
  }

  /**
   * The leader's sum of the reads the other orchestrators counted since it last
   * asked. The first collect of a leadership takes every member's count as its
   * baseline (reads counted before this one led are not this window's); a member
   * that joins later counts from its start, since its count began at zero: taking
   * its first published count as a baseline lost the reads it served before the
   * leader first saw it (orchestrators.test.ts counted 20 of 45 on a loaded CI).
   * A member that left and came back (a new session, the same process) goes on
   * from its count as last seen.
   */
  async collectReads(): Promise<number> {
    let sum = 0;
    const baseline = !this.readsBaselineTaken;
    for (const m of await this.members()) {
      if (!m.token || m.token === this.me.token) continue;
      const reads = m.reads ?? 0;
      const last = this.seenReads.get(m.token) ?? (baseline ? reads : 0);
      if (reads > last) sum += reads - last;
      this.seenReads.set(m.token, Math.max(reads, last));
    }
    this.readsBaselineTaken = true;
    return sum;
  }

  /**
   * After resigning to hand over: resolves true once another orchestrator leads,
   * false when none does within `timeoutMs` or no other one is registered any
   * more (they are stopping too).
   */
  async waitForOtherLeader(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const holder = await this.leader().catch(() => undefined);
      if (holder?.token && holder.token !== this.me.token) return true;
      if ((await this.others().catch(() => 1)) === 0) return false;
      await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  }

  /**
   * Takes the leader znode back for a shutdown nobody else took over (no hooks,
   * no campaign): true when this orchestrator holds it again.
   */
  async retakeForShutdown(): Promise<boolean> {
    try {
      await this.zk.create(this.paths.leader, encodeZnode({ ...this.me, epoch: this.currentEpoch }), CreateMode.EPHEMERAL);
      this.leading = true;
      return true;
    } catch {
      return false;
    }
  }

  /** Gives the leadership up (others take it at once). Idempotent. */
  async resign(): Promise<void> {
    const was = this.leading;
    this.leading = false;
    try {
      const { data } = await this.zk.getData(this.paths.leader);
      if (parseInfo(data).token === this.me.token) await this.zk.remove(this.paths.leader);
    } catch {
      // gone already, or ZooKeeper unreachable: the session's end removes it
    }
    if (was) this.emit('deposed', 'resigned');
  }

  /** Stops campaigning (the znodes go with the session). */
  close(): void {
    this.closed = true;
  }
}
