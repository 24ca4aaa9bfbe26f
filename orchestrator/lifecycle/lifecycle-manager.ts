/**
 * The lifecycle manager: watches every service `npm start` runs (the platform's
 * ZooKeeper servers and RabbitMQ nodes, and its orchestrator) by process and by
 * health probe, restarts a dead or wedged one with backoff and a retry limit
 * (supervision.ts decides, this acts), audits every change in the namespace's
 * shared audit log, and publishes each service's state in ZooKeeper
 * (`/<ns>/platform`, read by `GET /api/v1/platform`).
 *
 * Where it runs (docs/DECISIONS.md): a process of its own that scripts/start.sh
 * starts and restarts, not inside the orchestrator leader, so it does not
 * depend on the ZooKeeper session it may have to restart. Platform services are
 * acted on only by the holder of the checkout's platform lock
 * (platform-lock.ts); every manager acts on its own orchestrator.
 *
 * ZooKeeper may be the service that is down: audit events wait (bounded) and
 * are appended once it answers again; the published view is rewritten then.
 */
import { hostname } from 'node:os';
import type { Logger } from '../../common/logger.js';
import { AuditStore } from '../../coordination/audit-store.js';
import type { ZkPaths } from '../../coordination/paths.js';
import { PlatformStore } from '../../coordination/platform-store.js';
import type { AuditZnode, PlatformServiceZnode } from '../../coordination/schemas.js';
import type { ZkStore } from '../../coordination/zk-session.js';
import type { ServiceSpec } from './platform-services.js';
import type { PlatformLock } from './platform-lock.js';
import { decide, initialRecord, type Supervised, type SupervisionPolicy } from './supervision.js';

export interface LifecycleManagerOptions {
  readonly services: readonly ServiceSpec[];
  readonly policy: SupervisionPolicy;
  readonly probeIntervalMs: number;
  readonly probeTimeoutMs: number;
  readonly logger: Logger;
  /** The namespace's ZooKeeper (the audit log and the published view); calls that fail are retried later. */
  readonly zk?: ZkStore;
  readonly paths?: ZkPaths;
  /** Held to act on shared (platform) services; without one this manager acts on them. */
  readonly lock?: PlatformLock;
  /** Services to start at once rather than wait for a failed probe (the orchestrator the manager runs). */
  readonly startNow?: readonly string[];
}

/** Events kept while ZooKeeper cannot take them. */
const PENDING_MAX = 200;
/** The published view is rewritten at least this often (its `updatedAt` says the manager is alive). */
const REPUBLISH_MS = 5000;

interface Entry {
  readonly spec: ServiceSpec;
  record: Supervised;
  pid: number | undefined;
  published: string;
  publishedAt: number;
}

/** `p`'s value, or `fallback` when it has not settled within `ms` (or rejected). */
function settleWithin<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p.catch(() => fallback), new Promise<T>((resolve) => (timer = setTimeout(() => resolve(fallback), ms)))]).finally(() => clearTimeout(timer));
}

/** Being restarted, or stopped on purpose: not observed. */
const busy = (e: Entry): boolean => e.record.state === 'restarting' || e.record.state === 'stopped';

export class LifecycleManager {
  readonly by = `${hostname()}:${process.pid}`;
  private readonly entries: Entry[];
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> = Promise.resolve();
  private closed = false;
  /** Restarts of shared services run one at a time (the scripts take a lock anyway). */
  private sharedRestarts: Promise<void> = Promise.resolve();
  private readonly running = new Set<Promise<void>>();
  private readonly pending: AuditZnode[] = [];
  private readonly audit: AuditStore | undefined;
  private readonly store: PlatformStore | undefined;
  private holdsLock = false;
  private flushing = false;

  constructor(private readonly o: LifecycleManagerOptions) {
    const now = Date.now();
    this.entries = o.services.map((spec) => ({ spec, record: initialRecord('starting', now), pid: undefined, published: '', publishedAt: 0 }));
    if (o.zk && o.paths) {
      this.audit = new AuditStore(o.zk, o.paths);
      this.store = new PlatformStore(o.zk, o.paths);
    }
  }

