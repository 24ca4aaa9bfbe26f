/**
 * Why a worker failed to start, from its own logs: the last error or fatal line
 * of its `worker.log` (pino JSON) and the last errors of its database's `db.log`
 * (FerretDB: `time<TAB>LEVEL<TAB>where<TAB>message<TAB>{json}`). Both halves of a
 * unit log into its directory (process-runtime.ts), so the orchestrator's error,
 * the audit and `GET /api/v1/workers/list` can name the cause instead of only
 * "did not reach state master: no progress for 30020 ms" (a worker whose
 * PostgreSQL database was SQL_ASCII: FerretDB's answer was only in db.log).
 * The docker and swarm runtimes hand the same extraction their containers' logs
 * ({@link causeFromLogs}).
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { withoutCallChain } from '../../common/client-message.js';

/** How much of the end of each log is read. */
const TAIL_BYTES = 64 * 1024;
/** How long a quoted line may be. */
const MAX_LINE = 300;

/** The last `TAIL_BYTES` of a log as lines. */
export function lastLines(text: string): string[] {
  return text.slice(-TAIL_BYTES).split('\n');
}

/** The last `TAIL_BYTES` of `file` as lines ([] when it cannot be read). */
function tailLines(file: string): string[] {
  let fd: number | undefined;
  try {
    const size = statSync(file).size;
    const length = Math.min(size, TAIL_BYTES);
    const buf = Buffer.alloc(length);
    fd = openSync(file, 'r');
    readSync(fd, buf, 0, length, size - length);
    return buf.toString('utf8').split('\n');
  } catch {
    return [];
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Without FerretDB's call chain ("[pool.go:129 pool.(*Pool).Get] …"), cut short. */
function plain(text: string): string {
  const s = withoutCallChain(text).replace(/\s+/g, ' ').trim();
  return s.length > MAX_LINE ? `${s.slice(0, MAX_LINE)}…` : s;
}

/** The worker's last error or fatal line: its message and reason. */
function workerSaid(lines: string[]): string | undefined {
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i] as string;
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line) as { level?: number; msg?: string; err?: unknown; reason?: unknown };
      if ((entry.level ?? 0) < 50) continue;
      const why = typeof entry.err === 'string' ? entry.err : typeof entry.reason === 'string' ? entry.reason : undefined;
      return plain(why ? `${entry.msg ?? 'error'}: ${why}` : (entry.msg ?? line));
    } catch {
      // a line cut by the tail, or not JSON
    }
  }
  return undefined;
}

/** FerretDB's last error-level lines (and its warnings that carry an error, and the errors its request dumps answer), newest last, each once. */
function databaseSaid(lines: string[]): string[] {
  const found: string[] = [];
  for (let i = lines.length - 1; i >= 0 && found.length < 2; i--) {
    const line = lines[i] as string;
    // At --log-level=warn FerretDB dumps each answer; an error's answer has its words (e.g. "database or disk is full").
    const answer = /^\s*"errmsg":\s*("(?:[^"\\]|\\.)*")/.exec(line);
    if (answer?.[1]) {
      let said = '';
      try {
        said = plain(JSON.parse(answer[1]) as string);
      } catch {
        // a line cut short
      }
      if (said !== '' && !found.includes(said)) found.unshift(said);
      continue;
    }
    const fields = line.split('\t');
    const level = fields[1];
    // "ERROR+3": FerretDB's level for a failure to start (slog levels above ERROR).
    if (level === undefined || !/^(WARN|ERROR|DPANIC|PANIC|FATAL)(\+\d+)?$/.test(level)) continue;
    const message = fields[3] ?? '';
    let detail = '';
    try {
      const extra = JSON.parse(fields[4] ?? '{}') as { error?: unknown };
      if (typeof extra.error === 'string') detail = extra.error;
    } catch {
      // no JSON fields
    }
    // Warnings are mostly request dumps ("Response message:") and clients going away: only those that carry an error count.
    if (level === 'WARN' && (detail === '' || message.startsWith('Connection stopped'))) continue;
    const text = plain(detail ? `${message}: ${detail}` : message);
    if (text !== '' && !found.includes(text)) found.unshift(text);
  }
  return found;
}

/**
 * What a worker's log and its database's log say about its failure, each named as given, e.g.
 * `worker.log: worker failed to start: the database at … refuses to work: "client_encoding" is "SQL_ASCII"; supported value is "UTF8"; db.log: Pool: connection failed: …`;
 * undefined when they say nothing.
 */
export function causeFromLogs(worker: { name: string; lines: string[] }, db: { name: string; lines: string[] }): string | undefined {
  const w = workerSaid(worker.lines);
  const d = databaseSaid(db.lines);
  const parts = [...(w ? [`${worker.name}: ${w}`] : []), ...(d.length > 0 ? [`${db.name}: ${d.join(' | ')}`] : [])];
  return parts.length > 0 ? parts.join('; ') : undefined;
}

/** What the logs in a unit's directory (`worker.log`, `db.log`) say about its failure ({@link causeFromLogs}). */
export function failureCause(unitDir: string): string | undefined {
  return causeFromLogs(
    { name: 'worker.log', lines: tailLines(path.join(unitDir, 'worker.log')) },
    { name: 'db.log', lines: tailLines(path.join(unitDir, 'db.log')) },
  );
}
