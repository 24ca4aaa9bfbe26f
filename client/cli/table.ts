/** Plain-text tables for the `dbaas` CLI: a header, aligned columns, no colours. */

export type Cell = string | number | boolean | null | undefined;

/** One cell as text: objects and arrays as compact JSON, missing as `-`. */
export function cellText(value: unknown): string {
  if (value === undefined || value === null) return '-';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/**
 * Renders rows under a header. Columns named in `right` are right-aligned
 * (numbers); no line ends in spaces.
 */
export function formatTable(header: string[], rows: Cell[][], right: ReadonlySet<string> = new Set()): string {
  const text = rows.map((row) => header.map((_, i) => cellText(row[i])));
  const widths = header.map((h, i) => Math.max(h.length, ...text.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, i) => {
        const width = widths[i] ?? 0;
        return right.has(header[i] ?? '') ? cell.padStart(width) : cell.padEnd(width);
      })
      .join('  ')
      .trimEnd();
  return [line(header), ...text.map(line)].join('\n');
}

/** Documents as a table: one column per field seen, `_id` first. */
export function formatDocuments(docs: Array<Record<string, unknown>>): string {
  const fields: string[] = [];
  for (const doc of docs) for (const key of Object.keys(doc)) if (!fields.includes(key)) fields.push(key);
  fields.sort((a, b) => (a === '_id' ? -1 : b === '_id' ? 1 : 0));
  if (fields.length === 0) return '(no documents)';
  const rows = docs.map((doc) => fields.map((f) => (Object.hasOwn(doc, f) ? cellText(doc[f]) : '')));
  return formatTable(fields, rows);
}

/** `key: value` lines, keys aligned. */
export function formatPairs(pairs: Array<[string, unknown]>): string {
  const width = Math.max(0, ...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width + 1)} ${cellText(v)}`).join('\n');
}
