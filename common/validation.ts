/**
 * Turns HTTP bodies of `db/write`, `db/clear` and `db/read` into normalised
 * commands (see `commands.ts`). Nothing unchecked gets past these functions:
 * the orchestrator calls them before anything is queued, and every error says
 * which field is wrong and why.
 *
 * The filter, document and update validators live in their own files and are
 * re-exported here, so callers need only this module.
 */
import type { Doc, Filter, ReadCommand, WriteCommand, WriteRequest } from './commands.js';
import { checkKey, validateDocument } from './document-validation.js';
import { PathSet, splitFieldPath } from './field-path.js';
import { validateFilter } from './filter-validation.js';
import { describeType, fail, isPlainObject, putOwn, type JsonObject } from './json-shape.js';
import { parseLegacyWhere } from './legacy-where.js';
import {
  MAX_COLUMNS,
  MAX_DOCS_PER_INSERT,
  MAX_READ_LIMIT,
  MAX_REQUEST_ID_LENGTH,
  MAX_SKIP,
  MAX_SORT_KEYS,
} from './limits.js';
import { validateUpdate } from './update-validation.js';

export { validateDocument } from './document-validation.js';
export { validateFilter } from './filter-validation.js';
export { parseLegacyWhere } from './legacy-where.js';
export { validateUpdate } from './update-validation.js';

const TABLE_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const REQUEST_ID = /^[A-Za-z0-9_.:-]+$/;
const OPERATIONS = ['insert', 'update', 'upsert', 'delete'] as const;
const MODERN_FIELDS = ['operation', 'data', 'where'];
const LEGACY_FIELDS = ['insert', 'column', 'delete'];
const WRITE_FIELDS = new Set(['table', 'requestId', ...MODERN_FIELDS, ...LEGACY_FIELDS]);
const READ_FIELDS = new Set(['table', 'where', 'columns', 'sort', 'limit', 'skip', 'count', 'afterSeq']);
const CLEAR_FIELDS = new Set(['requestId']);

/**
 * Parses a `POST /api/v1/db/write` body, modern or legacy form.
 *
 * @throws DbaasError `DBAAS_REQ_INVALID` (not an object, bad requestId, legacy and modern keys mixed,
 *   misplaced `data`/`where`), `DBAAS_REQ_UNKNOWN_FIELD`, `DBAAS_REQ_BAD_TABLE`, `DBAAS_REQ_BAD_OPERATION`,
 *   `DBAAS_WRITE_MISSING_WHERE`, and whatever {@link validateDocument}, {@link validateFilter},
 *   {@link validateUpdate} and {@link parseLegacyWhere} throw
 */
export function parseWriteBody(body: unknown): WriteRequest {
  const fields = bodyObject(body, WRITE_FIELDS);
  const table = checkTable(fields['table']);
  const requestId = optionalRequestId(fields['requestId']);
  const modern = MODERN_FIELDS.filter((key) => Object.hasOwn(fields, key));
  const legacy = LEGACY_FIELDS.filter((key) => Object.hasOwn(fields, key));
  if (modern.length > 0 && legacy.length > 0) {
    fail('DBAAS_REQ_INVALID', 'body', `cannot mix legacy ${legacy.join(', ')} with ${modern.join(', ')}`);
  }
  const command = legacy.length > 0 ? legacyCommand(table, fields) : modernCommand(table, fields);
  return requestId === undefined ? { command } : { command, requestId };
}

/**
 * Parses a `POST /api/v1/db/clear` body: nothing, `null`, `{}` or `{requestId}`.
 * @throws DbaasError `DBAAS_REQ_INVALID`, `DBAAS_REQ_UNKNOWN_FIELD`
 */
export function parseClearBody(body: unknown): WriteRequest {
  if (body === undefined || body === null) return { command: { kind: 'clear' } };
  const fields = bodyObject(body, CLEAR_FIELDS);
  const requestId = optionalRequestId(fields['requestId']);
  return requestId === undefined ? { command: { kind: 'clear' } } : { command: { kind: 'clear' }, requestId };
}

