/**
 * Databases (issue 20): which database a data request is for, whether it may
 * go there (the key's scope, and the database existing), and the routes that
 * list, create and drop databases.
 *
 * A database's name lives in ZooKeeper (coordination/database-store.ts); its
 * tables live in every worker (worker/tables.ts), and are emptied through the
 * write path, so a drop replicates like any write:
 * - create: refused when the name exists; else a `clear` of that database goes
 *   through the write path first (whatever a dropped database of the same name
 *   may have left, say when its drop's clear failed), then the name is recorded;
 * - drop: the name is removed first (from then on requests to it are refused
 *   with 404), then a `clear` of that database empties it on every replica.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Access } from '../common/api-keys.js';
import type { WriteCommand, WriteRequest } from '../common/commands.js';
import { checkDatabase, DEFAULT_DATABASE, splitTable } from '../common/databases.js';
import { DbaasError } from '../common/errors.js';
import { fail, isPlainObject } from '../common/json-shape.js';
import { limitReached, type DatabaseStore } from '../coordination/database-store.js';
import type { RouteDoc } from './api-docs.js';
import { API_KEY } from './api-docs.js';
import { checkScope, scopeOf, type Guard } from './auth.js';

/** The database a write is for; undefined for a clear of every database. */
export function databaseOf(command: WriteCommand): string | undefined {
  if (command.kind === 'clear') return command.database;
  if (command.kind === 'verify') return undefined;
  return splitTable(command.table).database;
}

/** What the routes need from the app. */
export interface DatabaseRouteDeps {
  /** Absent (unit tests): only `default` exists. */
  store: DatabaseStore | undefined;
  requireAdmin: Guard;
  requireApiKey: Guard;
  /** Sends a write through the write path (app.ts's) and answers its result. */
  write: (req: WriteRequest, request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
  /** DBAAS_MAX_DATABASES: the most databases besides `default`. */
  maxDatabases: number;
}

/**
 * Lets a request go to `database` with `access`, or throws: 403
 * DBAAS_AUTH_SCOPE_DENIED outside its key's scope (before anything says whether
 * the database exists), 404 DBAAS_DATABASE_NOT_FOUND when it does not exist.
 */
export async function admit(store: DatabaseStore | undefined, request: FastifyRequest, database: string, access: Access): Promise<void> {
  checkScope(request, database, access);
  const exists = database === DEFAULT_DATABASE || (store !== undefined && (await store.exists(database)));
  if (!exists) throw new DbaasError('DBAAS_DATABASE_NOT_FOUND', `no database ${JSON.stringify(database)}; an admin creates it with POST /api/v1/db/databases`);
}

const DATABASE_INFO = {
  type: 'object',
  properties: { name: { type: 'string' }, createdAt: { type: 'string', format: 'date-time', description: 'Absent for default' } },
};
const NAME = { type: 'string', pattern: '^[a-z][a-z0-9_]{0,29}$' };
const ADMIN = [{ adminToken: [] }];

const LIST_DOC: RouteDoc = {
  tags: ['data'],
  security: API_KEY,
  summary: 'The databases (default first); a scoped API key sees only those it reaches',
  response: { 200: { type: 'object', properties: { databases: { type: 'array', items: DATABASE_INFO } } } },
};
const CREATE_DOC: RouteDoc = {
  tags: ['data', 'admin'],
  security: ADMIN,
  summary: 'Create a database (empty on every replica)',
  body: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: NAME } },
  response: { 201: DATABASE_INFO },
  description: 'Refused with 409 DBAAS_DATABASE_LIMIT_REACHED when there are DBAAS_MAX_DATABASES databases besides default already.',
};
const DROP_DOC: RouteDoc = {
  tags: ['data', 'admin'],
  security: ADMIN,
  summary: 'Drop a database: refused from now on, and its tables emptied on every replica through the write path',
  params: { type: 'object', properties: { name: NAME } },
  response: { 200: { type: 'object', properties: { ok: { type: 'boolean' }, seq: { type: 'integer' }, dropped: { type: 'string' } } } },
};

function parseCreateBody(body: unknown): string {
  if (!isPlainObject(body)) fail('DBAAS_REQ_INVALID', 'body', 'must be {"name": "<database>"}');
  const extra = Object.keys(body).filter((k) => k !== 'name');
  if (extra.length > 0) fail('DBAAS_REQ_UNKNOWN_FIELD', extra[0] as string, 'is not a field of this body (only name)');
  return checkDatabase(body['name'], 'name');
}

function notDefault(name: string): void {
  if (name === DEFAULT_DATABASE) throw new DbaasError('DBAAS_DATABASE_PROTECTED');
}

export function registerDatabaseRoutes(app: FastifyInstance, deps: DatabaseRouteDeps): void {
  const { store, requireAdmin, requireApiKey, write, maxDatabases } = deps;
  const needStore = (): DatabaseStore => {
    if (!store) throw new DbaasError('DBAAS_COORDINATION_UNAVAILABLE', 'this orchestrator keeps no database list');
    return store;
  };

  app.get('/api/v1/db/databases', { schema: LIST_DOC, onRequest: requireApiKey }, async (request) => {
    const all = store ? await store.list() : [{ name: DEFAULT_DATABASE }];
    const scope = scopeOf(request);
    return { databases: scope.databases === '*' ? all : all.filter((d) => scope.databases.includes(d.name)) };
  });

  app.post('/api/v1/db/databases', { schema: CREATE_DOC, onRequest: requireAdmin }, async (request, reply) => {
    const name = parseCreateBody(request.body);
    notDefault(name);
    const s = needStore();
    if (await s.exists(name)) throw new DbaasError('DBAAS_DATABASE_EXISTS', `database ${JSON.stringify(name)} exists already`);
    // A quick refusal before the clear; the exact check is the create's own (two creates may both pass this one).
    const count = (await s.list()).filter((d) => d.name !== DEFAULT_DATABASE).length;
    if (count >= maxDatabases) throw limitReached(count, maxDatabases);
    await write({ command: { kind: 'clear', database: name } }, request, reply);
    const info = await s.create(name, maxDatabases);
    if (!info) throw new DbaasError('DBAAS_DATABASE_EXISTS', `database ${JSON.stringify(name)} exists already`);
    return reply.code(201).send(info);
  });

  app.delete<{ Params: { name: string } }>('/api/v1/db/databases/:name', { schema: DROP_DOC, onRequest: requireAdmin }, async (request, reply) => {
    const name = checkDatabase(request.params.name, 'name');
    notDefault(name);
    if (!(await needStore().remove(name))) throw new DbaasError('DBAAS_DATABASE_NOT_FOUND', `no database ${JSON.stringify(name)}`);
    const result = (await write({ command: { kind: 'clear', database: name } }, request, reply)) as { seq?: number };
    return { ok: true, seq: result.seq, dropped: name };
  });
}
