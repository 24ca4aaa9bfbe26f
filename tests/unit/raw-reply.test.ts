import { describe, expect, it } from 'vitest';
import { encode, rawResult } from '../../common/messages.js';
import { RawJson } from '../../orchestrator/rpc-client.js';

describe('rawResult (a reply passed on without parsing)', () => {
  it('gives the result of a successful reply as the JSON text the worker sent', () => {
    const result = [{ _id: 'a', name: 'zoë ✓', n: 1.5, nested: { list: [1, null, 'x'] } }];
    const text = rawResult(encode({ ok: true, result }));
    expect(text).toBe(JSON.stringify(result));
    expect(JSON.parse(text as string)).toEqual(result);
    expect(rawResult(encode({ ok: true, result: { count: 3 } }))).toBe('{"count":3}');
    expect(rawResult(encode({ ok: true, result: [] }))).toBe('[]');
  });

  it('leaves errors and other shapes to decodeReply', () => {
    expect(rawResult(encode({ ok: false, error: { code: 'DBAAS_X', message: 'm' } }))).toBeUndefined();
    expect(rawResult(encode({ result: 1, ok: true }))).toBeUndefined();
    expect(rawResult(Buffer.from('{"ok":true,"result":'))).toBeUndefined();
    expect(rawResult(Buffer.alloc(0))).toBeUndefined();
  });

  it('serialises as the value it carries', () => {
    const raw = new RawJson('[{"_id":"a"}]');
    expect(JSON.stringify({ body: raw })).toBe('{"body":[{"_id":"a"}]}');
  });
});
