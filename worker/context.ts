import type { Channel, ConsumeMessage } from 'amqplib';
import type { WorkerConfig } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import type { RpcReply, WorkerState } from '../common/messages.js';
import { encode } from '../common/messages.js';
import type { ClusterNames } from '../common/names.js';
import type { Store } from './store.js';

/** What the role objects need from the worker that owns them. */
export interface WorkerContext {
  readonly config: WorkerConfig;
  readonly names: ClusterNames;
  readonly logger: Logger;
  readonly store: Store;
  readonly state: WorkerState;
  setState(state: WorkerState): void;
  /** Something is wrong beyond repair here: log, and exit so the orchestrator replaces this worker. */
  fail(reason: string): never;
}

/** Answers an RPC message on its reply-to queue; a message without one gets no answer. */
export function reply(ch: Channel, msg: ConsumeMessage, payload: RpcReply): void {
  const { replyTo, correlationId } = msg.properties as { replyTo?: string; correlationId?: string };
  if (!replyTo) return;
  ch.publish('', replyTo, encode(payload), { correlationId });
}
