import { describe, it, expect } from 'vitest';
import { parseLegacyWhere } from '../../common/validation.js';
import { expectCode } from './expect-code.js';


describe('parseLegacyWhere: accepted forms', () => {
  it('parses a single-quoted string', () => {
    expect(parseLegacyWhere("username='ana'")).toEqual({ username: 'ana' });
  });

  it('parses a double-quoted string', () => {
    expect(parseLegacyWhere('username="ana"')).toEqual({ username: 'ana' });
  });

  it('turns doubled quotes into one', () => {
    expect(parseLegacyWhere("name='O''Brien'")).toEqual({ name: "O'Brien" });
    expect(parseLegacyWhere('name="say ""hi"""')).toEqual({ name: 'say "hi"' });
    expect(parseLegacyWhere("name=''")).toEqual({ name: '' });
  });

  it('keeps AND, = and other characters inside quotes', () => {
    expect(parseLegacyWhere("note='a AND b=1 OR 2'")).toEqual({ note: 'a AND b=1 OR 2' });
  });

  it('parses numbers as numbers and quoted digits as strings', () => {
    expect(parseLegacyWhere("source=1 AND destination='2'")).toEqual({ source: 1, destination: '2' });
    expect(parseLegacyWhere('x=-2.5')).toEqual({ x: -2.5 });
    expect(parseLegacyWhere('x=1e3')).toEqual({ x: 1000 });
    expect(parseLegacyWhere('x=0')).toEqual({ x: 0 });
  });

  it('is case-insensitive for AND and tolerant of whitespace', () => {
    expect(parseLegacyWhere("  a = 1   and\tb='x'  AnD c =2 ")).toEqual({ a: 1, b: 'x', c: 2 });
  });

  it('accepts _id, underscores and dotted columns', () => {
    expect(parseLegacyWhere("_id='abc' AND created_by='ana' AND address.city='Lx'")).toEqual({
      _id: 'abc',
      created_by: 'ana',
      'address.city': 'Lx',
    });
  });

  it('puts every condition into $and when a column repeats', () => {
    expect(parseLegacyWhere("a=1 AND b='x' AND a=2")).toEqual({ $and: [{ a: 1 }, { b: 'x' }, { a: 2 }] });
  });

  it('uses the given path in messages', () => {
    const err = expectCode(() => parseLegacyWhere('a>1', 'delete'), 'DBAAS_QUERY_INVALID');
    expect(err.message).toMatch(/^delete: /);
  });
});

describe('parseLegacyWhere: rejections', () => {
  it.each([
    ['empty string', ''],
    ['only whitespace', '   '],
    ['OR', "a=1 OR b=2"],
    ['other comparison operators', 'a>1'],
    ['not equal', 'a!=1'],
    ['double equals', 'a==1'],
    ['LIKE', "a LIKE 'x%'"],
    ['missing value', 'a='],
    ['missing column', "='x'"],
    ['bare word value', 'a=ana'],
    ['unterminated single quote', "a='ana"],
    ['unterminated double quote', 'a="ana'],
    ['trailing AND', 'a=1 AND'],
    ['leading AND', 'AND a=1'],
    ['AND glued to a literal', "a='x'AND b=1"],
    ['statement separator', "a='x'; DROP TABLE users"],
    ['parentheses', "(a='x')"],
    ['leading-zero numbers', 'a=01'],
    ['malformed number', 'a=1.2.3'],
    ['number overflow', 'a=1e999'],
    ['__proto__ column', "__proto__='x'"],
    ['column with a space', "user name='x'"],
    ['empty path segment', "a..b='x'"],
  ])('rejects %s', (_name, input) => {
    expectCode(() => parseLegacyWhere(input), 'DBAAS_QUERY_INVALID');
  });

  it('rejects strings longer than 4096 characters', () => {
    expectCode(() => parseLegacyWhere(`a='${'x'.repeat(4100)}'`), 'DBAAS_REQ_LIMIT_EXCEEDED');
  });

  it('accepts a string of exactly 4096 characters', () => {
    const value = 'x'.repeat(4096 - "a=''".length);
    expect(parseLegacyWhere(`a='${value}'`)).toEqual({ a: value });
  });

  it('says what was expected and where', () => {
    const err = expectCode(() => parseLegacyWhere("a=1 OR b=2"), 'DBAAS_QUERY_INVALID');
    expect(err.message).toContain('where: expected AND');
  });
});
