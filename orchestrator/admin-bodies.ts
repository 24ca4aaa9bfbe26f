/**
 * The bodies (and the query string) of the cluster routes, each declared once
 * as a {@link Body}: `app.ts` validates with its `parse`, the OpenAPI document
 * shows its `schema` (`api-docs.ts`). The data bodies (write, read, clear) are
 * in `common/validation.ts`, since workers check the same commands.
 *
 * The refusals keep the codes and messages these routes always gave.
 */
import type { Body, JsonSchema } from '../common/body-schema.js';
import { DbaasError } from '../common/errors.js';

/** Keys of a JSON object body; nothing for anything else (which then fails on its required field). */
function keysOf(body: unknown): string[] {
  return body && typeof body === 'object' && !Array.isArray(body) ? Object.keys(body) : [];
}

function field(body: unknown, name: string): unknown {
  return body && typeof body === 'object' && !Array.isArray(body) && Object.hasOwn(body, name) ? (body as Record<string, unknown>)[name] : undefined;
}

/** Refuses a body that is there but not a JSON object (an array, a string, a number, null): 400 DBAAS_REQ_INVALID. */
function objectOrNothing(body: unknown, shape: string): void {
  if (body !== undefined && !(body && typeof body === 'object' && !Array.isArray(body))) throw new DbaasError('DBAAS_REQ_INVALID', `the body must be ${shape}`);
}

/**
 * `POST /api/v1/crash/master|slave`: no body, or `{}`. Anything else is refused
 * before a worker is killed (a drill is not retried, and bad input changes nothing).
 */
export const CRASH_BODY: Body<void> = {
  schema: { type: 'object', additionalProperties: false, properties: {} },
  parse(body) {
    objectOrNothing(body, 'absent or {}');
    const extra = keysOf(body);
    if (extra.length > 0) throw new DbaasError('DBAAS_REQ_UNKNOWN_FIELD', `unknown field(s): ${extra.join(', ')}; a crash drill takes no fields`);
  },
};

/** `POST /api/v1/scale {"slaves": n}`: n within the configured bounds. */
export function scaleBody(minSlaves: number, maxSlaves: number): Body<number> {
  const schema: JsonSchema = {
    type: 'object',
    required: ['slaves'],
    additionalProperties: false,
    properties: { slaves: { type: 'integer', minimum: minSlaves, maximum: maxSlaves, description: 'The slave target (DBAAS_MIN_SLAVES to DBAAS_MAX_SLAVES)' } },
  };
  return {
    schema,
    parse(body) {
      const keys = keysOf(body);
      const extra = keys.filter((k) => k !== 'slaves');
      if (extra.length > 0) throw new DbaasError('DBAAS_REQ_UNKNOWN_FIELD', `unknown field(s): ${extra.join(', ')}; allowed: slaves`);
      const slaves = field(body, 'slaves');
      if (typeof slaves !== 'number' || !Number.isInteger(slaves) || slaves < minSlaves || slaves > maxSlaves) {
        throw new DbaasError('DBAAS_REQ_INVALID', `slaves must be an integer from ${minSlaves} to ${maxSlaves}`);
      }
      return slaves;
    },
  };
}

/** `POST /api/v1/switchover` with `{}` or `{"target": "<worker id or pid>"}`. */
export const SWITCHOVER_BODY: Body<string | undefined> = {
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: { target: { type: 'string', minLength: 1, maxLength: 128, description: 'Worker id or pid (default: the lowest-pid caught-up slave)' } },
  },
  parse(body) {
    // An array or a string is not "no target": it must not start a switchover.
    objectOrNothing(body, '{} or {"target": "<worker id or pid>"}');
    const extra = keysOf(body).filter((k) => k !== 'target');
    if (extra.length > 0) throw new DbaasError('DBAAS_REQ_UNKNOWN_FIELD', `unknown field(s): ${extra.join(', ')}; allowed: target`);
    const target = field(body, 'target');
    if (target !== undefined && (typeof target !== 'string' || target === '' || target.length > 128)) {
      throw new DbaasError('DBAAS_REQ_INVALID', 'target must be a worker id or pid (a string)');
    }
    return target as string | undefined;
  },
};

const MAX_AFTER = 999_999_999_999_999;

/** `GET /api/v1/events?after=n`: the seq of the last event seen (0 when absent). */
export const EVENTS_QUERY: Body<number> = {
  schema: {
    type: 'object',
    properties: { after: { type: 'integer', minimum: 0, maximum: MAX_AFTER, description: 'Only events with a larger seq' } },
  },
  parse(query) {
    const raw = field(query, 'after');
    if (raw !== undefined && (typeof raw !== 'string' || !/^\d{1,15}$/.test(raw))) {
      throw new DbaasError('DBAAS_REQ_INVALID', 'after must be a non-negative integer (the seq of the last event seen)');
    }
    return raw === undefined ? 0 : Number(raw);
  },
};
