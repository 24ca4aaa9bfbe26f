import { describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import type { WorkerZnode } from '../../coordination/schemas.js';
import { ObservedPids } from '../../orchestrator/observed-pids.js';
import type { WorkerHandle } from '../../orchestrator/runtimes/runtime.js';

const logger = createLogger('test', 'silent');

/** A follower's view (znodes saying pid 1, as workers in containers do) and an engine listing it counts reads of. */
function setUp(engine: WorkerHandle[]) {
  const workers = new Map<string, WorkerZnode>();
  const register = (id: string, startedAt: string): void => void workers.set(id, { id, role: 'slave', pid: 1, startedAt } as WorkerZnode);
  let reads = 0;
  const runtime = {
    observe: async (): Promise<WorkerHandle[]> => {
      reads++;
      return engine.map((w) => ({ ...w }));
    },
  };
  return { observed: new ObservedPids(runtime, { workers }, logger), register, engine, reads: () => reads };
}

describe('a follower reads host pids from the engine', () => {
  it('once per new registration, and again when a worker registers anew (restarted in place)', async () => {
    const s = setUp([{ id: 'a', pid: 4100 }, { id: 'b', pid: 4200 }]);
    s.register('a', 't1');
    s.register('b', 't1');
    await s.observed.refresh();
    expect([s.observed.get('a'), s.observed.get('b'), s.reads()]).toEqual([4100, 4200, 1]);
    // Nothing new registered: no read.
    await s.observed.refresh();
    expect(s.reads()).toBe(1);
    // b restarted in place: same id, a new start, a new host pid.
    s.engine[1] = { id: 'b', pid: 4300 };
    s.register('b', 't2');
    await s.observed.refresh();
    expect([s.observed.get('b'), s.reads()]).toEqual([4300, 2]);
  });

  it('keeps reading while a registered worker is not shown by the engine yet, and forgets workers the engine no longer runs', async () => {
    const s = setUp([{ id: 'a', pid: 4100 }]);
    s.register('a', 't1');
    s.register('c', 't1');
    await s.observed.refresh();
    expect(s.observed.get('c')).toBeUndefined();
    s.engine.push({ id: 'c', pid: 4500 });
    s.engine.splice(0, 1);
    await s.observed.refresh();
    expect([s.observed.get('a'), s.observed.get('c'), s.reads()]).toEqual([undefined, 4500, 2]);
  });

  it('does nothing on a runtime whose workers say their host pid themselves (no observe)', async () => {
    const workers = new Map<string, WorkerZnode>([['a', { id: 'a', pid: 777, startedAt: 't' } as WorkerZnode]]);
    const observed = new ObservedPids({}, { workers }, logger);
    await observed.refresh();
    expect(observed.get('a')).toBeUndefined();
  });
});
