/**
 * The order a snapshot copies documents in: tables by name, then documents by
 * `_id`, both compared as UTF-8 bytes. That is the order MongoDB and FerretDB
 * sort and compare strings in (binary, no collation), so a page read with
 * `{_id: {$gt: k}}` sorted by `_id` covers exactly the keys this order puts after
 * `k`. Every `_id` is a string here (the master makes one for a document without).
 */

export interface SnapshotKey {
  table: string;
  id: string;
}

function bytes(a: string, b: string): number {
  if (a === b) return 0;
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Negative, zero or positive as `a` sorts before, with or after `b`. */
export function compareKeys(a: SnapshotKey, b: SnapshotKey): number {
  return bytes(a.table, b.table) || bytes(a.id, b.id);
}
