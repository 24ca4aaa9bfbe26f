/**
 * Request bodies declared once. A {@link Body} is the one object a route uses
 * both to validate (its `parse`, which refuses with stable `DBAAS_*` codes and
 * messages) and to document (its `schema`, the JSON Schema that `/docs` shows,
 * see `orchestrator/api-docs.ts`). An object body is built from {@link Field}s,
 * each holding its schema fragment and its parser side by side, so the list of
 * fields, which are required, their types and limits, and their descriptions
 * exist in one place; `tests/unit/openapi-match.test.ts` checks on a table of
 * bodies that the schema allows exactly what the parser accepts.
 *
 * Why not a generic JSON Schema validator: the codes and messages of the
 * refusals (which field, why, in which order) are part of the API and tested
 * case by case, and the filters, documents and updates inside a body are
 * recursive structures a schema cannot bound (operators, depth, regex safety).
 * The parsers here are the ones the service always ran; the schema is their
 * documentation, kept next to them.
 */
import { describeType, fail, isPlainObject, putOwn, type JsonObject } from './json-shape.js';

/** A JSON Schema (draft 7 / OpenAPI 3.0 subset), as documentation. */
export type JsonSchema = { readonly [keyword: string]: unknown };

/** A request body (or query string): its schema, and the parser that enforces it. */
export interface Body<T> {
  readonly schema: JsonSchema;
  parse(body: unknown): T;
}

/** One field of an object body. `parse` gets the field's value and name (the value may be undefined for a required field). */
export interface Field<T> {
  readonly schema: JsonSchema;
  parse(value: unknown, name: string): T;
}

export function field<T>(schema: JsonSchema, parse: (value: unknown, name: string) => T): Field<T> {
  return { schema, parse };
}

/**
 * A field whose parser depends on other fields (the write body's `data` and
 * `where` depend on `operation`): documented here, parsed by the body's own
 * parser. Calling its `parse` is a bug.
 */
export function parsedByBody(schema: JsonSchema): Field<never> {
  return {
    schema,
    parse: (_value, name) => {
      throw new Error(`field ${name} is parsed by its body's parser, not on its own`);
    },
  };
}

/** An integer from `min` to `max`: below, or not an integer, is DBAAS_REQ_INVALID; above is DBAAS_REQ_LIMIT_EXCEEDED. */
export function integer(min: number, max: number, extra: JsonSchema = {}): Field<number> {
  const schema: JsonSchema = { type: 'integer', minimum: min, ...(max < Number.MAX_SAFE_INTEGER ? { maximum: max } : {}), ...extra };
  return field(schema, (value, name) => checkInteger(value, name, min, max));
}

/** true or false (DBAAS_REQ_INVALID otherwise). */
export function boolean(extra: JsonSchema = {}): Field<boolean> {
  return field({ type: 'boolean', ...extra }, checkBoolean);
}

export function checkInteger(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) fail('DBAAS_REQ_INVALID', name, `must be an integer, got ${describeType(value)} ${typeof value === 'number' ? value : ''}`.trimEnd());
  if (value < min) fail('DBAAS_REQ_INVALID', name, `must be at least ${min}`);
  if (value > max) fail('DBAAS_REQ_LIMIT_EXCEEDED', name, `must be at most ${max}`);
  return value;
}

export function checkBoolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') fail('DBAAS_REQ_INVALID', name, `must be true or false, got ${describeType(value)}`);
  return value;
}

/** An object body's fields, by name; their order is the order the parser checks them and the unknown-field message lists them. */
export type Fields = Readonly<Record<string, Field<unknown>>>;

/** The fields of an object body, with what its schema and its first check need. */
export interface ObjectBody<F extends Fields> {
  readonly fields: F;
  readonly allowed: ReadonlySet<string>;
  readonly schema: JsonSchema;
  /**
   * The body as an object with only declared fields (own properties only).
   * @throws DbaasError `DBAAS_REQ_INVALID` (not an object), `DBAAS_REQ_UNKNOWN_FIELD` (naming the allowed ones)
   */
  fieldsOf(body: unknown): JsonObject;
}

/**
 * An object body: `type: object`, no other fields (`additionalProperties:
 * false`), `required` as given; `schema` adds keywords (description, forms as
 * `oneOf`, an example).
 */
export function objectBody<F extends Fields>(fields: F, opts: { required?: Array<keyof F & string>; schema?: JsonSchema } = {}): ObjectBody<F> {
  const allowed: ReadonlySet<string> = new Set(Object.keys(fields));
  const properties = Object.fromEntries(Object.entries(fields).map(([name, f]) => [name, f.schema]));
  const schema: JsonSchema = {
    type: 'object',
    ...(opts.required && opts.required.length > 0 ? { required: opts.required } : {}),
    additionalProperties: false,
    properties,
    ...opts.schema,
  };
  return {
    fields,
    allowed,
    schema,
    fieldsOf(body: unknown): JsonObject {
      if (!isPlainObject(body)) fail('DBAAS_REQ_INVALID', 'body', `must be a JSON object, got ${describeType(body)}`);
      const out: JsonObject = {};
      for (const key of Object.keys(body)) {
        if (!allowed.has(key)) fail('DBAAS_REQ_UNKNOWN_FIELD', key, `unknown field; allowed: ${[...allowed].join(', ')}`);
        putOwn(out, key, body[key]);
      }
      return out;
    },
  };
}

/** A schema that holds when any of `names` is present (under `not`: none of them may be). */
export function anyPresent(names: readonly string[]): JsonSchema {
  return { anyOf: names.map((name) => ({ required: [name] })) };
}
