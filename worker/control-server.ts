/**
 * The worker's control queue `<ns>.ctl.<id>`: what the orchestrator asks one
 * worker (promote, demote, retire, status, read, checksum). Each message is
 * decoded (poison is dead-lettered), answered `{ok, result}` or
 * `{ok: false, error}`, then acked. A promote, retire or demote from an older
 * leader epoch than the newest known is refused (a former leader, paused or
 * cut off, moves no worker).
 */
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import type { WorkerConfig } from '../common/config.js';
import { DbaasError, asDbaasError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { ReadCommand, TableInfo } from '../common/commands.js';
import { decodeControl, type ChecksumReply, type ControlMessage, type WorkerStatus } from '../common/messages.js';
import type { ClusterNames } from '../common/names.js';
import { reply, reqIdOf, settle } from './context.js';
import { readError } from './storage-errors.js';

/**
 * Unacknowledged control messages in flight at once. Handlers run concurrently
 * (a checksum may wait a minute for its checkpoint), so this is not 1: a promote
 * must not queue behind a slow checksum.
 */
const CONTROL_PREFETCH = 16;

/** What the control messages act on (the worker's role machine). */
export interface ControlTarget {
  status(): WorkerStatus;
  promote(term: number): Promise<void>;
  /** A master stops taking writes and finishes those it took. */
  demote(): Promise<void>;
  /** A slave stops taking reads (scale-down); the worker stops once the answer is sent. */
  retire(): Promise<void>;
  read(command: ReadCommand): Promise<unknown>;
  checksumAt(seq: number, waitMs: number): Promise<ChecksumReply>;
  /** Tables with document counts and indexes (issue 17): one, or all. */
  tables(table: string | undefined): Promise<TableInfo[]>;
  /** Graceful stop after a retire. */
  stop(code: number): Promise<void>;
  notePoison(queue: string): void;
  /** Whether a control message of this leader epoch may act, and the newest epoch known. */
  admitsEpoch(epoch: number): Promise<boolean>;
  readonly epoch: number;
}

export class ControlServer {
  constructor(
    private readonly config: WorkerConfig,
    private readonly names: ClusterNames,
    private readonly logger: Logger,
    private readonly target: ControlTarget,
  ) {}

  /** Declares the worker's control queue and consumes it (on every broker (re)connection). */
  async attach(conn: ChannelModel): Promise<void> {
    const ctl = await conn.createChannel();
    const ctlQueue = this.names.controlQueue(this.config.workerId);
    await ctl.assertQueue(ctlQueue, {
      exclusive: true,
      autoDelete: true,
      arguments: { 'x-dead-letter-exchange': this.names.deadLetterExchange },
    });
    // Bounded like every consuming channel: a burst of control messages (checksums, reads of one replica) waits in the queue, not in memory.
    await ctl.prefetch(CONTROL_PREFETCH);
    await ctl.consume(ctlQueue, (msg) => {
      if (msg) void this.handle(ctl, msg);
    });
  }

  private async handle(ch: Channel, msg: ConsumeMessage): Promise<void> {
    const control = decodeControl(msg.content);
    if (!control) {
      this.target.notePoison('control');
      settle(ch, msg, 'dead-letter');
      return;
    }
    let done = false;
    try {
      const result = await this.dispatch(control);
      reply(ch, msg, { ok: true, result });
      done = true;
      if (control.type === 'read' && this.logger.isLevelEnabled('debug')) this.logger.debug({ reqId: reqIdOf(msg), table: control.command.table }, 'read answered');
    } catch (err) {
      // A read of this replica fails as a read from the read queue does (storage-errors.ts).
      reply(ch, msg, { ok: false, error: (control.type === 'read' ? readError(err) : asDbaasError(err)).toWire() });
    }
    settle(ch, msg, 'ack');
    // Only a retire that was carried out stops the worker: a refused one (a stale leader epoch) leaves it serving.
    if (control.type === 'retire' && done) {
      // Closing the channel first flushes the reply: a connection close may overtake frames still queued on a channel.
      await ch.close().catch(() => undefined);
      await this.target.stop(0);
    }
  }

  private async checkEpoch(control: { type: string; epoch?: number }): Promise<void> {
    if (control.epoch === undefined) return;
    if (!(await this.target.admitsEpoch(control.epoch))) {
      throw new DbaasError('DBAAS_CONTROL_STALE_EPOCH', `${control.type} from leader epoch ${control.epoch} refused: epoch ${this.target.epoch} leads now`);
    }
  }

  private async dispatch(control: ControlMessage): Promise<unknown> {
    const t = this.target;
    if (control.type === 'promote' || control.type === 'retire' || control.type === 'demote') await this.checkEpoch(control);
    if (control.type === 'demote') {
      await t.demote();
      return t.status();
    }
    if (control.type === 'read') return t.read(control.command);
    if (control.type === 'checksum') return t.checksumAt(control.seq, control.waitMs);
    if (control.type === 'tables') return t.tables(control.table);
    if (control.type === 'promote') await t.promote(control.term);
    if (control.type === 'retire') await t.retire();
    return t.status();
  }
}
