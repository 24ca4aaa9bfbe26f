/**
 * The coordination recipes (coordination/), one suite run against each store:
 * the in-memory fake (tests/unit/coordination.test.ts) and a real ZooKeeper
 * (tests/integration/coordination.test.ts), each test in a namespace of its own.
 * What the fake alone can do (expire a session and see it come back) is tested
 * in the unit file.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../common/logger.js';
import type { WorkerStatus } from '../common/messages.js';
import { AuditStore } from '../coordination/audit-store.js';
import { readClusterRecord, writeClusterRecord } from '../coordination/cluster-record.js';
import { ClusterView } from '../coordination/cluster-view.js';
import { databasesPath, DatabaseStore } from '../coordination/database-store.js';
import { LeaderElection } from '../coordination/leader-election.js';
import { removeTree } from '../coordination/namespace.js';
import { zkPaths, type ZkPaths } from '../coordination/paths.js';
import { claimMaster, EpochWatch, masterSeq, readMaster, registerWorker, removeWorkerZnodes, waitForMasterDbUrl } from '../coordination/registration.js';
import { bumpTerm, readTerm, watchTerm } from '../coordination/term.js';
import { CreateMode, isNoNode, type ZkStore } from '../coordination/zk-session.js';

export type Session = ZkStore & { close(): void };

export interface CoordinationBackend {
  /** A new session, live once resolved; `setup` runs before it starts (recipes register their session callbacks there). */
  session(setup?: (s: Session) => void): Promise<Session>;
  /** A namespace no other test uses. */
  namespace(): string;
}

const logger = createLogger('coordination-test', 'silent');

export function statusOf(id: string, extra: Partial<WorkerStatus> = {}): WorkerStatus {
  return { id, role: 'slave', state: 'syncing', pid: 100, appliedSeq: 0, term: 0, startedAt: '2026-11-30T10:00:00.000Z', dbUrl: `mongodb://db-${id}`, poisonMessages: 0, ...extra };
}

