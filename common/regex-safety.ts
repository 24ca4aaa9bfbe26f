/**
 * A conservative check for regular expressions that a backtracking engine
 * (MongoDB's PCRE) could take exponential time on. FerretDB uses Go's linear-time
 * engine, but the service must be safe on MongoDB too, so such patterns are
 * refused before anything is queued.
 *
 * Refused: back-references (`\1`, `\k<name>`), and a group carrying an unbounded
 * quantifier (`*`, `+`, `{n,}`) that itself contains a quantifier — the classic
 * `(a+)+`, `(.*)*`, `(\w+\s?)*` shapes.
 */
export function regexRisk(pattern: string): string | undefined {
  // Each open group records whether a quantifier appeared inside it.
  const groups: boolean[] = [];
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '\\') {
      const next = pattern[i + 1] ?? '';
      if (!inClass && (/[1-9]/.test(next) || next === 'k')) return 'back-references are not allowed';
      i += 1;
      continue;
    }
    if (inClass) {
      if (ch === ']') inClass = false;
      continue;
    }
    if (ch === '[') {
      inClass = true;
      // A leading ] is a literal inside a class.
      if (pattern[i + 1] === ']') i += 1;
      else if (pattern[i + 1] === '^' && pattern[i + 2] === ']') i += 2;
      continue;
    }
    if (ch === '(') {
      groups.push(false);
      continue;
    }
    if (ch === ')') {
      const hadQuantifier = groups.pop() ?? false;
      const quantifier = unboundedQuantifierAt(pattern, i + 1);
      if (hadQuantifier && quantifier) return `a repeated group contains a repetition (nested quantifiers near position ${i + 1})`;
      // The group as a whole counts as quantified content for its enclosing group.
      if ((hadQuantifier || quantifier || isQuantifier(pattern[i + 1])) && groups.length > 0) groups[groups.length - 1] = true;
      continue;
    }
    if (isQuantifier(ch) && groups.length > 0) groups[groups.length - 1] = true;
  }
  return undefined;
}

function isQuantifier(ch: string | undefined): boolean {
  return ch === '*' || ch === '+' || ch === '{';
}

/** `*`, `+` or `{n,}` / `{n,m}` with m > 1 at position i. */
function unboundedQuantifierAt(pattern: string, i: number): boolean {
  const ch = pattern[i];
  if (ch === '*' || ch === '+') return true;
  if (ch !== '{') return false;
  const m = /^\{(\d+)(,(\d*))?\}/.exec(pattern.slice(i));
  if (!m) return false;
  if (m[2] === undefined) return false; // {n}: a fixed count
  return m[3] === '' || Number(m[3]) > 1;
}
