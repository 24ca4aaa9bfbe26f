/**
 * The master's side of secondary indexes (issue 17): index commands become
 * replicated ops, and every write is checked against the table's unique indexes
 * before it gets a seq, so a write that would give two documents one key is
 * refused whole (409 DBAAS_WRITE_DUPLICATE_KEY) and changes nothing anywhere.
 *
 * The check is of the write's end state, against the batch view (the database
 * before the batch, overlaid with the batch's earlier writes): each post-image's
 * key may be held by no other document, except by one this same write moves to
 * another key; and no two post-images of the write share a key. A replica then
 * applies the post-images in an order that never holds a key twice
 * (table-indexes.ts writeOrdered). The database's own unique index stays as the
 * last guard.
 *
 * Cost: one lookup per written document and unique index whose key changed,
 * several in flight, each an indexed equality on PostgreSQL (the index's GIN twin).
 */
import type { Doc, IndexSpec, WriteCommand } from '../common/commands.js';
import { DbaasError } from '../common/errors.js';
import { checkIndexKeys, MAX_INDEXES_PER_TABLE, sameIndex, uniqueKeyOf } from '../common/index-spec.js';
import type { SyncOp } from '../common/messages.js';
import { eachConcurrently, IN_FLIGHT } from './in-flight.js';
import type { BatchSource } from './write-batch.js';

export interface UniquePut {
  doc: Doc & { _id: string };
  /** The document before the write, when it existed (an unchanged key needs no lookup). */
  before?: Doc;
}

function duplicate(table: string, index: IndexSpec, key: string, holder: string, id: string): DbaasError {
  const fields = index.keys.map(([p]) => p).join(', ');
  return new DbaasError(
    'DBAAS_WRITE_DUPLICATE_KEY',
    `${table}: the unique index ${index.name} (${fields}) already holds ${key} for the document with _id ${JSON.stringify(holder)}, and the write would give it to ${JSON.stringify(id)} too; nothing was changed`,
  );
}

/**
 * Refuses a write whose post-images break a unique index of the table, or hold more in an index entry than one may
 * (common/index-spec.ts MAX_INDEX_KEY_BYTES: PostgreSQL's btree row would refuse it after the seq).
 * @throws DbaasError DBAAS_WRITE_DUPLICATE_KEY, DBAAS_DOC_INVALID (an array or object in a unique field), DBAAS_INDEX_KEY_TOO_LARGE
 */
export async function checkUnique(src: BatchSource, table: string, puts: readonly UniquePut[]): Promise<void> {
  if (puts.length === 0) return;
  const indexes = await src.indexes(table);
  for (const { doc } of puts) checkIndexKeys(indexes, doc, table);
  const unique = indexes.filter((i) => i.unique);
  if (unique.length === 0) return;
  const written = new Set(puts.map((p) => p.doc._id));
  for (const index of unique) {
    const mine = new Map<string, string>();
    const toLook: Array<[key: string, id: string]> = [];
    for (const { doc, before } of puts) {
      const key = uniqueKeyOf(index, doc, table);
      const other = mine.get(key);
      if (other !== undefined) throw duplicate(table, index, key, other, doc._id);
      mine.set(key, doc._id);
      if (before === undefined || keyOf(index, before, table) !== key) toLook.push([key, doc._id]);
    }
    // The first clash stops the check (no further lookup is started) and is thrown.
    await eachConcurrently(toLook, IN_FLIGHT, async ([key, id]) => {
      // A holder this write rewrites moves to another key (two post-images never share one).
      const holder = (await src.keyHolders(table, index, key)).find((h) => h !== id && !written.has(h));
      if (holder !== undefined) throw duplicate(table, index, key, holder, id);
    });
  }
}

/**
 * Whether a post-image holds the same key as the document it replaces under every
 * unique index: its replace can then never collide with another document's
 * (a replica writes such replaces several at a time, tables.ts writeUniqueTable).
 */
export function keepsUniqueKeys(unique: readonly IndexSpec[], before: Doc, after: Doc, table: string): boolean {
  return unique.every((index) => {
    const key = keyOf(index, after, table);
    return key !== undefined && keyOf(index, before, table) === key;
  });
}

