import type { Channel, ConsumeMessage, Message } from 'amqplib';
import type { WorkerConfig } from '../common/config.js';
import { REQ_ID_HEADER, type Logger } from '../common/logger.js';
import type { RpcReply, WorkerState } from '../common/messages.js';
import { encode } from '../common/messages.js';
import { HINT_HEADER } from '../common/hints.js';
import type { ClusterNames } from '../common/names.js';
import type { ChecksumBook } from './checksum.js';
import type { Store } from './store.js';

/** What the role objects need from the worker that owns them. */
export interface WorkerContext {
  readonly config: WorkerConfig;
  readonly names: ClusterNames;
  readonly logger: Logger;
  readonly store: Store;
  /** Replica checksums taken at checkpoints (kept across a promotion). */
  readonly checksums: ChecksumBook;
  readonly state: WorkerState;
  setState(state: WorkerState): void;
  /** Something is wrong beyond repair here: log, and exit so the orchestrator replaces this worker. */
  fail(reason: string): never;
  /** Counts a malformed message that was dead-lettered (shown in the worker's status). */
  notePoison(queue: string): void;
  /** False once ZooKeeper has not answered for the self-fence deadline: a master must take no more writes (common/fencing.ts). */
  masterLeaseValid(): boolean;
}

/** The orchestrator's HTTP request id carried by an RPC message, for the worker's log line of that request. */
export function reqIdOf(msg: Message): string | undefined {
  const value: unknown = (msg.properties.headers as Record<string, unknown> | undefined)?.[REQ_ID_HEADER];
  return typeof value === 'string' ? value : undefined;
}

/** Answers an RPC message on its reply-to queue; a message without one gets no answer. */
export function reply(ch: Channel, msg: ConsumeMessage, payload: RpcReply, hint?: string): void {
  const { replyTo, correlationId } = msg.properties as { replyTo?: string; correlationId?: string };
  if (!replyTo) return;
  try {
    // `hint`: a note for the HTTP answer (a read of a table that does not exist), as a message header (HINT_HEADER).
    ch.publish('', replyTo, encode(payload), hint === undefined ? { correlationId } : { correlationId, headers: { [HINT_HEADER]: hint } });
  } catch {
    // channel closed: the caller has been told the broker went away, or will time out
  }
}

/**
 * Acks on a channel that may have died meanwhile: then the broker has already
 * requeued the message, and its redelivery is handled idempotently.
 */
export function settle(ch: Channel, msg: Message, how: 'ack' | 'dead-letter' | 'requeue'): void {
  try {
    if (how === 'ack') ch.ack(msg);
    else ch.nack(msg, false, how === 'requeue');
  } catch {
    // channel closed: nothing to settle any more
  }
}
