import { it } from 'vitest';
import { startTestCluster } from './harness.js';
it('latency', async () => {
  const c = await startTestCluster();
  for (const kind of ['insert', 'read', 'update']) {
    const t: number[] = [];
    for (let i = 0; i < 100; i++) {
      const s = performance.now();
      if (kind === 'insert') await c.post('/api/v1/db/write', { table: 'x', operation: 'insert', data: { _id: `i${i}`, a: i } });
      else if (kind === 'read') await c.post('/api/v1/db/read', { table: 'x', where: { _id: `i${i}` } });
      else await c.post('/api/v1/db/write', { table: 'x', operation: 'update', where: { _id: `i${i}` }, data: { $inc: { a: 1 } } });
      t.push(performance.now() - s);
    }
    t.sort((a, b) => a - b);
    console.log(kind, 'p50', t[50]?.toFixed(2), 'p99', t[98]?.toFixed(2));
  }
  await c.close();
}, 120000);
