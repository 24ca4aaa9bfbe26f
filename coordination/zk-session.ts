/**
 * A ZooKeeper client that survives session expiry.
 *
 * node-zookeeper-client reconnects by itself within a session, but once a session
 * expires the client is dead. This wrapper then builds a new client and runs the
 * owner's `onSession` callbacks again (re-create ephemeral znodes, re-arm
 * watches). All calls go to the current client and return promises.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import zookeeper, { type Client, type Stat } from 'node-zookeeper-client';
import { Backoff, waitFor } from '../common/backoff.js';
import type { Logger } from '../common/logger.js';

export interface ZkSessionOptions {
  connect: string;
  sessionTimeoutMs: number;
  logger: Logger;
  /**
   * How long the client may stay disconnected before it is given up on and a new
   * session started (`expired` is emitted). Default max(6 s, 3 × session timeout).
   * Workers and the orchestrator pass the ZooKeeper outage tolerance: while the
   * server is away for everyone, the old session is still the one to get back.
   */
  stuckAfterMs?: number;
}

/** What a watch callback is told (node-zookeeper-client's Event, or the in-memory fake's). */
export interface ZkEvent {
  /** `NODE_CREATED`, `NODE_DELETED`, `NODE_DATA_CHANGED` or `NODE_CHILDREN_CHANGED`. */
  getName(): string;
  getPath(): string;
}

export type Watcher = (event: ZkEvent) => void;

/** The part of a znode's stat the recipes use. */
export interface ZkStat {
  version: number;
}

/**
 * The coordination store as the recipes of coordination/ use it: one ZooKeeper
 * session that survives expiry ({@link ZkSession}), or the in-memory fake of
 * the unit tests (tests/memory-zk.ts). Every call rejects with a ZooKeeper
 * exception (see {@link isNoNode} and friends) or a lost connection.
 */
export interface ZkStore {
  readonly connected: boolean;
  /** Registers work to redo on every new session (the first one included). */
  onSession(cb: () => Promise<void>): void;
  /** `session`, `reconnected`, `expired`, `disconnected`. */
  on(event: 'session' | 'reconnected' | 'expired' | 'disconnected', listener: () => void): unknown;
  /** Milliseconds since the server last answered (Infinity before the first session). */
  contactAgeMs(now?: number): number;
  create(path: string, data: Buffer | null, mode: number): Promise<string>;
  mkdirp(path: string): Promise<string>;
  remove(path: string, version?: number): Promise<void>;
  exists(path: string, watcher?: Watcher): Promise<ZkStat | null>;
  getData(path: string, watcher?: Watcher): Promise<{ data: Buffer | undefined; stat: ZkStat }>;
  setData(path: string, data: Buffer, version?: number): Promise<ZkStat>;
  setDataGuarded(path: string, data: Buffer, version: number, guardPath: string, guardVersion: number): Promise<void>;
  /**
   * Creates `path` only if `counterPath` is still at `counterVersion`, moving the counter's version on in the same
   * transaction: a compare-and-set over a set of children (a capped create). Rejects BAD_VERSION when the counter moved.
   */
  createCounted(path: string, data: Buffer | null, mode: number, counterPath: string, counterVersion: number): Promise<void>;
  getChildren(path: string, watcher?: Watcher): Promise<string[]>;
}

/** ZooKeeper error codes the recipes tell apart. */
export type ZkErrorCode = 'NO_NODE' | 'NODE_EXISTS' | 'BAD_VERSION' | 'NOT_EMPTY';

/** A ZooKeeper exception with `code`, as the server would send it (the in-memory fake throws these). */
export function zkError(code: ZkErrorCode, path: string): Error {
  return new zookeeper.Exception(zookeeper.Exception[code], code, path, zkError) as unknown as Error;
}

export const CreateMode = zookeeper.CreateMode;

export function isNoNode(err: unknown): boolean {
  return err instanceof zookeeper.Exception && err.getCode() === zookeeper.Exception.NO_NODE;
}

/** The znode at `path` decoded, or undefined when there is none; other errors are thrown. */
export async function readZnode<T>(zk: Pick<ZkStore, 'getData'>, path: string, decode: (data: Buffer | undefined) => T): Promise<T | undefined> {
  try {
    return decode((await zk.getData(path)).data);
  } catch (err) {
    if (isNoNode(err)) return undefined;
    throw err;
  }
}

export function isNodeExists(err: unknown): boolean {
  return err instanceof zookeeper.Exception && err.getCode() === zookeeper.Exception.NODE_EXISTS;
}

