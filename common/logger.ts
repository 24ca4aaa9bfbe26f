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

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/** Fields every line has, or that the readable form shows in its own place. */
const SHOWN = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name', 'component', 'v']);

/**
 * One pino JSON line as a line for people at a terminal:
 * `10:42:01.123 WARN  cluster  master is lost  worker=w1 pid=4711`.
 * Anything that does not parse as a JSON object is passed through unchanged.
 */
export function formatLogLine(line: string): string {
  let entry: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return line;
    entry = parsed as Record<string, unknown>;
  } catch {
    return line;
  }
  const time = typeof entry.time === 'number' ? new Date(entry.time).toISOString().slice(11, 23) : '';
  const level = (LEVEL_NAMES[Number(entry.level)] ?? String(entry.level ?? '')).padEnd(5);
  const component = typeof entry.component === 'string' ? `${entry.component}  ` : '';
  const fields = Object.entries(entry)
    .filter(([key]) => !SHOWN.has(key))
    .map(([key, value]) => `${key}=${typeof value === 'string' && !/\s/.test(value) ? value : JSON.stringify(value)}`);
  return `${time} ${level} ${component}${String(entry.msg ?? '')}${fields.length > 0 ? `  ${fields.join(' ')}` : ''}\n`;
}

/** A pino destination that writes {@link formatLogLine}'s readable lines to `out` (the orchestrator's stdout at a terminal). */
export function readableDestination(out: { write(text: string): unknown }): DestinationStream {
  return { write: (line: string) => void out.write(formatLogLine(line)) };
}
