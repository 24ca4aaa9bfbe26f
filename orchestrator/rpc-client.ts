/**
 * The orchestrator's RPC client over RabbitMQ: one long-lived connection, one
 * channel, replies through direct reply-to matched by correlation id.
 *
 * Every call has a deadline (504 DBAAS_RPC_TIMEOUT). While the broker is away
 * calls fail at once with 503 DBAAS_BROKER_UNAVAILABLE, and calls in flight when
 * the connection drops fail the same way: none hangs. On a RabbitMQ cluster
 * (DBAAS_PLATFORM=ha) writes and reads are the exception: a node's loss costs
 * one reconnect to the next node (~0.1-0.3 s), so they are held, and published
 * again on the next connection, for at most {@link HOLD_MS} (then 503): a write
 * carries its requestId (the master answers a second copy from its ledger, as
 * it does a client's retry) and a read changes nothing. A 503 there would have
 * cost the client its retry delay on top (Retry-After: 1 s).
 */
import { randomBytes } from 'node:crypto';
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import { AmqpConnection } from '../common/amqp-connection.js';
import { DbaasError, type ErrorCode } from '../common/errors.js';
import { REQ_ID_HEADER, type Logger } from '../common/logger.js';
import { decodeReply, encode, rawResult } from '../common/messages.js';
import { HINT_HEADER } from '../common/hints.js';
import type { ClusterNames } from '../common/names.js';
import { assertTopology, removeLegacyDeadLetterQueue, type TopologySettings } from '../common/topology.js';

const REPLY_TO = 'amq.rabbitmq.reply-to';

/** How long a write or read waits for the next connection on a cluster before it fails with 503. */
export const HOLD_MS = 2000;

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: DbaasError) => void;
  timer: NodeJS.Timeout;
  raw: boolean;
  /** A call that may be published again on the next connection (HA writes and reads), with what it publishes. */
  resend?: { queue: string; content: Buffer; options: Options.Publish; deadline: number };
  /** Set while the call waits for a connection: fails it with 503 at {@link HOLD_MS}. */
  hold?: NodeJS.Timeout;
  /** Nacked on its channel: to be published again on the next one. */
  nacked?: boolean;
}

/** How long after a nack a fresh channel is opened (a quorum queue's election takes 0.3-2 s). */
const RENEW_DELAY_MS = 100;

/**
 * A worker's result as the JSON text it sent, not parsed: the orchestrator can
 * send it on as an HTTP body (`reply.type('application/json').send(r.json)`)
 * without decoding and encoding it again (a 10,000-document read: about 15 ms
 * and the parsed copy's memory). Serialised as a value, it still gives the right JSON.
 */
export class RawJson {
  /** `hint`: the worker's note on the answer (common/hints.ts), passed on as an HTTP header. */
  constructor(
    readonly json: string,
    readonly hint?: string,
  ) {}

  toJSON(): unknown {
    return JSON.parse(this.json);
  }
}

export interface CallOptions {
  timeoutMs: number;
  /** Survives a broker restart (writes). */
  persistent?: boolean;
  /** The error for a timeout; DBAAS_RPC_TIMEOUT by default. */
  timeoutCode?: ErrorCode;
  /** Resolve with a {@link RawJson} (the result's JSON text, unparsed) instead of the parsed result. */
  raw?: boolean;
  /** The HTTP request id, sent along (header {@link REQ_ID_HEADER}) for the worker's log line. */
  reqId?: string;
}

/** Optional instrumentation (metrics). Nothing on the request path depends on it; it must not throw. */
export interface RpcObserver {
  /** Once per call, when it settles: how long it took, and the error code when it failed. */
  call?(queue: string, ms: number, errorCode: string | undefined): void;
  /** Each time the broker connection is up again; `reconnect` is false the first time. */
  connected?(reconnect: boolean): void;
  disconnected?(reason: string): void;
}

export class RpcClient {
  private readonly amqp: AmqpConnection;
  private channel: Channel | undefined;
  private readonly pending = new Map<string, Pending>();
  /**
   * Correlation ids: a per-process random prefix and a counter. Replies are matched
   * only by this client, so unique within its life is enough, and a counter costs
   * nothing per call where a UUID needs the crypto module.
   */
  private readonly idPrefix = `${randomBytes(6).toString('base64url')}.`;
  private nextId = 0;
  /** Where workers send their replies: direct reply-to, or on the HA platform a queue of this connection's own (see setup). */
  private replyTo = REPLY_TO;
  /** Set by whoever wants call timings and connection events (the metrics). */
  observer: RpcObserver | undefined;
  private legacyChecked = false;
  /** A fresh channel is being opened after a nack (renewChannel). */
  private renewing = false;

