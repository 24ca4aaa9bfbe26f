/**
 * Opt-in (DBAAS_BENCH_BACKUP=1, not in the default suite): the figure of
 * docs/BENCHMARKS.md "Backup and restore". 100,000 documents, a backup taken
 * while writes flow, restored into a new cluster (its own namespace, workers
 * and databases) with the manifest's checksums equal on every replica there.
 *
 *   DBAAS_BENCH_BACKUP=1 bash scripts/test.sh --project integration tests/integration/backup-bench.test.ts
 */
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { restore } from '../../client/archive.js';
import { DbaasClient } from '../../client/index.js';
import { startTestCluster, type TestCluster } from './harness.js';

const ADMIN = 'backup-bench-admin';
const DOCS = Number(process.env.DBAAS_BENCH_BACKUP_DOCS ?? 100_000);
const clusters: TestCluster[] = [];

afterAll(async () => {
  for (const c of clusters) await c.close().catch(() => undefined);
});

describe.skipIf(process.env.DBAAS_BENCH_BACKUP !== '1')('backup and restore of 100,000 documents', () => {
  it('backs up under write load and restores into a new cluster with equal checksums', async () => {
    const env = { DBAAS_INITIAL_SLAVES: '2', DBAAS_VERIFY_INTERVAL_MS: '0', DBAAS_ADMIN_TOKEN: ADMIN, DBAAS_VERIFY_WAIT_MS: '300000', DBAAS_REQUEST_TIMEOUT_MS: '60000' };
    const a = await startTestCluster(env, { listen: true });
    clusters.push(a);
    const src = new DbaasClient({ url: a.url, adminToken: ADMIN, timeoutMs: 120_000, database: 'bench' });
    await src.createDatabase('bench');
    let t = performance.now();
    for (let i = 0; i < DOCS; i += 1000) {
      const batch = Array.from({ length: Math.min(1000, DOCS - i) }, (_, k) => ({ i: i + k, name: `user-${i + k}`, tags: ['a', 'b'], nested: { x: k, y: String(k) } }));
      await src.insert('docs', batch);
    }
    const loadS = (performance.now() - t) / 1000;

    let stop = false;
    let acked = 0;
    const writer = new DbaasClient({ url: a.url, adminToken: ADMIN, database: 'bench' });
    const load = (async () => {
      for (let i = 0; !stop; i++) {
        await writer.write({ table: 'live', operation: 'upsert', where: { _id: `c${i % 50}` }, data: { $inc: { n: 1 } } });
        acked += 1;
      }
    })();
    while (acked < 20) await new Promise((r) => setTimeout(r, 10));
    t = performance.now();
    const taken = await src.backup();
    const chunks: Buffer[] = [];
    for await (const chunk of Readable.fromWeb(taken.body as import('node:stream/web').ReadableStream<Uint8Array>)) chunks.push(chunk as Buffer);
    const archive = Buffer.concat(chunks);
    const backupS = (performance.now() - t) / 1000;
    const ackedDuring = acked;
    stop = true;
    await load;

    const b = await startTestCluster(env, { listen: true });
    clusters.push(b);
    const dst = new DbaasClient({ url: b.url, adminToken: ADMIN, timeoutMs: 120_000 });
    t = performance.now();
    const report = await restore(dst, Readable.from(archive), { fromDatabase: 'bench' });
    const restoreS = (performance.now() - t) / 1000;
    const line = `backup-bench: ${DOCS} documents loaded in ${loadS.toFixed(1)} s; backup at seq ${taken.seq} under load (${ackedDuring} writes acknowledged meanwhile): ${backupS.toFixed(1)} s, ${(archive.length / 1_048_576).toFixed(1)} MiB gzip; restore into a new cluster: ${restoreS.toFixed(1)} s (${Math.round(report.documents / restoreS)} documents/s), verified=${report.verified}`;
    process.stdout.write(`${line}\n`);
    expect(report.verified).toBe(true);
    expect(report.tables.find((x) => x.to === 'bench.docs')?.count).toBe(DOCS);
  }, 1_800_000);
});
