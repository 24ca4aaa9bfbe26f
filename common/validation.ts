/**
 * Turns HTTP bodies of `db/write`, `db/clear` and `db/read` into normalised
 * commands (see `commands.ts`). Nothing unchecked gets past these functions:
 * the orchestrator calls them before anything is queued, and every error says
 * which field is wrong and why.
 *
 * Each body is declared once ({@link WRITE_BODY}, {@link READ_BODY},
 * {@link CLEAR_BODY}, built with `body-schema.ts`): its fields with their
 * parsers and their JSON Schema, which is what the OpenAPI document at `/docs`
 * shows (`orchestrator/api-docs.ts` takes it from here). The write body's
 * forms (which fields each operation needs and refuses) are one table,
 * {@link WRITE_FORMS}, that the parser checks and the schema lists.
 *
 * The filter, document and update validators live in their own files and are
 * re-exported here, so callers need only this module.
 */
import { anyPresent, boolean, field, integer, objectBody, parsedByBody, type Body, type JsonSchema } from './body-schema.js';
import type { BackupTarget, Doc, Filter, ReadCommand, WriteCommand, WriteRequest } from './commands.js';
import { checkDatabase, DATABASE_NAME, DEFAULT_DATABASE, QUALIFIED_TABLE, qualifiedTable, splitTable, TABLE_NAME } from './databases.js';
import { checkKey, validateDocument } from './document-validation.js';
import type { ErrorCode } from './errors.js';
import { PathSet, splitFieldPath } from './field-path.js';
import { validateFilter } from './filter-validation.js';
import { describeType, fail, isPlainObject, putOwn, shownValue, type JsonObject } from './json-shape.js';
import { parseLegacyWhere } from './legacy-where.js';
import {
  MAX_COLUMNS,
  MAX_DOCS_PER_INSERT,
  MAX_LEGACY_WHERE_LENGTH,
  MAX_READ_LIMIT,
  MAX_REQUEST_ID_LENGTH,
  MAX_SKIP,
  MAX_SORT_KEYS,
} from './limits.js';
import { validateUpdate } from './update-validation.js';
import { checkIndexName, isIndexSpec } from './index-spec.js';

export { validateDocument } from './document-validation.js';
export { validateFilter } from './filter-validation.js';
export { parseLegacyWhere } from './legacy-where.js';
export { validateUpdate } from './update-validation.js';

const REQUEST_ID = /^[A-Za-z0-9_.:-]+$/;
const OPERATIONS = ['insert', 'update', 'upsert', 'delete'] as const;
type Operation = (typeof OPERATIONS)[number];

// ------------------------------------------------------------ shared fields --

export const TABLE = field(
  { type: 'string', pattern: TABLE_NAME.source, description: 'Table (collection) name; names starting with _dbaas or system are reserved.' },
  checkTable,
);

export const DATABASE = field(
  {
    type: 'string',
    pattern: DATABASE_NAME.source,
    default: DEFAULT_DATABASE,
    description: `The database the table is in (each service its own; GET /api/v1/db/databases lists them). Absent: \`${DEFAULT_DATABASE}\`.`,
  },
  (value, name) => checkDatabase(value, name),
);

export const REQUEST_ID_FIELD = field(
  {
    type: 'string',
    pattern: REQUEST_ID.source,
    maxLength: MAX_REQUEST_ID_LENGTH,
    description: 'Idempotency key: a retry with the same requestId never applies twice and answers the first result. The orchestrator makes one up when absent.',
  },
  (value, name) => checkRequestId(value, name),
);

const FILTER_SCHEMA: JsonSchema = {
  type: 'object',
  additionalProperties: true,
  description:
    'A MongoDB filter restricted to field paths and $eq $ne $gt $gte $lt $lte $in $nin $exists $and $or $not $regex. $where, $function, $expr and other operators are refused (DBAAS_QUERY_OPERATOR_NOT_ALLOWED).',
};
const DOCUMENT_SCHEMA: JsonSchema = { type: 'object', additionalProperties: true, description: 'A JSON document; keys must not start with $ or be __proto__. `_id`, when given, is a string.' };

// ------------------------------------------------------------------- write --