  constructor(
    url: string,
    private readonly names: ClusterNames,
    private readonly logger: Logger,
    private readonly topology: TopologySettings,
  ) {
    this.amqp = new AmqpConnection({
      url,
      name: 'dbaas-orchestrator',
      logger,
      setup: (conn) => this.setup(conn),
      onDown: (reason) => {
        this.failAll(true);
        this.observer?.disconnected?.(reason);
      },
      onUp: (reconnect) => this.observer?.connected?.(reconnect),
    });
  }

  start(): void {
    this.amqp.start();
  }

  waitUntilReady(timeoutMs: number): Promise<void> {
    return this.amqp.waitUntilReady(timeoutMs);
  }

  get connected(): boolean {
    return this.amqp.connected && this.channel !== undefined;
  }

  private async setup(conn: ChannelModel): Promise<void> {
    await assertTopology(conn, this.names, this.topology, (queue, why) => this.logger.warn({ queue, why }, 'queue kept with the arguments it was declared with'));
    if (!this.legacyChecked) {
      // Once per process: the dead-letter queue of older versions also kept every expired request.
      this.legacyChecked = true;
      const dropped = await removeLegacyDeadLetterQueue(conn, this.names);
      if (dropped > 0) this.logger.info({ queue: this.names.legacyDeadLetterQueue, dropped }, 'removed the dead-letter queue of an older version');
    }
    // On a RabbitMQ cluster (DBAAS_PLATFORM=ha) a request may outlive the node its caller was connected
    // to: a write redelivered to the master after that node died still names the old caller. RabbitMQ
    // 3.10 fails a reply to a direct reply-to address of a node that is down by closing the replying
    // worker's whole connection (rabbit_channel:deliver_reply, case_clause), and the unacked write
    // comes back and does it again until it expires: the master took no writes for the request
    // timeout (measured: 7-8.5 s pauses). A reply to a server-named exclusive queue that died with its
    // node is merely unroutable, so there the replies come through such a queue (declared again on
    // every connection, on that connection's node).
    const ch = await this.openChannel(conn);
    this.replyTo = this.topology.platform === 'ha' ? (await ch.assertQueue('', { exclusive: true, autoDelete: true, durable: false })).queue : REPLY_TO;
    await ch.consume(this.replyTo, (msg) => this.onReply(msg), { noAck: true });
    this.channel = ch;
    this.renewing = false;
    // Writes and reads held since the last connection went: published again, answered to the new reply queue.
    const resent = this.publishHeld(ch, (p) => p.resend !== undefined);
    if (resent > 0) this.logger.info({ calls: resent }, 'calls held while reconnecting published again');
  }

  /**
   * The RPC channel: on a cluster a confirm channel. A channel whose first
   * publish to a quorum queue comes while that queue is electing its leader
   * after a node died keeps the dead leader: without confirms those publishes
   * vanish (the write waited for its caller's timeout: the 3 s pauses of the
   * 10-kill run), with confirms they are nacked. A nacked write or read is
   * published again on a fresh channel ({@link renewChannel}).
   */
  private async openChannel(conn: ChannelModel): Promise<Channel> {
    const ch = this.topology.platform === 'ha' ? await conn.createConfirmChannel() : await conn.createChannel();
    ch.on('close', () => {
      if (this.channel === ch) {
        this.channel = undefined;
        this.failAll(true);
      }
    });
    ch.on('error', (err: Error) => this.logger.warn({ err: err.message }, 'rpc channel error'));
    return ch;
  }

  private onReply(msg: ConsumeMessage | null): void {
    if (!msg) return;
    const id = msg.properties.correlationId as string | undefined;
    const waiting = id === undefined ? undefined : this.pending.get(id);
    if (!waiting || id === undefined) return; // late reply to a call that already timed out
    this.pending.delete(id);
    clearTimeout(waiting.timer);
    clearTimeout(waiting.hold);
    const raw = waiting.raw ? rawResult(msg.content) : undefined;
    if (raw !== undefined) {
      const hint: unknown = (msg.properties.headers as Record<string, unknown> | undefined)?.[HINT_HEADER];
      waiting.resolve(new RawJson(raw, typeof hint === 'string' ? hint : undefined));
      return;
    }
    const reply = decodeReply(msg.content);
    if (!reply) waiting.reject(new DbaasError('DBAAS_SERVER_INTERNAL', 'the worker sent an unreadable reply'));
    else if (reply.ok) waiting.resolve(reply.result);
    else waiting.reject(DbaasError.fromWire(reply.error));
  }

