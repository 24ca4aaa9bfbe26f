/**
 * One long-lived RabbitMQ connection per process, reconnected with capped backoff.
 *
 * The owner gives a `setup` callback that opens its channels and consumers on a
 * fresh connection; it runs on the first connect and again after every reconnect.
 * Nothing else in the service calls `amqp.connect` (teardown's one-off
 * connection goes through {@link connectToAny}).
 *
 * `url` may list several brokers, comma-separated (the nodes of a cluster,
 * common/amqp-urls.ts). The first is tried first; when a connection attempt
 * fails, or an established connection is lost, the next one is tried (wrapping
 * around) after the usual backoff delay, which restarts from its shortest delay
 * after every successful connect: a lost node costs one short delay, not a pass
 * through the dead one. A broker that accepted the connection but whose `setup`
 * failed is alive: it is tried again after a short delay (at most
 * {@link SETUP_RETRY_MAX_MS}), and the next one only after
 * {@link SETUP_FAILURES_BEFORE_NEXT} such failures in a row. Logs name the broker
 * by host and port, never with its password.
 */
import type { Writable } from 'node:stream';
import amqp, { type ChannelModel } from 'amqplib';
import { amqpHosts, nextUrlIndex, parseAmqpUrls, redactAmqpUrl } from './amqp-urls.js';
import { Backoff, waitFor } from './backoff.js';
import { DbaasError } from './errors.js';
import type { Logger } from './logger.js';

export interface AmqpConnectionOptions {
  /** One amqp:// URL, or several separated by commas (tried in turn). */
  url: string;
  /** Shown in the RabbitMQ management UI as the connection name. */
  name: string;
  logger: Logger;
  /** Opens channels and consumers on a new connection. Throwing closes it and retries. */
  setup: (conn: ChannelModel) => Promise<void>;
  /** Called once each time an established connection is lost. */
  onDown?: (reason: string) => void;
  /** Called each time a connection is established and set up; `reconnect` is false the first time. */
  onUp?: (reconnect: boolean) => void;
  heartbeatSec?: number;
  /** How long one connection attempt may take before the next URL is tried (default 5000). */
  connectTimeoutMs?: number;
}

/** Socket options of every connection: no Nagle delay (docs/DESIGN.md), a bounded connect. */
function socketOptions(name: string, connectTimeoutMs: number): Record<string, unknown> {
  return { noDelay: true, timeout: connectTimeoutMs, clientProperties: { connection_name: name } };
}

function withHeartbeat(url: string, heartbeatSec: number): string {
  if (/[?&]heartbeat=/.test(url)) return url;
  return `${url}${url.includes('?') ? '&' : '?'}heartbeat=${heartbeatSec}`;
}

/**
 * One connection to the first broker of the list that accepts one (in list
 * order), for short-lived work such as a teardown. Throws the last error, its
 * message prefixed with the brokers tried (host:port, no password), when none does.
 */
export async function connectToAny(list: string, name: string, connectTimeoutMs = 5000): Promise<ChannelModel> {
  const urls = parseAmqpUrls(list);
  let last: Error | undefined;
  for (const url of urls) {
    try {
      return await amqp.connect(url, socketOptions(name, connectTimeoutMs));
    } catch (err) {
      last = err as Error;
    }
  }
  throw new Error(`no RabbitMQ broker of ${amqpHosts(list).join(', ') || '(none)'} accepted a connection: ${last?.message ?? 'no URL given'}`);
}

/**
 * A set-up that fails on a connected broker: on a RabbitMQ cluster right after a
 * node died, typically a quorum queue still electing its new leader (a publish to
 * it on a channel opened meanwhile is nacked; the master's re-publish of its
 * unconfirmed sync entries in setup is). The node is fine and the election takes
 * 0.3-2 s: retrying it at a short, capped interval resumes soon after the
 * election, where the connection backoff (doubling to 3 s, and moving on to the
 * next broker each time, the dead one included) had made a 0.7 s election cost
 * up to 3.7 s of writes (docs/FAILOVER.md).
 */
export const SETUP_RETRY_MAX_MS = 400;
export const SETUP_FAILURES_BEFORE_NEXT = 8;

export class AmqpConnection {
  private conn: ChannelModel | undefined;
  private closed = false;
  private connecting = false;
  private everConnected = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly backoff = new Backoff(100, 3000);
  private readonly setupBackoff = new Backoff(100, SETUP_RETRY_MAX_MS);
  /** Set-ups that failed in a row on the broker at `urlIndex` (which accepted the connection each time). */
  private setupFailures = 0;
  private readonly urls: readonly string[];
  /** Index in `urls` of the broker tried next (or connected to now). */
  private urlIndex = 0;

