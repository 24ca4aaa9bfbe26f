import { describe, expect, it } from 'vitest';
import type { Doc, WriteCommand } from '../../common/commands.js';
import { createLogger } from '../../common/logger.js';
import { decodeControl, decodeSync, encode, WIRE_VERSION, type ChecksumReply, type SyncEntry, type SyncOp, type TableChecksum } from '../../common/messages.js';
import { ChecksumBook, checkpointAfter, checksumDocs, checksumTables, TableHasher, type ChecksumSource } from '../../worker/checksum.js';
import { clusterNames } from '../../common/names.js';
import { AuditLog, type AuditEvent } from '../../orchestrator/audit-log.js';
import { compareReplicas, divergentTables, Verifier, type VerifierDeps } from '../../orchestrator/verify.js';
import { MasterCheckpoints, MAX_READ_AT_CLEAR } from '../../worker/checkpoint-window.js';
import { buildWrite } from '../../worker/entry-builder.js';
import { BatchView, planBatch } from '../../worker/write-batch.js';
import { MemoryDb } from './memory-db.js';
import { rng as makeRng } from '../prng.js';

const logger = createLogger('test', 'silent');

function rides(n: number): Doc[] {
  return Array.from({ length: n }, (_, i) => ({
    _id: `r${i}`,
    created_by: i % 2 === 0 ? 'ana' : 'bo',
    source: i % 7,
    destination: { city: 'x', stop: i % 3 },
    users: [`u${i}`, `u${i + 1}`],
  }));
}