/** Whether the ZooKeeper server at host:port answers `ruok` with `imok` within `timeoutMs` (a stopped server accepts and never answers). */
export function zkRuok(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = net.connect({ host, port });
    let answer = '';
    const done = (v: boolean): void => {
      socket.destroy();
      resolve(v);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.on('connect', () => socket.write('ruok'));
    socket.on('data', (d) => (answer += d.toString()));
    socket.on('end', () => done(answer.includes('imok')));
    socket.on('error', () => done(false));
  });
}

/** Whether any server of a connect string (`h1:p1,h2:p2/chroot`) accepts a connection and answers `ruok` with `imok`. */
async function serverReachable(connect: string): Promise<boolean> {
  const hosts = connect.split('/')[0]?.split(',') ?? [];
  for (const hp of hosts) {
    const i = hp.lastIndexOf(':');
    const host = i > 0 ? hp.slice(0, i) : hp;
    const port = i > 0 ? Number(hp.slice(i + 1)) : 2181;
    if (await zkRuok(host, port)) return true;
  }
  return false;
}

/** An error the server sent (as opposed to a lost connection or session): proof of contact. */
function serverAnswered(err: unknown): boolean {
  if (!(err instanceof zookeeper.Exception)) return false;
  const code = err.getCode();
  return code !== zookeeper.Exception.CONNECTION_LOSS && code !== zookeeper.Exception.SESSION_EXPIRED && code !== zookeeper.Exception.OPERATION_TIMEOUT;
}

export function isBadVersion(err: unknown): boolean {
  return err instanceof zookeeper.Exception && err.getCode() === zookeeper.Exception.BAD_VERSION;
}

/**
 * Commits a transaction with its first ops' versions exactly as given. node-zookeeper-client's
 * Transaction turns version 0 into -1 (`version || -1`), which made a check of version 0
 * unconditional (found by tests/integration/coordination.test.ts).
 */
function commitAsGiven(t: zookeeper.Transaction, versions: readonly number[], cb: (err: Error | null, result: undefined) => void): void {
  const ops = (t as unknown as { ops: Array<{ version: number }> }).ops;
  versions.forEach((version, i) => {
    const op = ops[i];
    if (op) op.version = version;
  });
  t.commit((e) => cb((e as Error | null) ?? null, undefined));
}

/**
 * Events: `session` (a new session is up; `onSession` callbacks have run),
 * `reconnected` (the same session is back after a disconnection),
 * `expired` (the session was lost; ephemeral znodes are gone), `disconnected`.
 */
export class ZkSession extends EventEmitter implements ZkStore {
  private client: Client | undefined;
  private live = false;
  private closed = false;
  private readonly sessionCallbacks: Array<() => Promise<void>> = [];
  private readonly backoff = new Backoff(100, 2000);
  private disconnectedAt: number | undefined;
  private stuckTimer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  /** When the server last answered this process (a reply, or the session coming up). */
  private lastContactAt = 0;

  constructor(private readonly opts: ZkSessionOptions) {
    super();
  }

  /** Registers work to redo on every new session (first one included). */
  onSession(cb: () => Promise<void>): void {
    this.sessionCallbacks.push(cb);
  }

  get connected(): boolean {
    return this.live;
  }

  start(): void {
    this.closed = false;
    this.newClient();
    this.stuckTimer ??= setInterval(() => this.checkStuck(), 1000);
    this.stuckTimer.unref();
    // The client pings on an idle socket but never notices a server that stops answering on an open
    // one (a hung server, a dropped route). A request every third of the session timeout, whose answer
    // moves lastContactAt, gives an age that is true in every case (see common/fencing.ts).
    this.heartbeat ??= setInterval(() => {
      if (this.live) void this.exists('/').catch(() => undefined);
    }, Math.max(100, Math.floor(this.opts.sessionTimeoutMs / 3)));
    this.heartbeat.unref();
    // An ensemble: a server that stops answering on an open socket (SIGSTOPped, wedged) would keep this
    // client, and its session would expire at the leader, since its pings reach no one. Like the Java
    // client's read timeout, a connection unanswered for 2/3 of the session timeout is dropped; the client
    // then reconnects to the next server of the connect string within the same session.
    if (this.opts.connect.includes(',')) {
      this.silenceCheck ??= setInterval(() => this.dropSilentServer(), Math.max(50, Math.floor(this.opts.sessionTimeoutMs / 6)));
      this.silenceCheck.unref();
    }
  }

  private silenceCheck: NodeJS.Timeout | undefined;
  private droppedAt = 0;