/** What a modern write's operation needs (`need`) or refuses (`refuse`), checked in this order. */
interface PresenceRule {
  field: 'data' | 'where';
  present: boolean;
  code: ErrorCode;
  why: string;
}
const need = (f: PresenceRule['field'], code: ErrorCode, why: string): PresenceRule => ({ field: f, present: true, code, why });
const refuse = (f: PresenceRule['field'], why: string): PresenceRule => ({ field: f, present: false, code: 'DBAAS_REQ_INVALID', why });

/** The modern forms of a write: the parser checks these rules, and the schema's `oneOf` lists them. */
export const WRITE_FORMS: Readonly<Record<Operation, readonly PresenceRule[]>> = {
  insert: [refuse('where', 'is not allowed with insert'), need('data', 'DBAAS_REQ_INVALID', 'is required for insert')],
  update: [need('where', 'DBAAS_WRITE_MISSING_WHERE', 'is required for update; use {} for every document'), need('data', 'DBAAS_UPDATE_INVALID', 'is required for update')],
  upsert: [need('where', 'DBAAS_WRITE_MISSING_WHERE', 'is required for upsert; use {} for every document'), need('data', 'DBAAS_UPDATE_INVALID', 'is required for upsert')],
  delete: [need('where', 'DBAAS_WRITE_MISSING_WHERE', 'is required for delete; use {} to delete every document'), refuse('data', 'is not allowed with delete')],
};
const MODERN_FIELDS = ['operation', 'data', 'where'];
const LEGACY_FIELDS = ['insert', 'column', 'delete'];

/** The forms the write parser accepts, as the schema's `oneOf` (so a body the schema allows is not refused for its shape). */
function writeForms(): JsonSchema[] {
  const modern = OPERATIONS.map((op) => {
    const rules = WRITE_FORMS[op];
    return {
      title: op,
      required: ['operation', ...rules.filter((r) => r.present).map((r) => r.field)],
      properties: { operation: { enum: [op] } },
      not: anyPresent([...rules.filter((r) => !r.present).map((r) => r.field), ...LEGACY_FIELDS]),
    };
  });
  // The legacy forms, as legacyCommand() parses them.
  const legacy = [
    { title: 'legacy insert', required: ['insert', 'column'], properties: { insert: { minItems: 1 }, column: { minItems: 1 } }, not: anyPresent([...MODERN_FIELDS, 'delete']) },
    { title: 'legacy delete', required: ['delete'], not: anyPresent([...MODERN_FIELDS, 'insert', 'column']) },
  ];
  return [...modern, ...legacy];
}

/** `POST /api/v1/db/write`. Field order: the unknown-field message lists them so. */
export const WRITE_BODY = objectBody(
  {
    table: TABLE,
    database: DATABASE,
    requestId: REQUEST_ID_FIELD,
    operation: field({ type: 'string', enum: [...OPERATIONS] }, checkOperation),
    data: parsedByBody({
      description: `insert: one document or an array of 1–${MAX_DOCS_PER_INSERT}; update/upsert: update operators ($set $unset $inc $push $addToSet $pull) or a plain object meaning $set.`,
      oneOf: [DOCUMENT_SCHEMA, { type: 'array', items: DOCUMENT_SCHEMA, minItems: 1, maxItems: MAX_DOCS_PER_INSERT }],
    }),
    where: parsedByBody({ ...FILTER_SCHEMA, description: `${String(FILTER_SCHEMA['description'])} Required for update, upsert and delete ({} means every document).` }),
    insert: parsedByBody({ type: 'array', items: {}, description: 'Legacy: the values of one row, in the order of `column`' }),
    column: parsedByBody({ type: 'array', items: { type: 'string' }, description: 'Legacy: the column names for `insert`' }),
    delete: parsedByBody({ type: 'string', minLength: 1, maxLength: MAX_LEGACY_WHERE_LENGTH, description: "Legacy: delete the rows matching `col='value' AND …`" }),
  },
  {
    required: ['table'],
    schema: {
      description:
        'Modern form: `operation` with `data` and/or `where`. Legacy form of the course: `insert` + `column` (one row), or `delete` with a `col=literal AND …` string. The two forms cannot be mixed.',
      oneOf: writeForms(),
      example: { table: 'rides', operation: 'insert', data: { created_by: 'ana', source: 1, destination: 2, timestamp: '2026-11-21T10:00:00Z', users: [] } },
    },
  },
);

