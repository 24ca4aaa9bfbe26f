import { pino, type Logger } from 'pino';

export type { Logger };

/** A structured JSON logger on stdout; `name` says which process it is. */
export function createLogger(name: string, level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({ name, level, base: { pid: process.pid, ...bindings } });
}
