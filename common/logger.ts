import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** A structured JSON logger on stdout (or `destination`); `name` says which process it is. */
export function createLogger(name: string, level: string, bindings: Record<string, unknown> = {}, destination?: DestinationStream): Logger {
  const options = { name, level, base: { pid: process.pid, ...bindings } };
  return destination ? pino(options, destination) : pino(options);
}
