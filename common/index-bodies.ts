/**
 * The bodies of the indexes API (issue 17), declared once (body-schema.ts): the
 * orchestrator parses with them and `/docs` shows their schemas.
 *
 * - `POST /api/v1/db/indexes` {@link CREATE_INDEX_BODY}: `{table, keys, unique?, name?, requestId?}`
 * - `DELETE /api/v1/db/indexes` {@link DROP_INDEX_BODY}: `{table, name, requestId?}` (body or query string)
 * - `GET /api/v1/db/indexes?table=…` {@link INDEXES_QUERY}
 *
 * Creating and dropping go through the write path as commands of their own, so
 * they get a seq, replicate, and are idempotent by requestId like any write.
 */
import { boolean, field, objectBody } from './body-schema.js';
import type { WriteRequest } from './commands.js';
import { checkIndexName, indexSpec, INDEX_NAME, MAX_INDEX_KEYS } from './index-spec.js';
import { checkDatabase, qualifiedTable } from './databases.js';
import type { JsonObject } from './json-shape.js';
import { DATABASE, REQUEST_ID_FIELD, TABLE } from './validation.js';

const KEYS_SCHEMA = {
  description: `The indexed fields in order: one field name (ascending), or an object of field paths to 1 (ascending) or -1 (descending), at most ${MAX_INDEX_KEYS}. \`_id\` alone is always indexed. A unique index takes top-level fields only.`,
  oneOf: [
    { type: 'string', minLength: 1 },
    { type: 'object', minProperties: 1, maxProperties: MAX_INDEX_KEYS, additionalProperties: { type: 'integer', enum: [1, -1] } },
  ],
} as const;

const NAME = field(
  { type: 'string', pattern: INDEX_NAME.source, not: { enum: ['_id_'] }, description: 'The index name; default: MongoDB\'s (`field_1_other_-1`).' },
  (value, name) => checkIndexName(value, name),
);

/** `POST /api/v1/db/indexes`. */
export const CREATE_INDEX_BODY = objectBody(
  {
    table: TABLE,
    database: DATABASE,
    keys: field(KEYS_SCHEMA, (value) => value),
    unique: boolean({
      description:
        'No two documents may hold the same key (a missing field counts as null, so only one document may lack it); its fields must hold strings, numbers, booleans or null. Creating it over data that holds a key twice is refused (409).',
    }),
    name: NAME,
    requestId: REQUEST_ID_FIELD,
  },
  { required: ['table', 'keys'], schema: { example: { table: 'users', keys: { username: 1 }, unique: true } } },
);

/**
 * Parses `POST /api/v1/db/indexes`.
 * @throws DbaasError DBAAS_REQ_INVALID, DBAAS_REQ_UNKNOWN_FIELD, DBAAS_REQ_BAD_TABLE, DBAAS_REQ_LIMIT_EXCEEDED
 */
export function parseCreateIndexBody(body: unknown): WriteRequest {
  const fields = CREATE_INDEX_BODY.fieldsOf(body);
  const f = CREATE_INDEX_BODY.fields;
  const table = tableOf(fields, f.table.parse(fields['table'], 'table'));
  const index = indexSpec(fields['keys'], fields['unique'], fields['name']);
  const requestId = fields['requestId'] === undefined ? undefined : f.requestId.parse(fields['requestId'], 'requestId');
  return { command: { kind: 'createIndex', table, index }, ...(requestId === undefined ? {} : { requestId }) };
}

/** `DELETE /api/v1/db/indexes` (a JSON body, or the same fields as a query string). */
export const DROP_INDEX_BODY = objectBody({ table: TABLE, database: DATABASE, name: NAME, requestId: REQUEST_ID_FIELD }, { required: ['table', 'name'], schema: { example: { table: 'users', name: 'username_1' } } });

/**
 * Parses `DELETE /api/v1/db/indexes`.
 * @throws DbaasError DBAAS_REQ_INVALID, DBAAS_REQ_UNKNOWN_FIELD, DBAAS_REQ_BAD_TABLE
 */
export function parseDropIndexBody(body: unknown): WriteRequest {
  const fields = DROP_INDEX_BODY.fieldsOf(body);
  const f = DROP_INDEX_BODY.fields;
  const table = tableOf(fields, f.table.parse(fields['table'], 'table'));
  const name = f.name.parse(fields['name'], 'name');
  const requestId = fields['requestId'] === undefined ? undefined : f.requestId.parse(fields['requestId'], 'requestId');
  return { command: { kind: 'dropIndex', table, name }, ...(requestId === undefined ? {} : { requestId }) };
}

/** `GET /api/v1/db/indexes?table=…`. */
export const INDEXES_QUERY = objectBody({ table: TABLE, database: DATABASE }, { required: ['table'] });

/**
 * The qualified table of `GET /api/v1/db/indexes` (common/databases.ts).
 * @throws DbaasError DBAAS_REQ_INVALID, DBAAS_REQ_UNKNOWN_FIELD, DBAAS_REQ_BAD_TABLE, DBAAS_REQ_BAD_DATABASE
 */
export function parseIndexesQuery(query: unknown): string {
  const fields = INDEXES_QUERY.fieldsOf(query);
  return tableOf(fields, INDEXES_QUERY.fields.table.parse(fields['table'], 'table'));
}

/** `GET /api/v1/db/tables?database=…`: the tables of one database (absent: `default`). */
export const TABLES_QUERY = objectBody({ database: DATABASE });

/** The database of `GET /api/v1/db/tables`, or undefined for `default`. */
export function parseTablesQuery(query: unknown): string | undefined {
  const fields = TABLES_QUERY.fieldsOf(query);
  return fields['database'] === undefined ? undefined : checkDatabase(fields['database']);
}

/** A body's table, qualified with its `database` when that is given. */
function tableOf(fields: JsonObject, table: string): string {
  return qualifiedTable(fields['database'] === undefined ? undefined : checkDatabase(fields['database']), table);
}
