/**
 * A conservative check for regular expressions that a backtracking engine
 * (MongoDB's PCRE) could take exponential time on. FerretDB uses Go's linear-time
 * engine, but the service must be safe on MongoDB too, so such patterns are
 * refused before anything is queued.
 *
 * Refused:
 * - back-references (`\1`, `\k<name>`);
 * - a group carrying an unbounded quantifier (`*`, `+`, `{n,}`, `{n,m}` with
 *   m > 1) that itself contains a quantifier: the classic `(a+)+`, `(.*)*`,
 *   `(\w+\s?)*` shapes; also a group repeated a fixed 10 or more times around
 *   an unbounded quantifier (`(.*a){11}`: polynomial of that degree);
 * - a repeated group holding an alternation whose branches can match the same
 *   text (`(a|a)+`, `(\w|\d)*`, `(a|aa)*`, `(a|ab|ba)*`, `(a|)*`): each way of
 *   splitting the input between the branches is another path to backtrack.
 *   Branches that are plain strings are compared exactly (Sardinas–Patterson:
 *   `(ab|ac)*` and `(cat|dog)+` pass); other branches are compared by the
 *   characters they can start with, case-insensitively, which may refuse a safe
 *   pattern such as `(\d-|\dx)+`, never the other way round.
 */

/** Where in the pattern, and what kind of element. */
type Atom =
  | { kind: 'char'; token: string; literal: string }
  | { kind: 'class'; token: string }
  | { kind: 'assert' }
  | { kind: 'backref' }
  | { kind: 'group'; alt: Alt; lookaround: boolean };

interface Item {
  atom: Atom;
  min: number;
  max: number;
  /** Index just after the atom, where its quantifier (if any) starts. */
  quantAt: number;
}

type Seq = Item[];
type Alt = Seq[];

class Parser {
  i = 0;
  constructor(private readonly p: string) {}

  parseAlt(): Alt {
    const alt: Alt = [this.parseSeq()];
    while (this.p[this.i] === '|') {
      this.i += 1;
      alt.push(this.parseSeq());
    }
    return alt;
  }

  private parseSeq(): Seq {
    const seq: Seq = [];
    while (this.i < this.p.length && this.p[this.i] !== '|' && this.p[this.i] !== ')') {
      const atom = this.parseAtom();
      const quantAt = this.i;
      const [min, max] = this.parseQuantifier();
      seq.push({ atom, min, max, quantAt });
    }
    return seq;
  }

  private parseAtom(): Atom {
    const p = this.p;
    const ch = p[this.i] as string;
    if (ch === '(') {
      this.i += 1;
      let lookaround = false;
      if (p[this.i] === '?') {
        // (?:…) (?=…) (?!…) (?<=…) (?<!…) (?<name>…) (?P<name>…) (?i) …
        const rest = p.slice(this.i);
        const m = /^\?(?::|=|!|<=|<!|P?<[A-Za-z_][A-Za-z0-9_]*>|'[A-Za-z_][A-Za-z0-9_]*'|[a-zA-Z-]*:?)/.exec(rest);
        const head = m?.[0] ?? '?';
        lookaround = /^\?(=|!|<=|<!)/.test(head);
        this.i += head.length;
      }
      const alt = this.parseAlt();
      if (p[this.i] === ')') this.i += 1;
      return { kind: 'group', alt, lookaround };
    }
    if (ch === '[') {
      const start = this.i;
      this.i += 1;
      if (p[this.i] === '^') this.i += 1;
      // A leading ] is a literal inside a class.
      if (p[this.i] === ']') this.i += 1;
      while (this.i < p.length && p[this.i] !== ']') this.i += p[this.i] === '\\' ? 2 : 1;
      this.i += 1;
      return { kind: 'class', token: p.slice(start, this.i) };
    }
    if (ch === '\\') {
      const next = p[this.i + 1] ?? '';
      const start = this.i;
      this.i += 2;
      if (/[1-9]/.test(next) || next === 'k' || next === 'g') return { kind: 'backref' };
      if (/[bBAzZG]/.test(next)) return { kind: 'assert' };
      if (/[dDwWsShHvVR]/.test(next)) return { kind: 'class', token: p.slice(start, this.i) };
      if (next === 'p' || next === 'P') {
        // \p{…}: a class of its own; compared as "any character".
        if (p[this.i] === '{') this.i = Math.max(this.i, p.indexOf('}', this.i) + 1);
        return { kind: 'class', token: '.' };
      }
      if (next === 'x' || next === 'u' || next === 'c' || next === '0') return { kind: 'class', token: '.' };
      return { kind: 'char', token: p.slice(start, this.i), literal: next };
    }
    this.i += 1;
    if (ch === '^' || ch === '$') return { kind: 'assert' };
    if (ch === '.') return { kind: 'class', token: '.' };
    return { kind: 'char', token: /[\\^$.|?*+()[\]{}/-]/.test(ch) ? `\\${ch}` : ch, literal: ch };
  }

