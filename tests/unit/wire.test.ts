import { describe, expect, it } from 'vitest';
import { DbaasError, ERROR_CATALOGUE, httpErrorBody } from '../../common/errors.js';
import { decodeControl, decodeRead, decodeReply, decodeSync, decodeWrite, encode } from '../../common/messages.js';

describe('error catalogue', () => {
  it('names every code DBAAS_<AREA>_<WHAT> with a 4xx/5xx status', () => {
    for (const [code, entry] of Object.entries(ERROR_CATALOGUE)) {
      expect(code).toMatch(/^DBAAS_[A-Z]+_[A-Z_]+$/);
      expect(entry.status).toBeGreaterThanOrEqual(400);
      expect(entry.status).toBeLessThan(600);
      // Only unavailability is retryable.
      expect(entry.retryable).toBe(entry.status === 503 || entry.status === 504);
    }
  });

  it('crosses the wire and comes back the same; unknown codes become internal', () => {
    const err = new DbaasError('DBAAS_CLUSTER_NO_MASTER', 'none');
    const back = DbaasError.fromWire(JSON.parse(JSON.stringify(err.toWire())));
    expect(back.code).toBe('DBAAS_CLUSTER_NO_MASTER');
    expect(back.status).toBe(503);
    expect(back.message).toBe('none');
    expect(DbaasError.fromWire({ code: 'NOPE', message: 'x' }).code).toBe('DBAAS_SERVER_INTERNAL');
    expect(httpErrorBody(err)).toEqual({ error: { code: 'DBAAS_CLUSTER_NO_MASTER', message: 'none' } });
  });
});

describe('message decoding (poison messages are recognised, never thrown)', () => {
  const garbage = [Buffer.from('not json'), Buffer.from('[]'), Buffer.from('null'), encode({ v: 2, requestId: 'x', command: {} }), Buffer.alloc(0)];

  it('decodes well-formed messages', () => {
    expect(decodeWrite(encode({ v: 1, requestId: 'r', command: { kind: 'clear' } }))?.requestId).toBe('r');
    expect(decodeRead(encode({ v: 1, command: { table: 't', where: {}, count: false } }))?.command.table).toBe('t');
    const entry = { v: 1, seq: 3, term: 1, requestId: 'r', ts: 1, ops: [], result: { ok: true } };
    expect(decodeSync(encode(entry))?.seq).toBe(3);
    expect(decodeControl(encode({ v: 1, type: 'promote', term: 2 }))).toEqual({ v: 1, type: 'promote', term: 2 });
    expect(decodeReply(encode({ ok: true, result: [1] }))).toEqual({ ok: true, result: [1] });
    expect(decodeReply(encode({ ok: false, error: { code: 'DBAAS_X', message: 'm' } }))).toEqual({ ok: false, error: { code: 'DBAAS_X', message: 'm' } });
  });

  it('returns undefined for garbage and unknown versions', () => {
    for (const g of garbage) {
      expect(decodeWrite(g)).toBeUndefined();
      expect(decodeRead(g)).toBeUndefined();
      expect(decodeSync(g)).toBeUndefined();
      expect(decodeControl(g)).toBeUndefined();
    }
    expect(decodeSync(encode({ v: 1, seq: 1.5, term: 1, requestId: 'r', ops: [], result: {} }))).toBeUndefined();
    expect(decodeControl(encode({ v: 1, type: 'promote' }))).toBeUndefined();
    expect(decodeControl(encode({ v: 1, type: 'explode' }))).toBeUndefined();
    expect(decodeReply(encode({ ok: 'yes' }))).toBeUndefined();
  });
});