/**
 * Parses a `POST /api/v1/db/write` body, modern or legacy form.
 *
 * @throws DbaasError `DBAAS_REQ_INVALID` (not an object, bad requestId, legacy and modern keys mixed,
 *   misplaced `data`/`where`), `DBAAS_REQ_UNKNOWN_FIELD`, `DBAAS_REQ_BAD_TABLE`, `DBAAS_REQ_BAD_OPERATION`,
 *   `DBAAS_WRITE_MISSING_WHERE`, and whatever {@link validateDocument}, {@link validateFilter},
 *   {@link validateUpdate} and {@link parseLegacyWhere} throw
 */
export function parseWriteBody(body: unknown): WriteRequest {
  const fields = WRITE_BODY.fieldsOf(body);
  const table = qualifiedTable(optionalDatabase(fields), WRITE_BODY.fields.table.parse(fields['table'], 'table'));
  const requestId = fields['requestId'] === undefined ? undefined : WRITE_BODY.fields.requestId.parse(fields['requestId'], 'requestId');
  const modern = MODERN_FIELDS.filter((key) => Object.hasOwn(fields, key));
  const legacy = LEGACY_FIELDS.filter((key) => Object.hasOwn(fields, key));
  if (modern.length > 0 && legacy.length > 0) {
    fail('DBAAS_REQ_INVALID', 'body', `cannot mix legacy ${legacy.join(', ')} with ${modern.join(', ')}`);
  }
  const command = legacy.length > 0 ? legacyCommand(table, fields) : modernCommand(table, fields);
  return requestId === undefined ? { command } : { command, requestId };
}

/** `POST /api/v1/db/clear`: nothing, `null`, `{}`, `{requestId}`, `{database}` or both. */
export const CLEAR_BODY = objectBody({
  requestId: REQUEST_ID_FIELD,
  database: field(
    { type: 'string', pattern: DATABASE_NAME.source, description: 'Empty only this database. Absent: every table of every database.' },
    (value, name) => checkDatabase(value, name),
  ),
});

/**
 * Parses a `POST /api/v1/db/clear` body: nothing, `null`, `{}`, `{requestId}`, `{database}` or both.
 * @throws DbaasError `DBAAS_REQ_INVALID`, `DBAAS_REQ_UNKNOWN_FIELD`, `DBAAS_REQ_BAD_DATABASE`
 */
export function parseClearBody(body: unknown): WriteRequest {
  // No body clears everything; a JSON `null` is not "no body" (the one body that emptied every table by mistake).
  if (body === undefined) return { command: { kind: 'clear' } };
  const fields = CLEAR_BODY.fieldsOf(body);
  const requestId = fields['requestId'] === undefined ? undefined : CLEAR_BODY.fields.requestId.parse(fields['requestId'], 'requestId');
  const database = fields['database'] === undefined ? undefined : CLEAR_BODY.fields.database.parse(fields['database'], 'database');
  const command: WriteCommand = database === undefined ? { kind: 'clear' } : { kind: 'clear', database };
  return requestId === undefined ? { command } : { command, requestId };
}

/** The `database` field of a data body, undefined when absent. */
function optionalDatabase(fields: JsonObject): string | undefined {
  return fields['database'] === undefined ? undefined : checkDatabase(fields['database']);
}

// -------------------------------------------------------------------- read --

/** `POST /api/v1/db/read` (and `POST /api/v1/workers/:id/read`). Field order: the order of the checks. */
export const READ_BODY = objectBody(
  {
    table: TABLE,
    database: DATABASE,
    where: field(
      {
        description: `A filter object, or the legacy string form \`col=literal AND …\` (at most ${MAX_LEGACY_WHERE_LENGTH} characters). Absent: every document.`,
        oneOf: [FILTER_SCHEMA, { type: 'string', minLength: 1, maxLength: MAX_LEGACY_WHERE_LENGTH }],
      },
      readWhere,
    ),
    columns: field(
      { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1, maxItems: MAX_COLUMNS, uniqueItems: true, description: 'Projection: only these fields' },
      checkColumns,
    ),
    sort: field({ type: 'object', additionalProperties: { type: 'integer', enum: [1, -1] }, maxProperties: MAX_SORT_KEYS }, checkSort),
    limit: integer(1, MAX_READ_LIMIT),
    skip: integer(0, MAX_SKIP),
    count: boolean({ description: 'Answer {count: n} instead of the documents' }),
    afterSeq: integer(0, Number.MAX_SAFE_INTEGER, {
      description: 'Read-your-writes: the answering slave first waits (bounded) until it has applied this seq; else 504 DBAAS_READ_SEQ_TIMEOUT.',
    }),
  },
  {
    required: ['table'],
    schema: { example: { table: 'rides', where: { source: 1, destination: 2, timestamp: { $gt: '2026-11-21' } }, sort: { timestamp: 1 }, limit: 100 } },
  },
);

