import { describe, expect, it } from 'vitest';
import { waitFor } from '../../common/backoff.js';
import { createLogger } from '../../common/logger.js';
import { ClusterView } from '../../coordination/cluster-view.js';
import { zkPaths } from '../../coordination/paths.js';
import { publishWorker, registerWorker } from '../../coordination/registration.js';
import { encodeZnode, type WorkerZnode } from '../../coordination/schemas.js';
import { CreateMode } from '../../coordination/zk-session.js';
import { MemoryZkServer } from './memory-zk.js';

const paths = zkPaths('cv');
const znode = (over: Partial<WorkerZnode> = {}): WorkerZnode => ({ id: 'w1', role: 'slave', state: 'syncing', pid: 7, appliedSeq: 0, term: 0, startedAt: 't1', dbUrl: 'u', ...over });
const until = (what: string, probe: () => boolean): Promise<true> => waitFor(() => (probe() ? true : undefined), 2000, () => new Error(`timed out waiting for ${what}`), 5);

describe("the orchestrator's ZooKeeper view", () => {
  it('a worker znode deleted and created again before the child list is read again is read again, and its later changes are seen', async () => {
    const server = new MemoryZkServer();
    let view: ClusterView | undefined;
    const orchestrator = await server.session((zk) => {
      view = new ClusterView(zk, paths, createLogger('test', 'silent'));
    });
    const v = view as ClusterView;
    const worker = await server.session();
    try {
      await registerWorker(worker, paths, znode());
      await until('the first znode', () => v.workers.get('w1')?.pid === 7);
      // Gone and back in one go, before the view's watches run (a worker registering on a new session while its
      // old session's znode is still there: registerWorker removes that one and creates its own).
      await worker.remove(paths.worker('w1'));
      await worker.create(paths.worker('w1'), encodeZnode(znode({ pid: 8, startedAt: 't2' })), CreateMode.EPHEMERAL);
      await until('the znode created again', () => v.workers.get('w1')?.pid === 8);
      // Its data watch is armed on the new znode: what it publishes next is seen.
      await publishWorker(worker, paths, znode({ pid: 8, startedAt: 't2', state: 'slave', appliedSeq: 5 }));
      await until('its next status', () => v.workers.get('w1')?.appliedSeq === 5);
      expect(v.workers.get('w1')).toMatchObject({ pid: 8, state: 'slave', startedAt: 't2' });
    } finally {
      v.close();
      orchestrator.close();
      worker.close();
    }
  });
});
