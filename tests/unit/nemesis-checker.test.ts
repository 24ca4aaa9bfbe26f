/**
 * The nemesis checker on hand-made histories and replicas: it passes a
 * consistent run and names each kind of loss the nemesis exists to catch.
 */
import { describe, expect, it } from 'vitest';
import { checkHistory, type Dump, type Replica } from '../../tools/nemesis/checker.js';
import { TABLES, type OpKind, type OpRecord, type Outcome } from '../../tools/nemesis/history.js';

let n = 0;
function op(kind: OpKind, key: string, outcome: Outcome, extra: Partial<OpRecord> = {}): OpRecord {
  n++;
  return { kind, client: 0, key, requestId: `r${n}`, outcome, status: outcome === 'ok' ? 200 : outcome === 'refused' ? 409 : 504, attempts: 1, startMs: n, endMs: n, ...extra };
}

/** A history of every kind, and the data a correct cluster holds after it. */
function consistent(): { history: OpRecord[]; dump: Dump } {
  n = 0;
  const history = [
    op('insert-id', 'd-0-1', 'ok'),
    op('insert-id', 'd-0-2', 'ok'),
    op('delete', 'd-0-2', 'ok'),
    op('insert-id', 'd-0-3', 'unknown'),
    op('insert-auto', 'a-0-4', 'ok', { ids: ['x4'] }),
    op('insert-auto', 'a-0-5', 'unknown'),
    op('upsert', 'acct-0-0', 'ok', { value: 'n6', owner: 'c0' }),
    op('upsert', 'acct-0-0', 'ok', { value: 'n7', owner: 'c0' }),
    op('upsert-foreign', 'acct-0-0', 'refused', { value: 'x8', owner: 'mallory', code: 'DBAAS_WRITE_DUPLICATE_ID' }),
    op('inc', 'ctr-0-0', 'ok', { value: 2 }),
    op('inc', 'ctr-0-0', 'ok', { value: 3 }),
    op('inc', 'ctr-0-0', 'unknown', { value: 1 }),
    op('push', 'arr-0-0', 'ok', { value: '0-13' }),
    op('push', 'arr-0-0', 'unknown', { value: '0-14' }),
    op('push', 'arr-0-0', 'ok', { value: '0-15' }),
  ];
  const dump: Dump = {
    [TABLES.docs]: [{ _id: 'd-0-1', c: 0, i: 1 }],
    [TABLES.auto]: [{ _id: 'x4', key: 'a-0-4', c: 0, i: 4 }],
    [TABLES.accounts]: [{ _id: 'acct-0-0', owner: 'c0', note: 'n7' }],
    [TABLES.counters]: [{ _id: 'ctr-0-0', n: 6 }], // 2 + 3 acknowledged, + the unknown 1 applied
    [TABLES.arrays]: [{ _id: 'arr-0-0', items: ['0-13', '0-15'] }],
  };
  return { history, dump };
}

const replicas = (...dumps: Dump[]): Replica[] => dumps.map((dump, i) => ({ id: `w${i}`, role: i === 0 ? 'master' : 'slave', dump }));
const failedChecks = (history: OpRecord[], reps: Replica[]): string[] =>
  checkHistory(history, reps)
    .filter((c) => !c.passed)
    .map((c) => c.name);
const clone = (d: Dump): Dump => JSON.parse(JSON.stringify(d)) as Dump;

describe('nemesis checker', () => {
  it('passes a consistent run on equal replicas', () => {
    const { history, dump } = consistent();
    const results = checkHistory(history, replicas(dump, clone(dump), clone(dump)));
    expect(results.filter((c) => !c.passed)).toEqual([]);
    expect(results.length).toBeGreaterThanOrEqual(8);
  });

  it('catches a deleted document back on one replica (and the replicas differing)', () => {
    const { history, dump } = consistent();
    const slave = clone(dump);
    slave[TABLES.docs]?.push({ _id: 'd-0-2', c: 0, i: 2 });
    expect(failedChecks(history, replicas(dump, slave))).toEqual(['acknowledged deletes absent', 'replicas equal (direct read of each database)']);
  });

  it('catches a lost insert and an insert without _id applied twice', () => {
    const { history, dump } = consistent();
    const bad = clone(dump);
    bad[TABLES.docs] = [];
    bad[TABLES.auto]?.push({ _id: 'y4', key: 'a-0-4', c: 0, i: 4 });
    const failed = failedChecks(history, replicas(bad));
    expect(failed).toContain('acknowledged inserts (with _id) present once');
    expect(failed).toContain('acknowledged inserts (no _id) present once');
  });

  it('catches a counter beyond acknowledged + unknown increments, and one below the acknowledged ones', () => {
    const { history, dump } = consistent();
    for (const value of [7, 4]) {
      const bad = clone(dump);
      bad[TABLES.counters] = [{ _id: 'ctr-0-0', n: value }];
      expect(failedChecks(history, replicas(bad))).toEqual(['counters = acknowledged $inc total']);
    }
  });

  it('catches a push applied twice, a lost push and a phantom item', () => {
    const { history, dump } = consistent();
    for (const items of [['0-13', '0-13', '0-15'], ['0-15'], ['0-13', '0-15', '0-99']]) {
      const bad = clone(dump);
      bad[TABLES.arrays] = [{ _id: 'arr-0-0', items }];
      expect(failedChecks(history, replicas(bad))).toEqual(['arrays hold each acknowledged $push once']);
    }
  });

  it('catches an upsert that overwrote an unmatched _id, from the answer and from the data', () => {
    const { history, dump } = consistent();
    const foreign = history.find((r) => r.kind === 'upsert-foreign') as OpRecord;
    Object.assign(foreign, { outcome: 'ok', status: 200, matched: 0, inserted: 1 });
    const bad = clone(dump);
    bad[TABLES.accounts] = [{ _id: 'acct-0-0', owner: 'mallory', note: 'x8' }];
    expect(failedChecks(history, replicas(bad))).toEqual(['upserts: owner kept, note from the last acknowledged', 'upsert naming an existing _id refused (409)']);
  });

  it('counts a 4xx after an unanswered try as unknown, and reports it as a refused valid write', () => {
    const { history, dump } = consistent();
    history.push(op('insert-id', 'd-0-9', 'unknown', { status: 409, code: 'DBAAS_WRITE_DUPLICATE_ID', attempts: 2 }));
    const bad = clone(dump);
    bad[TABLES.docs]?.push({ _id: 'd-0-9', c: 0, i: 9 });
    expect(failedChecks(history, replicas(bad))).toEqual(['no valid write refused']);
  });
});