/**
 * Parses a `POST /api/v1/db/read` body. A string `where` is the legacy form.
 *
 * @throws DbaasError `DBAAS_REQ_INVALID` (bad columns, sort, limit, skip, count, afterSeq),
 *   `DBAAS_REQ_UNKNOWN_FIELD`, `DBAAS_REQ_BAD_TABLE`, `DBAAS_REQ_LIMIT_EXCEEDED`, and whatever
 *   {@link validateFilter} and {@link parseLegacyWhere} throw
 */
export function parseReadBody(body: unknown): ReadCommand {
  const fields = READ_BODY.fieldsOf(body);
  const f = READ_BODY.fields;
  const read: ReadCommand = { table: qualifiedTable(optionalDatabase(fields), f.table.parse(fields['table'], 'table')), where: f.where.parse(fields['where'], 'where'), count: false };
  if (fields['columns'] !== undefined) read.columns = f.columns.parse(fields['columns'], 'columns');
  if (fields['sort'] !== undefined) read.sort = f.sort.parse(fields['sort'], 'sort');
  if (fields['limit'] !== undefined) read.limit = f.limit.parse(fields['limit'], 'limit');
  if (fields['skip'] !== undefined) read.skip = f.skip.parse(fields['skip'], 'skip');
  if (fields['count'] !== undefined) read.count = f.count.parse(fields['count'], 'count');
  if (fields['afterSeq'] !== undefined) read.afterSeq = f.afterSeq.parse(fields['afterSeq'], 'afterSeq');
  return read;
}

/** The three data bodies, for the documentation (each also validates). */
export const DATA_BODIES: Readonly<Record<'write' | 'read' | 'clear', Body<unknown>>> = {
  write: { schema: WRITE_BODY.schema, parse: parseWriteBody },
  read: { schema: READ_BODY.schema, parse: parseReadBody },
  clear: { schema: CLEAR_BODY.schema, parse: parseClearBody },
};

// ---------------------------------------------------------------- checkers --

function checkTable(table: unknown): string {
  if (typeof table !== 'string') fail('DBAAS_REQ_BAD_TABLE', 'table', `must be a string, got ${describeType(table)}`);
  if (!TABLE_NAME.test(table)) fail('DBAAS_REQ_BAD_TABLE', 'table', `${JSON.stringify(table)} does not match ^[A-Za-z][A-Za-z0-9_]{0,63}$`);
  // _dbaas* holds internal collections (oplog, request ids). The pattern already refuses it (and
  // MongoDB's reserved "system." prefix); this stays in case the pattern is ever relaxed.
  if (/^_dbaas/i.test(table)) fail('DBAAS_REQ_BAD_TABLE', 'table', `${table} is a reserved name`);
  return table;
}

function checkRequestId(requestId: unknown, name: string): string {
  if (typeof requestId !== 'string') fail('DBAAS_REQ_INVALID', name, `must be a string, got ${describeType(requestId)}`);
  if (requestId.length > MAX_REQUEST_ID_LENGTH) fail('DBAAS_REQ_INVALID', name, `longer than ${MAX_REQUEST_ID_LENGTH} characters`);
  if (!REQUEST_ID.test(requestId)) fail('DBAAS_REQ_INVALID', name, 'must be 1+ characters from A-Z a-z 0-9 _ . : -');
  return requestId;
}

