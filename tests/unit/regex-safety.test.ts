import { describe, expect, it } from 'vitest';
import { DbaasError } from '../../common/errors.js';
import { regexRisk, uniquelyDecodable } from '../../common/regex-safety.js';
import { validateFilter } from '../../common/validation.js';

/**
 * Known ReDoS shapes (OWASP's "evil regex" list, the issue 13 findings, and
 * classic textbook cases), each with why it is exponential (or high-degree
 * polynomial) on a backtracking engine such as MongoDB's PCRE.
 */
const REFUSED: ReadonlyArray<readonly [pattern: string, why: RegExp]> = [
  // nested quantifiers
  ['(a+)+', /nested quantifiers/],
  ['(a*)*', /nested quantifiers/],
  ['(.*)*x', /nested quantifiers/],
  ['(\\w+\\s?)*$', /nested quantifiers/],
  ['((ab)+)+', /nested quantifiers/],
  ['(a{1,5})+', /nested quantifiers/],
  ['(x+x+)+y', /nested quantifiers/],
  ['(a|b+)*', /nested quantifiers/],
  ['([a-zA-Z]+)*', /nested quantifiers/], // OWASP
  ['^(([a-z])+.)+[A-Z]([a-z])+$', /nested quantifiers/], // OWASP: Java class name
  ['^[a-zA-Z]+(([\',.-][a-zA-Z ])?[a-zA-Z]*)*$', /nested quantifiers/], // OWASP: person name
  // overlapping alternation under repetition (issue 13: 2.8–3.9 s on 25 characters)
  ['(a|a)+$', /overlapping alternation/],
  ['^(\\w|\\d)*$', /overlapping alternation/],
  ['(a|aa)*b', /overlapping alternation/],
  ['(a|aa)+', /overlapping alternation/], // OWASP
  ['(a|a?)+', /overlapping alternation/], // OWASP
  ['(a|ab|ba)*$', /overlapping alternation/], // "aba" = a·ba = ab·a: no branch is a prefix problem alone
  ['(a|)*b', /overlapping alternation/],
  ['(.|\\s)*x', /overlapping alternation/],
  ['((a|aa))+$', /overlapping alternation/],
  ['(?:a|A)+$', /overlapping alternation/], // the same under $options: 'i'
  ['^(\\d|\\d\\d)+$', /overlapping alternation/],
  ['(x|[a-z])*1', /overlapping alternation/],
  ['(a|a){2,}$', /overlapping alternation/],
  ['^(\\w|[0-9_])+@', /overlapping alternation/],
  // a large fixed count around an unbounded repetition: polynomial of that degree
  ['(.*a){11}', /repeated 11 times/], // OWASP
  // back-references
  ['(a)\\1', /back-references/],
  ['(?<n>a)\\k<n>', /back-references/],
];

/** Safe shapes that look alike: refusing them would only annoy users. */
const ACCEPTED: readonly string[] = [
  '^ana$',
  'a+b*c',
  '(foo|bar)+',
  '(cat|dog)+s?',
  '(ab|ac)*', // branches share a first character but never split one input two ways
  '(a|b)+$',
  '(a|b|c)*d',
  '^([a-z]|[0-9])+$',
  '(\\d|[a-f])+',
  '^(https?|ftp)://',
  '[a-z]+@[a-z]+\\.com',
  '(ab){3}',
  '(a|aa){3}', // a fixed, small count
  '^(\\d{4})-(\\d{2})$',
  '[(+]*',
  '[a|a]+', // | inside a class is a character
  'a{2,}',
  '(?:abc)+',
  '\\(a+\\)+',
  '(?=a)\\w+', // a lookahead is zero-width
];

describe('regexRisk: a table of known ReDoS patterns', () => {
  it.each(REFUSED)('refuses %s', (pattern, why) => {
    expect(() => new RegExp(pattern)).not.toThrow();
    expect(regexRisk(pattern)).toMatch(why);
  });

  it.each(ACCEPTED)('accepts %s', (pattern) => {
    expect(() => new RegExp(pattern)).not.toThrow();
    expect(regexRisk(pattern)).toBeUndefined();
  });

  it('counts: every row of both tables was checked', () => {
    expect(REFUSED.length).toBeGreaterThanOrEqual(25);
    expect(ACCEPTED.length).toBeGreaterThanOrEqual(15);
    expect(REFUSED.filter(([p]) => regexRisk(p) !== undefined)).toHaveLength(REFUSED.length);
    expect(ACCEPTED.filter((p) => regexRisk(p) === undefined)).toHaveLength(ACCEPTED.length);
  });
});

describe('uniquelyDecodable (Sardinas–Patterson)', () => {
  it.each([
    [['a', 'b'], true],
    [['ab', 'ac'], true],
    [['cat', 'dog', 'cow'], true],
    [['0', '10', '110'], true],
    [['a', 'aa'], false],
    [['a', 'a'], false],
    [['a', 'ab', 'ba'], false],
    [['a', ''], false],
    [['abc', 'ab', 'cab'], false], // abcab = ab·cab = abc·ab
  ] as const)('%j → %s', (words, expected) => {
    expect(uniquelyDecodable(words)).toBe(expected);
  });
});

describe('the filter validator', () => {
  it.each(['(a+)+$', '(a|aa)*b'])('answers DBAAS_QUERY_REGEX_UNSAFE for %s', (pattern) => {
    let err: unknown;
    try {
      validateFilter({ name: { $regex: pattern } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DbaasError);
    expect((err as DbaasError).code).toBe('DBAAS_QUERY_REGEX_UNSAFE');
  });
});
