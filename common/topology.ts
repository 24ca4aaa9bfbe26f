/**
 * Declares the shared queues and exchanges. Every process declares them with the
 * same arguments (RabbitMQ refuses a re-declaration with different ones), so this
 * is the only place those arguments are written.
 *
 * What is kept, and for how long (issue 13):
 * - Every request queue dead-letters to the fanout `<ns>.dlx`. Only poison (a
 *   message a worker rejected: it did not decode) goes on from there, through the
 *   headers exchange `<ns>.poison`, to `<ns>.poisonQ`, bounded in count, bytes and
 *   age. An expired request (no worker took it before the client's timeout) is
 *   routed nowhere, so RabbitMQ drops it: the client was told it failed, and
 *   the orchestrator counts it (its 504s in the metrics).
 * - A slave's sync queue expires once unused for `syncQueueExpiresMs`
 *   (`x-expires`), so the queue of a worker that died while no orchestrator was
 *   there to delete it does not fill up with the replication stream forever.
 *
 * Queue types (issue 18): with `platform: 'ha'` (DBAAS_PLATFORM=ha, a RabbitMQ
 * cluster) the queues that must outlive a node are quorum queues, replicated on
 * a majority of the nodes: the write queue (single active consumer, which
 * quorum queues keep), the read queue, every slave's sync queue and the poison
 * queue. A quorum queue is always durable and never exclusive or auto-delete, so
 * in HA mode the read queue (transient in single mode) is declared durable; the
 * arguments used here (dead-lettering, x-expires, max length and bytes with
 * drop-head, message TTL, per-message expiration) are all kept by quorum queues
 * (RabbitMQ ≥ 3.10). The HA write queue also has a delivery limit
 * ({@link WRITE_DELIVERY_LIMIT}): a write handed back that many times (requeued
 * by a master that could not get its entry confirmed, or left unacked by masters
 * that crashed on it) is poison, and is dead-lettered with the reason
 * `delivery_limit`, which the poison queue takes too, instead of looping for
 * ever (classic queues have no delivery count: single mode has no such bound).
 * Not here, and classic on purpose: a worker's control queue
 * is exclusive to its connection (it lives and dies with the connection, on that
 * connection's node, and is declared again on reconnect), a snapshot's page
 * queues are transient, and replies use the direct reply-to pseudo-queue.
 * With `single` (the default) every declaration is exactly what it was.
 *
 * Upgrades: a durable queue declared again with other arguments is refused
 * (PRECONDITION_FAILED, which also closes the channel). Arguments of existing
 * queues are therefore never changed: new bounds come with new names (the
 * poison queue replaces the old `<ns>.deadQ`, which the orchestrator deletes),
 * and a sync queue declared by an older version is kept as it is (checked
 * passively) until its worker is gone. See docs/DECISIONS.md (issue 13).
 */
import type { Channel, ChannelModel, Options } from 'amqplib';
import type { ClusterConfig } from './config.js';
import type { ClusterNames } from './names.js';

/** The bounds the topology is declared with; every process of a cluster must use the same. */
export type TopologySettings = Pick<ClusterConfig, 'syncQueueExpiresMs' | 'deadLetterMaxBytes' | 'deadLetterTtlMs'> &
  Partial<Pick<ClusterConfig, 'platform'>>;

/** The queue-type argument of the queues that must outlive a broker node: quorum on the HA platform, none (classic) otherwise. */
export function replicatedQueueType(s: Pick<TopologySettings, 'platform'>): Record<string, unknown> {
  return s.platform === 'ha' ? { 'x-queue-type': 'quorum' } : {};
}

/** At most this many poison messages are kept (besides the byte and age bounds). */
export const DEAD_LETTER_MAX_MESSAGES = 10_000;

/** Binding of the poison queue: only messages whose first dead-lettering was a reject (not an expiry). */
export const POISON_BINDING = { 'x-match': 'any-with-x', 'x-first-death-reason': 'rejected' } as const;

/**
 * Deliveries after which a write still not acked leaves the HA write queue for
 * the poison queue (a quorum queue's `x-delivery-limit`: the first delivery and
 * this many hand-backs). A healthy write is handed back about once per broker
 * failover it lives through (the master requeues a write whose entry went
 * unconfirmed, after 1 s), so 20 is far above any outage a client waits out.
 */
export const WRITE_DELIVERY_LIMIT = 20;

/** The poison queue's second binding on the HA platform: writes dead-lettered for reaching {@link WRITE_DELIVERY_LIMIT}. */
export const DELIVERY_LIMIT_BINDING = { 'x-match': 'any-with-x', 'x-first-death-reason': 'delivery_limit' } as const;

/** The write queue's arguments: one active consumer (the master), dead-lettering; on the HA platform a quorum queue with a delivery limit. */
export function writeQueueArguments(names: ClusterNames, s: Pick<TopologySettings, 'platform'>): Record<string, unknown> {
  return {
    ...replicatedQueueType(s),
    'x-single-active-consumer': true,
    'x-dead-letter-exchange': names.deadLetterExchange,
    ...(s.platform === 'ha' ? { 'x-delivery-limit': WRITE_DELIVERY_LIMIT } : {}),
  };
}

