/**
 * Backup, restore, export and import end to end (issue 20): a backup taken on
 * a slave while writes flow restores, through the write path, to exactly the
 * state at its seq, checked against its manifest on every replica; an archive
 * cut short is refused; export pages through a table; an import run twice with
 * the same id applies nothing twice.
 */
import { Readable, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DbaasClient } from '../../client/index.js';
import { exportTable, importTable, restore } from '../../client/archive.js';
import { startTestCluster, type TestCluster } from './harness.js';
import { dumpAllReplicas } from './replicas.js';
import { gunzipSync, gzipSync } from 'node:zlib';

const ADMIN = 'backup-admin-token';
let c: TestCluster;
let admin: DbaasClient;

beforeAll(async () => {
  c = await startTestCluster({ DBAAS_INITIAL_SLAVES: '2', DBAAS_VERIFY_INTERVAL_MS: '0', DBAAS_ADMIN_TOKEN: ADMIN }, { listen: true });
  admin = new DbaasClient({ url: c.url, adminToken: ADMIN, timeoutMs: 30_000 });
  await admin.createDatabase('shop');
});

afterAll(async () => {
  await c?.close();
});

async function bytesOf(body: ReadableStream<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of Readable.fromWeb(body as import('node:stream/web').ReadableStream<Uint8Array>)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('backup and restore', () => {
  let archive: Buffer;
  let seq = 0;
  /** Every acknowledged write: the counter it bumped and its seq. */
  const acked: Array<{ database: string; id: string; seq: number }> = [];

  it('takes a backup on a slave while writes flow, at one seq, with a manifest', async () => {
    const writer = new DbaasClient({ url: c.url, adminToken: ADMIN });
    await writer.createIndex({ table: 'counters', database: 'shop', keys: { bucket: 1 }, name: 'bucket_1' });
    let stop = false;
    const load = async (database: string, w: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const id = `${database}-w${w}-${i % 7}`;
        const r = await writer.write({ table: 'counters', ...(database === 'default' ? {} : { database }), operation: 'upsert', where: { _id: id }, data: { $inc: { n: 1 }, $set: { bucket: i % 3 } } });
        acked.push({ database, id, seq: r.seq });
      }
    };
    const writers = [load('shop', 1), load('shop', 2), load('default', 3)];
    while (acked.length < 60) await new Promise((r) => setTimeout(r, 10));
    const taken = await admin.backup();
    archive = await bytesOf(taken.body);
    seq = taken.seq;
    const before = acked.length;
    while (acked.length < before + 30) await new Promise((r) => setTimeout(r, 10));
    stop = true;
    await Promise.all(writers);
    // Writes were acknowledged on both sides of the backup's seq: "one seq" held under load.
    expect(acked.some((a) => a.seq < seq)).toBe(true);
    expect(acked.some((a) => a.seq > seq)).toBe(true);

    const lines = gunzipSync(archive).toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    const head = lines[0] as Record<string, any>;
    const manifest = (lines.at(-1) as { manifest: Record<string, any> }).manifest;
    expect(head.dbaasBackup).toBe(1);
    expect(head.seq).toBe(seq);
    expect(manifest.seq).toBe(seq);
    expect(head.tables).toEqual(['counters', 'shop.counters']);
    // The slave it came from, not the master.
    const workers = await admin.workers();
    expect(workers.find((w) => w.id === head.from)?.role).toBe('slave');
    expect(manifest.indexes).toEqual([{ table: 'shop.counters', name: 'bucket_1', keys: [['bucket', 1]], unique: false }]);
    expect(manifest.documents).toBe(lines.length - 2);
  });

  it('restores into a new database exactly the state at its seq, verified against the manifest on every replica', async () => {
    const report = await restore(admin, Readable.from(archive), { database: 'shop_restored', fromDatabase: 'shop' });
    expect(report.verified).toBe(true);
    expect(report.mismatches).toEqual([]);
    expect(report.seq).toBe(seq);
    expect(report.tables).toEqual([{ from: 'shop.counters', to: 'shop_restored.counters', count: expect.any(Number) }]);
    expect(report.indexes).toBe(1);
    // The state at seq: each counter bumped once per acknowledged write at or below it.
    const expected = new Map<string, number>();
    for (const a of acked) if (a.database === 'shop' && a.seq <= seq) expected.set(a.id, (expected.get(a.id) ?? 0) + 1);
    const restored = await admin.read<{ _id: string; n: number }>('counters', { database: 'shop_restored', sort: { _id: 1 } });
    expect(new Map(restored.map((d) => [d._id, d.n]))).toEqual(expected);
    // Every replica holds it (through the write path).
    const dumps = await dumpAllReplicas(c.orch, 30_000);
    for (const dump of dumps.values()) expect((dump['shop_restored.counters'] ?? []).length).toBe(expected.size);
  });

  it('restores to a point in time: the backup, then the oplog entries of a later archive up to a seq', async () => {
    const later = await admin.backup({ oplogAfter: seq });
    const log = await bytesOf(later.body);
    const after = acked.filter((a) => a.database === 'shop' && a.seq > seq).map((a) => a.seq).sort((x, y) => x - y);
    expect(after.length).toBeGreaterThan(4);
    const toSeq = after[Math.floor(after.length / 2)] as number;
    const report = await restore(admin, Readable.from(archive), { database: 'shop_pitr', fromDatabase: 'shop', oplog: Readable.from(log), toSeq });
    expect(report.verified).toBe(true);
    expect(report.pointInTime?.seq).toBe(toSeq);
    const expected = new Map<string, number>();
    for (const a of acked) if (a.database === 'shop' && a.seq <= toSeq) expected.set(a.id, (expected.get(a.id) ?? 0) + 1);
    const restored = await admin.read<{ _id: string; n: number }>('counters', { database: 'shop_pitr', sort: { _id: 1 } });
    expect(new Map(restored.map((d) => [d._id, d.n]))).toEqual(expected);
    // A seq the two archives do not cover is refused.
    await expect(restore(admin, Readable.from(archive), { database: 'shop_pitr2', fromDatabase: 'shop', oplog: Readable.from(log), toSeq: later.seq + 5 })).rejects.toThrow(/outside what the two archives cover/);
  });

  it('restores to a point in time by the clock: the longest prefix of the history at or before that time', async () => {
    const later = await admin.backup({ oplogAfter: seq });
    const lines = gunzipSync(await bytesOf(later.body)).toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    const entries = lines.filter((l) => 'e' in l).map((l) => l.e as { seq: number; ts: number });
    const shopSeqs = new Set(acked.filter((a) => a.database === 'shop' && a.seq > seq).map((a) => a.seq));
    const mine = entries.filter((e) => shopSeqs.has(e.seq)).sort((x, y) => x.seq - y.seq);
    expect(mine.length).toBeGreaterThan(4);
    // A master whose clock ran ahead wrote the second of them; the time asked for is the clock of a later entry.
    const ahead = mine[1] as { seq: number; ts: number };
    const at = mine[mine.length - 2] as { seq: number; ts: number };
    expect(at.seq).toBeGreaterThan(ahead.seq);
    ahead.ts = at.ts + 3_600_000;
    const edited = gzipSync(lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const report = await restore(admin, Readable.from(archive), { database: 'shop_pitr_time', fromDatabase: 'shop', oplog: Readable.from(edited), toTime: new Date(at.ts).toISOString() });
    // The replay stops before the entry past the time, even though later entries are earlier by the clock.
    const before = Math.max(...entries.filter((e) => e.seq < ahead.seq).map((e) => e.seq));
    expect(report.pointInTime?.seq).toBe(before);
    const expected = new Map<string, number>();
    for (const a of acked) if (a.database === 'shop' && a.seq < ahead.seq) expected.set(a.id, (expected.get(a.id) ?? 0) + 1);
    const restored = await admin.read<{ _id: string; n: number }>('counters', { database: 'shop_pitr_time', sort: { _id: 1 } });
    expect(new Map(restored.map((d) => [d._id, d.n]))).toEqual(expected);
  });

  it('refuses to restore over data, and refuses an archive cut short', async () => {
    await expect(restore(admin, Readable.from(archive), { database: 'shop_restored', fromDatabase: 'shop' })).rejects.toThrow(/empty or new database/);
    const cut = gunzipSync(archive);
    const truncated = (await import('node:zlib')).gzipSync(cut.subarray(0, Math.floor(cut.length * 0.7)));
    await expect(restore(admin, Readable.from(truncated), { database: 'shop_cut', fromDatabase: 'shop' })).rejects.toThrow(/no manifest|not JSON/);
  });
});

describe('export and import', () => {
  it('exports a table in keyset pages and imports it in batches; a second import with the same id adds nothing', async () => {
    const src = new DbaasClient({ url: c.url, adminToken: ADMIN, database: 'shop' });
    const docs = Array.from({ length: 1200 }, (_, i) => ({ _id: `p${String(i).padStart(5, '0')}`, i }));
    for (let i = 0; i < docs.length; i += 1000) await src.insert('products', docs.slice(i, i + 1000));
    const chunks: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        chunks.push(chunk.toString('utf8'));
        done();
      },
    });
    // Small pages: the keyset walk crosses many of them.
    expect(await exportTable(src, 'products', sink, { database: 'shop', pageSize: 250 })).toBe(1200);
    const ndjson = chunks.join('');
    expect(ndjson.trim().split('\n').map((l) => (JSON.parse(l) as { _id: string })._id)).toEqual(docs.map((d) => d._id));

    await admin.createDatabase('shop_copy');
    expect(await importTable(admin, 'products', Readable.from([ndjson]), { database: 'shop_copy', id: 'copy-1' })).toBe(1200);
    // Run again (as after a failure): every batch is answered from the ledger, nothing is inserted twice.
    expect(await importTable(admin, 'products', Readable.from([ndjson]), { database: 'shop_copy', id: 'copy-1' })).toBe(1200);
    expect(await admin.count('products', {}, { database: 'shop_copy' })).toBe(1200);
  });
});
