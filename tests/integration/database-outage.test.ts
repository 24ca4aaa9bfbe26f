/**
 * Databases through a ZooKeeper outage (found by fault testing, session 6). Each
 * data request to a database other than `default` asks whether it exists, which
 * the orchestrator keeps behind a ZooKeeper watch. A cluster reaches ZooKeeper
 * here through a proxy, so the test cuts this one cluster off it, not the
 * server every other test shares:
 * - while ZooKeeper does not answer, a write to a database the orchestrator
 *   knows goes on like any write (it got 500 DBAAS_SERVER_INTERNAL whenever the
 *   cached list had just been invalidated, e.g. by a create), and a lookup it
 *   cannot answer is a 503 to retry, never a 500;
 * - a session that expired took the list's watch with it: a database dropped
 *   afterwards (another orchestrator's drop removes its znode first) was still
 *   admitted for good.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { withZkSession } from '../../coordination/namespace.js';
import { eventually, startTestCluster, type TestCluster } from './harness.js';
import { zkProxy, type ZkProxy } from './infra.js';
import { dumpAllReplicas } from './replicas.js';

let c: TestCluster | undefined;
let proxy: ZkProxy | undefined;

afterEach(async () => {
  proxy?.up();
  await c?.close().catch(() => undefined);
  await proxy?.close();
  c = undefined;
  proxy = undefined;
});

/** Until the orchestrator's session is up again and the cluster whole (a master and a serving slave). */
async function whole(cl: TestCluster): Promise<void> {
  await eventually(async () => (await cl.get('/readyz')).status === 200, 60_000, 'the cluster ready again');
}

describe('databases while ZooKeeper is out of reach', () => {
  it('writes to a known database go on, other lookups are 503, and a drop after a session expiry is still seen', async () => {
    proxy = await zkProxy();
    c = await startTestCluster({ DBAAS_ZK_CONNECT: `127.0.0.1:${proxy.port}`, DBAAS_VERIFY_INTERVAL_MS: '0' });
    const cl = c;
    const write = (database: string, key: string) =>
      cl.post('/api/v1/db/write', { database, table: 't', operation: 'insert', data: { _id: key }, requestId: `dbo-${database}-${key}` });

    // 1. The list cached behind a watch; the sessions expire in an outage; the znode of `sales` goes afterwards.
    expect((await cl.post('/api/v1/db/databases', { name: 'sales' })).status).toBe(201);
    expect((await write('sales', 'a')).status).toBe(200);
    proxy.down();
    // Longer than the session timeout (2 s): the server expires every session of this cluster.
    await new Promise((r) => setTimeout(r, 3 * cl.config.zkSessionTimeoutMs));
    proxy.up();
    await whole(cl);
    await withZkSession('127.0.0.1:2181', createLogger('test-zk', 'warn'), 10_000, (zk) => zk.remove(`/${cl.namespace}/databases/sales`));
    await eventually(async () => (await write('sales', 'after-drop')).status === 404, 10_000, 'a write to the dropped database refused (404)');

    // 2. A known database (just created: the cached list was invalidated) during an outage.
    expect((await cl.post('/api/v1/db/databases', { name: 'orders' })).status).toBe(201);
    proxy.down();
    const [known, unknown, list] = await Promise.all([write('orders', 'b'), write('nosuch', 'c'), cl.get('/api/v1/db/databases')]);
    proxy.up();
    expect({ status: known.status, body: known.body }).toMatchObject({ status: 200, body: { ok: true } });
    expect({ status: unknown.status, code: unknown.body?.error?.code }).toEqual({ status: 503, code: 'DBAAS_COORDINATION_UNAVAILABLE' });
    expect({ status: list.status, code: list.body?.error?.code }).toEqual({ status: 503, code: 'DBAAS_COORDINATION_UNAVAILABLE' });
    await whole(cl);
    expect((await write('orders', 'd')).status).toBe(200);
    const dumps = await dumpAllReplicas(cl.orch, 30_000, 2);
    expect(dumps.size).toBe(2);
    for (const [id, dump] of dumps) {
      expect(((dump['orders.t'] ?? []) as Array<{ _id: string }>).map((d) => d._id).sort(), `orders.t on ${id}`).toEqual(['b', 'd']);
    }
  }, 150_000);
});
