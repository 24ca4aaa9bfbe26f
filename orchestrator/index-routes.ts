/**
 * The indexes API and the tables view (issue 17).
 *
 * - `POST /api/v1/db/indexes`, `DELETE /api/v1/db/indexes`: index changes go
 *   through the write path (`createIndex` / `dropIndex` commands): each gets a
 *   seq, replicates to every slave in order with the writes, and a retry with
 *   the same requestId answers the first result. They take a data key, as writes
 *   do: a service manages the indexes of its own tables.
 * - `GET /api/v1/db/indexes?table=…`, `GET /api/v1/db/tables`: answered by the
 *   master (its control queue), so an index is listed as soon as its creation was
 *   answered.
 *
 * Index keys travel as ordered pairs; over HTTP they are MongoDB's key object
 * (`{"a": 1, "b": -1}`), whose key order JSON keeps.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IndexSpec, TableInfo, WriteRequest } from '../common/commands.js';
import { HINT_HEADER, TABLE_NOT_FOUND_HINT } from '../common/hints.js';
import { DEFAULT_DATABASE, splitTable } from '../common/databases.js';
import { parseCreateIndexBody, parseDropIndexBody, parseIndexesQuery, parseTablesQuery } from '../common/index-bodies.js';
import { WIRE_VERSION, type ControlMessage } from '../common/messages.js';
import type { Access } from '../common/api-keys.js';
import type { Guard } from './auth.js';

/** An index as the HTTP API shows it. */
export interface IndexView {
  name: string;
  keys: Record<string, 1 | -1>;
  unique: boolean;
}

export function indexView(spec: IndexSpec): IndexView {
  const keys: Record<string, 1 | -1> = {};
  for (const [path, dir] of spec.keys) keys[path] = dir;
  return { name: spec.name, keys, unique: spec.unique };
}

export interface IndexRouteDeps {
  requireApiKey: Guard;
  /** The write path (app.ts): requestId, envelope, the master's answer. */
  write: (req: WriteRequest, request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
  /** The key reaches the database with this access, and the database exists (database-routes.ts admit). */
  admit: (request: FastifyRequest, database: string, access: Access) => Promise<void>;
  /** Asks the master (its control queue) for the tables: one, or all. */
  tables: (table: string | undefined, reqId: string) => Promise<TableInfo[]>;
}

/** The control message the master answers `tables` with. */
export function tablesMessage(table: string | undefined): ControlMessage {
  return { v: WIRE_VERSION, type: 'tables', ...(table === undefined ? {} : { table }) };
}

/** A query string as a plain object (fastify's has a prototype of its own), for the body parsers. */
function plain(query: unknown): Record<string, unknown> {
  return { ...(query as Record<string, unknown> | undefined) };
}

export function registerIndexRoutes(app: FastifyInstance, deps: IndexRouteDeps): void {
  const { requireApiKey, write, admit } = deps;
  const databaseOf = (table: string): string => splitTable(table).database;

  app.post('/api/v1/db/indexes', { onRequest: requireApiKey }, async (request, reply) => {
    const req = parseCreateIndexBody(request.body);
    const { table, index } = req.command as Extract<WriteRequest['command'], { kind: 'createIndex' }>;
    await admit(request, databaseOf(table), 'readwrite');
    const result = (await write(req, request, reply)) as object;
    return { ...result, table: splitTable(table).table, database: databaseOf(table), index: indexView(index) };
  });

  app.delete('/api/v1/db/indexes', { onRequest: requireApiKey }, async (request, reply) => {
    // A JSON body, or the same fields in the query string (clients that send no DELETE body).
    const req = parseDropIndexBody(request.body ?? plain(request.query));
    const { table, name } = req.command as Extract<WriteRequest['command'], { kind: 'dropIndex' }>;
    await admit(request, databaseOf(table), 'readwrite');
    const result = (await write(req, request, reply)) as object;
    return { ...result, table: splitTable(table).table, database: databaseOf(table), name };
  });

  app.get('/api/v1/db/indexes', { onRequest: requireApiKey }, async (request, reply) => {
    const table = parseIndexesQuery(plain(request.query));
    await admit(request, databaseOf(table), 'read');
    const [info] = await deps.tables(table, request.id);
    if (!info) reply.header(HINT_HEADER, TABLE_NOT_FOUND_HINT);
    return (info?.indexes ?? []).map(indexView);
  });

  app.get('/api/v1/db/tables', { onRequest: requireApiKey }, async (request) => {
    const database = parseTablesQuery(plain(request.query)) ?? DEFAULT_DATABASE;
    await admit(request, database, 'read');
    const tables = (await deps.tables(undefined, request.id)).filter((t) => databaseOf(t.table) === database);
    return tables.map((t) => ({ table: splitTable(t.table).table, database, documents: t.documents, exact: t.exact, indexes: t.indexes.map(indexView) }));
  });
}