/**
 * Parses a `POST /api/v1/db/read` body. A string `where` is the legacy form.
 *
 * @throws DbaasError `DBAAS_REQ_INVALID` (bad columns, sort, limit, skip, count, afterSeq),
 *   `DBAAS_REQ_UNKNOWN_FIELD`, `DBAAS_REQ_BAD_TABLE`, `DBAAS_REQ_LIMIT_EXCEEDED`, and whatever
 *   {@link validateFilter} and {@link parseLegacyWhere} throw
 */
export function parseReadBody(body: unknown): ReadCommand {
  const fields = bodyObject(body, READ_FIELDS);
  const read: ReadCommand = { table: checkTable(fields['table']), where: readWhere(fields['where']), count: false };
  if (fields['columns'] !== undefined) read.columns = checkColumns(fields['columns']);
  if (fields['sort'] !== undefined) read.sort = checkSort(fields['sort']);
  if (fields['limit'] !== undefined) read.limit = checkInteger(fields['limit'], 'limit', 1, MAX_READ_LIMIT);
  if (fields['skip'] !== undefined) read.skip = checkInteger(fields['skip'], 'skip', 0, MAX_SKIP);
  if (fields['count'] !== undefined) read.count = checkBoolean(fields['count'], 'count');
  if (fields['afterSeq'] !== undefined) read.afterSeq = checkInteger(fields['afterSeq'], 'afterSeq', 0, Number.MAX_SAFE_INTEGER);
  return read;
}

/** The body as an object with only `allowed` keys; reads go through own properties only. */
function bodyObject(body: unknown, allowed: ReadonlySet<string>): JsonObject {
  if (!isPlainObject(body)) fail('DBAAS_REQ_INVALID', 'body', `must be a JSON object, got ${describeType(body)}`);
  const fields: JsonObject = {};
  for (const key of Object.keys(body)) {
    if (!allowed.has(key)) fail('DBAAS_REQ_UNKNOWN_FIELD', key, `unknown field; allowed: ${[...allowed].join(', ')}`);
    putOwn(fields, key, body[key]);
  }
  return fields;
}

function checkTable(table: unknown): string {
  if (typeof table !== 'string') fail('DBAAS_REQ_BAD_TABLE', 'table', `must be a string, got ${describeType(table)}`);
  if (!TABLE_NAME.test(table)) fail('DBAAS_REQ_BAD_TABLE', 'table', `${JSON.stringify(table)} does not match ^[A-Za-z][A-Za-z0-9_]{0,63}$`);
  // _dbaas* holds internal collections (oplog, request ids). The pattern already refuses it (and
  // MongoDB's reserved "system." prefix); this stays in case the pattern is ever relaxed.
  if (/^_dbaas/i.test(table)) fail('DBAAS_REQ_BAD_TABLE', 'table', `${table} is a reserved name`);
  return table;
}

function optionalRequestId(requestId: unknown): string | undefined {
  if (requestId === undefined) return undefined;
  if (typeof requestId !== 'string') fail('DBAAS_REQ_INVALID', 'requestId', `must be a string, got ${describeType(requestId)}`);
  if (requestId.length > MAX_REQUEST_ID_LENGTH) fail('DBAAS_REQ_INVALID', 'requestId', `longer than ${MAX_REQUEST_ID_LENGTH} characters`);
  if (!REQUEST_ID.test(requestId)) fail('DBAAS_REQ_INVALID', 'requestId', 'must be 1+ characters from A-Z a-z 0-9 _ . : -');
  return requestId;
}