function shuffled<T>(items: T[], seed: number): T[] {
  const random = makeRng(seed);
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** A source over in-memory tables; documents come back in the order given. */
function source(tables: Record<string, Doc[]>): ChecksumSource {
  return {
    userTables: async () => Object.keys(tables),
    scanTable: async function* (name: string) {
      yield* tables[name] ?? [];
    },
  };
}

describe('table checksum', () => {
  const docs = rides(200);
  const base = checksumDocs(docs);

  it('does not depend on the order of the documents', () => {
    expect(base.count).toBe(200);
    expect(base.sum).toMatch(/^[0-9a-f]{64}$/);
    for (const seed of [1, 2, 3]) expect(checksumDocs(shuffled(docs, seed))).toEqual(base);
  });

  it('does not depend on the order of keys, at any depth', () => {
    const reordered = docs.map((d) => {
      const { users, destination, source: src, created_by, _id } = d as Record<string, unknown>;
      const dest = destination as { city: string; stop: number };
      return { users, destination: { stop: dest.stop, city: dest.city }, source: src, created_by, _id };
    });
    expect(checksumDocs(reordered)).toEqual(base);
  });

  it('changes with one changed field, nested field, array order or value type', () => {
    const variants: Doc[][] = [
      docs.map((d, i) => (i === 17 ? { ...d, source: 99 } : d)),
      docs.map((d, i) => (i === 17 ? { ...d, destination: { city: 'y', stop: 2 } } : d)),
      docs.map((d, i) => (i === 17 ? { ...d, users: [...(d.users as string[])].reverse() } : d)),
      docs.map((d, i) => (i === 17 ? { ...d, source: String(d.source) } : d)),
      docs.map((d, i) => (i === 17 ? { ...d, extra: null } : d)),
    ];
    const sums = new Set([base, ...variants.map(checksumDocs)].map((c) => c.sum));
    expect(sums.size).toBe(variants.length + 1);
    for (const v of variants) expect(checksumDocs(v).count).toBe(200);
  });

  it('changes with a missing or an extra document', () => {
    const missing = checksumDocs(docs.slice(1));
    const extra = checksumDocs([...docs, { _id: 'new', created_by: 'cy' }]);
    expect(missing.count).toBe(199);
    expect(extra.count).toBe(201);
    expect(missing.sum).not.toBe(base.sum);
    expect(extra.sum).not.toBe(base.sum);
  });

  it('sums digests modulo 2^256 (a carry crosses every word; equal digests do not cancel out)', () => {
    const h = new TableHasher();
    h.addDigest(Buffer.alloc(32, 0xff));
    h.addDigest(Buffer.concat([Buffer.alloc(31, 0), Buffer.from([2])]));
    expect(h.result()).toEqual({ count: 2, sum: `${'0'.repeat(63)}1` });
    const twice = new TableHasher();
    const d = Buffer.alloc(32, 0x11);
    twice.addDigest(d);
    twice.addDigest(d);
    expect(twice.result().sum).toBe('22'.repeat(32));
  });
});

describe('checksumTables', () => {
  it('leaves out empty tables (an empty table equals a missing one) and internal collections', async () => {
    const a = await checksumTables(source({ rides: rides(5), users: [], _dbaas_oplog: [{ _id: 1 }] }));
    const b = await checksumTables(source({ rides: shuffled(rides(5), 9) }));
    expect(Object.keys(a.tables)).toEqual(['rides']);
    expect(a).toEqual(b);
    expect(a.documents).toBe(5);
  });

  it('names a table that differs and no other', async () => {
    const a = await checksumTables(source({ rides: rides(5), users: [{ _id: 'u1', name: 'ana' }] }));
    const b = await checksumTables(source({ rides: rides(5), users: [{ _id: 'u1', name: 'anna' }] }));
    expect(a.tables.rides).toEqual(b.tables.rides);
    expect(a.tables.users).not.toEqual(b.tables.users);
  });
});

describe('ChecksumBook and checkpoints', () => {
  const src = source({ rides: rides(3) });

  it('hashes at a checkpoint that ends the run, and settles at the run end', async () => {
    const book = new ChecksumBook();
    await checkpointAfter(src, book, [{ seq: 4 }, { seq: 5, checkpoint: true }], logger);
    const r = book.get(5);
    expect(r?.comparable).toBe(true);
    expect(r?.comparable === true ? r.tables.rides : undefined).toEqual(checksumDocs(rides(3)));
    expect(book.settled).toBe(5);
    await checkpointAfter(src, book, [{ seq: 6 }], logger);
    expect(book.get(6)).toBeUndefined();
    expect(book.settled).toBe(6);
  });

  it('refuses a checkpoint inside a snapshot window as not comparable', async () => {
    const book = new ChecksumBook();
    await checkpointAfter(src, book, [{ seq: 7, checkpoint: true }], logger, { fuzzyUpTo: 9 });
    expect(book.get(7)).toMatchObject({ seq: 7, comparable: false });
    await checkpointAfter(src, book, [{ seq: 9, checkpoint: true }], logger, { fuzzyUpTo: 9 });
    expect(book.get(9)?.comparable).toBe(true);
  });

  it('answers not comparable for a checkpoint it settled past without taking, and waits (bounded) for one ahead', async () => {
    const book = new ChecksumBook();
    book.settle(10);
    expect(await book.await(8, 1000)).toMatchObject({ seq: 8, comparable: false });
    const t0 = Date.now();
    const late = await book.await(12, 60);
    expect(late).toMatchObject({ seq: 12, comparable: false });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(55);
    book.begin(12);
    expect(await book.await(12, 30)).toMatchObject({ comparable: false, reason: 'this worker was still hashing at checkpoint 12 after 30 ms' });
    const pending = book.await(13, 2000);
    setTimeout(() => void checkpointAfter(src, book, [{ seq: 13, checkpoint: true }], logger), 30);
    expect((await pending).comparable).toBe(true);
    // A slave whose snapshot started past the checkpoint: its applied seq counts as settled.
    expect(await new ChecksumBook().await(3, 1000, () => 20)).toMatchObject({ comparable: false });
  });

  it('records an interrupted (promotion) or skipped (catching up) checksum as not comparable, and still settles', async () => {
    const book = new ChecksumBook();
    const abort = new AbortController();
    abort.abort();
    await checkpointAfter(src, book, [{ seq: 3, checkpoint: true }], logger, { signal: abort.signal });
    expect(book.get(3)).toMatchObject({ comparable: false, reason: 'hashing failed: interrupted (this worker is being promoted or stopped)' });
    await checkpointAfter(src, book, [{ seq: 4, checkpoint: true }], logger, { skipBecause: 'this slave was still catching up' });
    expect(book.get(4)).toMatchObject({ comparable: false, reason: 'not hashed: this slave was still catching up' });
    expect(book.settled).toBe(4);
  });

  it('keeps a bounded number of results, dropping the oldest', () => {
    const book = new ChecksumBook(3);
    for (let seq = 1; seq <= 5; seq++) book.record({ seq, comparable: false, reason: 'x' });
    expect([1, 2, 3, 4, 5].map((s) => book.get(s) !== undefined)).toEqual([false, false, true, true, true]);
  });
});

describe('verify on the wire', () => {
  it('a verify write is a batch of its own', () => {
    const ins = { kind: 'insert' as const, table: 't', docs: [{}] };
    expect(planBatch([{ kind: 'verify' }, ins])).toBe(1);
    expect(planBatch([ins, { kind: 'verify' }, ins])).toBe(1);
  });

  it('a checkpoint entry decodes, and a bad checkpoint field is refused', () => {
    const entry = { v: WIRE_VERSION, seq: 3, term: 1, requestId: 'r', ts: 1, ops: [], result: { ok: true, seq: 3 }, checkpoint: true };
    expect(decodeSync(encode(entry))?.checkpoint).toBe(true);
    expect(decodeSync(encode({ ...entry, checkpoint: 'yes' }))).toBeUndefined();
  });

  it('a checksum control message needs a seq and a bounded wait', () => {
    expect(decodeControl(encode({ v: WIRE_VERSION, type: 'checksum', seq: 4, waitMs: 100 }))).toEqual({ v: WIRE_VERSION, type: 'checksum', seq: 4, waitMs: 100 });
    expect(decodeControl(encode({ v: WIRE_VERSION, type: 'checksum', seq: 0, waitMs: 100 }))).toBeUndefined();
    expect(decodeControl(encode({ v: WIRE_VERSION, type: 'checksum', seq: 4 }))).toBeUndefined();
  });
});

describe('hashing cost (pure CPU, no database)', () => {
  it('hashes 10,000 and 100,000 documents', () => {
    for (const n of [10_000, 100_000]) {
      const docs = rides(n);
      const t0 = performance.now();
      const c = checksumDocs(docs);
      const ms = performance.now() - t0;
      expect(c.count).toBe(n);
      console.log(`checksum of ${n} documents: ${ms.toFixed(0)} ms`);
    }
  });
});

describe('compareReplicas (orchestrator)', () => {
  const t = (count: number, sum: string) => ({ count, sum });
  const ok = (seq: number, tables: Record<string, { count: number; sum: string }>) => ({ seq, comparable: true as const, tables, documents: 1, ms: 1 });
  const masterTables = { rides: t(2, 'aa'), users: t(1, 'bb') };

  it('is equal when every replica has the master tables, an empty table counting as missing', () => {
    const r = compareReplicas('m', [
      { id: 'm', role: 'master', pid: 1, answer: ok(5, masterTables) },
      { id: 's', role: 'slave', pid: 2, answer: ok(5, { users: t(1, 'bb'), rides: t(2, 'aa') }) },
    ]);
    expect(r.result).toBe('equal');
    expect(r.replicas.map((x) => x.status)).toEqual(['equal', 'equal']);
    expect(divergentTables({ a: t(0, '') }, {})).toEqual([]);
  });

  it('names the divergent slave and only the tables that differ', () => {
    const r = compareReplicas('m', [
      { id: 'm', role: 'master', pid: 1, answer: ok(5, masterTables) },
      { id: 's1', role: 'slave', pid: 2, answer: ok(5, masterTables) },
      { id: 's2', role: 'slave', pid: 3, answer: ok(5, { rides: t(2, 'ab'), users: t(1, 'bb'), extra: t(1, 'cc') }) },
    ]);
    expect(r.result).toBe('divergent');
    expect(r.replicas.find((x) => x.id === 's2')).toMatchObject({ status: 'divergent', tables: ['extra', 'rides'] });
    expect(r.suspect).toBeUndefined();
  });

  it('is incomplete, not divergent, when a replica is not comparable or does not answer', () => {
    const r = compareReplicas('m', [
      { id: 'm', role: 'master', pid: 1, answer: ok(5, masterTables) },
      { id: 's1', role: 'slave', pid: 2, answer: { seq: 5, comparable: false, reason: 'joined later' } },
      { id: 's2', role: 'slave', pid: 3, answer: { error: 'timeout' } },
    ]);
    expect(r.result).toBe('incomplete');
    expect(r.replicas.map((x) => x.status)).toEqual(['equal', 'not-comparable', 'unreachable']);
  });

  it('suspects the master when every slave (two or more) agrees and all differ from it', () => {
    const other = { rides: t(3, 'ff') };
    const r = compareReplicas('m', [
      { id: 'm', role: 'master', pid: 1, answer: ok(5, masterTables) },
      { id: 's1', role: 'slave', pid: 2, answer: ok(5, other) },
      { id: 's2', role: 'slave', pid: 3, answer: ok(5, other) },
    ]);
    expect(r.result).toBe('divergent');
    expect(r.suspect).toBe('master');
  });
});

describe('Verifier (orchestrator), with a fake cluster', () => {
  const tables = { rides: { count: 1, sum: 'aa' } };
  function fakeDeps(slaveTables: Record<string, { count: number; sum: string }>, intervalMs = 0) {
    const marked: Array<[string, string]> = [];
    const calls: unknown[] = [];
    const audit = new AuditLog(logger);
    let seq = 0;
    const deps: VerifierDeps = {
      config: { requestTimeoutMs: 1000, verifyIntervalMs: intervalMs, verifyWaitMs: 100 },
      names: clusterNames('vt'),
      rpc: {
        call: async (queue: string, message: unknown) => {
          calls.push(message);
          if (queue === clusterNames('vt').writeQueue) return { ok: true, seq: ++seq };
          const answerTables = queue.includes('s1') ? slaveTables : tables;
          return { seq, comparable: true, tables: answerTables, documents: 1, ms: 0 };
        },
      },
      cluster: {
        requireMaster: async () => ({ id: 'm0' }),
        workersDetail: () => [
          { id: 'm0', pid: 10, state: 'master' },
          { id: 's1', pid: 11, state: 'slave' },
          { id: 's2', pid: 12, state: 'syncing' },
        ],
        markDivergent: (id, why) => void marked.push([id, why]),
      },
      audit,
      logger,
    };
    return { deps, marked, calls, audit };
  }

  it('writes a verify checkpoint, asks each serving replica for its checksum at that seq, and audits', async () => {
    const { deps, marked, calls, audit } = fakeDeps(tables);
    const report = await new Verifier(deps).run('manual');
    expect(calls[0]).toMatchObject({ command: { kind: 'verify' } });
    expect(calls.slice(1)).toEqual([
      { v: WIRE_VERSION, type: 'checksum', seq: 1, waitMs: 100 },
      { v: WIRE_VERSION, type: 'checksum', seq: 1, waitMs: 100 },
    ]);
    expect(report.result).toBe('incomplete');
    expect(report.replicas.find((r) => r.id === 's2')).toMatchObject({ status: 'not-comparable', reason: 'it is syncing, not serving' });
    expect(marked).toEqual([]);
    expect(audit.list()[0]).toMatchObject({ kind: 'verify', details: { result: 'incomplete', seq: 1 } });
  });

  it('marks a divergent slave for replacement, and runs periodically when an interval is set', async () => {
    const { deps, marked, audit } = fakeDeps({ rides: { count: 1, sum: 'ab' } }, 20);
    const verifier = new Verifier(deps);
    verifier.start();
    const runs = (): AuditEvent[] => audit.list().filter((e) => e.kind === 'verify');
    try {
      // Two periods at least; bounded, so a loaded machine only makes it slower.
      for (const deadline = Date.now() + 5000; runs().length < 2 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 10));
    } finally {
      verifier.close();
    }
    const seen = runs();
    const count = seen.length;
    // Closed: no new period starts (a run already in flight may still finish).
    await new Promise((r) => setTimeout(r, 100));
    expect(runs().length).toBeLessThanOrEqual(count + 1);
    expect(count).toBeGreaterThanOrEqual(2);
    expect(seen[0]?.reason).toBe('verify at seq 1: divergent from master m0: s1 (pid 11) in rides; marked for replacement');
    expect(seen[0]?.details).toMatchObject({ trigger: 'periodic' });
    expect(marked[0]).toEqual(['s1', 'differs from the master at seq 1 in table(s) rides']);
  });

  it('joins a run already in flight instead of starting another', async () => {
    const { deps, calls } = fakeDeps(tables);
    const verifier = new Verifier(deps);
    const [a, b] = await Promise.all([verifier.run('manual'), verifier.run('periodic')]);
    expect(a).toBe(b);
    expect(calls.filter((m) => (m as { command?: unknown }).command !== undefined)).toHaveLength(1);
  });
});

