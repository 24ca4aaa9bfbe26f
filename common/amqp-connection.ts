/**
 * One long-lived RabbitMQ connection per process, reconnected with capped backoff.
 *
 * The owner gives a `setup` callback that opens its channels and consumers on a
 * fresh connection; it runs on the first connect and again after every reconnect.
 * Nothing else in the code base calls `amqp.connect`.
 */
import type { Writable } from 'node:stream';
import amqp, { type ChannelModel } from 'amqplib';
import { Backoff, waitFor } from './backoff.js';
import { DbaasError } from './errors.js';
import type { Logger } from './logger.js';

export interface AmqpConnectionOptions {
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
}

export class AmqpConnection {
  private conn: ChannelModel | undefined;
  private closed = false;
  private connecting = false;
  private everConnected = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly backoff = new Backoff(100, 3000);

  constructor(private readonly opts: AmqpConnectionOptions) {}

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

  private withHeartbeat(url: string): string {
    if (/[?&]heartbeat=/.test(url)) return url;
    return `${url}${url.includes('?') ? '&' : '?'}heartbeat=${this.opts.heartbeatSec ?? 5}`;
  }

  private async connect(): Promise<void> {
    if (this.closed || this.connecting || this.conn) return;
    this.connecting = true;
    const log = this.opts.logger;
    let conn: ChannelModel | undefined;
    try {
      conn = await amqp.connect(this.withHeartbeat(this.opts.url), {
        noDelay: true,
        clientProperties: { connection_name: this.opts.name },
      });
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
      log.info('amqp connected');
      this.opts.onUp?.(this.everConnected);
      this.everConnected = true;
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'amqp connect failed; retrying');
      if (conn) await conn.close().catch(() => undefined);
      this.schedule();
    } finally {
      this.connecting = false;
    }
  }

  private lost(conn: ChannelModel | undefined, reason: string): void {
    if (this.conn !== conn || conn === undefined) return;
    this.conn = undefined;
    this.opts.logger.warn({ reason }, 'amqp connection lost; reconnecting');
    this.opts.onDown?.(reason);
    this.schedule();
  }

  private schedule(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.connect();
    }, this.backoff.next());
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