function modernCommand(table: string, fields: JsonObject): WriteCommand {
  const operation = fields['operation'];
  if (!isOperation(operation)) {
    const got = operation === undefined ? 'missing' : JSON.stringify(operation);
    fail('DBAAS_REQ_BAD_OPERATION', 'operation', `must be one of ${OPERATIONS.join(', ')} (got ${got})`);
  }
  const { data, where } = fields;
  switch (operation) {
    case 'insert':
      if (where !== undefined) fail('DBAAS_REQ_INVALID', 'where', 'is not allowed with insert');
      return { kind: 'insert', table, docs: insertDocs(data) };
    case 'update':
    case 'upsert':
      if (where === undefined) fail('DBAAS_WRITE_MISSING_WHERE', 'where', `is required for ${operation}; use {} for every document`);
      if (data === undefined) fail('DBAAS_UPDATE_INVALID', 'data', `is required for ${operation}`);
      return { kind: operation, table, where: validateFilter(where), update: validateUpdate(data, 'data') };
    case 'delete':
      if (where === undefined) fail('DBAAS_WRITE_MISSING_WHERE', 'where', 'is required for delete; use {} to delete every document');
      if (data !== undefined) fail('DBAAS_REQ_INVALID', 'data', 'is not allowed with delete');
      return { kind: 'delete', table, where: validateFilter(where) };
  }
}

function isOperation(value: unknown): value is (typeof OPERATIONS)[number] {
  return OPERATIONS.some((op) => op === value);
}

function insertDocs(data: unknown): Doc[] {
  if (data === undefined) fail('DBAAS_REQ_INVALID', 'data', 'is required for insert');
  if (!Array.isArray(data)) return [validateDocument(data, 'data')];
  if (data.length === 0) fail('DBAAS_REQ_INVALID', 'data', 'must not be an empty array');
  if (data.length > MAX_DOCS_PER_INSERT) fail('DBAAS_REQ_LIMIT_EXCEEDED', 'data', `more than ${MAX_DOCS_PER_INSERT} documents`);
  return data.map((doc, i) => validateDocument(doc, `data[${i}]`));
}

/** `{"insert": [values], "column": [names]}` or `{"delete": "col='x' AND …"}`. */
function legacyCommand(table: string, fields: JsonObject): WriteCommand {
  const { insert, column } = fields;
  const remove = fields['delete'];
  if (remove !== undefined) {
    if (insert !== undefined || column !== undefined) fail('DBAAS_REQ_INVALID', 'delete', 'cannot be combined with insert or column');
    if (typeof remove !== 'string') fail('DBAAS_REQ_INVALID', 'delete', `must be a where string such as "username='ana'", got ${describeType(remove)}`);
    return { kind: 'delete', table, where: parseLegacyWhere(remove, 'delete') };
  }
  if (!Array.isArray(insert) || insert.length === 0) fail('DBAAS_REQ_INVALID', 'insert', 'must be a non-empty array of values');
  if (!Array.isArray(column) || column.length !== insert.length) {
    fail('DBAAS_REQ_INVALID', 'column', `must be an array of ${insert.length} column names, one per value`);
  }
  const doc: JsonObject = {};
  column.forEach((name, i) => {
    if (typeof name !== 'string') fail('DBAAS_REQ_INVALID', `column[${i}]`, `must be a string, got ${describeType(name)}`);
    checkKey(name, `column[${i}]`);
    if (Object.hasOwn(doc, name)) fail('DBAAS_REQ_INVALID', `column[${i}]`, `column ${name} appears twice`);
    putOwn(doc, name, insert[i]);
  });
  return { kind: 'insert', table, docs: [validateDocument(doc, 'insert')] };
}

function readWhere(where: unknown): Filter {
  if (where === undefined) return {};
  if (typeof where === 'string') return parseLegacyWhere(where);
  return validateFilter(where);
}

function checkColumns(columns: unknown): string[] {
  if (!Array.isArray(columns) || columns.length === 0) fail('DBAAS_REQ_INVALID', 'columns', 'must be a non-empty array of field paths');
  if (columns.length > MAX_COLUMNS) fail('DBAAS_REQ_LIMIT_EXCEEDED', 'columns', `more than ${MAX_COLUMNS} columns`);
  // MongoDB refuses a projection naming a path and its prefix ("path collision"); refuse it here with a 400.
  const seen = new PathSet();
  return columns.map((column, i) => {
    if (typeof column !== 'string') fail('DBAAS_REQ_INVALID', `columns[${i}]`, `must be a string, got ${describeType(column)}`);
    const overlap = seen.add(splitFieldPath(column, `columns[${i}]`, 'DBAAS_REQ_INVALID'));
    if (overlap !== undefined) fail('DBAAS_REQ_INVALID', `columns[${i}]`, `${column} repeats or overlaps ${overlap}`);
    return column;
  });
}