export function poisonQueueArguments(s: TopologySettings): Record<string, unknown> {
  return {
    'x-max-length': DEAD_LETTER_MAX_MESSAGES,
    'x-max-length-bytes': s.deadLetterMaxBytes,
    'x-message-ttl': s.deadLetterTtlMs,
    // The oldest poison goes first: the newest tells most about what is wrong now.
    'x-overflow': 'drop-head',
  };
}

function isPreconditionFailed(err: unknown): boolean {
  return (err as { code?: unknown }).code === 406;
}

/** A channel for one declaration that may be refused: its closing must not reach the connection as an unhandled error. */
async function probeChannel(conn: ChannelModel): Promise<Channel> {
  const ch = await conn.createChannel();
  ch.on('error', () => undefined);
  return ch;
}

/**
 * Declares `queue` with `options`. When it already exists with other arguments
 * (declared by an older version, or with other bounds), it is kept as it is:
 * checked passively instead, and `onKept` is told why.
 */
export async function declareQueueOrKeep(
  conn: ChannelModel,
  queue: string,
  options: Options.AssertQueue,
  onKept?: (why: string) => void,
): Promise<'declared' | 'kept'> {
  const ch = await probeChannel(conn);
  try {
    await ch.assertQueue(queue, options);
    await ch.close();
    return 'declared';
  } catch (err) {
    if (!isPreconditionFailed(err)) {
      await ch.close().catch(() => undefined);
      throw err;
    }
    // The refused declaration closed that channel; the queue exists, so use it as it is.
    const check = await probeChannel(conn);
    try {
      await check.checkQueue(queue);
    } finally {
      await check.close().catch(() => undefined);
    }
    onKept?.((err as Error).message);
    return 'kept';
  }
}

/** Declares the request queues, the dead-letter route and the sync exchange. */
export async function assertTopology(conn: ChannelModel, names: ClusterNames, settings: TopologySettings, onKept?: (queue: string, why: string) => void): Promise<void> {
  const ch = await conn.createChannel();
  try {
    await ch.assertExchange(names.deadLetterExchange, 'fanout', { durable: true });
    await ch.assertExchange(names.poisonExchange, 'headers', { durable: true });
    await ch.bindExchange(names.poisonExchange, names.deadLetterExchange, '');
    await ch.assertQueue(names.readQueue, {
      // A quorum queue is always durable; a classic read queue stays transient (requests expire with their callers anyway).
      durable: settings.platform === 'ha',
      arguments: { ...replicatedQueueType(settings), 'x-dead-letter-exchange': names.deadLetterExchange },
    });
    await ch.assertExchange(names.syncExchange, 'fanout', { durable: true });
  } finally {
    await ch.close().catch(() => undefined);
  }
  // A write queue declared before the delivery limit (issue 18) is kept as it is, without one.
  await declareQueueOrKeep(conn, names.writeQueue, { durable: true, arguments: writeQueueArguments(names, settings) }, (why) => onKept?.(names.writeQueue, why));
  await declareQueueOrKeep(conn, names.deadLetterQueue, { durable: true, arguments: { ...replicatedQueueType(settings), ...poisonQueueArguments(settings) } }, (why) =>
    onKept?.(names.deadLetterQueue, why),
  );
  const bind = await conn.createChannel();
  try {
    await bind.bindQueue(names.deadLetterQueue, names.poisonExchange, '', POISON_BINDING);
    if (settings.platform === 'ha') await bind.bindQueue(names.deadLetterQueue, names.poisonExchange, '', DELIVERY_LIMIT_BINDING);
  } finally {
    await bind.close().catch(() => undefined);
  }
}

/**
 * Deletes the dead-letter queue of versions before issue 13 (`<ns>.deadQ`, bound
 * to the fanout, so it also kept every expired request). It holds only copies of
 * requests whose clients were told they failed. The orchestrator calls it at start.
 */
export async function removeLegacyDeadLetterQueue(conn: ChannelModel, names: ClusterNames): Promise<number> {
  const ch = await probeChannel(conn);
  try {
    const { messageCount } = await ch.deleteQueue(names.legacyDeadLetterQueue);
    return messageCount;
  } finally {
    await ch.close().catch(() => undefined);
  }
}

/** How a worker's durable sync queue is declared (assertSyncQueue; the orchestrator's askFirstPage for a new slave). */
export function syncQueueOptions(names: ClusterNames, settings: TopologySettings): Options.AssertQueue {
  return {
    durable: true,
    arguments: { ...replicatedQueueType(settings), 'x-dead-letter-exchange': names.deadLetterExchange, 'x-expires': settings.syncQueueExpiresMs },
  };
}

/** A slave's own sync queue: durable, so it buffers while the slave is busy, restarting or being promoted; gone once unused for `syncQueueExpiresMs`. */
export async function assertSyncQueue(
  conn: ChannelModel,
  names: ClusterNames,
  workerId: string,
  settings: TopologySettings,
  onKept?: (queue: string, why: string) => void,
): Promise<string> {
  const queue = names.syncQueue(workerId);
  await declareQueueOrKeep(conn, queue, syncQueueOptions(names, settings), (why) => onKept?.(queue, why));
  const ch = await conn.createChannel();
  try {
    await ch.bindQueue(queue, names.syncExchange, '');
  } finally {
    await ch.close().catch(() => undefined);
  }
  return queue;
}
