import { describe, expect, it } from 'vitest';
import { isUtf8 } from 'node:buffer';
import { describeJsonErrorAt, invalidUtf8Offset, jsonErrorOffset } from '../../common/json-position.js';
import { rng } from '../prng.js';

describe('jsonErrorOffset', () => {
  it.each([
    ['not json', 0],
    ['{"a":x}', 5],
    ['{', 1],
    ['{"table": "users"} x', 19],
    ["{table: 'users'}", 1],
    ['[1,]', 3],
    ['{"a":1,}', 7],
    ['"abc', 4],
    ['"a\\qb"', 2],
    ['01', 1],
    ['-', 1],
    ['{"a" 1}', 5],
    ['[1 2]', 3],
  ])('%j fails at offset %i', (text, offset) => {
    expect(() => JSON.parse(text)).toThrow();
    expect(jsonErrorOffset(text)).toBe(offset);
  });

  it.each(['{}', '[]', ' {"a": [1, -2.5e3, true, false, null, "x\\u00e9\\n"]} ', '"s"', '0', '{"a":{"b":[{}]}}'])('%j is valid', (text) => {
    expect(jsonErrorOffset(text)).toBeUndefined();
  });

  it('agrees with JSON.parse on 20,000 generated near-JSON strings', () => {
    const random = rng(17);
    const parts = ['{', '}', '[', ']', ':', ',', '"k"', '"v', '1', '-0.5', 'e3', 'true', 'nul', 'null', ' ', '\n', '\\', 'x', '"\\u12"', '"\\n"'];
    for (let k = 0; k < 20_000; k++) {
      const len = 1 + Math.floor(random() * 8);
      let text = '';
      for (let j = 0; j < len; j++) text += parts[Math.floor(random() * parts.length)];
      let valid = true;
      try {
        JSON.parse(text);
      } catch {
        valid = false;
      }
      expect(jsonErrorOffset(text) === undefined, text).toBe(valid);
    }
  });

  it('does not overflow the stack on deep nesting', () => {
    expect(jsonErrorOffset('['.repeat(1_000_000))).toBe(1_000_000);
  });

  it('says line, column and what it found', () => {
    expect(describeJsonErrorAt('{\n  "a": x\n}')).toBe(': unexpected "x" at line 2, column 8 (offset 9)');
    expect(describeJsonErrorAt('{"a": 1')).toBe(': the body ends too early at line 1, column 8 (offset 7)');
    expect(describeJsonErrorAt('{}')).toBe('');
  });
});

describe('invalidUtf8Offset', () => {
  it.each([
    ['a stray continuation byte', [0x7b, 0x80, 0x7d], 1],
    ['0xff', [0x61, 0x62, 0xff], 2],
    ['an overlong "/"', [0x22, 0xc0, 0xaf, 0x22], 1],
    ['a UTF-16 surrogate in UTF-8', [0x61, 0xed, 0xa0, 0x80], 1],
    ['a sequence cut short at the end', [0x61, 0xe2, 0x82], 1],
    ['above U+10FFFF', [0xf4, 0x90, 0x80, 0x80], 0],
  ])('finds %s', (_what, bytes, offset) => {
    const body = Uint8Array.from(bytes);
    expect(isUtf8(body)).toBe(false);
    expect(invalidUtf8Offset(body)).toBe(offset);
  });
  it('finds nothing in valid UTF-8 of every length', () => {
    expect(invalidUtf8Offset(Buffer.from('{"a":"é€😀"}'))).toBeUndefined();
  });
});
