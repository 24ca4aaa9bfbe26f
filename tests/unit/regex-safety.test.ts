import { describe, expect, it } from 'vitest';
import { DbaasError } from '../../common/errors.js';
import { regexRisk } from '../../common/regex-safety.js';
import { validateFilter } from '../../common/validation.js';

describe('regexRisk', () => {
  it.each(['^ana$', 'a+b*c', '(foo|bar)+', '[a-z]+@[a-z]+\\.com', '(ab){3}', '^(\\d{4})-(\\d{2})$', '[(+]*', 'a{2,}', '(?:abc)+', '\\(a+\\)+'])(
    'accepts %s',
    (p) => expect(regexRisk(p)).toBeUndefined(),
  );

  it.each(['(a+)+', '(a*)*', '(.*)*x', '(\\w+\\s?)*$', '((ab)+)+', '(a{1,5})+', '(x+x+)+y', '(a|b+)*', '(a)\\1', '(?<n>a)\\k<n>', '(([a-z])+.)+[A-Z]'])(
    'refuses %s',
    (p) => expect(regexRisk(p)).toBeDefined(),
  );

  it('makes the filter validator answer DBAAS_QUERY_REGEX_UNSAFE', () => {
    let err: unknown;
    try {
      validateFilter({ name: { $regex: '(a+)+$' } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DbaasError);
    expect((err as DbaasError).code).toBe('DBAAS_QUERY_REGEX_UNSAFE');
  });
});