  /** Publishes one call; on a cluster with a confirm callback, which hands a nacked one to {@link nacked}. */
  private publishCall(ch: Channel, correlationId: string, queue: string, content: Buffer, options: Options.Publish): void {
    const all = { ...options, correlationId, replyTo: this.replyTo };
    if (this.topology.platform !== 'ha') {
      ch.publish('', queue, content, all);
      return;
    }
    (ch as ConfirmChannel).publish('', queue, content, all, (err) => {
      if (err) this.nacked(ch, correlationId);
    });
  }

  /** Publishes again, on `ch`, every pending call `which` picks (held or nacked); returns how many. */
  private publishHeld(ch: Channel, which: (p: Pending) => boolean): number {
    let n = 0;
    for (const [correlationId, p] of this.pending) {
      if (!p.resend || !which(p)) continue;
      clearTimeout(p.hold);
      p.hold = undefined;
      p.nacked = false;
      // A request nobody took before its caller gave up is dropped, not run late.
      const remaining = Math.max(1, Math.round(p.resend.deadline - performance.now()));
      this.publishCall(ch, correlationId, p.resend.queue, p.resend.content, { ...p.resend.options, expiration: String(remaining) });
      n++;
    }
    return n;
  }

  /**
   * A publish nacked (or its channel closed before the confirm): a write or read
   * waits (HOLD_MS at most) for a fresh channel, anything else fails with 503.
   */
  private nacked(ch: Channel, correlationId: string): void {
    const p = this.pending.get(correlationId);
    if (!p) return;
    if (!p.resend) {
      this.fail(correlationId, 'the broker did not take the request (nack)');
      return;
    }
    p.nacked = true;
    p.hold ??= setTimeout(() => this.fail(correlationId, 'the broker kept refusing the request (nack) for the hold time'), HOLD_MS);
    if (ch === this.channel) this.renewChannel(ch);
    else if (this.channel && !this.renewing) this.publishHeld(this.channel, (x) => x.nacked === true);
  }

  /**
   * Replaces a channel that had a publish nacked by a fresh one on the same
   * connection, RENEW_DELAY_MS later (the election it met is then further on;
   * a fresh channel that meets it again is renewed again), moves the reply
   * consumer to it and publishes the nacked calls there.
   */
  private renewChannel(old: Channel): void {
    if (this.renewing) return;
    this.renewing = true;
    setTimeout(() => {
      void (async () => {
        const conn = this.amqp.connection;
        if (!conn || this.channel !== old) return;
        const ch = await this.openChannel(conn);
        await ch.consume(this.replyTo, (msg) => this.onReply(msg), { noAck: true });
        if (this.channel !== old) {
          await ch.close().catch(() => undefined);
          return;
        }
        this.channel = ch;
        this.renewing = false;
        const n = this.publishHeld(ch, (p) => p.nacked === true);
        this.logger.info({ calls: n }, 'a publish was nacked (a quorum queue electing its leader?): published again on a fresh channel');
        await old.close().catch(() => undefined);
      })()
        .catch((err: unknown) => this.logger.warn({ err: (err as Error).message }, 'could not open a fresh rpc channel; the next connection will'))
        .finally(() => {
          this.renewing = false;
        });
    }, RENEW_DELAY_MS);
  }

  /**
   * The connection or channel went: every call fails with 503, except (with
   * `hold`, on a cluster) writes and reads, which wait up to HOLD_MS for the
   * next connection (setup publishes them again).
   */
  private failAll(hold = false): void {
    this.channel = undefined;
    for (const [id, p] of this.pending) {
      if (hold && p.resend) {
        p.hold ??= setTimeout(() => this.fail(id, 'no connection to the broker came back within the hold time'), HOLD_MS);
        continue;
      }
      this.fail(id, 'the connection to the broker was lost before the answer came; a write may or may not have been applied: retry it with the same requestId');
    }
  }