  start(): void {
    for (const e of this.entries) {
      if (!this.o.startNow?.includes(e.spec.name)) continue;
      const pid = e.spec.pid();
      if (e.spec.alive(pid)) {
        this.note(e, `${e.spec.name} (pid ${pid}) is already running: adopted`);
        continue;
      }
      e.record = { ...e.record, state: 'restarting' };
      this.launch(e, false, `starting ${e.spec.name}`);
    }
    const loop = (): void => {
      if (this.closed) return;
      this.ticking = this.tick()
        .catch((err: unknown) => this.o.logger.warn({ err: (err as Error).message }, 'lifecycle tick failed'))
        .finally(() => {
          if (!this.closed) this.timer = setTimeout(loop, this.o.probeIntervalMs);
        });
    };
    loop();
  }

  /** Every service as last seen, as `GET /api/v1/platform` shows it. */
  view(): PlatformServiceZnode[] {
    return this.entries.map((e) => this.znode(e));
  }

  /** One step: observe and decide every service, act, audit, publish. */
  async tick(): Promise<void> {
    const now = Date.now();
    if (this.o.lock) {
      const held = this.o.lock.check();
      if (held !== this.holdsLock) this.o.logger.info(held ? 'holding the platform lock: this manager restarts the platform services' : 'another manager holds the platform lock: watching only');
      this.holdsLock = held;
    } else {
      this.holdsLock = true;
    }
    await Promise.all(
      this.entries.map(async (e) => {
        if (busy(e)) return;
        const filed = e.spec.pid();
        const live = e.spec.alive(filed);
        const pid = live ? filed : undefined;
        // Bounded here too: one probe that never settles must not stop the supervision of every service.
        const probe = (): Promise<string | undefined> =>
          settleWithin(e.spec.probe(this.o.probeTimeoutMs), this.o.probeTimeoutMs + 1000, `no answer within ${this.o.probeTimeoutMs} ms`);
        // A service this npm start only watches may have no live pid in this checkout's files (started by another
        // checkout, by the system, or restarted by another checkout's scripts): then its probe alone says whether it runs.
        const probeOnly = !live && !e.spec.managed;
        const answer = probeOnly ? await probe() : undefined;
        const alive = probeOnly ? answer === undefined : live;
        const probeFailure = probeOnly ? answer : alive ? await probe() : 'no process';
        // A restart may have begun meanwhile (the manager started its orchestrator at once).
        if (this.closed || busy(e)) return;
        e.pid = pid;
        const acts = e.spec.managed && (!e.spec.shared || this.holdsLock);
        const why = e.spec.managed ? 'another manager holds the platform lock' : 'this npm start did not start it';
        const d = decide(
          e.spec.name,
          e.record,
          { alive, ...(pid !== undefined ? { pid } : {}), ...(probeFailure === undefined ? {} : { probeFailure }) },
          Date.now(),
          this.o.policy,
          acts,
          why,
          this.peerNotRunning(e),
        );
        e.record = d.next;
        if (d.sentence) this.note(e, d.sentence);
        if (d.action !== 'none') this.launch(e, d.action === 'kill-and-restart', undefined, pid);
      }),
    );
    // In the background, one at a time: ZooKeeper calls that hang (a session being re-established) delay the
    // audit and the published view, never the probes and restarts.
    if (!this.flushing) {
      this.flushing = true;
      void this.flush(now).finally(() => (this.flushing = false));
    }
  }

  /** Why `e` must not be killed while wedged: a peer of its kind (its ensemble or cluster) that is not running now. */
  private peerNotRunning(e: Entry): string | undefined {
    if (!e.spec.shared) return undefined;
    const peer = this.entries.find((x) => x !== e && x.spec.shared && x.spec.kind === e.spec.kind && x.record.state !== 'running');
    return peer ? `${peer.spec.name} is ${peer.record.state}: killing ${e.spec.name} as well could cost the ${e.spec.kind === 'zookeeper' ? 'ensemble' : 'cluster'} its quorum` : undefined;
  }

