/**
 * DBAAS_AMQP_URL as a list, against the real broker: the connection skips a
 * dead first URL, and when the broker it is connected to goes away it moves on
 * to the next URL of the list. The "node" that goes away is a TCP relay in
 * front of the local broker, so the test needs no second broker; no log line
 * shows the password.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AmqpConnection, connectToAny, SETUP_RETRY_MAX_MS } from '../../common/amqp-connection.js';
import { createLogger } from '../../common/logger.js';
import { freePort } from './infra.js';

const BROKER = { host: '127.0.0.1', port: 5672 };
const LIVE = 'amqp://guest:guest@127.0.0.1:5672';

/** A relay to the broker; `kill()` drops every connection through it and stops listening, as a SIGKILLed node would. */
async function relay(): Promise<{ port: number; kill: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(BROKER);
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    kill: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.resetAndDestroy();
      await closed;
    },
  };
}

function capturingLogger(): { logger: ReturnType<typeof createLogger>; lines: string[] } {
  const lines: string[] = [];
  return { lines, logger: createLogger('test-amqp-urls', 'info', {}, { write: (s: string) => void lines.push(s) }) };
}

let conn: AmqpConnection | undefined;
afterEach(async () => {
  await conn?.close();
  conn = undefined;
});

describe('AmqpConnection over a list of brokers', () => {
  it('skips a dead first URL and connects to the second', async () => {
    const dead = await freePort();
    const { logger, lines } = capturingLogger();
    let setups = 0;
    conn = new AmqpConnection({
      url: `amqp://guest:guest@127.0.0.1:${dead},${LIVE}`,
      name: 'test-url-list',
      logger,
      setup: async (c) => {
        setups++;
        const ch = await c.createChannel();
        await ch.close();
      },
    });
    const t0 = Date.now();
    conn.start();
    await conn.waitUntilReady(5000);
    const tookMs = Date.now() - t0;
    expect(conn.broker).toBe('amqp://guest:***@127.0.0.1:5672');
    expect(setups).toBe(1);
    // One refused attempt and one backoff delay (≤ 100 ms at first), nothing like a heartbeat or connect timeout.
    expect(tookMs).toBeLessThan(2000);
    expect(lines.some((l) => l.includes('amqp connect failed') && l.includes(`127.0.0.1:${dead}`))).toBe(true);
    expect(lines.join('')).not.toContain('guest:guest');
  });

  it('moves on to the next URL when the broker it is connected to goes away, and runs setup again there', async () => {
    const first = await relay();
    const { logger, lines } = capturingLogger();
    const ups: boolean[] = [];
    const downs: string[] = [];
    conn = new AmqpConnection({
      url: `amqp://guest:guest@127.0.0.1:${first.port},${LIVE}`,
      name: 'test-url-list-loss',
      logger,
      setup: async (c) => {
        const ch = await c.createChannel();
        await ch.close();
      },
      onUp: (reconnect) => ups.push(reconnect),
      onDown: (reason) => downs.push(reason),
    });
    conn.start();
    await conn.waitUntilReady(5000);
    expect(conn.broker).toBe(`amqp://guest:***@127.0.0.1:${first.port}`);
    const lostAt = Date.now();
    await first.kill();
    // The relay no longer listens: reconnecting there would fail; the next URL is the live broker.
    await expect.poll(() => ups.length, { timeout: 5000, interval: 20 }).toBe(2);
    const backMs = Date.now() - lostAt;
    expect(ups).toEqual([false, true]);
    expect(downs).toHaveLength(1);
    expect(conn.broker).toBe('amqp://guest:***@127.0.0.1:5672');
    expect(backMs).toBeLessThan(1000);
    expect(lines.some((l) => l.includes('amqp connection lost') && l.includes('127.0.0.1:5672'))).toBe(true);
    expect(lines.join('')).not.toContain('guest:guest');
  });

  it('a broker that accepts the connection but whose set-up fails (a quorum queue electing) is tried again soon, not left for the next URL', async () => {
    const dead = await freePort();
    const { logger, lines } = capturingLogger();
    const setupAt: number[] = [];
    conn = new AmqpConnection({
      url: `${LIVE},amqp://guest:guest@127.0.0.1:${dead}`,
      name: 'test-url-list-setup',
      logger,
      setup: async (c) => {
        setupAt.push(Date.now());
        const ch = await c.createChannel();
        await ch.close();
        // As the master's re-publish of a sync entry nacked while the queue elects its leader.
        if (setupAt.length <= 4) throw new Error('the broker did not confirm the sync entry');
      },
    });
    const t0 = Date.now();
    conn.start();
    await conn.waitUntilReady(10_000);
    expect(setupAt).toHaveLength(5);
    expect(conn.broker).toBe('amqp://guest:***@127.0.0.1:5672');
    // Never to the dead URL, and never a wait longer than the set-up retry cap (plus the connect itself).
    expect(lines.some((l) => l.includes(`127.0.0.1:${dead}`) && l.includes('amqp connect failed'))).toBe(false);
    expect(lines.filter((l) => l.includes('amqp set-up failed'))).toHaveLength(4);
    for (let i = 1; i < setupAt.length; i++) expect(setupAt[i]! - setupAt[i - 1]!).toBeLessThan(SETUP_RETRY_MAX_MS + 600);
    expect(Date.now() - t0).toBeLessThan(4000);
  });

  it('connectToAny (teardown, tools) takes the first broker that answers, and names every one it tried when none does', async () => {
    const dead1 = await freePort();
    const c = await connectToAny(`amqp://guest:guest@127.0.0.1:${dead1},${LIVE}`, 'test-connect-any');
    await c.close();
    const dead2 = await freePort();
    const err = await connectToAny(`amqp://guest:secretpw@127.0.0.1:${dead1},amqp://guest:secretpw@127.0.0.1:${dead2}`, 'test-connect-any').catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain(`127.0.0.1:${dead1}, 127.0.0.1:${dead2}`);
    expect((err as Error).message).not.toContain('secretpw');
  });
});
