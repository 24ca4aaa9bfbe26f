/**
 * Turns a write command into resulting-state ops and the answer it gets.
 *
 * Post-images are computed here, in memory, before anything is written: a
 * write that cannot apply to some document (say `$inc` on a string) is refused
 * whole, and the oplog entry can be stored before the data changes, so a crash
 * in between is repaired by replaying the entry, never by re-running the update.
 *
 * It reads through a {@link BatchSource}: the database, or the database
 * overlaid with the earlier writes of the same batch (see write-batch.ts).
 */
import { ObjectId } from 'mongodb';
import type { Doc, Filter, WriteCommand, WriteResult } from '../common/commands.js';
import { DbaasError } from '../common/errors.js';
import type { SyncOp } from '../common/messages.js';
import { applyUpdate, deepEqual, seedFromFilter } from '../common/update-ops.js';
import { MAX_ENTRY_BYTES } from '../common/limits.js';
import { buildIndexChange, checkUnique, type UniquePut } from './unique-keys.js';
import { idOnly, type BatchSource } from './write-batch.js';

export interface BuiltWrite {
  ops: SyncOp[];
  result: Omit<WriteResult, 'seq'>;
}

/**
 * A new document id. ObjectIds are unique without asking the database (a
 * timestamp, a per-process random value and a counter), so inserts of
 * documents without `_id` skip the duplicate check.
 */
export function newId(): string {
  return new ObjectId().toHexString();
}

function emptyResult(): Omit<WriteResult, 'seq'> {
  return { ok: true, inserted: 0, ids: [], matched: 0, modified: 0, deleted: 0 };
}

/** The documents a filter matches; a filter that is one `_id` is a single lookup. */
async function findMatches(src: BatchSource, table: string, where: Filter, id: string | undefined): Promise<Array<Doc & { _id: string }>> {
  if (id === undefined) return src.findForUpdate(table, where);
  const doc = await src.findById(table, id);
  return doc ? [doc] : [];
}

export async function buildWrite(src: BatchSource, command: WriteCommand): Promise<BuiltWrite> {
  const result = emptyResult();
  switch (command.kind) {
    case 'createIndex':
    case 'dropIndex':
      return { ops: await buildIndexChange(src, command), result };
    case 'insert': {
      const given: string[] = [];
      const docs = command.docs.map((d) => {
        if (typeof d._id === 'string') {
          given.push(d._id);
          return { ...d, _id: d._id };
        }
        return { ...d, _id: newId() };
      });
      if (given.length > 0) {
        const seen = new Set<string>();
        for (const id of given) {
          if (seen.has(id)) throw new DbaasError('DBAAS_WRITE_DUPLICATE_ID', `_id ${JSON.stringify(id)} appears twice in the insert`);
          seen.add(id);
        }
        const existing = await src.idsExisting(command.table, given);
        if (existing.length > 0) {
          throw new DbaasError('DBAAS_WRITE_DUPLICATE_ID', `a document with _id ${JSON.stringify(existing[0])} already exists in ${command.table}`);
        }
      }
      await checkUnique(src, command.table, docs.map((doc) => ({ doc })));
      result.inserted = docs.length;
      result.ids = docs.map((d) => d._id);
      const ops: SyncOp[] = docs.map((doc) => ({ t: 'put', table: command.table, doc, fresh: true }));
      checkEntrySize(ops);
      return { ops, result };
    }
    case 'update':
    case 'upsert': {
      const id = idOnly(command.where);
      const matches = await findMatches(src, command.table, command.where, id);
      result.matched = matches.length;
      const ops: SyncOp[] = [];
      const puts: UniquePut[] = [];
      for (const doc of matches) {
        const post = applyUpdate(doc, command.update);
        if (deepEqual(post, doc)) continue;
        const put = { ...post, _id: doc._id };
        ops.push({ t: 'put', table: command.table, doc: put });
        puts.push({ doc: put, before: doc });
      }
      result.modified = ops.length;
      if (matches.length === 0 && command.kind === 'upsert') {
        const seed: Doc = seedFromFilter(command.where);
        const seeded = typeof seed._id === 'string' ? seed._id : undefined;
        const newDocId = seeded ?? newId();
        // The filter named an _id with other conditions and matched nothing: a document with that _id
        // that failed the other conditions must not be overwritten (MongoDB refuses it likewise, E11000).
        if (seeded !== undefined && id === undefined && (await src.idsExisting(command.table, [seeded])).length > 0) {
          throw new DbaasError(
            'DBAAS_WRITE_DUPLICATE_ID',
            `the upsert matched nothing, and a document with _id ${JSON.stringify(seeded)} already exists in ${command.table}; nothing was changed`,
          );
        }
        const doc = { ...applyUpdate({ ...seed, _id: newDocId }, command.update), _id: newDocId };
        // New for sure when the id was made here, or when the filter was that id alone and found nothing.
        const fresh = seeded === undefined || id !== undefined;
        ops.push(fresh ? { t: 'put', table: command.table, doc, fresh: true } : { t: 'put', table: command.table, doc });
        puts.push({ doc });
        result.inserted = 1;
        result.ids = [newDocId];
      }
      await checkUnique(src, command.table, puts);
      checkEntrySize(ops);
      return { ops, result };
    }
    case 'delete': {
      const id = idOnly(command.where);
      const matches = await findMatches(src, command.table, command.where, id);
      result.deleted = matches.length;
      result.matched = matches.length;
      return { ops: matches.map((d) => ({ t: 'del', table: command.table, id: d._id })), result };
    }
    case 'clear':
      return { ops: [command.database === undefined ? { t: 'clear' } : { t: 'clear', database: command.database }], result };
    case 'verify':
      // A checkpoint changes nothing; its entry is marked by the master (SyncEntry.checkpoint).
      return { ops: [], result };
  }
}

/**
 * A write's post-images all go into one oplog entry, and a database refuses a
 * document over 16 MiB: refuse such a write up front (nothing changes, and the
 * refusal is acked like any answer), instead of failing to store its entry,
 * which would take the master down and hand the same write to the next one.
 */
function checkEntrySize(ops: readonly SyncOp[]): void {
  // Op by op, stopping at the limit: many post-images sharing one large value (an update of every
  // document) would otherwise be serialised whole, hundreds of MiB, freezing the master or passing
  // the largest string V8 can make (a RangeError that took the master down).
  let bytes = 2 + Math.max(0, ops.length - 1);
  for (const [i, op] of ops.entries()) {
    bytes += Buffer.byteLength(JSON.stringify(op));
    if (bytes > MAX_ENTRY_BYTES) {
      const what = i + 1 === ops.length ? `${ops.length} document(s) holding ${(bytes / 1_048_576).toFixed(1)} MiB` : `${ops.length} documents, the first ${i + 1} of them already ${(bytes / 1_048_576).toFixed(1)} MiB`;
      throw new DbaasError(
        'DBAAS_REQ_LIMIT_EXCEEDED',
        `this write would store ${what}, over the ${MAX_ENTRY_BYTES / 1_048_576} MiB one write may change; split it (or narrow the where filter); nothing was changed`,
      );
    }
  }
}
