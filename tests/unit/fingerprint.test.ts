import { describe, expect, it } from 'vitest';
import { commandFingerprint, type WriteCommand } from '../../common/commands.js';
import { decodeSync, encode, WIRE_VERSION } from '../../common/messages.js';

describe('commandFingerprint', () => {
  const update: WriteCommand = { kind: 'update', table: 't', where: { a: 1, b: { $gt: 2 } }, update: { $set: { x: 1, y: [1, { z: 2 }] } } };

  it('ignores the order of object keys, at every level', () => {
    const reordered: WriteCommand = { update: { $set: { y: [1, { z: 2 }], x: 1 } }, where: { b: { $gt: 2 }, a: 1 }, table: 't', kind: 'update' };
    expect(commandFingerprint(reordered)).toBe(commandFingerprint(update));
  });

  it('differs for any other difference: a value, a type, array order, the table, the kind', () => {
    const variants: WriteCommand[] = [
      { ...update, table: 'u' },
      { ...update, kind: 'upsert' },
      { ...update, where: { a: '1', b: { $gt: 2 } } },
      { ...update, where: { a: 1, b: { $gte: 2 } } },
      { ...update, update: { $set: { x: 1, y: [{ z: 2 }, 1] } } },
      { ...update, update: { $set: { x: 1, y: [1, { z: 2 }], w: null } } },
    ];
    const prints = new Set([update, ...variants].map(commandFingerprint));
    expect(prints.size).toBe(variants.length + 1);
  });

  it('is short and URL-safe', () => {
    expect(commandFingerprint({ kind: 'clear' })).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });
});

describe('sync entries carry the fingerprint to the slaves (a promoted master still refuses a reused requestId)', () => {
  const entry = { v: WIRE_VERSION, seq: 3, term: 1, requestId: 'r', ts: 1, ops: [], result: { seq: 3 } };

  it('keeps it when present, accepts its absence, refuses a non-string', () => {
    expect(decodeSync(encode({ ...entry, fingerprint: 'abc' }))?.fingerprint).toBe('abc');
    expect(decodeSync(encode(entry))).toBeDefined();
    expect(decodeSync(encode({ ...entry, fingerprint: 5 }))).toBeUndefined();
  });
});
