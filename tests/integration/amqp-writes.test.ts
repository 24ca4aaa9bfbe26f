/**
 * The AMQP connection hands everything written in one tick to the socket as
 * one write (coalesceWrites): checked on a real connection, since it relies on
 * where amqplib keeps its socket.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Channel } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AmqpConnection } from '../../common/amqp-connection.js';
import { createLogger } from '../../common/logger.js';

const queue = `t-${randomBytes(4).toString('hex')}.coalesce`;
let amqp: AmqpConnection;
let ch: Channel;

beforeAll(async () => {
  amqp = new AmqpConnection({
    url: 'amqp://guest:guest@127.0.0.1:5672',
    name: 'test-coalesce',
    logger: createLogger('test-amqp', 'warn'),
    setup: async (conn) => {
      ch = await conn.createChannel();
      await ch.assertQueue(queue, { exclusive: true });
    },
  });
  amqp.start();
  await amqp.waitUntilReady(10_000);
});

afterAll(async () => {
  await amqp?.close();
});

describe('AMQP socket writes', () => {
  it('frames written in one tick leave in one socket write, in order', async () => {
    const got: string[] = [];
    let allIn: () => void = () => undefined;
    const arrived = new Promise<void>((resolve) => (allIn = resolve));
    await ch.consume(queue, (msg) => {
      if (!msg) return;
      got.push(msg.content.toString());
      ch.ack(msg);
      if (got.length === 5) allIn();
    });
    const socket = (amqp.connection as unknown as { connection: { stream: Socket } }).connection.stream;
    const writes: number[] = [];
    const writev = socket._writev?.bind(socket);
    const write = socket._write.bind(socket);
    socket._writev = (chunks, cb) => {
      writes.push(chunks.length);
      writev?.(chunks, cb);
    };
    socket._write = (chunk, encoding, cb) => {
      writes.push(1);
      write(chunk, encoding, cb);
    };
    try {
      for (let i = 0; i < 5; i++) ch.sendToQueue(queue, Buffer.from(String(i)));
      await arrived;
      expect(got).toEqual(['0', '1', '2', '3', '4']);
      // amqplib queues the five publishes and hands them to the socket together on its next turn:
      // without coalescing that is five socket writes; with it, one writev carrying all five.
      expect(writes[0]).toBe(5);
    } finally {
      socket._writev = writev;
      socket._write = write;
    }
  });
});