  private parseQuantifier(): [number, number] {
    const p = this.p;
    const ch = p[this.i];
    let q: [number, number] = [1, 1];
    if (ch === '*') q = [0, Infinity];
    else if (ch === '+') q = [1, Infinity];
    else if (ch === '?') q = [0, 1];
    else if (ch === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(p.slice(this.i));
      if (!m) return q;
      const min = Number(m[1]);
      const max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      this.i += m[0].length - 1;
      q = [min, max];
    } else return q;
    this.i += 1;
    // Lazy or possessive marks change the order of the tries, not how many there are.
    if (p[this.i] === '?' || p[this.i] === '+') this.i += 1;
    return q;
  }
}

/** A repetition that can go on a varying number of times: `*`, `+`, `{n,}`, `{n,m}` with m > 1 (not `{n}`, not `?`). */
function repeats(item: Item): boolean {
  return item.max > 1 && item.min !== item.max;
}

/** `*`, `+`, `{…}` (not `?`), at any depth: what the nested-quantifier rule counts inside a repeated group. */
function hasQuantifier(alt: Alt): boolean {
  return alt.some((seq) =>
    seq.some((it) => {
      const quantified = it.max > 1 || (it.min === 1 && it.max === 1 ? false : it.min !== 0 || it.max !== 1);
      return quantified || (it.atom.kind === 'group' && hasQuantifier(it.atom.alt));
    }),
  );
}

/** From this fixed count on, a group with an unbounded repetition inside is refused. */
const FIXED_COUNT_LIMIT = 10;

/** `*`, `+` or `{n,}` at any depth. */
function hasUnbounded(alt: Alt): boolean {
  return alt.some((seq) => seq.some((it) => it.max === Infinity || (it.atom.kind === 'group' && hasUnbounded(it.atom.alt))));
}

/** Characters a sample of which decides whether two first-character classes meet. */
const SAMPLE = (() => {
  const chars: string[] = [];
  for (let c = 0; c < 128; c++) chars.push(String.fromCharCode(c));
  return [...chars, '\u00a0', 'é', 'ß', 'λ', 'Ж', '中', '\u2028', '😀'];
})();

const matchCache = new Map<string, Set<number>>();

/** Which sample characters a first-character token matches (case-insensitively, the conservative way). */
function sampleMatches(token: string): Set<number> {
  let hit = matchCache.get(token);
  if (hit) return hit;
  hit = new Set();
  let re: RegExp | undefined;
  try {
    re = new RegExp(`^(?:${token})$`, 'si');
  } catch {
    re = undefined;
  }
  SAMPLE.forEach((c, n) => {
    if (!re || re.test(c)) hit.add(n);
  });
  if (matchCache.size < 1000) matchCache.set(token, hit);
  return hit;
}

interface First {
  /** Tokens of the characters the branch can start with. */
  tokens: string[];
  /** The branch can match the empty string. */
  nullable: boolean;
}

function firstOfSeq(seq: Seq): First {
  const tokens: string[] = [];
  for (const item of seq) {
    const a = item.atom;
    if (a.kind === 'assert' || (a.kind === 'group' && a.lookaround)) continue;
    let itemNullable = item.min === 0;
    if (a.kind === 'char' || a.kind === 'class') tokens.push(a.token);
    else if (a.kind === 'backref') tokens.push('.');
    else {
      const f = firstOfAlt(a.alt);
      tokens.push(...f.tokens);
      itemNullable = itemNullable || f.nullable;
    }
    if (!itemNullable) return { tokens, nullable: false };
  }
  return { tokens, nullable: true };
}

