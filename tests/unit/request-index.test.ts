import { describe, expect, it } from 'vitest';
import { hash53, RequestIndex } from '../../worker/request-index.js';

describe('RequestIndex', () => {
  it('says "may contain" for everything until it is complete', () => {
    const idx = new RequestIndex(false);
    expect(idx.mayContain('anything')).toBe(true);
    idx.add('a', 1);
    idx.markComplete();
    expect(idx.mayContain('a')).toBe(true);
    expect(idx.mayContain('b')).toBe(false);
  });

  it('never misses a requestId it was given (no false negatives)', () => {
    const idx = new RequestIndex(true);
    const ids = Array.from({ length: 20_000 }, (_, i) => `req-${i}-${(i * 7919) % 1000}`);
    ids.forEach((id, i) => idx.add(id, i + 1));
    expect(ids.every((id) => idx.mayContain(id))).toBe(true);
    // And rarely claims one it was not given (53-bit hashes).
    const strangers = Array.from({ length: 20_000 }, (_, i) => `other-${i}`);
    expect(strangers.filter((id) => idx.mayContain(id)).length).toBeLessThan(3);
  });

  it('forgets requestIds trimmed from the oplog, keeping the newest seq of each', () => {
    const idx = new RequestIndex(true);
    idx.add('old', 1);
    idx.add('kept', 2);
    idx.add('old', 5);
    idx.dropUpTo(4);
    expect(idx.mayContain('old')).toBe(true);
    expect(idx.mayContain('kept')).toBe(false);
    expect(idx.size).toBe(1);
    idx.reset(true);
    expect(idx.mayContain('old')).toBe(false);
    idx.reset(false);
    expect(idx.mayContain('old')).toBe(true);
  });

  it('hashes stably to safe integers', () => {
    expect(hash53('abc')).toBe(hash53('abc'));
    expect(hash53('abc')).not.toBe(hash53('abd'));
    expect(Number.isSafeInteger(hash53('a'.repeat(200)))).toBe(true);
  });
});
