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
import { checkBsonSize } from '../common/bson-size.js';
import { MAX_DELETE_PRE_IMAGE_BYTES, MAX_DOCUMENT_BYTES, MAX_ENTRY_BYTES, MAX_STORED_ENTRY_BYTES } from '../common/limits.js';
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

/** The documents a filter matches, streamed; a filter that is one `_id` is a single lookup. */
async function* findMatches(src: BatchSource, table: string, where: Filter, id: string | undefined): AsyncIterable<Doc & { _id: string }> {
  if (id === undefined) {
    yield* src.findForUpdate(table, where);
    return;
  }
  const doc = await src.findById(table, id);
  if (doc) yield doc;
}

/**
 * The ids of the documents a delete removes. It reads them whole while they hold at most
 * {@link MAX_DELETE_PRE_IMAGE_BYTES} (the master keeps them to take its batch back:
 * void-batch.ts); past that it reads on only their `_id`s, and it cannot be taken back, so
 * it goes on only when `alone` in its batch ({@link BuildAlone}). Each id's op counts toward
 * the entry's bound.
 */
async function deletedIds(src: BatchSource, table: string, where: Filter, id: string | undefined, size: EntryBytes, alone: boolean): Promise<string[]> {
  const ids: string[] = [];
  let bytes = 0;
  for await (const doc of findMatches(src, table, where, id)) {
    size.read += 1;
    ids.push(doc._id);
    size.add({ t: 'del', table, id: doc._id });
    bytes += Buffer.byteLength(JSON.stringify(doc));
    if (bytes > MAX_DELETE_PRE_IMAGE_BYTES) break;
  }
  if (bytes <= MAX_DELETE_PRE_IMAGE_BYTES) return ids;
  if (!alone) throw new BuildAlone();
  const seen = new Set(ids);
  for await (const matched of src.matchingIds(table, where)) {
    if (seen.has(matched)) continue;
    size.read += 1;
    ids.push(matched);
    size.add({ t: 'del', table, id: matched });
  }
  return ids;
}

/**
 * Thrown by a build that would read past {@link MAX_DELETE_PRE_IMAGE_BYTES} of a delete's
 * documents while its batch holds other writes: such a delete cannot be taken back, so it is
 * built again in a batch of its own (MasterRole.stage1), having read no more than the bound.
 */
export class BuildAlone extends Error {
  constructor() {
    super('this write must be built alone in its batch');
  }
}

/** `alone`: the write is alone in its batch (a wide delete goes ahead without pre-images only then). */
export async function buildWrite(src: BatchSource, command: WriteCommand, alone = true): Promise<BuiltWrite> {
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
      const size = new EntryBytes();
      for (const op of ops) size.add(op);
      return { ops, result };
    }
    case 'update':
    case 'upsert': {
      const id = idOnly(command.where);
      const ops: SyncOp[] = [];
      const puts: UniquePut[] = [];
      // Streamed, and stopped as soon as the entry would pass its bound: a write over 20 MB of documents
      // is refused having read 8 MiB of them, not all (the serial write stage waits for it meanwhile).
      const size = new EntryBytes();
      for await (const doc of findMatches(src, command.table, command.where, id)) {
        result.matched += 1;
        size.read += 1;
        const post = applyUpdate(doc, command.update);
        if (deepEqual(post, doc)) continue;
        const put = { ...post, _id: doc._id };
        const op: SyncOp = { t: 'put', table: command.table, doc: put };
        size.add(op, doc);
        ops.push(op);
        puts.push({ doc: put, before: doc });
      }
      result.modified = ops.length;
      if (result.matched === 0 && command.kind === 'upsert') {
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
        const op: SyncOp = fresh ? { t: 'put', table: command.table, doc, fresh: true } : { t: 'put', table: command.table, doc };
        size.add(op);
        ops.push(op);
        puts.push({ doc });
        result.inserted = 1;
        result.ids = [newDocId];
      }
      await checkUnique(src, command.table, puts);
      return { ops, result };
    }
    case 'delete': {
      const ids = await deletedIds(src, command.table, command.where, idOnly(command.where), new EntryBytes(), alone);
      result.deleted = ids.length;
      result.matched = ids.length;
      return { ops: ids.map((id) => ({ t: 'del', table: command.table, id })), result };
    }
    case 'clear':
      return { ops: [command.database === undefined ? { t: 'clear' } : { t: 'clear', database: command.database }], result };
    case 'verify':
      // A checkpoint changes nothing; its entry is marked by the master (SyncEntry.checkpoint).
      return { ops: [], result };
  }
}

/**
 * A write's resulting documents all go into one oplog entry, and a database refuses a
 * document over 16 MiB: a write past the bound is refused up front (nothing changes, and the
 * refusal is acked like any answer), instead of failing to store its entry, which would take
 * the master down and hand the same write to the next one. Counted op by op as the write is
 * built, so a build stops at the bound: many post-images sharing one large value (an update of
 * every document) would otherwise be serialised whole, hundreds of MiB, freezing the master or
 * passing the largest string V8 can make (a RangeError that took the master down). Two bounds:
 * the entry as published ({@link MAX_ENTRY_BYTES}), and as the master stores it, with the
 * documents it changes as they were before it (undo ops, {@link MAX_STORED_ENTRY_BYTES}).
 */
class EntryBytes {
  /** JSON bytes of the ops as one array: `[`, `]` and the commas between them. */
  private published = 1;
  private stored = 1;
  private count = 0;
  /** Matching documents read so far (said in the refusal: the build stops reading there). */
  read = 0;

  /** Counts one op (and `before`, the document it changes as it was), throwing once a bound is passed. */
  add(op: SyncOp, before?: Doc): void {
    const bytes = Buffer.byteLength(JSON.stringify(op)) + 1;
    // BSON is at most about 5x its JSON (bson-size.ts): only a document past a sixth of the bound is measured.
    if (op.t === 'put' && bytes * 6 > MAX_DOCUMENT_BYTES) checkBsonSize(op.doc, `_id ${JSON.stringify(op.doc._id)}`);
    this.published += bytes;
    this.stored += bytes + (before === undefined ? 0 : Buffer.byteLength(JSON.stringify(before)) + 1);
    this.count += 1;
    const mib = (n: number): string => (n / 1_048_576).toFixed(1);
    if (this.published > MAX_ENTRY_BYTES) {
      throw this.tooLarge(`the first ${this.count} document(s) it changes already hold ${mib(this.published)} MiB, over the ${MAX_ENTRY_BYTES / 1_048_576} MiB one write may change`);
    }
    if (this.stored > MAX_STORED_ENTRY_BYTES) {
      throw this.tooLarge(
        `the first ${this.count} document(s) it changes, with their contents before it (kept to take the write back), already hold ${mib(this.stored)} MiB, over the ${MAX_STORED_ENTRY_BYTES / 1_048_576} MiB one write may store`,
      );
    }
  }

  private tooLarge(why: string): DbaasError {
    return new DbaasError('DBAAS_REQ_LIMIT_EXCEEDED', `this write is too large: ${why}; split it (or narrow the where filter); nothing was changed`, {
      documentsRead: this.read,
      documentsChanged: this.count,
    });
  }
}