  /** Starts `e` (killing `pid` first when wedged), in the background; records the outcome. */
  private launch(e: Entry, kill: boolean, sentence?: string, pid?: number): void {
    if (sentence) this.note(e, sentence);
    const run = async (): Promise<void> => {
      if (kill && pid !== undefined) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
        const deadline = Date.now() + 10_000;
        while (e.spec.alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      }
      if (this.closed) return;
      try {
        await e.spec.start();
        e.record = { ...e.record, state: 'starting', startedAt: Date.now() };
      } catch (err) {
        const reason = `its restart failed: ${(err as Error).message}`;
        e.record = { ...e.record, state: 'down', lastFailure: { at: Date.now(), reason } };
        this.note(e, `${e.spec.name} ${reason}`);
      }
    };
    const job = e.spec.shared ? (this.sharedRestarts = this.sharedRestarts.then(run)) : run();
    this.running.add(job);
    void job.finally(() => this.running.delete(job));
  }

  /** Logs a sentence and queues it for the shared audit log. */
  private note(e: Entry, reason: string): void {
    const details = { service: e.spec.name, kind: e.spec.kind, state: e.record.state, restarts: e.record.restarts, ...(e.pid === undefined ? {} : { pid: e.pid }) };
    this.o.logger.info({ platform: details }, reason);
    this.pending.push({ at: new Date().toISOString(), kind: 'platform', reason, details, by: `lifecycle@${this.by}` });
    if (this.pending.length > PENDING_MAX) this.pending.splice(0, this.pending.length - PENDING_MAX);
  }

  private znode(e: Entry): PlatformServiceZnode {
    const r = e.record;
    return {
      name: e.spec.name,
      kind: e.spec.kind,
      address: e.spec.address,
      ...(e.pid === undefined ? {} : { pid: e.pid }),
      state: r.state,
      restarts: r.restarts,
      ...(r.lastFailure ? { lastFailure: { at: new Date(r.lastFailure.at).toISOString(), reason: r.lastFailure.reason } } : {}),
      managed: e.spec.managed && (!e.spec.shared || this.holdsLock),
      by: this.by,
      updatedAt: new Date().toISOString(),
    };
  }

  /** Appends the waiting audit events and rewrites the published services that changed (or are due); keeps what ZooKeeper refused. */
  private async flush(now: number): Promise<void> {
    if (!this.audit || !this.store || !this.o.zk?.connected) return;
    try {
      while (this.pending.length > 0) {
        await this.audit.append(this.pending[0]!);
        this.pending.shift();
      }
      for (const e of this.entries) {
        // A shared service is published by the manager that acts on it (or, unmanaged, by every manager: the same facts).
        if (e.spec.shared && e.spec.managed && !this.holdsLock) continue;
        const z = this.znode(e);
        const { updatedAt: _u, ...facts } = z;
        const key = JSON.stringify(facts);
        if (key === e.published && now - e.publishedAt < REPUBLISH_MS) continue;
        await this.store.publish(z);
        e.published = key;
        e.publishedAt = now;
      }
    } catch (err) {
      this.o.logger.debug({ err: (err as Error).message }, 'ZooKeeper did not take the platform view or an audit event; retrying at the next probe');
    }
  }

  /** Stops watching (idempotent); waits for the step under way, not for restarts (a script may take a minute). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    await this.ticking;
    this.o.lock?.release();
  }

  /** Waits for the restarts under way (tests). */
  async settled(): Promise<void> {
    await Promise.all([...this.running]);
  }

  /** Marks a service as stopped on purpose, so it is not restarted; publishes that. */
  async markStopped(name: string): Promise<void> {
    const e = this.entries.find((x) => x.spec.name === name);
    if (!e) return;
    e.record = { ...e.record, state: 'stopped' };
    e.pid = undefined;
    if (this.store && this.o.zk?.connected) await this.store.publish(this.znode(e)).catch(() => undefined);
  }
}
