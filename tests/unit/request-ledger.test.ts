import { describe, expect, it } from 'vitest';
import { decodeWrite } from '../../common/messages.js';
import { requestIdTime, requestTime, timedRequestId } from '../../common/request-time.js';
import { judgeRetry, recordOf, type LedgerRecord } from '../../worker/request-ledger.js';

const record: LedgerRecord = { seq: 7, requestId: 'r', fingerprint: 'f', result: { ok: true, seq: 7, inserted: 1, ids: ['a'], matched: 0, modified: 0, deleted: 0 }, ts: 5000 };

describe('request time', () => {
  it('a timed requestId carries the time of its first attempt; any other form tells none', () => {
    const id = timedRequestId(1_700_000_000_123);
    expect(id).toMatch(/^rq1-1700000000123-[0-9a-f-]{36}$/);
    expect(requestIdTime(id)).toBe(1_700_000_000_123);
    expect(requestIdTime('retry-1')).toBeUndefined();
    expect(requestIdTime(globalThis.crypto.randomUUID())).toBeUndefined();
  });

  it("takes the older of the requestId's time and the envelope's", () => {
    expect(requestTime('rq1-100-x', 200)).toBe(100);
    expect(requestTime('rq1-300-x', 200)).toBe(200);
    expect(requestTime('plain', 200)).toBe(200);
    expect(requestTime('plain', undefined)).toBeUndefined();
  });

  it("takes the envelope's askedAt (the client's own measure of the request's age) over a requestId's time, whose clock may be off", () => {
    // A client whose clock is 20 minutes behind: its id looks 20 minutes old; the age it reports says it is new.
    expect(requestTime('rq1-100-x', 1_200_100, 1_200_000)).toBe(1_200_000);
    expect(requestTime('plain', 200, 150)).toBe(150);
  });

  it("an envelope's askedAt survives decoding with at; a bad one is dropped", () => {
    const command = { kind: 'insert', table: 't', docs: [{ a: 1 }] };
    expect(decodeWrite(Buffer.from(JSON.stringify({ v: 1, requestId: 'r', command, at: 1234, askedAt: 1200 })))).toMatchObject({ at: 1234, askedAt: 1200 });
    const bad = decodeWrite(Buffer.from(JSON.stringify({ v: 1, requestId: 'r', command, at: 1234, askedAt: -5 })));
    expect(bad && 'askedAt' in bad).toBe(false);
    expect(bad?.at).toBe(1234);
  });

  it("an envelope's `at` survives decoding; a bad one is dropped, and one without stays valid", () => {
    const command = { kind: 'insert', table: 't', docs: [{ a: 1 }] };
    expect(decodeWrite(Buffer.from(JSON.stringify({ v: 1, requestId: 'r', command, at: 1234 })))?.at).toBe(1234);
    const bad = decodeWrite(Buffer.from(JSON.stringify({ v: 1, requestId: 'r', command, at: 'soon' })));
    expect(bad?.requestId).toBe('r');
    expect(bad && 'at' in bad).toBe(false);
  });
});

describe('judgeRetry', () => {
  it('answers a requestId the ledger holds with its record when it was asked for within the horizon, or its time is unknown', () => {
    expect(judgeRetry(record, 10_000, 10_000)).toEqual({ kind: 'retry', record });
    expect(judgeRetry(record, undefined, 10_000)).toEqual({ kind: 'retry', record });
  });

  it('refuses a write asked for before the horizon even while the ledger still holds it (every master answers alike)', () => {
    expect(judgeRetry(record, 1, 10_000)).toEqual({ kind: 'expired', horizon: 10_000 });
  });

  it('refuses a write first asked for before the horizon that the ledger does not hold', () => {
    expect(judgeRetry(undefined, 9_999, 10_000)).toEqual({ kind: 'expired', horizon: 10_000 });
  });

  it('takes as new a write asked for within the horizon, or one whose time is unknown', () => {
    expect(judgeRetry(undefined, 10_000, 10_000)).toEqual({ kind: 'new' });
    expect(judgeRetry(undefined, undefined, 10_000)).toEqual({ kind: 'new' });
  });

  it('a ledger record keeps what a retry needs and none of the ops', () => {
    const r = recordOf({ ...record, v: 1, term: 1, ops: [{ t: 'clear' }] } as never);
    expect(r).toEqual(record);
    expect('ops' in r).toBe(false);
  });
});
