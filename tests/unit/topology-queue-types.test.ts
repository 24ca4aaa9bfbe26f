/**
 * What common/topology.ts declares on each platform: exactly the classic
 * queues of before with DBAAS_PLATFORM=single, quorum queues (always durable)
 * for the write, read, sync and poison queues with ha (the write queue with a
 * delivery limit, whose dead letters the poison queue takes). The broker's acceptance
 * of those arguments is checked on the real cluster (tests/integration/platform-ha.test.ts).
 */
import type { ChannelModel } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { clusterNames } from '../../common/names.js';
import { assertSyncQueue, assertTopology, DELIVERY_LIMIT_BINDING, POISON_BINDING, WRITE_DELIVERY_LIMIT, type TopologySettings } from '../../common/topology.js';

interface Declared {
  queue: string;
  options: { durable?: boolean; exclusive?: boolean; autoDelete?: boolean; arguments?: Record<string, unknown> };
}

/** A connection whose channels record every queue declaration and binding, and accept everything else. */
function recordingConnection(): { conn: ChannelModel; declared: Declared[]; bound: Array<{ queue: string; args?: unknown }> } {
  const declared: Declared[] = [];
  const bound: Array<{ queue: string; args?: unknown }> = [];
  const channel = {
    on: () => channel,
    assertQueue: async (queue: string, options: Declared['options']) => {
      declared.push({ queue, options });
      return { queue, messageCount: 0, consumerCount: 0 };
    },
    assertExchange: async () => ({}),
    bindExchange: async () => ({}),
    bindQueue: async (queue: string, _source: string, _key: string, args?: unknown) => {
      bound.push({ queue, args });
      return {};
    },
    close: async () => undefined,
  };
  const conn = { createChannel: async () => channel } as unknown as ChannelModel;
  return { conn, declared, bound };
}

const base: TopologySettings = { syncQueueExpiresMs: 3_600_000, deadLetterMaxBytes: 16 * 1_048_576, deadLetterTtlMs: 86_400_000 };
const names = clusterNames('qt');

async function declarations(settings: TopologySettings): Promise<Map<string, Declared['options']>> {
  const { conn, declared } = recordingConnection();
  await assertTopology(conn, names, settings);
  await assertSyncQueue(conn, names, 'w1', settings);
  return new Map(declared.map((d) => [d.queue, d.options]));
}

describe('queue types by platform', () => {
  it('single (and unset): the classic declarations, unchanged', async () => {
    for (const settings of [base, { ...base, platform: 'single' as const }]) {
      const d = await declarations(settings);
      expect(d.get(names.writeQueue)).toEqual({ durable: true, arguments: { 'x-single-active-consumer': true, 'x-dead-letter-exchange': names.deadLetterExchange } });
      expect(d.get(names.readQueue)).toEqual({ durable: false, arguments: { 'x-dead-letter-exchange': names.deadLetterExchange } });
      expect(d.get(names.syncQueue('w1'))).toEqual({ durable: true, arguments: { 'x-dead-letter-exchange': names.deadLetterExchange, 'x-expires': 3_600_000 } });
      expect(d.get(names.deadLetterQueue)?.arguments?.['x-queue-type']).toBeUndefined();
      const { conn, bound } = recordingConnection();
      await assertTopology(conn, names, settings);
      expect(bound.filter((b) => b.queue === names.deadLetterQueue).map((b) => b.args)).toEqual([POISON_BINDING]);
    }
  });

  it('ha: write (single active consumer kept), read, sync and poison queues are quorum queues, durable, with the same bounds', async () => {
    const d = await declarations({ ...base, platform: 'ha' });
    expect(d.get(names.writeQueue)).toEqual({
      durable: true,
      arguments: { 'x-queue-type': 'quorum', 'x-single-active-consumer': true, 'x-dead-letter-exchange': names.deadLetterExchange, 'x-delivery-limit': WRITE_DELIVERY_LIMIT },
    });
    expect(d.get(names.readQueue)).toEqual({ durable: true, arguments: { 'x-queue-type': 'quorum', 'x-dead-letter-exchange': names.deadLetterExchange } });
    expect(d.get(names.syncQueue('w1'))).toEqual({
      durable: true,
      arguments: { 'x-queue-type': 'quorum', 'x-dead-letter-exchange': names.deadLetterExchange, 'x-expires': 3_600_000 },
    });
    expect(d.get(names.deadLetterQueue)).toMatchObject({
      durable: true,
      arguments: { 'x-queue-type': 'quorum', 'x-max-length': 10_000, 'x-overflow': 'drop-head', 'x-message-ttl': 86_400_000 },
    });
    // The poison queue also takes writes dead-lettered for their delivery limit.
    const { conn, bound } = recordingConnection();
    await assertTopology(conn, names, { ...base, platform: 'ha' });
    expect(bound.filter((b) => b.queue === names.deadLetterQueue).map((b) => b.args)).toEqual([POISON_BINDING, DELIVERY_LIMIT_BINDING]);
    // Nothing a quorum queue refuses: no exclusive, auto-delete or transient quorum declaration.
    for (const [queue, options] of d) {
      if (options.arguments?.['x-queue-type'] !== 'quorum') continue;
      expect(options.durable, queue).toBe(true);
      expect(options.exclusive ?? false, queue).toBe(false);
      expect(options.autoDelete ?? false, queue).toBe(false);
      expect(options.arguments?.['x-max-priority'], queue).toBeUndefined();
    }
  });
});
