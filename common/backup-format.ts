/**
 * The backup archive (issue 20): what `POST /api/v1/backup` streams and
 * `dbaas restore` reads.
 *
 * A gzip-compressed stream of JSON lines (NDJSON), in this order:
 * 1. the head: `{"dbaasBackup": 1, "id", "seq", "term", "takenAt", "from", "tables": [...]}`;
 * 2. one line per document: `{"t": "<table>", "d": {…}}` (`t` is the qualified
 *    table name, common/databases.ts), tables one after the other;
 * 3. only when asked for (`oplogAfter`), the slave's oplog entries after that
 *    seq up to `seq`, one per line: `{"e": SyncEntry}` (a point-in-time restore
 *    lays them over an older backup);
 * 4. the manifest, last: `{"manifest": {"seq", "term", "takenAt", "documents",
 *    "tables": {"<table>": {"count", "sum"}}, "indexes": [IndexDef…], "oplogAfter"?}}`.
 *
 * Every document is the slave's at `seq` exactly (it took them while applying
 * nothing newer). `tables` holds each non-empty table's checksum, the same
 * count and sum as `GET /api/v1/verify` reports (common/doc-hash.ts): a restore
 * recomputes them from the lines it read, and a restored database checks
 * against them through verify. An archive without a manifest line is
 * incomplete (the stream broke) and is refused.
 */
import type { IndexDef } from './commands.js';
import type { Doc } from './commands.js';
import type { ErrorCode } from './errors.js';
import type { SyncEntry, TableChecksum } from './messages.js';

export const BACKUP_FORMAT = 1;

export interface BackupHead {
  dbaasBackup: typeof BACKUP_FORMAT;
  id: string;
  seq: number;
  term: number;
  takenAt: string;
  /** The worker id of the slave it was taken from. */
  from: string;
  /** Every user table at `seq` (qualified names), in the order their documents follow. */
  tables: string[];
}

export interface BackupManifest {
  seq: number;
  term: number;
  takenAt: string;
  documents: number;
  tables: Record<string, TableChecksum>;
  indexes: IndexDef[];
  /** The archive also holds the oplog entries after this seq, up to `seq`. */
  oplogAfter?: number;
}

export type BackupLine = BackupHead | { t: string; d: Doc & { _id: string } } | { e: SyncEntry } | { manifest: BackupManifest };

/** Slave → orchestrator, on the backup's own queue: lines of the archive, in order; the last says so, or an error ends it. */
export interface BackupPart {
  id: string;
  part: number;
  lines: BackupLine[];
  last?: true;
  error?: string;
  /** With `error`: its catalogue code (DBAAS_BACKUP_OPLOG_TRIMMED, else DBAAS_BACKUP_FAILED). */
  code?: ErrorCode;
}

export function isHead(line: unknown): line is BackupHead {
  return typeof line === 'object' && line !== null && (line as BackupHead).dbaasBackup === BACKUP_FORMAT;
}

export function isManifest(line: unknown): line is { manifest: BackupManifest } {
  return typeof line === 'object' && line !== null && typeof (line as { manifest?: unknown }).manifest === 'object';
}
