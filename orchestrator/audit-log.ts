/**
 * The audit log: every detection, promotion, replacement, crash drill,
 * scaling decision and replica verification, with a timestamp, its duration where it has one, and a
 * one-sentence reason. Kept in memory (bounded) and written to the log.
 */
import type { Logger } from '../common/logger.js';

export type AuditKind = 'detection' | 'promotion' | 'replacement' | 'removal' | 'restart' | 'crash-drill' | 'scaling' | 'adoption' | 'verify' | 'election' | 'switchover' | 'error' | 'platform';

export interface AuditEvent {
  seq: number;
  at: string;
  kind: AuditKind;
  reason: string;
  durationMs?: number;
  details?: Record<string, unknown>;
}

export class AuditLog {
  private readonly events: AuditEvent[] = [];
  private readonly listeners: Array<(event: AuditEvent) => void> = [];
  private next = 1;

  constructor(
    private readonly logger: Logger,
    private readonly capacity = 1000,
  ) {}

  record(kind: AuditKind, reason: string, extra: { durationMs?: number; details?: Record<string, unknown> } = {}): AuditEvent {
    const event: AuditEvent = { seq: this.next++, at: new Date().toISOString(), kind, reason, ...extra };
    this.events.push(event);
    if (this.events.length > this.capacity) this.events.shift();
    this.logger.info({ audit: event }, reason);
    for (const listener of this.listeners) listener(event);
    return event;
  }

  /** Calls `listener` with every event recorded from now on (metrics count them). It must not throw. */
  onRecord(listener: (event: AuditEvent) => void): void {
    this.listeners.push(listener);
  }

  /** Oldest first; only events after `afterSeq` when given. */
  list(afterSeq = 0): AuditEvent[] {
    return this.events.filter((e) => e.seq > afterSeq);
  }
}
