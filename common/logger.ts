import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

let defaultDestination: DestinationStream | undefined;

/**
 * Where loggers created without a `destination` write from now on (stdout when
 * unset). The integration tests point it at a file under .dbaas/test-logs/.
 */
export function setDefaultLogDestination(destination: DestinationStream | undefined): void {
  defaultDestination = destination;
}

/** A structured JSON logger on stdout (or `destination`); `name` says which process it is. */
export function createLogger(name: string, level: string, bindings: Record<string, unknown> = {}, destination?: DestinationStream): Logger {
  const options = { name, level, base: { pid: process.pid, ...bindings } };
  const dest = destination ?? defaultDestination;
  return dest ? pino(options, dest) : pino(options);
}

/**
 * The AMQP message header that carries the orchestrator's HTTP request id (`reqId`)
 * to the worker, so both log lines of one request share it.
 */
export const REQ_ID_HEADER = 'x-dbaas-req-id';
