import type { Channel } from 'amqplib';
import type { ClusterNames } from './names.js';

/**
 * Declares the shared queues and exchanges. Every process declares them with the
 * same arguments (RabbitMQ refuses a re-declaration with different ones), so this
 * is the only place those arguments are written.
 */
export async function assertTopology(ch: Channel, names: ClusterNames): Promise<void> {
  await ch.assertExchange(names.deadLetterExchange, 'fanout', { durable: true });
  // Bounded: dead letters are for inspection, not a second store.
  await ch.assertQueue(names.deadLetterQueue, {
    durable: true,
    arguments: { 'x-max-length': 10000, 'x-overflow': 'drop-head' },
  });
  await ch.bindQueue(names.deadLetterQueue, names.deadLetterExchange, '');
  await ch.assertQueue(names.writeQueue, {
    durable: true,
    arguments: { 'x-single-active-consumer': true, 'x-dead-letter-exchange': names.deadLetterExchange },
  });
  await ch.assertQueue(names.readQueue, {
    durable: false,
    arguments: { 'x-dead-letter-exchange': names.deadLetterExchange },
  });
  await ch.assertExchange(names.syncExchange, 'fanout', { durable: true });
}

/** A slave's own sync queue: durable, so it buffers while the slave is busy, restarting or being promoted. */
export async function assertSyncQueue(ch: Channel, names: ClusterNames, workerId: string): Promise<string> {
  const queue = names.syncQueue(workerId);
  await ch.assertQueue(queue, { durable: true, arguments: { 'x-dead-letter-exchange': names.deadLetterExchange } });
  await ch.bindQueue(queue, names.syncExchange, '');
  return queue;
}
