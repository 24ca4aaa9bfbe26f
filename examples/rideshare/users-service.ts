/**
 * The rideshare `users` service of the course, on dbaas through the typed client:
 *
 *   PUT    /api/v1/users              {username, password (SHA-1 hex)} → 201 {}; 400 taken or bad password
 *   DELETE /api/v1/users/:username    → 200 {}; 400 no such user
 *   GET    /api/v1/users              → 200 ["ana", …]; 204 when there is none
 *   POST   /api/v1/db/clear           → 200 {}: empties this service's database (needs the dbaas admin token)
 *
 * The service keeps no state: the `users` table lives in dbaas. The client's
 * session makes a user visible to the very next list, even though reads go to
 * slaves (read-your-writes).
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { DbaasClientError, type DbaasClient } from '../../client/index.js';

const SHA1_HEX = /^[0-9a-fA-F]{40}$/;
const USERNAME = /^[A-Za-z0-9_.-]{1,64}$/;

interface User {
  _id: string;
  username: string;
  password: string;
}

/** 400 with a reason; the course's clients only look at the status. */
export class BadRequest extends Error {}

/** Maps errors to the course's status codes; dbaas failures become 503 (retryable) or 500. */
export function answerErrors(app: FastifyInstance): void {
  app.setErrorHandler((err, request, reply) => {
    if (err instanceof BadRequest) return reply.code(400).send({ error: err.message });
    if (err instanceof DbaasClientError) {
      request.log.warn({ code: err.code, dbaasRequestId: err.serverRequestId }, 'dbaas call failed');
      return reply.code(err.retryable ? 503 : 500).send({ error: `database: ${err.code}` });
    }
    const status = (err as { statusCode?: number }).statusCode;
    if (status !== undefined && status >= 400 && status < 500) return reply.code(status).send({ error: (err as Error).message });
    request.log.error({ err }, 'request failed');
    return reply.code(500).send({ error: 'internal error' });
  });
}

export function buildUsersService(db: DbaasClient): FastifyInstance {
  const app = Fastify({ logger: false });
  answerErrors(app);

  app.put('/api/v1/users', async (request, reply) => {
    const { username, password } = (request.body ?? {}) as { username?: unknown; password?: unknown };
    if (typeof username !== 'string' || !USERNAME.test(username)) throw new BadRequest('username must be 1-64 characters of A-Z a-z 0-9 _ . -');
    if (typeof password !== 'string' || !SHA1_HEX.test(password)) throw new BadRequest('password must be a SHA-1 hash (40 hex digits)');
    // The username is the _id: a second insert of it is refused by dbaas (409), so two concurrent sign-ups cannot both win.
    try {
      await db.insert('users', { _id: username, username, password: password.toLowerCase() });
    } catch (err) {
      if (err instanceof DbaasClientError && err.code === 'DBAAS_WRITE_DUPLICATE_ID') throw new BadRequest(`user ${username} exists`);
      throw err;
    }
    return reply.code(201).send({});
  });

  app.delete<{ Params: { username: string } }>('/api/v1/users/:username', async (request) => {
    const result = await db.delete('users', { _id: request.params.username });
    if (result.deleted === 0) throw new BadRequest(`no user ${request.params.username}`);
    return {};
  });

  app.get('/api/v1/users', async (_request, reply) => {
    // Only documents this service wrote: until dbaas gives each service its own database, another client may write to `users`.
    const users = await db.read<User>('users', { where: { username: { $exists: true } }, columns: ['username'], sort: { username: 1 } });
    if (users.length === 0) return reply.code(204).send();
    return users.map((u) => u.username);
  });

  app.post('/api/v1/db/clear', async () => {
    await db.clear();
    return {};
  });

  return app;
}