function checkSort(sort: unknown): { [path: string]: 1 | -1 } {
  if (!isPlainObject(sort)) fail('DBAAS_REQ_INVALID', 'sort', `must be an object of field paths to 1 or -1, got ${describeType(sort)}`);
  const keys = Object.keys(sort);
  if (keys.length > MAX_SORT_KEYS) fail('DBAAS_REQ_LIMIT_EXCEEDED', 'sort', `more than ${MAX_SORT_KEYS} keys`);
  const out: { [path: string]: 1 | -1 } = {};
  for (const key of keys) {
    splitFieldPath(key, `sort.${key}`, 'DBAAS_REQ_INVALID');
    const direction = sort[key];
    if (direction !== 1 && direction !== -1) fail('DBAAS_REQ_INVALID', `sort.${key}`, 'must be 1 (ascending) or -1 (descending)');
    putOwn(out, key, direction);
  }
  return out;
}

function checkInteger(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) fail('DBAAS_REQ_INVALID', field, `must be an integer, got ${describeType(value)} ${typeof value === 'number' ? value : ''}`.trimEnd());
  if (value < min) fail('DBAAS_REQ_INVALID', field, `must be at least ${min}`);
  if (value > max) fail('DBAAS_REQ_LIMIT_EXCEEDED', field, `must be at most ${max}`);
  return value;
}

function checkBoolean(value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') fail('DBAAS_REQ_INVALID', field, `must be true or false, got ${describeType(value)}`);
  return value;
}

const COMMAND_FIELDS: Record<WriteCommand['kind'], ReadonlySet<string>> = {
  insert: new Set(['kind', 'table', 'docs']),
  update: new Set(['kind', 'table', 'where', 'update']),
  upsert: new Set(['kind', 'table', 'where', 'update']),
  delete: new Set(['kind', 'table', 'where']),
  clear: new Set(['kind']),
  verify: new Set(['kind']),
};

/**
 * Checks a normalised write command as it arrives on the write queue. The
 * orchestrator only sends commands made by {@link parseWriteBody}, but a worker
 * must not trust the queue: anything else is a poison message.
 *
 * @throws DbaasError with the codes of the body parsers
 */
export function validateWriteCommand(command: unknown): WriteCommand {
  if (!isPlainObject(command)) fail('DBAAS_REQ_INVALID', 'command', `must be an object, got ${describeType(command)}`);
  const kind = command['kind'];
  if (typeof kind !== 'string' || !Object.hasOwn(COMMAND_FIELDS, kind)) {
    fail('DBAAS_REQ_BAD_OPERATION', 'command.kind', `unknown command ${JSON.stringify(kind)}`);
  }
  const allowed = COMMAND_FIELDS[kind as WriteCommand['kind']];
  const extra = Object.keys(command).filter((k) => !allowed.has(k));
  if (extra.length > 0) fail('DBAAS_REQ_UNKNOWN_FIELD', 'command', `unexpected field(s) ${extra.join(', ')}`);
  if (kind === 'clear') return { kind: 'clear' };
  if (kind === 'verify') return { kind: 'verify' };
  const table = checkTable(command['table']);
  switch (kind) {
    case 'insert': {
      const docs = command['docs'];
      if (!Array.isArray(docs)) fail('DBAAS_REQ_INVALID', 'command.docs', 'must be an array');
      return { kind: 'insert', table, docs: insertDocs(docs) };
    }
    case 'update':
    case 'upsert':
      return {
        kind,
        table,
        where: validateFilter(command['where'], 'command.where'),
        update: validateUpdate(command['update'], 'command.update'),
      };
    default:
      return { kind: 'delete', table, where: validateFilter(command['where'], 'command.where') };
  }
}

/**
 * Checks a read command as it arrives on the read or control queue.
 *
 * @throws DbaasError with the codes of {@link parseReadBody}
 */
export function validateReadCommand(command: unknown): ReadCommand {
  return parseReadBody(command);
}