function checkOperation(operation: unknown): Operation {
  if (!isOperation(operation)) {
    const got = operation === undefined ? 'missing' : shownValue(operation);
    fail('DBAAS_REQ_BAD_OPERATION', 'operation', `must be one of ${OPERATIONS.join(', ')} (got ${got})`);
  }
  return operation;
}

function modernCommand(table: string, fields: JsonObject): WriteCommand {
  const operation = WRITE_BODY.fields.operation.parse(fields['operation'], 'operation');
  for (const rule of WRITE_FORMS[operation]) {
    if ((fields[rule.field] !== undefined) !== rule.present) fail(rule.code, rule.field, rule.why);
  }
  const { data, where } = fields;
  switch (operation) {
    case 'insert':
      return { kind: 'insert', table, docs: insertDocs(data) };
    case 'update':
    case 'upsert':
      return { kind: operation, table, where: validateFilter(where), update: validateUpdate(data, 'data') };
    case 'delete':
      return { kind: 'delete', table, where: validateFilter(where) };
  }
}

function isOperation(value: unknown): value is Operation {
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

const COMMAND_FIELDS: Record<WriteCommand['kind'], ReadonlySet<string>> = {
  insert: new Set(['kind', 'table', 'docs']),
  update: new Set(['kind', 'table', 'where', 'update']),
  upsert: new Set(['kind', 'table', 'where', 'update']),
  delete: new Set(['kind', 'table', 'where']),
  clear: new Set(['kind', 'database']),
  verify: new Set(['kind', 'backup']),
  createIndex: new Set(['kind', 'table', 'index']),
  dropIndex: new Set(['kind', 'table', 'name']),
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
  if (kind === 'clear') return command['database'] === undefined ? { kind: 'clear' } : { kind: 'clear', database: checkDatabase(command['database'], 'command.database') };
  if (kind === 'verify') return command['backup'] === undefined ? { kind: 'verify' } : { kind: 'verify', backup: checkBackupTarget(command['backup']) };
  const table = checkQualifiedTable(command['table']);
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
    case 'createIndex': {
      // Index commands (issue 17): the spec as index-spec.ts checks a body's.
      const index = command['index'];
      if (!isIndexSpec(index)) fail('DBAAS_REQ_INVALID', 'command.index', 'is not an index spec');
      return { kind, table, index: { name: index.name, keys: index.keys, unique: index.unique } };
    }
    case 'dropIndex':
      return { kind, table, name: checkIndexName(command['name'], 'command.name') };
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
  // On the wire the table is qualified (common/databases.ts) and there is no `database` field.
  if (isPlainObject(command) && Object.hasOwn(command, 'database')) fail('DBAAS_REQ_UNKNOWN_FIELD', 'command.database', 'a command names its database in its qualified table');
  if (!isPlainObject(command) || typeof command['table'] !== 'string') return parseReadBody(command);
  const { database, table } = splitTable(checkQualifiedTable(command['table']));
  return parseReadBody({ ...command, table, database });
}

/** Where a backup goes (commands.ts BackupTarget), as it arrives on the write queue. */
export function checkBackupTarget(value: unknown): BackupTarget {
  const ok = (v: unknown, max: number): v is string => typeof v === 'string' && /^[A-Za-z0-9_.:-]+$/.test(v) && v.length <= max;
  const after = isPlainObject(value) ? value['oplogAfter'] : undefined;
  const known = isPlainObject(value) && Object.keys(value).every((k) => ['id', 'worker', 'queue', 'oplogAfter'].includes(k));
  if (!isPlainObject(value) || !known || !ok(value['id'], 64) || !ok(value['worker'], 128) || !ok(value['queue'], 256) || (after !== undefined && !(Number.isSafeInteger(after) && (after as number) >= 0))) {
    fail('DBAAS_REQ_INVALID', 'command.backup', 'must be {id, worker, queue, oplogAfter?}');
  }
  return { id: value['id'], worker: value['worker'], queue: value['queue'], ...(after === undefined ? {} : { oplogAfter: after as number }) };
}

/** A table name as it travels between processes: qualified with its database unless that is the default. */
function checkQualifiedTable(value: unknown): string {
  if (typeof value === 'string' && QUALIFIED_TABLE.test(value)) return qualifiedTable(splitTable(value).database, checkTable(splitTable(value).table));
  return checkTable(value);
}
