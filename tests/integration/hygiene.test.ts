import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { clusterNames } from '../../common/names.js';
import { zkPaths } from '../../coordination/paths.js';
import { eventually, startTestCluster } from './harness.js';
import { alive, dbPidOf, queueExists, znodeChildren } from './infra.js';

describe('resource hygiene', () => {
  it('leaves no queue, znode, process or data directory behind a dead worker, nor (but the master data) after a stop', async () => {
    // A dead slave replaced by a new one (not restarted in place on its data), so it must leave nothing behind.
    const c = await startTestCluster({ DBAAS_INITIAL_SLAVES: '2', DBAAS_SLAVE_RESTARTS_IN_PLACE: '0' });
    const names = clusterNames(c.namespace);
    try {
      await c.post('/api/v1/db/write', { table: 'h', operation: 'insert', data: { a: 1 } });
      const victim = c.orch.view.servingSlaves().sort((a, b) => b.pid - a.pid)[0];
      if (!victim) throw new Error('no slave');
      const victimDb = dbPidOf(c.dataDir, c.namespace, victim.id);
      expect(await queueExists(names.syncQueue(victim.id))).toBe(true);

      expect((await c.post('/api/v1/crash/slave')).body).toEqual([String(victim.pid)]);
      await eventually(() => c.orch.view.servingSlaves().length === 2 && !c.orch.view.workers.has(victim.id), 20_000, 'the replacement');
      await eventually(async () => !(await queueExists(names.syncQueue(victim.id))), 10_000, 'the dead slave sync queue deleted');
      expect(alive(victim.pid)).toBe(false);
      expect(alive(victimDb)).toBe(false);
      expect(await znodeChildren(zkPaths(c.namespace).workers)).not.toContain(victim.id);
      await eventually(() => !existsSync(path.join(c.dataDir, c.namespace, victim.id)), 10_000, 'its data directory removed');

      // A full stop.
      const workers = [...c.orch.view.workers.values()];
      const masterId = c.orch.view.master?.id as string;
      const pids = workers.flatMap((w) => [w.pid, dbPidOf(c.dataDir, c.namespace, w.id)]);
      await c.orch.close();
      for (const pid of pids) expect(alive(pid), `pid ${pid} still running`).toBe(false);
      expect(await znodeChildren(zkPaths(c.namespace).workers)).toEqual([]);
      for (const w of workers.filter((x) => x.id !== masterId)) {
        expect(await queueExists(names.syncQueue(w.id))).toBe(false);
        expect(existsSync(path.join(c.dataDir, c.namespace, w.id))).toBe(false);
        expect(await queueExists(names.controlQueue(w.id))).toBe(false);
      }
      // By design the master's data stays, so the next start serves the same data (docs/DECISIONS.md).
      expect(existsSync(path.join(c.dataDir, c.namespace, masterId, 'db'))).toBe(true);
    } finally {
      await c.close();
    }
  });
});
