/**
 * Where a request body stops being JSON, for the 400 `DBAAS_REQ_INVALID_JSON`
 * message ("… at line 1, column 6 (offset 5)"). V8's own message gives a
 * position for some mistakes only ("Unexpected token 'x', "…" is not valid JSON"
 * has none, and echoes the body), so the body is scanned again here, only when
 * `JSON.parse` has already refused it. Iterative (an explicit stack), so a body
 * of a million `[` cannot overflow the call stack.
 */
import { isUtf8 } from 'node:buffer';

const NUMBER = /-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;

/** The offset of the first character that makes `text` invalid JSON (`text.length` when it ends too early), or undefined when it is valid. */
export function jsonErrorOffset(text: string): number | undefined {
  type Expect = 'value' | 'value-or-close' | 'key' | 'key-or-close' | 'colon' | 'comma-or-close' | 'end';
  const stack: Array<'{' | '['> = [];
  let expect = 'value' as Expect;
  let i = 0;
  const n = text.length;
  const skipSpace = (): void => {
    while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  /** After a complete value: what may follow depends on the container. */
  const valueDone = (): void => {
    expect = stack.length === 0 ? 'end' : 'comma-or-close';
  };
  const scanString = (): number | undefined => {
    i++; // opening quote
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return undefined;
      }
      if (c < 0x20) return i;
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === undefined) return n;
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) return i;
          i += 6;
        } else if ('"\\/bfnrt'.includes(e)) i += 2;
        else return i;
      } else i++;
    }
    return n;
  };
  const scanNumber = (): number | undefined => {
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) return text[i] === '-' ? i + 1 : i;
    i += m[0].length;
    return undefined;
  };
  for (;;) {
    skipSpace();
    if (i >= n) return expect === 'end' ? undefined : n;
    const c = text[i];
    switch (expect) {
      case 'end':
        return i;
      case 'colon':
        if (c !== ':') return i;
        i++;
        expect = 'value';
        continue;
      case 'comma-or-close': {
        const top = stack[stack.length - 1];
        if (c === ',') {
          i++;
          expect = top === '{' ? 'key' : 'value';
          continue;
        }
        if ((c === '}' && top === '{') || (c === ']' && top === '[')) {
          i++;
          stack.pop();
          valueDone();
          continue;
        }
        return i;
      }
      case 'key-or-close':
      case 'key':
        if (c === '}' && expect === 'key-or-close') {
          i++;
          stack.pop();
          valueDone();
          continue;
        }
        if (c !== '"') return i;
        {
          const bad = scanString();
          if (bad !== undefined) return bad;
        }
        expect = 'colon';
        continue;
      case 'value-or-close':
      case 'value': {
        if (c === ']' && expect === 'value-or-close') {
          i++;
          stack.pop();
          valueDone();
          continue;
        }
        if (c === '{' || c === '[') {
          stack.push(c);
          i++;
          expect = c === '{' ? 'key-or-close' : 'value-or-close';
          continue;
        }
        let bad: number | undefined;
        if (c === '"') bad = scanString();
        else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) bad = scanNumber();
        else {
          const word = ['true', 'false', 'null'].find((w) => text.startsWith(w, i));
          if (!word) return i;
          i += word.length;
        }
        if (bad !== undefined) return bad;
        valueDone();
        continue;
      }
    }
  }
}

/** " at line L, column C (offset O)" for the first invalid character of `text`, 1-based line and column; '' when none is found. */
export function describeJsonErrorAt(text: string): string {
  const offset = jsonErrorOffset(text);
  if (offset === undefined) return '';
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - (before.lastIndexOf('\n') + 1) + 1;
  const where = offset >= text.length ? 'the body ends too early' : `unexpected ${JSON.stringify(text.slice(offset, offset + 1))}`;
  return `: ${where} at line ${line}, column ${column} (offset ${offset})`;
}

/**
 * The byte offset of the first byte of `body` that is not well-formed UTF-8, or
 * undefined when all of it is (JSON must be UTF-8, RFC 8259 §8.1). Only called
 * once `isUtf8` has said no: a body decoded anyway would store U+FFFD in place
 * of the client's bytes, a silent change of its data.
 */
export function invalidUtf8Offset(body: Uint8Array): number | undefined {
  for (let i = 0; i < body.length; ) {
    const c = body[i] as number;
    const size = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (size === 0 || i + size > body.length || !isUtf8(body.subarray(i, i + size))) return i;
    i += size;
  }
  return undefined;
}