  /** Drops the connection to a server that has not answered for 2/3 of the session timeout (an ensemble only). */
  private dropSilentServer(): void {
    const now = Date.now();
    const limitMs = Math.floor((2 * this.opts.sessionTimeoutMs) / 3);
    if (this.closed || !this.live || this.disconnectedAt !== undefined || this.contactAgeMs(now) <= limitMs) return;
    // One drop per silence: the reconnect (to the next server) moves lastContactAt.
    if (now - this.droppedAt < limitMs) return;
    const socket = (this.client as unknown as { connectionManager?: { socket?: net.Socket } } | undefined)?.connectionManager?.socket;
    if (!socket || socket.destroyed) return;
    this.droppedAt = now;
    this.opts.logger.warn({ silentMs: this.contactAgeMs(now) }, 'zookeeper server unanswered for 2/3 of the session timeout; reconnecting to the next server in the same session');
    socket.destroy();
  }

  /** Milliseconds since the server last answered (Infinity before the first session). */
  contactAgeMs(now = Date.now()): number {
    return this.lastContactAt === 0 ? Infinity : now - this.lastContactAt;
  }

  /**
   * A client that stays disconnected well past the session timeout is given up
   * on: by then the server has expired the session anyway, and a fresh client
   * reconnects where a stuck one may not.
   */
  private checkStuck(): void {
    if (this.closed) return;
    const quickMs = Math.max(6000, 3 * this.opts.sessionTimeoutMs);
    // Disconnected, or (the client never notices a server that stops answering on an open socket)
    // connected but unanswered for that long.
    const since = this.disconnectedAt ?? (this.live && this.contactAgeMs() > quickMs ? this.lastContactAt : undefined);
    if (since === undefined) return;
    const limitMs = this.opts.stuckAfterMs ?? quickMs;
    const age = Date.now() - since;
    if (age >= limitMs) {
      this.replaceClient('zookeeper client disconnected too long; starting a new session', age);
      return;
    }
    // Within the outage tolerance, but the server has answered again for a while (two session
    // timeouts, at least 3 s) while this client stayed disconnected: the client is stuck
    // (node-zookeeper-client does not always reconnect), and its session is gone. Start a new session
    // now rather than at the end of the tolerance (an orchestrator stuck so for 30 s was taken for gone
    // by another). A client that merely waits out a restart reconnects well within that, keeping its
    // session (replacing it then would drop its ephemeral znodes for nothing).
    if (age >= quickMs && !this.probing) {
      this.probing = true;
      void serverReachable(this.opts.connect)
        .then((up) => {
          if (!up) {
            this.reachableSince = undefined;
            return;
          }
          this.reachableSince ??= Date.now();
          const stillStuck = (this.disconnectedAt ?? (this.live && this.contactAgeMs() > quickMs ? this.lastContactAt : undefined)) === since;
          if (stillStuck && Date.now() - this.reachableSince >= Math.max(3000, 2 * this.opts.sessionTimeoutMs)) {
            this.replaceClient('zookeeper answers again but this client stayed disconnected; starting a new session', Date.now() - since);
          }
        })
        .finally(() => {
          this.probing = false;
        });
    }
  }

  private probing = false;
  /** Since when the server has answered `ruok` while this client stayed disconnected (or unanswered). */
  private reachableSince: number | undefined;

  private replaceClient(why: string, disconnectedMs: number): void {
    // The new client counts as disconnected until its session is up (sessionUp clears this): one that never gets
    // an answer (it connected to a server still starting after an outage) is given up on in turn. Found by fault
    // testing (session 6): with `undefined` here it had no disconnection to count from and was kept for good.
    this.disconnectedAt = Date.now();
    this.reachableSince = undefined;
    this.opts.logger.warn({ disconnectedMs }, why);
    this.live = false;
    this.emit('expired');
    this.client?.close();
    this.newClient();
  }

  async waitUntilConnected(timeoutMs: number): Promise<void> {
    await waitFor(
      () => (this.live ? true : undefined),
      timeoutMs,
      () => new Error(`no ZooKeeper session with ${this.opts.connect} after ${timeoutMs} ms`),
    );
  }

  private newClient(): void {
    if (this.closed) return;
    const client = zookeeper.createClient(this.opts.connect, {
      sessionTimeout: this.opts.sessionTimeoutMs,
      spinDelay: 200,
      retries: 0,
    });
    this.client = client;
    client.on('state', (state) => {
      if (this.client !== client) return;
      const S = zookeeper.State;
      if (state === S.SYNC_CONNECTED) {
        void this.sessionUp(client);
      } else if (state === S.DISCONNECTED) {
        this.disconnectedAt ??= Date.now();
        this.emit('disconnected');
      } else if (state === S.EXPIRED) {
        this.live = false;
        this.opts.logger.warn('zookeeper session expired; starting a new one');
        this.emit('expired');
        client.close();
        setTimeout(() => this.newClient(), this.backoff.next());
      }
    });
    client.connect();
  }