  constructor(private readonly opts: AmqpConnectionOptions) {
    this.urls = parseAmqpUrls(opts.url);
    if (this.urls.length === 0) throw new Error('AmqpConnection: no broker URL given');
  }

  /** The broker connected to (or tried next), without its password. */
  get broker(): string {
    return redactAmqpUrl(this.urls[this.urlIndex] ?? '');
  }

  /** Starts connecting in the background; never throws. */
  start(): void {
    this.closed = false;
    void this.connect();
  }

  get connected(): boolean {
    return this.conn !== undefined;
  }

  get connection(): ChannelModel | undefined {
    return this.conn;
  }

  /** Resolves once connected and set up; rejects with DBAAS_BROKER_UNAVAILABLE after `timeoutMs`. */
  async waitUntilReady(timeoutMs: number): Promise<void> {
    await waitFor(
      () => (this.conn ? true : undefined),
      timeoutMs,
      () => new DbaasError('DBAAS_BROKER_UNAVAILABLE', `no connection to RabbitMQ after ${timeoutMs} ms`),
    );
  }

  private async connect(): Promise<void> {
    if (this.closed || this.connecting || this.conn) return;
    this.connecting = true;
    const log = this.opts.logger;
    let conn: ChannelModel | undefined;
    const url = this.urls[this.urlIndex] ?? '';
    const broker = redactAmqpUrl(url);
    let accepted = false;
    try {
      conn = await amqp.connect(withHeartbeat(url, this.opts.heartbeatSec ?? 5), socketOptions(this.opts.name, this.opts.connectTimeoutMs ?? 5000));
      accepted = true;
      coalesceWrites(conn);
      // An error without a close would leave us half-connected; amqplib emits close after error.
      conn.on('error', (err: Error) => log.warn({ err: err.message }, 'amqp connection error'));
      conn.on('close', () => this.lost(conn, 'connection closed'));
      await this.opts.setup(conn);
      if (this.closed) {
        await conn.close().catch(() => undefined);
        return;
      }
      this.conn = conn;
      this.backoff.reset();
      this.setupBackoff.reset();
      this.setupFailures = 0;
      log.info({ broker }, 'amqp connected');
      this.opts.onUp?.(this.everConnected);
      this.everConnected = true;
    } catch (err) {
      // Refused or unreachable: the next broker. Accepted but set-up failed: this one again, soon (SETUP_RETRY_MAX_MS).
      const again = accepted && ++this.setupFailures < SETUP_FAILURES_BEFORE_NEXT;
      if (!again) {
        this.setupFailures = 0;
        this.urlIndex = nextUrlIndex(this.urlIndex, this.urls.length);
      }
      log.warn({ err: (err as Error).message, broker, next: this.broker }, accepted ? 'amqp set-up failed; retrying' : 'amqp connect failed; retrying');
      if (conn) await conn.close().catch(() => undefined);
      this.schedule(again ? this.setupBackoff.next() : undefined);
    } finally {
      this.connecting = false;
    }
  }

  private lost(conn: ChannelModel | undefined, reason: string): void {
    if (this.conn !== conn || conn === undefined) return;
    this.conn = undefined;
    const broker = this.broker;
    // The node may be gone for good: the next attempt goes to the next broker of the list.
    this.urlIndex = nextUrlIndex(this.urlIndex, this.urls.length);
    this.opts.logger.warn({ reason, broker, next: this.broker }, 'amqp connection lost; reconnecting');
    this.opts.onDown?.(reason);
    this.schedule();
  }

  private schedule(delayMs = this.backoff.next()): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.connect();
    }, delayMs);
  }

  /** Closes the connection and stops reconnecting. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const conn = this.conn;
    this.conn = undefined;
    if (conn) await conn.close().catch(() => undefined);
  }
}

/**
 * amqplib hands each group of frames to the socket with a write of its own:
 * one system call, and one wake-up of the broker over loopback, per group. A
 * slave answering a read writes twice (the reply, then the ack); the
 * orchestrator writes once per request even when many arrive together.
 *
 * This corks the connection's socket at the first write of a tick and uncorks
 * it on the next tick, so that everything written meanwhile leaves in one
 * `writev`. Frame order is unchanged and nothing waits longer than the current
 * tick. (Measured: a slave's CPU per read, see docs/BENCHMARKS.md.)
 */
export function coalesceWrites(conn: ChannelModel): void {
  const stream = (conn as unknown as { connection?: { stream?: Writable } }).connection?.stream;
  if (!stream || typeof stream.cork !== 'function') return;
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  let corked = false;
  const uncork = (): void => {
    corked = false;
    stream.uncork();
  };
  stream.write = ((...args: unknown[]): boolean => {
    if (!corked) {
      corked = true;
      stream.cork();
      process.nextTick(uncork);
    }
    return write(...args);
  }) as Writable['write'];
}