function firstOfAlt(alt: Alt): First {
  const firsts = alt.map(firstOfSeq);
  return { tokens: firsts.flatMap((f) => f.tokens), nullable: firsts.some((f) => f.nullable) };
}

/** A branch made only of plain characters, as its string (lower-cased: compared case-insensitively); else undefined. */
function literalOf(seq: Seq): string | undefined {
  let s = '';
  for (const item of seq) {
    if (item.atom.kind !== 'char' || item.min !== 1 || item.max !== 1) return undefined;
    s += item.atom.literal;
  }
  return s.toLowerCase();
}

/**
 * Sardinas–Patterson: true when no string splits into the words in two ways, so
 * `(w1|w2|…)*` has one path through any input.
 */
export function uniquelyDecodable(words: readonly string[]): boolean {
  const set = new Set(words);
  if (set.size !== words.length || set.has('')) return false;
  const dangling = (a: string, b: string): string | undefined => (b.length > a.length && b.startsWith(a) ? b.slice(a.length) : undefined);
  let current = new Set<string>();
  for (const u of set) for (const v of set) {
    const d = dangling(u, v);
    if (d !== undefined) current.add(d);
  }
  const seen = new Set<string>();
  while (current.size > 0) {
    const next = new Set<string>();
    for (const s of current) {
      if (set.has(s)) return false;
      seen.add(s);
      for (const w of set) {
        const d1 = dangling(s, w);
        const d2 = dangling(w, s);
        if (d1 !== undefined && !seen.has(d1)) next.add(d1);
        if (d2 !== undefined && !seen.has(d2)) next.add(d2);
      }
    }
    current = next;
  }
  return true;
}

/** True when two branches of the alternation could match the same text (see the module header). */
function overlapping(alt: Alt): boolean {
  if (alt.length < 2) return false;
  const literals = alt.map(literalOf);
  if (literals.every((l): l is string => l !== undefined)) return !uniquelyDecodable(literals);
  const firsts = alt.map(firstOfSeq);
  if (firsts.some((f) => f.nullable)) return true;
  for (let a = 0; a < firsts.length; a++) {
    for (let b = a + 1; b < firsts.length; b++) {
      const left = new Set((firsts[a] as First).tokens.flatMap((t) => [...sampleMatches(t)]));
      if ((firsts[b] as First).tokens.some((t) => [...sampleMatches(t)].some((n) => left.has(n)))) return true;
    }
  }
  return false;
}

/** An alternation with overlapping branches anywhere inside `alt` (nested groups included). */
function hasOverlappingAlternation(alt: Alt): boolean {
  if (overlapping(alt)) return true;
  return alt.some((seq) => seq.some((it) => it.atom.kind === 'group' && hasOverlappingAlternation(it.atom.alt)));
}

/** Why `pattern` could take exponential time on a backtracking engine, or undefined when it is safe. */
export function regexRisk(pattern: string): string | undefined {
  const parser = new Parser(pattern);
  let alt: Alt = parser.parseAlt();
  // An unbalanced `)` ends the top level early; look at the rest too (the pattern compiled, so it is rare).
  while (parser.i < pattern.length) {
    parser.i += 1;
    alt = [...alt, ...parser.parseAlt()];
  }
  return riskIn(alt);
}

function riskIn(alt: Alt): string | undefined {
  for (const seq of alt) {
    for (const item of seq) {
      const a = item.atom;
      if (a.kind === 'backref') return 'back-references are not allowed';
      if (a.kind !== 'group') continue;
      if (repeats(item) && hasQuantifier(a.alt)) return `a repeated group contains a repetition (nested quantifiers near position ${item.quantAt})`;
      // OWASP's `(.*a){11}`: a fixed count is no escape once it is large, the work grows as the input's length to that power.
      if (item.min === item.max && item.max >= FIXED_COUNT_LIMIT && hasUnbounded(a.alt)) {
        return `a group repeated ${item.max} times contains an unbounded repetition (near position ${item.quantAt})`;
      }
      if (repeats(item) && hasOverlappingAlternation(a.alt)) {
        return `a repeated group has alternatives that can match the same text (overlapping alternation near position ${item.quantAt})`;
      }
      const inner = riskIn(a.alt);
      if (inner !== undefined) return inner;
    }
  }
  return undefined;
}