  private fail(id: string, message: string): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    clearTimeout(p.hold);
    p.reject(new DbaasError('DBAAS_BROKER_UNAVAILABLE', message));
  }

  /** Sends `body` to `queue` and resolves with the worker's result, or rejects with a DbaasError. */
  call<T>(queue: string, body: unknown, opts: CallOptions): Promise<T> {
    const observe = this.observer?.call;
    if (!observe) return this.send<T>(queue, body, opts);
    const started = performance.now();
    const result = this.send<T>(queue, body, opts);
    void result.then(
      () => observe(queue, performance.now() - started, undefined),
      (err: DbaasError) => observe(queue, performance.now() - started, err.code),
    );
    return result;
  }

  private send<T>(queue: string, body: unknown, opts: CallOptions): Promise<T> {
    const ch = this.channel;
    const connected = ch !== undefined && this.amqp.connected;
    // On a cluster, writes and reads outlive a lost connection (see the head of this file).
    const resendable = this.topology.platform === 'ha' && (queue === this.names.writeQueue || queue === this.names.readQueue);
    if (!connected && !resendable) return Promise.reject(new DbaasError('DBAAS_BROKER_UNAVAILABLE'));
    const correlationId = this.idPrefix + (this.nextId++).toString(36);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        const p = this.pending.get(correlationId);
        clearTimeout(p?.hold);
        this.pending.delete(correlationId);
        reject(new DbaasError(opts.timeoutCode ?? 'DBAAS_RPC_TIMEOUT', `no answer from ${queue} within ${opts.timeoutMs} ms`));
      }, opts.timeoutMs);
      const content = encode(body);
      const options: Options.Publish = {
        persistent: opts.persistent ?? false,
        contentType: 'application/json',
        ...(opts.reqId === undefined ? {} : { headers: { [REQ_ID_HEADER]: opts.reqId } }),
      };
      const pending: Pending = { resolve: resolve as (v: unknown) => void, reject, timer, raw: opts.raw === true };
      if (resendable) pending.resend = { queue, content, options, deadline: performance.now() + opts.timeoutMs };
      this.pending.set(correlationId, pending);
      if (!connected) {
        // Held until setup publishes it on the next connection, or HOLD_MS.
        pending.hold = setTimeout(() => this.fail(correlationId, 'no connection to the broker came back within the hold time'), HOLD_MS);
        return;
      }
      try {
        // A request nobody took before its caller gave up is dropped, not run late.
        this.publishCall(ch, correlationId, queue, content, { ...options, expiration: String(opts.timeoutMs) });
      } catch {
        if (resendable) {
          pending.hold = setTimeout(() => this.fail(correlationId, 'no connection to the broker came back within the hold time'), HOLD_MS);
          return;
        }
        this.fail(correlationId, 'the broker connection closed before the request was sent');
      }
    });
  }

  /**
   * Runs a queue-management call on a throwaway channel: a failing check or
   * delete closes its channel, and that must not be the RPC channel. Rejects
   * with DBAAS_BROKER_UNAVAILABLE without a broker connection.
   */
  async withChannel<T>(fn: (ch: Channel) => Promise<T>): Promise<T> {
    const conn = this.amqp.connection;
    if (!conn) throw new DbaasError('DBAAS_BROKER_UNAVAILABLE');
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    try {
      return await fn(ch);
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  /** Messages waiting in a queue and its consumers (for metrics); rejects when the queue does not exist. */
  async queueStats(queue: string): Promise<{ messageCount: number; consumerCount: number }> {
    return this.withChannel((ch) => ch.checkQueue(queue));
  }

  /**
   * A queue of this orchestrator's own for one stream of messages (a backup,
   * issue 20): declared (it expires `expiresMs` after its last use, should this
   * process die), consumed in order, each message acked once `onMessage` is done
   * with it, so a slow reader holds the stream back in the broker, not in memory.
   * `close()` deletes the queue.
   */
  async openStream(queue: string, expiresMs: number, onMessage: (content: Buffer) => Promise<void>): Promise<{ close(): Promise<void> }> {
    const conn = this.amqp.connection;
    if (!conn) throw new DbaasError('DBAAS_BROKER_UNAVAILABLE');
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    await ch.assertQueue(queue, { durable: false, autoDelete: false, arguments: { 'x-expires': expiresMs } });
    await ch.prefetch(4);
    let chain = Promise.resolve();
    await ch.consume(queue, (msg) => {
      if (!msg) return;
      chain = chain.then(async () => {
        await onMessage(msg.content).catch(() => undefined);
        try {
          ch.ack(msg);
        } catch {
          // closed meanwhile
        }
      });
    });
    return {
      close: async () => {
        await ch.deleteQueue(queue).catch(() => undefined);
        await ch.close().catch(() => undefined);
      },
    };
  }

  /** Deletes a queue that belonged to a worker gone for good. */
  async deleteQueue(queue: string): Promise<void> {
    await this.withChannel((ch) => ch.deleteQueue(queue));
  }

  async close(): Promise<void> {
    this.failAll();
    await this.amqp.close();
  }
}
