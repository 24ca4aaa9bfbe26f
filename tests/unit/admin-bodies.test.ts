/**
 * The cluster routes' bodies (orchestrator/admin-bodies.ts) refuse with the
 * codes and messages these routes gave before they were declared as bodies
 * (the CLI shows the message as it comes: tests/unit/cli.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { CRASH_BODY, EVENTS_QUERY, SWITCHOVER_BODY, scaleBody } from '../../orchestrator/admin-bodies.js';
import { expectCode } from './expect-code.js';

describe('POST /api/v1/scale body', () => {
  const scale = scaleBody(1, 16);
  it('takes an integer within the configured bounds', () => {
    expect(scale.parse({ slaves: 3 })).toBe(3);
    expect(scaleBody(2, 4).schema).toMatchObject({ required: ['slaves'], properties: { slaves: { type: 'integer', minimum: 2, maximum: 4 } } });
  });
  it.each([[{ slaves: 17 }], [{ slaves: 0 }], [{ slaves: '3' }], [{ slaves: 2.5 }], [{}], [null], [undefined], [[3]], ['3']])('refuses %j', (body) => {
    expect(expectCode(() => scale.parse(body), 'DBAAS_REQ_INVALID').message).toBe('slaves must be an integer from 1 to 16');
  });
  it('names every unknown field first', () => {
    expect(expectCode(() => scale.parse({ slaves: 99, now: 1, why: 2 }), 'DBAAS_REQ_UNKNOWN_FIELD').message).toBe('unknown field(s): now, why; allowed: slaves');
  });
});

describe('POST /api/v1/switchover body', () => {
  it('takes nothing, {} or a target', () => {
    expect(SWITCHOVER_BODY.parse(undefined)).toBeUndefined();
    expect(SWITCHOVER_BODY.parse({})).toBeUndefined();
    expect(SWITCHOVER_BODY.parse({ target: '4242' })).toBe('4242');
  });
  it.each([[{ target: '' }], [{ target: 7 }], [{ target: 'x'.repeat(129) }]])('refuses %j', (body) => {
    expect(expectCode(() => SWITCHOVER_BODY.parse(body), 'DBAAS_REQ_INVALID').message).toBe('target must be a worker id or pid (a string)');
  });
  it('names unknown fields and the allowed one', () => {
    expect(expectCode(() => SWITCHOVER_BODY.parse({ to: 'w' }), 'DBAAS_REQ_UNKNOWN_FIELD').message).toBe('unknown field(s): to; allowed: target');
  });
  // Before: an array or a string body was taken for "no target" and a switchover ran.
  it.each([[[1]], ['w1'], [null], [7]])('refuses a body that is not an object: %j', (body) => {
    expectCode(() => SWITCHOVER_BODY.parse(body), 'DBAAS_REQ_INVALID');
  });
});

describe('POST /api/v1/crash/* body', () => {
  it('takes nothing or {}', () => {
    expect(() => CRASH_BODY.parse(undefined)).not.toThrow();
    expect(() => CRASH_BODY.parse({})).not.toThrow();
  });
  // Before: any body was ignored and a worker killed.
  it.each([[[]], ['master'], [null], [0]])('refuses %j before killing anything', (body) => {
    expectCode(() => CRASH_BODY.parse(body), 'DBAAS_REQ_INVALID');
  });
  it('refuses any field', () => {
    expect(expectCode(() => CRASH_BODY.parse({ pid: 1 }), 'DBAAS_REQ_UNKNOWN_FIELD').message).toBe('unknown field(s): pid; a crash drill takes no fields');
  });
});

describe('GET /api/v1/events query', () => {
  it('reads after as a number, 0 when absent', () => {
    expect(EVENTS_QUERY.parse({})).toBe(0);
    expect(EVENTS_QUERY.parse({ after: '42' })).toBe(42);
  });
  it.each([[{ after: '-1' }], [{ after: 'x' }], [{ after: '1234567890123456' }], [{ after: ['1', '2'] }]])('refuses %j', (query) => {
    expect(expectCode(() => EVENTS_QUERY.parse(query), 'DBAAS_REQ_INVALID').message).toBe('after must be a non-negative integer (the seq of the last event seen)');
  });
});