function keyOf(index: IndexSpec, doc: Doc, table: string): string | undefined {
  try {
    return uniqueKeyOf(index, doc, table);
  } catch {
    return undefined;
  }
}

/**
 * The ops of an index command: none when the same index exists already (a retry
 * by another requestId), else one op. A unique index is built only over data
 * that holds each key once.
 * @throws DbaasError DBAAS_INDEX_EXISTS, DBAAS_INDEX_NOT_FOUND, DBAAS_REQ_LIMIT_EXCEEDED,
 *   DBAAS_WRITE_DUPLICATE_KEY, DBAAS_DOC_INVALID
 */
export async function buildIndexChange(src: BatchSource, command: Extract<WriteCommand, { kind: 'createIndex' | 'dropIndex' }>): Promise<SyncOp[]> {
  const existing = await src.indexes(command.table);
  if (command.kind === 'dropIndex') {
    if (!existing.some((i) => i.name === command.name)) throw new DbaasError('DBAAS_INDEX_NOT_FOUND', `${command.table} has no index ${JSON.stringify(command.name)}; its indexes: ${existing.map((i) => i.name).join(', ') || 'none'}`);
    return [{ t: 'dropIndex', table: command.table, name: command.name }];
  }
  const { index } = command;
  const named = existing.find((i) => i.name === index.name);
  if (named && sameIndex(named, index)) return [];
  if (named) throw new DbaasError('DBAAS_INDEX_EXISTS', `${command.table} already has an index ${JSON.stringify(index.name)} with other keys or uniqueness; drop it first or choose another name`);
  // One index per key list, whatever its uniqueness: the storage refuses a second one (FerretDB and MongoDB alike), and
  // one that reached the oplog was refused by every replica.
  const alike = existing.find((i) => JSON.stringify(i.keys) === JSON.stringify(index.keys));
  if (alike) {
    throw new DbaasError('DBAAS_INDEX_EXISTS', `${command.table} already has these keys indexed as ${JSON.stringify(alike.name)}${alike.unique ? ' (unique)' : ''}; a table holds one index per list of keys: drop it first`);
  }
  if (existing.length >= MAX_INDEXES_PER_TABLE) throw new DbaasError('DBAAS_REQ_LIMIT_EXCEEDED', `${command.table} has ${existing.length} indexes, the most a table may have`);
  // PostgreSQL answers in one query what a scan through FerretDB reads every document for.
  const verdict = index.unique ? await src.uniqueVerdict?.(command.table, index) : undefined;
  if (verdict?.kind === 'duplicate') {
    throw new DbaasError('DBAAS_WRITE_DUPLICATE_KEY', `${command.table}: more than one document holds ${verdict.key} for ${index.keys.map(([p]) => p).join(', ')}; the unique index ${index.name} was not created`);
  }
  if (verdict?.kind === 'not-scalar') {
    throw new DbaasError('DBAAS_DOC_INVALID', `${command.table}.${verdict.field}: a document holds an array or an object there, but a unique index takes only strings, numbers, booleans or null; ${index.name} was not created`);
  }
  // No stored value may pass an index entry's bound (PostgreSQL would refuse the index after the seq): the documents
  // PostgreSQL names as candidates, else those of the read of the table, which also checks a unique index the storage
  // could not judge (no two documents may share a key).
  const notCreated = `the index ${index.name} was not created`;
  const candidates = await src.indexKeyCandidates?.(command.table, index);
  for (const doc of candidates ?? []) checkIndexKeys([index], doc, command.table, notCreated);
  const seen = index.unique && verdict === undefined ? new Map<string, string>() : undefined;
  if (candidates === undefined || seen !== undefined) for await (const doc of src.scanTable(command.table)) {
    checkIndexKeys([index], doc, command.table, notCreated);
    if (seen === undefined) continue;
    const id = String(doc._id);
    const key = uniqueKeyOf(index, doc, command.table);
    const other = seen.get(key);
    if (other !== undefined) throw duplicate(command.table, index, key, other, id);
    seen.set(key, id);
  }
  return [{ t: 'index', table: command.table, index }];
}
