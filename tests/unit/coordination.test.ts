/**
 * The coordination recipes against the in-memory ZooKeeper (the same suite runs
 * against a real one in tests/integration/coordination.test.ts), what only the
 * fake can do (expire a session on demand), and the znode schemas.
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { LeaderElection } from '../../coordination/leader-election.js';
import { zkPaths } from '../../coordination/paths.js';
import { readWorker, registerWorker } from '../../coordination/registration.js';
import { decodeAuditZnode, decodeClusterRecord, decodeCounter, decodeMasterZnode, decodeOrchestratorZnode, decodeWorkerZnode, encodeMasterZnode, encodeZnode } from '../../coordination/schemas.js';
import { coordinationSuite, statusOf } from '../coordination-suite.js';
import { MemoryZkServer } from './memory-zk.js';

let next = 0;
const server = new MemoryZkServer();
coordinationSuite('in-memory fake', { session: (setup) => server.session(setup), namespace: () => `unit-coord-${++next}` });

const logger = createLogger('coordination-test', 'silent');

describe('coordination across a session expiry (in-memory fake)', () => {
  it("a worker's znode goes with its expired session and comes back with the next one", async () => {
    const zk = new MemoryZkServer();
    const p = zkPaths('x');
    const status = statusOf('w1');
    const w = await zk.session((s) => s.onSession(async () => void (await registerWorker(s, p, status))));
    const other = await zk.session();
    expect((await readWorker(other, p, 'w1'))?.state).toBe('syncing');
    const seen: string[] = [];
    w.on('expired', () => seen.push('expired'));
    w.on('session', () => seen.push('session'));
    await zk.expire(w);
    expect(seen).toEqual(['expired', 'session']);
    expect((await readWorker(other, p, 'w1'))?.id).toBe('w1');
  });

  it('a leader whose session expires is deposed, and the other orchestrator leads in a higher epoch', async () => {
    const zk = new MemoryZkServer();
    const p = zkPaths('x');
    const events: string[] = [];
    const hooks = (who: string) => ({ onElected: async (e: number) => void events.push(`${who} elected ${e}`), onDeposed: (why: string) => void events.push(`${who} deposed: ${why}`) });
    let a: LeaderElection | undefined;
    let b: LeaderElection | undefined;
    const sa = await zk.session((s) => (a = new LeaderElection(s, p, { port: 1, url: 'http://a' }, logger, hooks('a'))));
    await zk.session((s) => (b = new LeaderElection(s, p, { port: 2, url: 'http://b' }, logger, hooks('b'))));
    if (!a || !b) throw new Error('no elections');
    expect(await a.start(0)).toBe('leader');
    expect(await b.start(0)).toBe('follower');
    await zk.expire(sa);
    await new Promise((r) => setTimeout(r, 50));
    expect(a.isLeader).toBe(false);
    expect(b.isLeader).toBe(true);
    expect(events.slice(0, 3)).toEqual(['a elected 1', "a deposed: its ZooKeeper session was lost", 'b elected 2']);
    a.close();
    b.close();
  });
});

describe('znode schemas', () => {
  const buf = (v: unknown): Buffer => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));

  it('a worker znode decodes with its optional fields and keeps unknown ones; a wrong shape does not decode', () => {
    const status = statusOf('w1', { state: 'slave', appliedSeq: 9 });
    expect(decodeWorkerZnode(encodeZnode(status))).toEqual(status);
    const newer = { ...status, ledgerFrom: 3, promotable: true, somethingNew: 'x' };
    expect(decodeWorkerZnode(buf(newer))).toEqual(newer);
    expect(decodeWorkerZnode(buf({ ...status, ledgerFrom: 'three' }))).toBeUndefined();
    expect(decodeWorkerZnode(buf({ ...status, state: 'dancing' }))).toBeUndefined();
    expect(decodeWorkerZnode(buf({ ...status, pid: '12' }))).toBeUndefined();
    expect(decodeWorkerZnode(buf('{'))).toBeUndefined();
    expect(decodeWorkerZnode(undefined)).toBeUndefined();
  });

  it('the master znode is written byte for byte as before and read back typed', () => {
    const m = { id: 'w1', term: 4, dbUrl: 'mongodb://h:1/db' };
    expect(encodeMasterZnode(m).toString()).toBe('{"id":"w1","term":4,"dbUrl":"mongodb://h:1/db"}');
    expect(decodeMasterZnode(encodeMasterZnode(m))).toEqual(m);
    expect(decodeMasterZnode(buf({ id: 'w1', term: '4', dbUrl: 'x' }))).toBeUndefined();
    expect(decodeMasterZnode(buf({ id: 'w1' }))).toBeUndefined();
    expect(decodeMasterZnode(buf('[]'))).toBeUndefined();
  });

  it('version 1 is implicit; a znode of an unknown version is not misread', () => {
    const m = { id: 'w1', term: 4, dbUrl: 'x' };
    expect(decodeMasterZnode(buf({ ...m, v: 1 }))?.id).toBe('w1');
    expect(decodeMasterZnode(buf({ ...m, v: 2 }))).toBeUndefined();
    expect(decodeWorkerZnode(buf({ ...statusOf('w1'), v: 2 }))).toBeUndefined();
    expect(decodeClusterRecord(buf({ masterId: 'w1', v: 2 }))).toBeUndefined();
  });

  it('orchestrator, cluster, audit znodes and counters', () => {
    expect(decodeOrchestratorZnode(buf({ host: 'h', pid: 1, port: 80, url: 'u', startedAt: 's', token: 't', epoch: 3, reads: 'x' }))).toEqual({ host: 'h', pid: 1, port: 80, url: 'u', startedAt: 's', token: 't', epoch: 3 });
    expect(decodeOrchestratorZnode(buf('nonsense'))).toEqual({});
    expect(decodeClusterRecord(buf({ masterId: 'w1', dataDir: '/d', host: 7 }))).toEqual({ masterId: 'w1', dataDir: '/d' });
    expect(decodeClusterRecord(buf({ masterId: '' }))).toBeUndefined();
    expect(decodeAuditZnode(buf({ at: 't', kind: 'scaling', reason: 'r', durationMs: 5, by: 'o' }))?.durationMs).toBe(5);
    expect(decodeAuditZnode(buf({ at: 't', kind: 'scaling' }))).toBeUndefined();
    expect(decodeCounter(Buffer.from('12'))).toBe(12);
    expect(decodeCounter(undefined)).toBe(0);
    expect(decodeCounter(Buffer.from('x'))).toBe(0);
  });
});
