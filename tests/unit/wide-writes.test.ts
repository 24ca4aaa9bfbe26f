/**
 * Wide updates and deletes as the master builds them (worker/entry-builder.ts):
 * an update stops reading at the entry's bound, counting the documents as they
 * were before it (kept to take it back); a delete keeps the documents it removes
 * up to MAX_DELETE_PRE_IMAGE_BYTES, and past that reads only `_id`s, which it
 * may only do alone in its batch (BuildAlone), since it cannot be taken back.
 */
import { describe, expect, it } from 'vitest';
import { DbaasError } from '../../common/errors.js';
import { MAX_DELETE_PRE_IMAGE_BYTES, MAX_ENTRY_BYTES, MAX_STORED_ENTRY_BYTES } from '../../common/limits.js';
import { BuildAlone, buildWrite } from '../../worker/entry-builder.js';
import { undoOps, PreImages } from '../../worker/void-batch.js';
import { BatchView } from '../../worker/write-batch.js';
import { MemoryDb } from './memory-db.js';

const PAD = 'p'.repeat(1000);

function table(n: number): MemoryDb {
  const db = new MemoryDb();
  db.applySequential(Array.from({ length: n }, (_, i) => ({ t: 'put' as const, table: 'w', doc: { _id: `d${i}`, n: i, pad: PAD } })));
  return db;
}

async function refusal(p: Promise<unknown>): Promise<DbaasError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DbaasError);
  return err as DbaasError;
}

describe('wide writes', () => {
  const docs = Math.ceil((2 * MAX_STORED_ENTRY_BYTES) / 1000);

  it('an update past the published bound is refused having read only up to it', async () => {
    const err = await refusal(buildWrite(table(docs), { kind: 'update', table: 'w', where: {}, update: { $set: { tag: 'x' } } }));
    expect(err.code).toBe('DBAAS_REQ_LIMIT_EXCEEDED');
    const read = (err.details as { documentsRead: number }).documentsRead;
    // Each post-image is ~1 KB, and with its pre-image ~2 KB against the stored bound: whichever comes first.
    expect(read).toBeLessThanOrEqual(Math.ceil(Math.min(MAX_ENTRY_BYTES / 1000, MAX_STORED_ENTRY_BYTES / 2000)) + 1);
    expect(read).toBeLessThan(docs);
  });

  it('an update that shrinks many documents is refused by the stored bound (its undo ops hold them)', async () => {
    const err = await refusal(buildWrite(table(docs), { kind: 'update', table: 'w', where: {}, update: { $unset: { pad: '' } } }));
    expect(err.code).toBe('DBAAS_REQ_LIMIT_EXCEEDED');
    expect(err.message).toMatch(/one write may store/);
    expect((err.details as { documentsRead: number }).documentsRead).toBeLessThan(docs);
  });

  it('a narrow delete keeps its pre-images: its batch can be taken back', async () => {
    const db = table(10);
    const pre = new PreImages(db);
    const built = await buildWrite(new BatchView(pre), { kind: 'delete', table: 'w', where: { n: 3 } }, false);
    expect(built.result.deleted).toBe(1);
    const [undo] = undoOps([{ v: 1, seq: 1, term: 1, requestId: 'r', ts: 0, ops: built.ops, result: { ...built.result, seq: 1 } }], pre);
    expect(undo).toEqual([{ t: 'put', table: 'w', doc: { _id: 'd3', n: 3, pad: PAD } }]);
  });

  it('a wide delete is built alone, from ids, and cannot be taken back', async () => {
    const n = Math.ceil((3 * MAX_DELETE_PRE_IMAGE_BYTES) / 1000);
    const db = table(n);
    await expect(buildWrite(new BatchView(new PreImages(db)), { kind: 'delete', table: 'w', where: {} }, false)).rejects.toBeInstanceOf(BuildAlone);
    const pre = new PreImages(db);
    const built = await buildWrite(new BatchView(pre), { kind: 'delete', table: 'w', where: {} }, true);
    expect(built.result.deleted).toBe(n);
    expect(new Set(built.ops.map((op) => (op.t === 'del' ? op.id : '')))).toEqual(new Set(Array.from({ length: n }, (_, i) => `d${i}`)));
    const [undo] = undoOps([{ v: 1, seq: 1, term: 1, requestId: 'r', ts: 0, ops: built.ops, result: { ...built.result, seq: 1 } }], pre);
    expect(undo).toBeUndefined();
  });
});
