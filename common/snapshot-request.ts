/**
 * How a new slave's snapshot copy is asked for (worker/snapshot.ts has the protocol): the
 * page queue every master consumes, and the first request. Shared by the worker (a slave
 * asks for its pages) and the orchestrator, which asks for a new slave's first page
 * itself, before the slave's process runs (the "pre-asked snapshot", issue 16: the master's
 * round trip is then off the new slave's start; docs/DECISIONS.md).
 */
import type { Channel } from 'amqplib';
import { encode, WIRE_VERSION, type ControlMessage } from './messages.js';
import type { ClusterNames } from './names.js';
import { syncQueueOptions, type TopologySettings } from './topology.js';

/**
 * Where slaves ask for pages: one queue per namespace, consumed by whichever
 * worker is master now (MasterRole.attach), so a request outlives a failover and
 * the next master answers it. Requests expire: a slave asks again anyway.
 */
export function pageQueue(namespace: string): string {
  return `${namespace}.snapshotQ`;
}

/** How long a page request waits in the page queue for a master to take it: then the broker drops it. */
export const PAGE_REQUEST_TTL_MS = 15_000;

export const PAGE_QUEUE_OPTIONS = Object.freeze({ durable: false, autoDelete: true, arguments: { 'x-message-ttl': PAGE_REQUEST_TTL_MS } });

/** About this much JSON per page (one RabbitMQ message). */
export const PAGE_MAX_BYTES = 16 * 1_048_576;

/** The id of the first page request the orchestrator sends for new slave `workerId` (DBAAS_WORKER_SNAPSHOT_ASKED). */
export function preAskedId(workerId: string): string {
  return `${workerId}-first`;
}

/**
 * Asks the master for new slave `workerId`'s first page, as the slave itself would:
 * its durable sync queue is declared and bound first, so the request, and the master's
 * snapshot point S0 after it, come after the binding ("queue bound before S0",
 * worker/snapshot.ts). `raw`: the slave writes a stream's rows below FerretDB.
 * All on one channel `ch` (few round trips: under a writer each waits on the busy
 * orchestrator and broker).
 */
export async function askFirstPage(
  ch: Channel,
  names: ClusterNames,
  o: { namespace: string; workerId: string; limit: number; raw: boolean; settings: TopologySettings },
): Promise<void> {
  const queue = names.syncQueue(o.workerId);
  const req: ControlMessage = { v: WIRE_VERSION, type: 'snapshot-page', id: preAskedId(o.workerId), queue, limit: o.limit, maxBytes: PAGE_MAX_BYTES, ...(o.raw ? { raw: true as const } : {}) };
  // The queue is a new worker's (declared as assertSyncQueue does; no older declaration to keep), bound before the request goes.
  await Promise.all([ch.assertQueue(queue, syncQueueOptions(names, o.settings)), ch.assertQueue(pageQueue(o.namespace), PAGE_QUEUE_OPTIONS)]);
  await ch.bindQueue(queue, names.syncExchange, '');
  ch.sendToQueue(pageQueue(o.namespace), encode(req));
}
