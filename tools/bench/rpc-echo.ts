/**
 * The floor of the broker hop: a bare RabbitMQ RPC round trip (publish to a
 * queue, a consumer in another process answers through direct reply-to), with
 * the same settings as the real path (noDelay, manual ack, prefetch).
 *
 * Run as a process (`node rpc-echo.js <amqpUrl> <queue>`) it is the echo
 * consumer; {@link RpcEchoClient} is the caller.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Channel } from 'amqplib';
import { AmqpConnection } from '../../common/amqp-connection.js';
import { createLogger } from '../../common/logger.js';

const REPLY_TO = 'amq.rabbitmq.reply-to';
const PREFETCH = 32;

async function serve(url: string, queue: string): Promise<void> {
  const conn = new AmqpConnection({
    url,
    name: 'dbaas-bench-echo',
    logger: createLogger('bench-echo', 'warn'),
    setup: async (c) => {
      const ch = await c.createChannel();
      await ch.assertQueue(queue, { durable: false, autoDelete: true });
      await ch.prefetch(PREFETCH);
      await ch.consume(queue, (msg) => {
        if (!msg) return;
        const { replyTo, correlationId } = msg.properties as { replyTo?: string; correlationId?: string };
        if (replyTo) ch.publish('', replyTo, msg.content, { correlationId });
        ch.ack(msg);
      });
    },
  });
  conn.start();
  await conn.waitUntilReady(15_000);
  process.stdout.write('ready\n');
  process.on('SIGTERM', () => void conn.close().then(() => process.exit(0)));
}

/** Starts the echo consumer in its own process; resolves once it consumes. */
export async function startEchoServer(url: string, queue: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), url, queue], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the RPC echo server did not start')), 15_000);
    child.stdout?.on('data', (b: Buffer) => {
      if (b.toString().includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', () => reject(new Error('the RPC echo server exited')));
  });
  return child;
}

export class RpcEchoClient {
  private ch: Channel | undefined;
  private readonly pending = new Map<string, () => void>();
  private readonly conn: AmqpConnection;
  /** The broker's version, from the connection's server properties. */
  brokerVersion = 'unknown';

  constructor(
    url: string,
    private readonly queue: string,
  ) {
    this.conn = new AmqpConnection({
      url,
      name: 'dbaas-bench-client',
      logger: createLogger('bench-client', 'warn'),
      setup: async (c) => {
        const props = (c as unknown as { connection?: { serverProperties?: { version?: string } } }).connection?.serverProperties;
        this.brokerVersion = props?.version ?? 'unknown';
        const ch = await c.createChannel();
        await ch.consume(
          REPLY_TO,
          (msg) => {
            const id = msg?.properties.correlationId as string | undefined;
            const done = id === undefined ? undefined : this.pending.get(id);
            if (id !== undefined && done) {
              this.pending.delete(id);
              done();
            }
          },
          { noAck: true },
        );
        this.ch = ch;
      },
    });
  }

  async start(): Promise<void> {
    this.conn.start();
    await this.conn.waitUntilReady(15_000);
  }

  /** One round trip with `body`. */
  call(body: Buffer): Promise<void> {
    const ch = this.ch;
    if (!ch) return Promise.reject(new Error('not connected'));
    const correlationId = randomUUID();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(correlationId);
        reject(new Error('echo timeout'));
      }, 10_000);
      this.pending.set(correlationId, () => {
        clearTimeout(timer);
        resolve();
      });
      ch.publish('', this.queue, body, { correlationId, replyTo: REPLY_TO, contentType: 'application/json' });
    });
  }

  async close(): Promise<void> {
    await this.conn.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [url, queue] = process.argv.slice(2);
  if (!url || !queue) {
    process.stderr.write('usage: rpc-echo.js <amqpUrl> <queue>\n');
    process.exit(2);
  }
  serve(url, queue).catch((err: unknown) => {
    process.stderr.write(`rpc-echo: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