/** A MemoryDb that also scans like a live cursor: one document per tick, seeing writes made meanwhile. */
class ScanningDb extends MemoryDb implements ChecksumSource {
  async userTables(): Promise<string[]> {
    return [...this.tables.keys()];
  }

  override async *scanTable(name: string): AsyncIterable<Doc> {
    for (const doc of this.tables.get(name)?.values() ?? []) {
      await new Promise((r) => setImmediate(r));
      yield structuredClone(doc);
    }
  }
}

describe('the master checksum taken beside writes (checkpoint-window.ts)', () => {
  /** The checksum at S of every table of `db` (what the master's must equal). */
  const checksumsOf = (db: MemoryDb): Record<string, TableChecksum> => Object.fromEntries(Object.entries(db.dump()).map(([t, docs]) => [t, checksumDocs(docs)]));

  /** Puts `n` documents `<prefix><i>` with `n: i` into a table. */
  const fillTable = (db: MemoryDb, table: string, n: number, prefix: string): void => {
    for (let i = 0; i < n; i++) db.applySequential([{ t: 'put', table, doc: { _id: `${prefix}${i}`, n: i } }]);
  };

  /** `db` with a checkpoint at seq 1 applied: its checksum is being taken (`scanning`); `atS`, what it must equal. */
  async function checkpointOn(db: ScanningDb): Promise<{ cps: MasterCheckpoints; atS: Record<string, TableChecksum>; seq: { n: number }; scanning: Promise<ChecksumReply> }> {
    const book = new ChecksumBook();
    const cps = new MasterCheckpoints(db, book, logger);
    const atS = checksumsOf(db);
    await cps.afterApply([entry(1, [], true)]);
    return { cps, atS, seq: { n: 1 }, scanning: book.await(1, 10_000) };
  }

  function entry(seq: number, ops: SyncOp[], checkpoint = false): SyncEntry {
    return { v: WIRE_VERSION, seq, term: 1, requestId: `r${seq}`, ts: 0, ops, result: { ok: true, seq, inserted: 0, ids: [], matched: 0, modified: 0, deleted: 0 }, ...(checkpoint ? { checkpoint: true as const } : {}) };
  }

  /** Runs writes as the master's stage 1 does, batch by batch, through MasterCheckpoints. */
  async function master(db: ScanningDb, cps: MasterCheckpoints, commands: WriteCommand[], seq: { n: number }): Promise<void> {
    while (commands.length > 0) {
      const batch = commands.splice(0, planBatch(commands));
      const source = cps.source();
      const view = new BatchView(source);
      const entries: SyncEntry[] = [];
      for (const cmd of batch) {
        try {
          const built = await buildWrite(view, cmd);
          view.record(built.ops);
          entries.push(entry(++seq.n, built.ops));
        } catch {
          // refused (a duplicate id): nothing written, as on the master
        }
      }
      await cps.beforeApply(entries, source);
      db.applySequential(entries.flatMap((e) => e.ops));
      await cps.afterApply(entries);
    }
  }

  function randomWrites(random: () => number, n: number): WriteCommand[] {
    const id = (): string => `d${Math.floor(random() * 140)}`;
    const out: WriteCommand[] = [];
    for (let i = 0; i < n; i++) {
      const r = random();
      if (r < 0.3) out.push({ kind: 'update', table: 'docs', where: { _id: id() }, update: { $inc: { n: 1 } } });
      else if (r < 0.45) out.push({ kind: 'delete', table: 'docs', where: { _id: id() } });
      else if (r < 0.6) out.push({ kind: 'insert', table: random() < 0.5 ? 'docs' : 'other', docs: [{ n: i }] });
      else if (r < 0.7) out.push({ kind: 'insert', table: 'docs', docs: [{ _id: id(), n: -1 }] });
      else if (r < 0.8) out.push({ kind: 'upsert', table: 'docs', where: { _id: id() }, update: { $set: { up: i } } });
      else if (r < 0.9) out.push({ kind: 'update', table: 'docs', where: { owner: `u${Math.floor(random() * 5)}` }, update: { $push: { log: i } } });
      else out.push({ kind: 'delete', table: 'docs', where: { owner: `u${Math.floor(random() * 5)}` } });
    }
    return out;
  }

  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`equals the checksum of the data at the checkpoint while random writes run (seed ${seed})`, async () => {
      const random = makeRng(seed);
      const db = new ScanningDb();
      const seq = { n: 0 };
      const book = new ChecksumBook();
      const cps = new MasterCheckpoints(db, book, logger);
      for (let i = 0; i < 100; i++) db.applySequential([{ t: 'put', table: 'docs', doc: { _id: `d${i}`, n: i, owner: `u${i % 5}` } }]);
      await master(db, cps, randomWrites(random, 40), seq);
      const atS = db.clone();
      const s = ++seq.n;
      await cps.afterApply([entry(s, [], true)]);
      const scanning = book.await(s, 10_000);
      // Writes keep coming while the scan runs, some before and some after it reaches each document.
      for (let round = 0; round < 20; round++) {
        await master(db, cps, randomWrites(random, 5), seq);
        for (let k = 0; k < 3; k++) await new Promise((r) => setImmediate(r));
      }
      const reply = await scanning;
      expect(reply.comparable).toBe(true);
      const expected = Object.fromEntries(Object.entries(atS.dump()).map(([t, docs]) => [t, checksumDocs(docs)]));
      expect(reply.comparable && reply.tables).toEqual(expected);
      // The data did change meanwhile: the correction was needed.
      const now = Object.fromEntries(Object.entries(db.dump()).map(([t, docs]) => [t, checksumDocs(docs)]));
      expect(now).not.toEqual(expected);
    });
  }

  for (const seed of [11, 12, 13, 14, 15, 16]) {
    it(`equals the checksum at the checkpoint while random writes and clears of a second database run (seed ${seed})`, async () => {
      const random = makeRng(seed);
      const db = new ScanningDb();
      const seq = { n: 0 };
      const book = new ChecksumBook();
      const cps = new MasterCheckpoints(db, book, logger);
      for (let i = 0; i < 60; i++) db.applySequential([{ t: 'put', table: i % 2 === 0 ? 'docs' : 'shop.items', doc: { _id: `d${i}`, n: i, owner: `u${i % 5}` } }]);
      const mixed = (n: number): WriteCommand[] =>
        randomWrites(random, n).map((w): WriteCommand => {
          const r = random();
          if (r < 0.08) return { kind: 'clear', database: 'shop' };
          if (r < 0.1) return { kind: 'clear', database: 'gone' };
          return r < 0.5 && w.kind !== 'clear' && w.kind !== 'verify' && 'table' in w ? ({ ...w, table: `shop.${w.table}` } as WriteCommand) : w;
        });
      await master(db, cps, mixed(30), seq);
      const atS = db.clone();
      const s = ++seq.n;
      await cps.afterApply([entry(s, [], true)]);
      const scanning = book.await(s, 10_000);
      for (let round = 0; round < 20; round++) {
        await master(db, cps, mixed(5), seq);
        await new Promise((r) => setImmediate(r));
      }
      const reply = await scanning;
      expect(reply).toMatchObject({ comparable: true, tables: checksumsOf(atS) });
    });
  }

  it('stays exact when a clear of everything runs during the window, and another checkpoint waits for none', async () => {
    const db = new ScanningDb();
    for (let i = 0; i < 50; i++) db.applySequential([{ t: 'put', table: 'docs', doc: { _id: `d${i}`, n: i } }]);
    const book = new ChecksumBook();
    const cps = new MasterCheckpoints(db, book, logger);
    const atS = checksumsOf(db);
    await cps.afterApply([entry(1, [], true)]);
    await cps.afterApply([entry(2, [], true)]);
    expect(book.get(2)).toMatchObject({ comparable: false, reason: 'the master was still taking the checksum of checkpoint 1' });
    // The scan is still on `docs` (one document per tick): the write stage reads the rest before the clear.
    await master(db, cps, [{ kind: 'insert', table: 'docs', docs: [{ _id: 'new', n: 0 }] }, { kind: 'clear' }, { kind: 'insert', table: 'docs', docs: [{ _id: 'd1', n: 7 }] }], { n: 2 });
    expect(await book.await(1, 5000)).toMatchObject({ comparable: true, tables: atS });
  });

  it(`is not comparable, naming the database, when a clear drops more than ${MAX_READ_AT_CLEAR} documents the scan has not read`, async () => {
    const db = new ScanningDb();
    fillTable(db, 'docs', 60, 'd');
    fillTable(db, 'shop.items', MAX_READ_AT_CLEAR + 1, 'i');
    const { cps, seq, scanning } = await checkpointOn(db);
    await master(db, cps, [{ kind: 'clear', database: 'shop' }], seq);
    expect(await scanning).toMatchObject({
      comparable: false,
      reason: `database shop was cleared (seq 2: a clear, or a database dropped or created) before the checksum had read shop.items, more than the ${MAX_READ_AT_CLEAR} documents the write stage reads then`,
    });
  });

  it('stays exact when a database made after the checkpoint is created, written and dropped during the window', async () => {
    const db = new ScanningDb();
    fillTable(db, 'docs', 60, 'd');
    const { cps, atS, seq, scanning } = await checkpointOn(db);
    // A database's create is a clear of it, its drop another: both while the scan is still on `docs`.
    await master(db, cps, [{ kind: 'clear', database: 'shop' }, { kind: 'insert', table: 'shop.items', docs: [{ _id: 'i1', n: 1 }] }], seq);
    await master(db, cps, [{ kind: 'update', table: 'docs', where: { _id: 'd59' }, update: { $set: { n: -1 } } }, { kind: 'clear', database: 'shop' }], seq);
    expect(await scanning).toMatchObject({ comparable: true, tables: atS });
  });

  it('stays exact when a clear drops a table the scan has not read: the write stage reads it first', async () => {
    const db = new ScanningDb();
    fillTable(db, 'docs', 60, 'd');
    fillTable(db, 'shop.items', 5, 'i');
    const { cps, atS, seq, scanning } = await checkpointOn(db);
    // The scan reads `docs` first (one document per tick): `shop.items` is still unread, one of its documents changed.
    await master(db, cps, [{ kind: 'update', table: 'shop.items', where: { _id: 'i2' }, update: { $set: { n: 20 } } }], seq);
    await master(db, cps, [{ kind: 'clear', database: 'shop' }, { kind: 'insert', table: 'shop.items', docs: [{ _id: 'i1', n: 100 }] }], seq);
    expect(await scanning).toMatchObject({ comparable: true, tables: atS });
  });

  it('stays exact when a clear drops only tables the scan has read to the end, and they are written again', async () => {
    const db = new ScanningDb();
    fillTable(db, 'shop.items', 5, 'i');
    fillTable(db, 'docs', 60, 'd');
    const finished: string[] = [];
    const scan = db.scanTable.bind(db);
    db.scanTable = async function* (name: string): AsyncIterable<Doc> {
      yield* scan(name);
      finished.push(name);
    };
    const { cps, atS, seq, scanning } = await checkpointOn(db);
    while (!finished.includes('shop.items')) await new Promise((r) => setImmediate(r));
    expect(finished).not.toContain('docs');
    await master(db, cps, [{ kind: 'clear', database: 'shop' }, { kind: 'insert', table: 'shop.items', docs: [{ _id: 'i1', n: 100 }] }], seq);
    await master(db, cps, [{ kind: 'delete', table: 'docs', where: { _id: 'd59' } }], seq);
    expect(await scanning).toMatchObject({ comparable: true, tables: atS });
  });

  it('is not comparable when a write changes a document it did not read', async () => {
    const db = new ScanningDb();
    for (let i = 0; i < 20; i++) db.applySequential([{ t: 'put', table: 'docs', doc: { _id: `d${i}`, n: i } }]);
    const book = new ChecksumBook();
    const cps = new MasterCheckpoints(db, book, logger);
    await cps.afterApply([entry(1, [], true)]);
    const blind = [entry(2, [{ t: 'put', table: 'docs', doc: { _id: 'd3', n: 0 } }])];
    await cps.beforeApply(blind, cps.source());
    expect(await book.await(1, 5000)).toMatchObject({ comparable: false, reason: 'seq 2 changed docs/d3 without reading it first' });
  });
});
