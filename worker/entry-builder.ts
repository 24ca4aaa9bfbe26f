/**
 * Turns a write command into resulting-state ops and the answer it gets.
 *
 * Post-images are computed here, in memory, before anything is written: a
 * write that cannot apply to some document (say `$inc` on a string) is refused
 * whole, and the oplog entry can be stored before the data changes, so a crash
 * in between is repaired by replaying the entry, never by re-running the update.
 */
import { ObjectId } from 'mongodb';
import type { Doc, WriteCommand, WriteResult } from '../common/commands.js';
import { DbaasError } from '../common/errors.js';
import type { SyncOp } from '../common/messages.js';
import { applyUpdate, deepEqual, seedFromFilter } from '../common/update-ops.js';
import type { Store } from './store.js';

export interface BuiltWrite {
  ops: SyncOp[];
  result: Omit<WriteResult, 'seq'>;
}

export function newId(): string {
  return new ObjectId().toHexString();
}

function emptyResult(): Omit<WriteResult, 'seq'> {
  return { ok: true, inserted: 0, ids: [], matched: 0, modified: 0, deleted: 0 };
}

export async function buildWrite(store: Store, command: WriteCommand): Promise<BuiltWrite> {
  const result = emptyResult();
  switch (command.kind) {
    case 'insert': {
      const docs = command.docs.map((d) => ({ ...d, _id: typeof d._id === 'string' ? d._id : newId() }));
      const ids = docs.map((d) => d._id);
      const dup = ids.find((id, i) => ids.indexOf(id) !== i);
      if (dup !== undefined) throw new DbaasError('DBAAS_WRITE_DUPLICATE_ID', `_id ${JSON.stringify(dup)} appears twice in the insert`);
      const existing = await store.idsExisting(command.table, ids);
      if (existing.length > 0) {
        throw new DbaasError('DBAAS_WRITE_DUPLICATE_ID', `a document with _id ${JSON.stringify(existing[0])} already exists in ${command.table}`);
      }
      result.inserted = docs.length;
      result.ids = ids;
      return { ops: docs.map((doc) => ({ t: 'put', table: command.table, doc })), result };
    }
    case 'update':
    case 'upsert': {
      const matches = await store.findForUpdate(command.table, command.where);
      result.matched = matches.length;
      const ops: SyncOp[] = [];
      for (const doc of matches) {
        const post = applyUpdate(doc, command.update);
        if (!deepEqual(post, doc)) ops.push({ t: 'put', table: command.table, doc: { ...post, _id: doc._id } });
      }
      result.modified = ops.length;
      if (matches.length === 0 && command.kind === 'upsert') {
        const seed: Doc = seedFromFilter(command.where);
        const id = typeof seed._id === 'string' ? seed._id : newId();
        const doc = { ...applyUpdate({ ...seed, _id: id }, command.update), _id: id };
        ops.push({ t: 'put', table: command.table, doc });
        result.inserted = 1;
        result.ids = [id];
      }
      return { ops, result };
    }
    case 'delete': {
      const matches = await store.findForUpdate(command.table, command.where);
      result.deleted = matches.length;
      result.matched = matches.length;
      return { ops: matches.map((d) => ({ t: 'del', table: command.table, id: d._id })), result };
    }
    case 'clear':
      return { ops: [{ t: 'clear' }], result };
  }
}
