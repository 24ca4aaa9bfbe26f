/**
 * Size limits on everything a client can send.
 *
 * They exist so that one request cannot exhaust the orchestrator's or a worker's
 * stack, memory or CPU, and so that every stored document stays well inside
 * MongoDB's own limits (16 MiB documents, 100 levels of nesting). Crossing one
 * is reported as `DBAAS_REQ_LIMIT_EXCEEDED` unless a validator says otherwise.
 */

/**
 * Deepest nesting of objects and arrays in a document, filter or update.
 * The outermost object counts as level 1, so `{a: {b: [1]}}` has depth 3.
 */
export const MAX_DEPTH = 20;

/** Most elements in one array (a document value, `$in`, `$each`, `$and`, …). */
export const MAX_ARRAY_LENGTH = 10_000;

/** Most keys in one object (a document, a nested object, a filter, one update operator). */
export const MAX_OBJECT_KEYS = 1000;

/** Longest string value, in UTF-16 code units. */
export const MAX_STRING_LENGTH = 1_000_000;

/** Longest object key or field-path segment, in UTF-16 code units. Longer keys are `DBAAS_DOC_INVALID`. */
export const MAX_KEY_LENGTH = 256;

/** Most documents in one insert. */
export const MAX_DOCS_PER_INSERT = 1000;

/** Longest `$regex` pattern; short patterns keep catastrophic backtracking bounded. */
export const MAX_REGEX_LENGTH = 256;

/** Largest `limit` a read may ask for. */
export const MAX_READ_LIMIT = 100_000;

/** Largest `skip` a read may ask for. */
export const MAX_SKIP = 1_000_000_000;

/** Longest client-chosen `requestId`. */
export const MAX_REQUEST_ID_LENGTH = 128;

/** Longest `_id` string. */
export const MAX_ID_LENGTH = 256;

/** Most entries in a read's `columns` projection. */
export const MAX_COLUMNS = 1000;

/** Most keys in a read's `sort`. */
export const MAX_SORT_KEYS = 32;

/** Longest legacy SQL-like `where` string (`username='ana' AND …`). */
export const MAX_LEGACY_WHERE_LENGTH = 4096;

/** All limits in one frozen object, e.g. for `/docs` or a metrics label. */
export const LIMITS = Object.freeze({
  MAX_DEPTH,
  MAX_ARRAY_LENGTH,
  MAX_OBJECT_KEYS,
  MAX_STRING_LENGTH,
  MAX_KEY_LENGTH,
  MAX_DOCS_PER_INSERT,
  MAX_REGEX_LENGTH,
  MAX_READ_LIMIT,
  MAX_SKIP,
  MAX_REQUEST_ID_LENGTH,
  MAX_ID_LENGTH,
  MAX_COLUMNS,
  MAX_SORT_KEYS,
  MAX_LEGACY_WHERE_LENGTH,
});

/** The most one write may change, as JSON bytes of its resulting documents (its oplog entry must stay well under 16 MiB). */
export const MAX_ENTRY_BYTES = 8 * 1_048_576;

/**
 * The most a write's oplog entry may hold as the master stores it, as JSON bytes: its
 * resulting documents plus, for taking the write back (worker/void-batch.ts), the documents
 * it changes as they were before it. Under MongoDB's 16 MiB document, with room for the rest.
 */
export const MAX_STORED_ENTRY_BYTES = 15 * 1_048_576;

/**
 * The most one stored document may hold as BSON (common/bson-size.ts): under the 16 MiB the
 * MongoDB driver sends, less 16 KiB for the command around it (a replace's filter). BSON can
 * be five times its JSON, so the JSON bounds above do not keep a document under it.
 */
export const MAX_DOCUMENT_BYTES = 16 * 1_048_576 - 16 * 1024;

/**
 * A delete keeps the documents it removes (to take its batch back) up to this many JSON
 * bytes; a wider delete reads only their `_id`s, and goes alone in its batch.
 */
export const MAX_DELETE_PRE_IMAGE_BYTES = 1_048_576;
