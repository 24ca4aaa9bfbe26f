/**
 * The SQL-like `where` strings of the course's first assignment:
 * `username='ana'`, `source=1 AND destination='2'`.
 *
 * Only `column=literal` joined by `AND` is understood. A literal is a
 * single-quoted string (`''` is a quote), a double-quoted string (`""` is a
 * quote) or a number. Nothing here is ever passed to a database as text; the
 * result is an ordinary equality filter.
 */
import type { Filter } from './commands.js';
import { checkText } from './document-validation.js';
import { splitFieldPath } from './field-path.js';
import { fail, putOwn } from './json-shape.js';
import { MAX_LEGACY_WHERE_LENGTH } from './limits.js';

const COLUMN = /[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*/y;
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const AND = /\s+AND\s+/iy;
const SPACE = /\s*/y;

interface Condition {
  column: string;
  value: string | number;
}

/**
 * Parses a legacy where string into an equality filter. When a column appears
 * more than once all conditions go into one `$and`, so none is lost.
 *
 * @param path where the string sits in the request, for messages
 * @throws DbaasError `DBAAS_QUERY_INVALID` for anything but `col=literal [AND col=literal]…`
 *   (OR, other operators, empty strings, unterminated quotes),
 *   `DBAAS_REQ_LIMIT_EXCEEDED` for strings longer than {@link MAX_LEGACY_WHERE_LENGTH}
 */
export function parseLegacyWhere(s: string, path = 'where'): Filter {
  if (s.length > MAX_LEGACY_WHERE_LENGTH) fail('DBAAS_REQ_LIMIT_EXCEEDED', path, `longer than ${MAX_LEGACY_WHERE_LENGTH} characters`);
  checkText(s, path, 'DBAAS_QUERY_INVALID');
  const conditions = new LegacyWhereParser(s, path).parse();
  const columns = new Set(conditions.map((c) => c.column));
  if (columns.size === conditions.length) return toFilter(conditions);
  return { $and: conditions.map((c) => toFilter([c])) };
}

function toFilter(conditions: readonly Condition[]): Filter {
  const filter: Filter = {};
  for (const { column, value } of conditions) putOwn(filter, column, value);
  return filter;
}

class LegacyWhereParser {
  private pos = 0;

  constructor(
    private readonly text: string,
    private readonly path: string,
  ) {}

  parse(): Condition[] {
    if (this.text.trim().length === 0) this.error('must not be empty');
    this.skipSpace();
    const conditions = [this.condition()];
    while (!this.atEnd()) {
      if (this.match(AND) === undefined) this.error(`expected AND at position ${this.pos}; only col=literal joined by AND is supported`);
      conditions.push(this.condition());
    }
    return conditions;
  }

  private condition(): Condition {
    const column = this.match(COLUMN);
    if (column === undefined) this.error(`expected a column name at position ${this.pos}`);
    splitFieldPath(column, `${this.path}.${column}`, 'DBAAS_QUERY_INVALID');
    this.skipSpace();
    if (this.text[this.pos] !== '=') this.error(`expected = after ${column} at position ${this.pos}; only = is supported`);
    this.pos++;
    this.skipSpace();
    return { column, value: this.literal() };
  }

  private literal(): string | number {
    const quote = this.text[this.pos];
    if (quote === "'" || quote === '"') return this.quoted(quote);
    const number = this.match(NUMBER);
    if (number === undefined) this.error(`expected a quoted string or a number at position ${this.pos}`);
    const value = Number(number);
    if (!Number.isFinite(value)) this.error(`number ${number} is out of range`);
    return value;
  }

  /** A quoted string; the quote character doubled stands for itself, as in SQL. */
  private quoted(quote: string): string {
    let out = '';
    let i = this.pos + 1;
    for (;;) {
      const end = this.text.indexOf(quote, i);
      if (end === -1) this.error(`unterminated ${quote} string starting at position ${this.pos}`);
      out += this.text.slice(i, end);
      if (this.text[end + 1] !== quote) {
        this.pos = end + 1;
        return out;
      }
      out += quote;
      i = end + 2;
    }
  }

  private match(pattern: RegExp): string | undefined {
    pattern.lastIndex = this.pos;
    const m = pattern.exec(this.text);
    if (m === null) return undefined;
    this.pos = pattern.lastIndex;
    return m[0];
  }

  /** True when only whitespace is left. */
  private atEnd(): boolean {
    return this.text.slice(this.pos).trim().length === 0;
  }

  private skipSpace(): void {
    this.match(SPACE);
  }

  private error(why: string): never {
    return fail('DBAAS_QUERY_INVALID', this.path, why);
  }
}