async function until(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Every watcher function a session hands the client for znode `path` (through exists, getData or getChildren).
 * The client keeps each distinct function until the znode changes, so a recipe that reads often must hand the same one.
 */
function watchersSeen(path: string): { spy(s: Session): Session; watchers: Set<unknown>; handed: number } {
  const out = {
    watchers: new Set<unknown>(),
    handed: 0,
    spy: (s: Session): Session =>
      new Proxy(s, {
        get(target, key) {
          if (key === 'exists' || key === 'getData' || key === 'getChildren') {
            return (at: string, watcher?: unknown) => {
              if (at === path && watcher) {
                out.handed++;
                out.watchers.add(watcher);
              }
              return (target[key] as (at: string, watcher?: unknown) => unknown).call(target, at, watcher);
            };
          }
          const v: unknown = Reflect.get(target, key, target);
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      }),
  };
  return out;
}

export function coordinationSuite(name: string, backend: CoordinationBackend): void {
  describe(`coordination recipes (${name})`, () => {
    let open: Session[] = [];
    let roots: string[] = [];
    const session = async (setup?: (s: Session) => void): Promise<Session> => {
      const s = await backend.session(setup);
      open.push(s);
      return s;
    };
    const ns = (): ZkPaths => {
      const p = zkPaths(backend.namespace());
      roots.push(p.root);
      return p;
    };
    afterEach(async () => {
      const cleaner = await backend.session();
      for (const r of roots) await removeTree(cleaner, r).catch(() => undefined);
      cleaner.close();
      for (const s of open) s.close();
      open = [];
      roots = [];
    });

    it('a worker registers an ephemeral znode that ends with its session, and a new session replaces it', async () => {
      const p = ns();
      const a = await session();
      await registerWorker(a, p, statusOf('w1'));
      const other = await session();
      expect(await other.getChildren(p.workers)).toEqual(['w1']);
      // Registering again (a new session of the same worker) replaces the znode.
      const b = await session();
      await registerWorker(b, p, statusOf('w1', { state: 'slave' }));
      a.close();
      await until(async () => (await other.getChildren(p.workers)).length === 1);
      b.close();
      await until(async () => (await other.getChildren(p.workers)).length === 0);
    });

    it('one master: a claim waits out the holder, and the holder may claim again at once', async () => {
      const p = ns();
      const a = await session();
      const b = await session();
      // Workers register (creating the namespace) before they claim.
      await a.mkdirp(p.workers);
      await claimMaster(a, p, { id: 'w1', term: 1, dbUrl: 'mongodb://a' }, 2000);
      await claimMaster(a, p, { id: 'w1', term: 2, dbUrl: 'mongodb://a' }, 2000);
      expect(await readMaster(b, p)).toEqual({ id: 'w1', term: 2, dbUrl: 'mongodb://a' });
      await expect(claimMaster(b, p, { id: 'w2', term: 3, dbUrl: 'mongodb://b' }, 300)).rejects.toThrow(/another master/);
      const claim = claimMaster(b, p, { id: 'w2', term: 3, dbUrl: 'mongodb://b' }, 5000);
      a.close();
      await claim;
      expect((await readMaster(b, p))?.id).toBe('w2');
      expect(await waitForMasterDbUrl(b, p, 1000)).toBe('mongodb://b');
    });

    it("a master's claim on a new session takes the znode over from its own earlier session, so that session's end does not take it", async () => {
      // A client that gives up on its session (disconnected past the timeout, e.g. while ZooKeeper restarts) starts a
      // new one while the server still holds the old: the master's reclaim found /master "its own" and only rewrote it,
      // and when the old session ended /master went with it: no master, and no write, for good.
      const p = ns();
      const before = await session();
      const after = await session();
      const watcher = await session();
      await registerWorker(before, p, statusOf('w1', { role: 'master', state: 'master' }));
      await claimMaster(before, p, { id: 'w1', term: 4, dbUrl: 'mongodb://a' }, 2000);
      await claimMaster(after, p, { id: 'w1', term: 4, dbUrl: 'mongodb://a' }, 2000);
      before.close();
      // A session's ephemeral znodes go together: once its worker znode is gone, whatever else it held is gone too.
      await until(async () => (await watcher.getChildren(p.workers)).length === 0);
      expect(await readMaster(watcher, p)).toEqual({ id: 'w1', term: 4, dbUrl: 'mongodb://a' });
      after.close();
      await until(async () => (await readMaster(watcher, p)) === undefined);
    });

    it('a new slave reads the master and its published seq; the orchestrator removes a dead master znode only when that worker holds it', async () => {
      const p = ns();
      const m = await session();
      const orch = await session();
      expect(await readMaster(orch, p)).toBeUndefined();
      expect(await masterSeq(orch, p)).toBeUndefined();
      await registerWorker(m, p, statusOf('w1', { role: 'master', state: 'master', appliedSeq: 42 }));
      await claimMaster(m, p, { id: 'w1', term: 1, dbUrl: 'mongodb://a' }, 1000);
      expect(await masterSeq(orch, p)).toBe(42);
      await removeWorkerZnodes(orch, p, 'w2');
      expect((await readMaster(orch, p))?.id).toBe('w1');
      await removeWorkerZnodes(orch, p, 'w1');
      expect(await readMaster(orch, p)).toBeUndefined();
      expect(await orch.getChildren(p.workers)).toEqual([]);
    });

    it('the term moves by one per bump, also when bumps race', async () => {
      const p = ns();
      const a = await session();
      const b = await session();
      expect(await bumpTerm(a, p)).toBe(1);
      const raced = await Promise.all([bumpTerm(a, p), bumpTerm(b, p), bumpTerm(a, p), bumpTerm(b, p)]);
      expect(raced.sort()).toEqual([2, 3, 4, 5]);
      expect(await readTerm(b, p)).toBe(5);
    });

    it("a deposed leader's term bump fails: the bump checks the epoch in the same transaction", async () => {
      const p = ns();
      const a = await session();
      await a.mkdirp(p.root);
      await a.create(p.epoch, Buffer.from('1'), CreateMode.PERSISTENT);
      const { stat } = await a.getData(p.epoch);
      let leads = true;
      const guard = { epochVersion: stat.version, confirm: async () => leads };
      expect(await bumpTerm(a, p, guard)).toBe(1);
      // Another orchestrator is elected: the epoch moves.
      await a.setData(p.epoch, Buffer.from('2'), stat.version);
      leads = false;
      await expect(bumpTerm(a, p, guard)).rejects.toThrow(/no longer the leader/);
      expect(await readTerm(a, p)).toBe(1);
    });

    it("a master's term watch fires once the term passes its own, not before", async () => {
      const p = ns();
      const master = await session();
      const orch = await session();
      const term = await bumpTerm(orch, p);
      const moved: number[] = [];
      await watchTerm(master, p, term, { moved: (t) => void moved.push(t), stopped: () => false });
      await orch.setData(p.term, Buffer.from(String(term)));
      await new Promise((r) => setTimeout(r, 200));
      expect(moved).toEqual([]);
      await bumpTerm(orch, p);
      await until(() => moved.length > 0);
      expect(moved).toEqual([term + 1]);
    });

    it('a worker refuses control messages of an older leader epoch', async () => {
      const p = ns();
      const w = await session();
      const o = await session();
      const watch = new EpochWatch(w, p, () => false);
      await watch.start();
      expect(watch.current).toBe(0);
      await o.mkdirp(p.root);
      await o.create(p.epoch, Buffer.from('3'), CreateMode.PERSISTENT);
      await until(() => watch.current === 3);
      expect(await watch.admits(2)).toBe(false);
      expect(await watch.admits(3)).toBe(true);
      expect(await watch.admits(4)).toBe(true);
      expect(watch.current).toBe(4);
    });

    it('one leader among orchestrators; when its session ends another leads in a higher epoch, and the old one is no longer confirmed', async () => {
      const p = ns();
      const events: string[] = [];
      const hooks = (who: string) => ({ onElected: async (e: number) => void events.push(`${who} elected ${e}`), onDeposed: (why: string) => void events.push(`${who} deposed: ${why}`) });
      let a: LeaderElection | undefined;
      let b: LeaderElection | undefined;
      const sa = await session((s) => (a = new LeaderElection(s, p, { port: 1, url: 'http://a' }, logger, hooks('a'))));
      await session((s) => (b = new LeaderElection(s, p, { port: 2, url: 'http://b' }, logger, hooks('b'))));
      if (!a || !b) throw new Error('no elections');
      try {
        expect(await b.members()).toHaveLength(2);
        expect(await a.start(0)).toBe('leader');
        expect(await b.start(0)).toBe('follower');
        expect(await a.confirm()).toBe(true);
        expect((await b.leader())?.url).toBe('http://a');
        sa.close();
        await until(() => b?.isLeader === true, 10_000);
        expect(b.epoch).toBe(a.epoch + 1);
        expect(await a.confirm()).toBe(false);
        expect(events).toEqual(['a elected 1', 'b elected 2']);
        // Resigning hands the leadership on at once.
        await b.resign();
        expect(await b.leader()).toBeUndefined();
      } finally {
        a.close();
        b.close();
      }
    });

    it('followers publish read counts that the leader sums once each', async () => {
      const p = ns();
      const noop = { onElected: async () => undefined, onDeposed: () => undefined };
      let a: LeaderElection | undefined;
      let b: LeaderElection | undefined;
      await session((s) => (a = new LeaderElection(s, p, { port: 1, url: 'http://a' }, logger, noop)));
      await session((s) => (b = new LeaderElection(s, p, { port: 2, url: 'http://b' }, logger, noop)));
      if (!a || !b) throw new Error('no elections');
      try {
        expect(await a.start(0)).toBe('leader');
        expect(await b.start(0)).toBe('follower');
        expect(await a.collectReads()).toBe(0);
        await b.publishReads(10);
        expect(await a.collectReads()).toBe(10);
        expect(await a.collectReads()).toBe(0);
        await b.publishReads(15);
        expect(await a.collectReads()).toBe(5);
        expect(await a.others()).toBe(1);
        // A follower that joins after the leader's baseline counts from its start: reads it served before the
        // leader first saw it are not lost.
        let c: LeaderElection | undefined;
        await session((s) => (c = new LeaderElection(s, p, { port: 3, url: 'http://c' }, logger, noop)));
        if (!c) throw new Error('no election');
        try {
          expect(await c.start(0)).toBe('follower');
          await c.publishReads(7);
          await b.publishReads(16);
          expect(await a.collectReads()).toBe(8);
        } finally {
          c.close();
        }
      } finally {
        a.close();
        b.close();
      }
    });

    it('a follower campaigning under a steady leader keeps one watcher on the leader znode, not one per wait', async () => {
      const p = ns();
      const noop = { onElected: async () => undefined, onDeposed: () => undefined };
      const seen = watchersSeen(p.leader);
      let a: LeaderElection | undefined;
      let b: LeaderElection | undefined;
      const sa = await session((s) => (a = new LeaderElection(s, p, { port: 1, url: 'http://a' }, logger, noop)));
      await session((s) => (b = new LeaderElection(seen.spy(s), p, { port: 2, url: 'http://b' }, logger, noop)));
      if (!a || !b) throw new Error('no elections');
      try {
        expect(await a.start(0)).toBe('leader');
        expect(await b.start(0)).toBe('follower');
        await until(() => seen.handed >= 3, 10_000);
        expect(seen.watchers.size).toBe(1);
        // The shared watcher still ends the wait: the follower leads once the leader's session ends.
        sa.close();
        await until(() => b?.isLeader === true, 10_000);
      } finally {
        a.close();
        b.close();
      }
    });

    it('database lookups of unknown names and lists hand the client one watcher for the databases parent, and it still sees a create elsewhere', async () => {
      const p = ns();
      const seen = watchersSeen(databasesPath(p));
      const reader = new DatabaseStore(seen.spy(await session()), p);
      const writer = new DatabaseStore(await session(), p);
      // Before any database: the parent's creation is watched; after one: its children.
      for (let i = 0; i < 5; i += 1) expect(await reader.exists(`nope${i}`)).toBe(false);
      expect((await writer.create('first', 10))?.name).toBe('first');
      expect(await reader.exists('first')).toBe(true);
      for (let i = 0; i < 20; i += 1) {
        expect(await reader.exists(`unknown${i}`)).toBe(false);
        expect((await reader.list()).map((d) => d.name)).toEqual(['default', 'first']);
      }
      expect(seen.handed).toBeGreaterThanOrEqual(40);
      expect(seen.watchers.size).toBe(1);
      // The one watcher still invalidates: a database made through another session is listed.
      expect((await writer.create('second', 10))?.name).toBe('second');
      await until(async () => (await reader.list()).length === 3);
      expect(await reader.exists('second')).toBe(true);
    });

    it('the cluster record round-trips, and an unreadable one reads as none', async () => {
      const p = ns();
      const s = await session();
      await s.mkdirp(p.root);
      expect(await readClusterRecord(s, p)).toBeUndefined();
      await writeClusterRecord(s, p, { masterId: 'w1', dataDir: '/d', host: 'h' });
      await writeClusterRecord(s, p, { masterId: 'w2', dataDir: '/d', host: 'h' });
      expect(await readClusterRecord(s, p)).toEqual({ masterId: 'w2', dataDir: '/d', host: 'h' });
      await s.setData(p.cluster, Buffer.from('not json'));
      expect(await readClusterRecord(s, p)).toBeUndefined();
    });

    it('the shared audit log keeps the newest events with seqs every reader agrees on', async () => {
      const p = ns();
      const a = new AuditStore(await session(), p, 3);
      const b = new AuditStore(await session(), p, 3);
      for (let i = 1; i <= 5; i++) await (i % 2 ? a : b).append({ at: `t${i}`, kind: 'scaling', reason: `event ${i}`, by: i % 2 ? 'a' : 'b' });
      const names = await b.names();
      expect(names.map((n) => n.seq)).toEqual([3, 4, 5]);
      expect(await a.names()).toEqual(names);
      expect((await a.read(names[0]?.name ?? ''))?.reason).toBe('event 3');
      expect(await a.read('e-9999999999')).toBeUndefined();
    });

    it("the orchestrator's view follows worker and master znodes through watches", async () => {
      const p = ns();
      let view: ClusterView | undefined;
      await session((s) => (view = new ClusterView(s, p, logger)));
      if (!view) throw new Error('no view');
      const v = view;
      const w = await session();
      try {
        expect(v.ready).toBe(true);
        await registerWorker(w, p, statusOf('w1'));
        await until(() => v.workers.get('w1')?.state === 'syncing');
        await w.setData(p.worker('w1'), Buffer.from(JSON.stringify(statusOf('w1', { state: 'slave', appliedSeq: 7 }))));
        await until(() => v.workers.get('w1')?.state === 'slave');
        expect(v.servingSlaves().map((s) => s.appliedSeq)).toEqual([7]);
        await claimMaster(w, p, { id: 'w1', term: 1, dbUrl: 'mongodb://a' }, 1000);
        await until(() => v.master?.id === 'w1');
        w.close();
        await until(() => v.workers.size === 0 && v.master === undefined);
      } finally {
        v.close();
      }
    });

    it('removing a namespace deletes its whole tree', async () => {
      const p = ns();
      const s = await session();
      await registerWorker(s, p, statusOf('w1'));
      await bumpTerm(s, p);
      await removeTree(s, p.root);
      await expect(s.getChildren(p.root)).rejects.toSatisfy(isNoNode);
    });
  });
}
