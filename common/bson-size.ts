/**
 * The size of a JSON document as BSON, the form the MongoDB driver sends it in
 * and FerretDB checks it in, without serialising it.
 *
 * BSON can be five times larger than the JSON it comes from (an array element
 * `0,` is 2 bytes of JSON and 10 of BSON: type, decimal index, NUL, int32), so
 * a document well under {@link MAX_ENTRY_BYTES} of JSON can pass the 16 MiB a
 * stored document may hold: the driver then refuses every write of it, and an
 * entry holding it stopped every replica for good (docs/DECISIONS.md).
 */
import { MAX_DOCUMENT_BYTES } from './limits.js';
import { describeType, fail } from './json-shape.js';

const INT32_MIN = -2_147_483_648;
const INT32_MAX = 2_147_483_647;

/** BSON bytes of a plain object or array of JSON values, as `BSON.calculateObjectSize` counts them. */
export function bsonSize(value: object): number {
  let total = 4 + 1;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) total += elementSize(digits(i), value[i]);
  } else {
    for (const [key, v] of Object.entries(value)) total += elementSize(Buffer.byteLength(key), v);
  }
  return total;
}

/** One element: type byte, key and its NUL, value. */
function elementSize(keyBytes: number, value: unknown): number {
  const head = 1 + keyBytes + 1;
  switch (typeof value) {
    case 'string':
      return head + 4 + Buffer.byteLength(value) + 1;
    case 'number':
      // int32 when the driver can (an integer in range), else a double.
      return head + (Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX ? 4 : 8);
    case 'boolean':
      return head + 1;
    case 'object':
      return head + (value === null ? 0 : bsonSize(value));
    default:
      return fail('DBAAS_DOC_INVALID', 'document', `${describeType(value)} is not a JSON value`);
  }
}

function digits(i: number): number {
  return i < 10 ? 1 : String(i).length;
}

/** BSON bytes of the `_id` an insert without one gets (a 24-character ObjectId string). */
export const GENERATED_ID_BYTES = elementSize(3, 'x'.repeat(24));

/**
 * Refuses a document that would pass {@link MAX_DOCUMENT_BYTES} as BSON.
 * @param extra bytes the document will gain before it is stored (a generated `_id`)
 * @throws DbaasError `DBAAS_REQ_LIMIT_EXCEEDED`
 */
export function checkBsonSize(doc: object, path: string, extra = 0): void {
  const bytes = bsonSize(doc) + extra;
  if (bytes > MAX_DOCUMENT_BYTES) {
    fail('DBAAS_REQ_LIMIT_EXCEEDED', path, `as BSON the document would be ${bytes} bytes, over the ${MAX_DOCUMENT_BYTES} one stored document may hold (16 MiB less 16 KiB); nothing was changed`);
  }
}
