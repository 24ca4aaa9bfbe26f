/**
 * The rideshare `rides` service of the course, on dbaas through the typed client:
 *
 *   POST   /api/v1/rides                      {created_by, timestamp, source, destination} → 201 {rideId}
 *   GET    /api/v1/rides?source=&destination= upcoming rides → 200 [{rideId, username, timestamp}]; 204 none
 *   GET    /api/v1/rides/count                → 200 [n]
 *   GET    /api/v1/rides/:rideId              → 200 {rideId, created_by, users, timestamp, source, destination}; 204 none
 *   POST   /api/v1/rides/:rideId              {username} join the ride → 200 {}
 *   DELETE /api/v1/rides/:rideId              → 200 {}
 *
 * Timestamps are `DD-MM-YYYY:SS-MM-HH` (UTC); source and destination are area
 * numbers 1–198 of the course's list. Whether a user exists is asked of the
 * users service (`GET /api/v1/users`), as in the course. Ride ids are the
 * string `_id`s dbaas assigns.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { DbaasClient } from '../../client/index.js';
import { formatRideTime, parseRideTime } from './ride-time.js';
import { answerErrors, BadRequest } from './users-service.js';

/** The course's areas are numbered 1 to 198. */
export const AREA_COUNT = 198;

interface Ride {
  _id: string;
  created_by: string;
  timestamp: string;
  source: number;
  destination: number;
  users: string[];
}

export interface RidesServiceOptions {
  /** Base URL of the users service. */
  usersUrl: string;
  /** Time source, for tests of "upcoming". */
  now?: () => Date;
}

function area(value: unknown, name: string): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > AREA_COUNT) throw new BadRequest(`${name} must be an area number from 1 to ${AREA_COUNT}`);
  return n;
}

export function buildRidesService(db: DbaasClient, opts: RidesServiceOptions): FastifyInstance {
  const app = Fastify({ logger: false });
  answerErrors(app);
  const now = opts.now ?? (() => new Date());

  const userExists = async (username: unknown): Promise<boolean> => {
    if (typeof username !== 'string' || username === '') return false;
    const res = await fetch(`${opts.usersUrl}/api/v1/users`, { signal: AbortSignal.timeout(10_000) });
    if (res.status === 204) return false;
    if (!res.ok) throw new Error(`the users service answered ${res.status}`);
    return ((await res.json()) as string[]).includes(username);
  };

  const findRide = async (rideId: string): Promise<Ride | undefined> => (await db.read<Ride>('rides', { where: { _id: rideId }, limit: 1 }))[0];

  app.post('/api/v1/rides', async (request, reply) => {
    const body = (request.body ?? {}) as Record<string, unknown>;
    const timestamp = parseRideTime(body['timestamp']);
    if (!timestamp) throw new BadRequest('timestamp must be DD-MM-YYYY:SS-MM-HH');
    const source = area(body['source'], 'source');
    const destination = area(body['destination'], 'destination');
    if (source === destination) throw new BadRequest('source and destination must differ');
    if (!(await userExists(body['created_by']))) throw new BadRequest('created_by is not a user');
    const ride = { created_by: body['created_by'] as string, timestamp, source, destination, users: [] };
    const result = await db.insert('rides', ride);
    return reply.code(201).send({ rideId: result.ids[0] });
  });

  app.get('/api/v1/rides', async (request, reply) => {
    const query = request.query as { source?: string; destination?: string };
    const source = area(query.source, 'source');
    const destination = area(query.destination, 'destination');
    const rides = await db.read<Ride>('rides', {
      where: { source, destination, timestamp: { $gt: now().toISOString() } },
      columns: ['_id', 'created_by', 'timestamp'],
      sort: { timestamp: 1 },
    });
    if (rides.length === 0) return reply.code(204).send();
    return rides.map((r) => ({ rideId: r._id, username: r.created_by, timestamp: formatRideTime(r.timestamp) }));
  });

  app.get('/api/v1/rides/count', async () => [await db.count('rides')]);

  app.get<{ Params: { rideId: string } }>('/api/v1/rides/:rideId', async (request, reply) => {
    const ride = await findRide(request.params.rideId);
    if (!ride) return reply.code(204).send();
    return {
      rideId: ride._id,
      created_by: ride.created_by,
      users: ride.users,
      timestamp: formatRideTime(ride.timestamp),
      source: ride.source,
      destination: ride.destination,
    };
  });

  app.post<{ Params: { rideId: string } }>('/api/v1/rides/:rideId', async (request) => {
    const { username } = (request.body ?? {}) as { username?: unknown };
    if (!(await userExists(username))) throw new BadRequest('username is not a user');
    const ride = await findRide(request.params.rideId);
    if (!ride) throw new BadRequest(`no ride ${request.params.rideId}`);
    if (ride.created_by === username) throw new BadRequest('the creator of a ride cannot join it');
    // $addToSet: joining twice (or a retried join) leaves one entry.
    await db.update('rides', { _id: ride._id }, { $addToSet: { users: username } });
    return {};
  });

  app.delete<{ Params: { rideId: string } }>('/api/v1/rides/:rideId', async (request) => {
    const result = await db.delete('rides', { _id: request.params.rideId });
    if (result.deleted === 0) throw new BadRequest(`no ride ${request.params.rideId}`);
    return {};
  });

  return app;
}
