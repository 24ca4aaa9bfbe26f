/**
 * A Docker events subscription that survives the engine going away.
 *
 * The engine streams events as JSON objects, one per line, in chunks that need
 * not end on a line boundary. When the stream ends or fails (the daemon
 * restarted, a proxy dropped it), it is opened again with capped backoff and
 * `since` set to the last event seen (the engine's own clock), so events of a
 * short outage are replayed when the engine still has them; `onReconnect` then
 * lets the owner re-list containers for whatever the engine forgot (a
 * restarted daemon keeps none, and before the first event there is no `since`).
 */
import { Backoff } from '../../common/backoff.js';
import type { Logger } from '../../common/logger.js';

/** The part of a Docker event this project reads. */
export interface DockerEvent {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  time: number;
  timeNano: number;
}

export interface DockerEventsOptions {
  /** Opens the event stream from `since` (Docker's `seconds.nanoseconds`), or from now when undefined. */
  subscribe(since: string | undefined): Promise<NodeJS.ReadableStream>;
  onEvent(event: DockerEvent): void;
  /** Called after every successful reconnection (not after the first connection). */
  onReconnect(): void;
  logger: Logger;
  backoff?: Backoff;
}

/** Docker's `since` format for a nanosecond timestamp. */
export function sinceOf(timeNano: number | bigint): string {
  const ns = BigInt(timeNano);
  return `${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`;
}

/** Splits a byte stream into lines; keeps the unfinished tail for the next chunk. */
export class LineSplitter {
  private tail = '';

  push(chunk: string): string[] {
    const text = this.tail + chunk;
    const lines = text.split('\n');
    this.tail = lines.pop() ?? '';
    return lines.filter((l) => l.trim() !== '');
  }
}

export class DockerEvents {
  private stream: NodeJS.ReadableStream | undefined;
  private closed = false;
  private started = false;
  private lastTimeNano: bigint | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly backoff: Backoff;
  private outage = false;

  constructor(private readonly opts: DockerEventsOptions) {
    this.backoff = opts.backoff ?? new Backoff(200, 5000);
  }

  /** Opens the first subscription; rejects when the engine cannot be reached. Idempotent. */
  async start(): Promise<void> {
    if (this.started || this.closed) return;
    this.started = true;
    try {
      await this.connect(false);
    } catch (err) {
      this.started = false;
      throw err;
    }
  }

  private async connect(isReconnect: boolean): Promise<void> {
    const since = this.lastTimeNano === undefined ? undefined : sinceOf(this.lastTimeNano);
    const stream = await this.opts.subscribe(since);
    if (this.closed) {
      destroy(stream);
      return;
    }
    this.stream = stream;
    const splitter = new LineSplitter();
    stream.setEncoding?.('utf8');
    stream.on('data', (chunk: string | Buffer) => {
      for (const line of splitter.push(chunk.toString())) this.handleLine(line);
    });
    let ended = false;
    const onEnd = (why: string): void => {
      if (ended) return;
      ended = true;
      if (this.stream === stream) this.stream = undefined;
      if (this.closed) return;
      this.opts.logger.warn({ why }, 'docker events stream lost; reconnecting');
      this.scheduleReconnect();
    };
    stream.on('end', () => onEnd('end'));
    stream.on('close', () => onEnd('close'));
    stream.on('error', (err: Error) => onEnd(err.message));
    this.backoff.reset();
    if (isReconnect) {
      if (this.outage) this.opts.logger.info('docker events stream back');
      this.outage = false;
      this.opts.onReconnect();
    }
  }

  private handleLine(line: string): void {
    let event: DockerEvent;
    try {
      event = JSON.parse(line) as DockerEvent;
    } catch {
      this.opts.logger.warn({ line: line.slice(0, 200) }, 'unparsable docker event');
      return;
    }
    // Read from the text: as a JSON number it is beyond 2^53 and loses its last digits.
    const nano = /"timeNano":\s*(\d+)/.exec(line)?.[1];
    if (nano) {
      const t = BigInt(nano);
      if (this.lastTimeNano === undefined || t > this.lastTimeNano) this.lastTimeNano = t;
    }
    try {
      this.opts.onEvent(event);
    } catch (err) {
      this.opts.logger.error({ err: (err as Error).message }, 'docker event handler failed');
    }
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect(true).catch((err: unknown) => {
        if (!this.outage) this.opts.logger.warn({ err: (err as Error).message }, 'docker engine unreachable; retrying');
        this.outage = true;
        this.scheduleReconnect();
      });
    }, this.backoff.next());
  }

  /** Stops listening. Idempotent. */
  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.stream) destroy(this.stream);
    this.stream = undefined;
  }
}

function destroy(stream: NodeJS.ReadableStream): void {
  const s = stream as NodeJS.ReadableStream & { destroy?: () => void };
  s.removeAllListeners('data');
  s.on('error', () => undefined);
  s.destroy?.();
}
