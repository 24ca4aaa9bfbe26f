/**
 * The master's unique-index rules (worker/unique-keys.ts) on an in-memory
 * database: a write is judged by its end state in the batch view; index
 * commands refuse what they must and change nothing when repeated.
 */
import { describe, expect, it } from 'vitest';
import type { IndexSpec, WriteCommand } from '../../common/commands.js';
import { DbaasError } from '../../common/errors.js';
import { buildWrite } from '../../worker/entry-builder.js';
import { keepsUniqueKeys } from '../../worker/unique-keys.js';
import { BatchView } from '../../worker/write-batch.js';
import { MemoryDb } from './memory-db.js';

const EMAIL: IndexSpec = { name: 'email_1', keys: [['email', 1]], unique: true };

function db(): MemoryDb {
  const m = new MemoryDb();
  m.applySequential([
    { t: 'index', table: 'u', index: EMAIL },
    { t: 'put', table: 'u', doc: { _id: 'a', email: 'a@x' } },
    { t: 'put', table: 'u', doc: { _id: 'b', email: 'b@x' } },
  ]);
  return m;
}

async function code(src: BatchView, command: WriteCommand): Promise<string> {
  try {
    const built = await buildWrite(src, command);
    src.record(built.ops);
    return 'ok';
  } catch (err) {
    return err instanceof DbaasError ? err.code : String(err);
  }
}

describe('unique indexes on the master', () => {
  it('refuses a key another document holds, two equal keys in one insert, and a second null', async () => {
    const v = new BatchView(db());
    expect(await code(v, { kind: 'insert', table: 'u', docs: [{ email: 'a@x' }] })).toBe('DBAAS_WRITE_DUPLICATE_KEY');
    expect(await code(v, { kind: 'insert', table: 'u', docs: [{ email: 'n@x' }, { email: 'n@x' }] })).toBe('DBAAS_WRITE_DUPLICATE_KEY');
    expect(await code(v, { kind: 'insert', table: 'u', docs: [{ name: 'no email' }] })).toBe('ok');
    expect(await code(v, { kind: 'insert', table: 'u', docs: [{ email: null }] })).toBe('DBAAS_WRITE_DUPLICATE_KEY');
    expect(await code(v, { kind: 'insert', table: 'u', docs: [{ email: ['x'] }] })).toBe('DBAAS_DOC_INVALID');
  });

  it('sees the earlier writes of its batch: a key freed earlier may be taken, a key taken earlier may not', async () => {
    const v = new BatchView(db());
    expect(await code(v, { kind: 'update', table: 'u', where: { _id: 'a' }, update: { $set: { email: 'moved@x' } } })).toBe('ok');
    expect(await code(v, { kind: 'insert', table: 'u', docs: [{ _id: 'c', email: 'a@x' }] })).toBe('ok');
    expect(await code(v, { kind: 'upsert', table: 'u', where: { _id: 'd' }, update: { $set: { email: 'moved@x' } } })).toBe('DBAAS_WRITE_DUPLICATE_KEY');
    expect(await code(v, { kind: 'delete', table: 'u', where: { _id: 'b' } })).toBe('ok');
    expect(await code(v, { kind: 'insert', table: 'u', docs: [{ email: 'b@x' }] })).toBe('ok');
  });

  it('an update that leaves the key alone needs no lookup and passes; one that gives every match one key does not', async () => {
    const v = new BatchView(db());
    expect(await code(v, { kind: 'update', table: 'u', where: { _id: 'a' }, update: { $set: { n: 1 } } })).toBe('ok');
    const fresh = new BatchView(db());
    expect(await code(fresh, { kind: 'update', table: 'u', where: {}, update: { $set: { email: 'same@x' } } })).toBe('DBAAS_WRITE_DUPLICATE_KEY');
  });

  it('index commands: the same index again is no op, a clash of names or keys is refused, a unique index over duplicates too', async () => {
    const m = db();
    expect((await buildWrite(new BatchView(m), { kind: 'createIndex', table: 'u', index: EMAIL })).ops).toEqual([]);
    expect(await code(new BatchView(m), { kind: 'createIndex', table: 'u', index: { ...EMAIL, unique: false } })).toBe('DBAAS_INDEX_EXISTS');
    expect(await code(new BatchView(m), { kind: 'createIndex', table: 'u', index: { ...EMAIL, name: 'other' } })).toBe('DBAAS_INDEX_EXISTS');
    expect(await code(new BatchView(m), { kind: 'dropIndex', table: 'u', name: 'nope' })).toBe('DBAAS_INDEX_NOT_FOUND');
    m.applySequential([{ t: 'put', table: 'v', doc: { _id: '1', k: 1 } }, { t: 'put', table: 'v', doc: { _id: '2', k: 1 } }]);
    expect(await code(new BatchView(m), { kind: 'createIndex', table: 'v', index: { name: 'k_1', keys: [['k', 1]], unique: true } })).toBe('DBAAS_WRITE_DUPLICATE_KEY');
    expect((await buildWrite(new BatchView(m), { kind: 'createIndex', table: 'v', index: { name: 'k_1', keys: [['k', 1]], unique: false } })).ops).toEqual([
      { t: 'index', table: 'v', index: { name: 'k_1', keys: [['k', 1]], unique: false } },
    ]);
  });
});

describe('keepsUniqueKeys (replicas write such replaces several at a time)', () => {
  const PAIR: IndexSpec = { name: 'a_1_b_1', keys: [['a', 1], ['b', 1]], unique: true };

  it('is true only when every unique key of the post-image is the one the document holds', () => {
    expect(keepsUniqueKeys([EMAIL], { _id: 'a', email: 'a@x', n: 1 }, { _id: 'a', email: 'a@x', n: 2 }, 'u')).toBe(true);
    expect(keepsUniqueKeys([EMAIL], { _id: 'a', email: 'a@x' }, { _id: 'a', email: 'b@x' }, 'u')).toBe(false);
    // A field gone counts as moving to the null key.
    expect(keepsUniqueKeys([EMAIL], { _id: 'a', email: 'a@x' }, { _id: 'a' }, 'u')).toBe(false);
    expect(keepsUniqueKeys([EMAIL, PAIR], { _id: 'a', email: 'a@x', a: 1, b: 2 }, { _id: 'a', email: 'a@x', a: 1, b: 3 }, 'u')).toBe(false);
    expect(keepsUniqueKeys([], { _id: 'a' }, { _id: 'a', x: 1 }, 'u')).toBe(true);
  });
});
