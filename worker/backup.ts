/**
 * A backup taken on a slave at a checkpoint (issue 20): the slave's data is
 * exactly the checkpoint's seq while its apply loop waits for this, so every
 * document read here is the state at that seq, and the master's write path is
 * not touched. The archive's lines (common/backup-format.ts) go, in parts, to
 * the queue the orchestrator declared for this backup; the orchestrator
 * streams them to the client as they come.
 */
import type { Channel } from 'amqplib';
import { type BackupLine, type BackupPart, BACKUP_FORMAT } from '../common/backup-format.js';
import type { Doc } from '../common/commands.js';
import { DbaasError } from '../common/errors.js';
import { TableHasher } from '../common/doc-hash.js';
import type { Logger } from '../common/logger.js';
import { encode, type SyncEntry } from '../common/messages.js';
import type { TableChecksum } from '../common/messages.js';
import type { Store } from './store.js';

/** About this much JSON per part (one RabbitMQ message). */
const PART_BYTES = 1_048_576;

/** Sends every table of `store` as the archive of the backup `entry` names. Never throws: a failure is sent as the last part. */
export async function sendBackup(store: Store, entry: SyncEntry, ch: Channel, workerId: string, logger: Logger): Promise<void> {
  const target = entry.backup;
  if (!target) return;
  const started = performance.now();
  let part = 0;
  let lines: BackupLine[] = [];
  let bytes = 0;
  const flush = async (end: Partial<Pick<BackupPart, 'last' | 'error' | 'code'>> = {}): Promise<void> => {
    const msg: BackupPart = { id: target.id, part: part++, lines, ...end };
    lines = [];
    bytes = 0;
    // Backpressure: a full channel buffer waits for 'drain' rather than growing without bound.
    if (!ch.sendToQueue(target.queue, encode(msg), { contentType: 'application/json' })) await new Promise((r) => ch.once('drain', r));
  };
  const push = async (line: BackupLine): Promise<void> => {
    lines.push(line);
    bytes += Buffer.byteLength(JSON.stringify(line));
    if (bytes >= PART_BYTES) await flush();
  };
  try {
    // The oplog tail from `after` on (a point-in-time restore lays it over an older backup): all of it, or refused
    // before anything is sent, so that the refusal is the answer's status, not an archive cut short.
    const after = target.oplogAfter;
    const log = after === undefined ? [] : await store.entriesBetween(after, entry.seq);
    if (after !== undefined && after < entry.seq && log[0]?._id !== after + 1) {
      throw new DbaasError('DBAAS_BACKUP_OPLOG_TRIMMED', `the oplog here starts at seq ${log[0]?._id ?? entry.seq + 1}, after ${after + 1}: outside the oplog horizon`);
    }
    const tables = (await store.tables.userTables()).sort();
    const takenAt = new Date().toISOString();
    await push({ dbaasBackup: BACKUP_FORMAT, id: target.id, seq: entry.seq, term: entry.term, takenAt, from: workerId, tables });
    const sums: Record<string, TableChecksum> = {};
    let documents = 0;
    for (const t of tables) {
      const h = new TableHasher();
      for await (const doc of store.scanTable(t)) {
        h.add(doc);
        await push({ t, d: doc as Doc & { _id: string } });
      }
      if (h.count > 0) sums[t] = h.result();
      documents += h.count;
    }
    const indexes = await store.tables.indexes.all(tables);
    for (const { _id: _seq, ...e } of log) await push({ e });
    await push({ manifest: { seq: entry.seq, term: entry.term, takenAt, documents, tables: sums, indexes, ...(after === undefined ? {} : { oplogAfter: after }) } });
    await flush({ last: true });
    logger.info({ backup: target.id, seq: entry.seq, tables: tables.length, documents, ms: Math.round(performance.now() - started) }, 'backup sent at checkpoint');
  } catch (err) {
    logger.warn({ backup: target.id, err: (err as Error).message }, 'backup failed');
    lines = [];
    await flush({ error: (err as Error).message, code: err instanceof DbaasError ? err.code : 'DBAAS_BACKUP_FAILED' }).catch(() => undefined);
  }
}