  private async sessionUp(client: Client): Promise<void> {
    this.disconnectedAt = undefined;
    this.reachableSince = undefined;
    this.lastContactAt = Date.now();
    if (this.live) {
      // Reconnected within the same session: ephemerals and watches are intact.
      this.emit('reconnected');
      return;
    }
    try {
      for (const cb of this.sessionCallbacks) await cb();
      if (this.client !== client) return;
      this.live = true;
      this.backoff.reset();
      this.emit('session');
    } catch (err) {
      this.opts.logger.warn({ err: (err as Error).message }, 'zookeeper session set-up failed; retrying');
      if (this.client === client) setTimeout(() => void this.sessionUp(client), this.backoff.next());
    }
  }

  /**
   * Runs one request on the current client. A request caught in a connection
   * loss may never be answered, so each has a watchdog: it fails after twice the
   * session timeout (at least 4 s) instead of hanging its caller.
   */
  private call<T>(fn: (client: Client, cb: (err: Error | null, value: T) => void) => void): Promise<T> {
    const client = this.client;
    if (!client) return Promise.reject(new Error('zookeeper client not started'));
    const limitMs = Math.max(4000, 2 * this.opts.sessionTimeoutMs);
    return new Promise<T>((resolve, reject) => {
      const watchdog = setTimeout(() => reject(new Error(`zookeeper request unanswered after ${limitMs} ms`)), limitMs);
      fn(client, (err, value) => {
        clearTimeout(watchdog);
        if (!err || serverAnswered(err)) this.lastContactAt = Date.now();
        if (err) reject(err);
        else resolve(value);
      });
    });
  }

  create(path: string, data: Buffer | null, mode: number): Promise<string> {
    return this.call<string>((c, cb) => c.create(path, data ?? Buffer.alloc(0), mode, (e, p) => cb(e as Error | null, p)));
  }

  mkdirp(path: string): Promise<string> {
    return this.call<string>((c, cb) => c.mkdirp(path, (e, p) => cb(e as Error | null, p)));
  }

  remove(path: string, version = -1): Promise<void> {
    return this.call<void>((c, cb) => c.remove(path, version, (e) => cb(e as Error | null, undefined)));
  }

  exists(path: string, watcher?: Watcher): Promise<Stat | null> {
    return this.call<Stat | null>((c, cb) => {
      const done = (e: unknown, stat: Stat): void => cb(e as Error | null, stat ?? null);
      if (watcher) c.exists(path, watcher, done);
      else c.exists(path, done);
    });
  }

  getData(path: string, watcher?: Watcher): Promise<{ data: Buffer | undefined; stat: Stat }> {
    return this.call((c, cb) => {
      const done = (e: unknown, data: Buffer, stat: Stat): void => cb(e as Error | null, { data: data ?? undefined, stat });
      if (watcher) c.getData(path, watcher, done);
      else c.getData(path, done);
    });
  }

  setData(path: string, data: Buffer, version = -1): Promise<Stat> {
    return this.call<Stat>((c, cb) => c.setData(path, data, version, (e, s) => cb(e as Error | null, s)));
  }

  /**
   * Sets `path` (at `version`) only if `guardPath` is still at `guardVersion`, in
   * one transaction: a fencing token. Rejects (BAD_VERSION) when either moved.
   */
  setDataGuarded(path: string, data: Buffer, version: number, guardPath: string, guardVersion: number): Promise<void> {
    return this.call<void>((c, cb) => commitAsGiven(c.transaction().check(guardPath, guardVersion).setData(path, data, version), [guardVersion, version], cb));
  }

  createCounted(path: string, data: Buffer | null, mode: number, counterPath: string, counterVersion: number): Promise<void> {
    return this.call<void>((c, cb) => commitAsGiven(c.transaction().setData(counterPath, Buffer.alloc(0), counterVersion).create(path, data ?? Buffer.alloc(0), mode), [counterVersion], cb));
  }

  getChildren(path: string, watcher?: Watcher): Promise<string[]> {
    return this.call<string[]>((c, cb) => {
      const done = (e: unknown, children: string[]): void => cb(e as Error | null, children ?? []);
      if (watcher) c.getChildren(path, watcher, done);
      else c.getChildren(path, done);
    });
  }

  /** The current session id as hex, to compare with a znode's ephemeralOwner. */
  sessionId(): string | undefined {
    return this.client?.getSessionId().toString('hex');
  }

  /** Closes the client; ephemeral znodes go at once. Idempotent. */
  close(): void {
    this.closed = true;
    if (this.stuckTimer) clearInterval(this.stuckTimer);
    this.stuckTimer = undefined;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    if (this.silenceCheck) clearInterval(this.silenceCheck);
    this.silenceCheck = undefined;
    this.live = false;
    this.client?.close();
    this.client = undefined;
  }
}
