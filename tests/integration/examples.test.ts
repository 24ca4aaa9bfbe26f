/**
 * The example rideshare services (examples/rideshare) on the typed client,
 * against a live cluster: the course's API end to end, over real HTTP. Each
 * service keeps its data in its own database with its own scoped API key
 * (issue 20): neither can see the other's data.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DbaasClient, DbaasClientError } from '../../client/index.js';
import { buildRidesService } from '../../examples/rideshare/rides-service.js';
import { buildUsersService } from '../../examples/rideshare/users-service.js';
import { startTestCluster, type TestCluster } from './harness.js';

const ADMIN = 'examples-admin-token';
const USERS_KEY = 'users-service-key-01';
const RIDES_KEY = 'rides-service-key-02';
const OTHER_KEY = 'other-service-key-03';
let c: TestCluster;
let users: FastifyInstance;
let rides: FastifyInstance;
let usersUrl = '';
let ridesUrl = '';

beforeAll(async () => {
  c = await startTestCluster(
    {
      DBAAS_ADMIN_TOKEN: ADMIN,
      DBAAS_INITIAL_SLAVES: '2',
      DBAAS_API_KEYS: `${USERS_KEY}:users:readwrite,${RIDES_KEY}:rides:readwrite,${OTHER_KEY}:default:readwrite`,
    },
    { listen: true },
  );
  const admin = new DbaasClient({ url: c.url, adminToken: ADMIN });
  await admin.createDatabase('users');
  await admin.createDatabase('rides');
  users = buildUsersService(new DbaasClient({ url: c.url, database: 'users', apiKey: USERS_KEY, adminToken: ADMIN }));
  usersUrl = await users.listen({ port: 0, host: '127.0.0.1' });
  // Fixed "now" so that "upcoming" does not depend on the day the test runs.
  rides = buildRidesService(new DbaasClient({ url: c.url, database: 'rides', apiKey: RIDES_KEY }), { usersUrl, now: () => new Date('2026-11-21T00:00:00Z') });
  ridesUrl = await rides.listen({ port: 0, host: '127.0.0.1' });
});

afterAll(async () => {
  await rides?.close();
  await users?.close();
  await c?.close();
});

async function call(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${path}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
}

const sha1 = (s: string): string => createHash('sha1').update(s).digest('hex');

describe('rideshare on dbaas', () => {
  it('users: create, refuse duplicates and bad passwords, list, delete', async () => {
    expect(await call(usersUrl, 'GET', '/api/v1/users')).toEqual({ status: 204, body: undefined });
    expect((await call(usersUrl, 'PUT', '/api/v1/users', { username: 'ana', password: sha1('a') })).status).toBe(201);
    // Listed at once, although reads go to slaves: the service's client reads its own writes.
    expect(await call(usersUrl, 'GET', '/api/v1/users')).toEqual({ status: 200, body: ['ana'] });
    expect((await call(usersUrl, 'PUT', '/api/v1/users', { username: 'ana', password: sha1('b') })).status).toBe(400);
    expect((await call(usersUrl, 'PUT', '/api/v1/users', { username: 'bo', password: 'not-a-sha1' })).status).toBe(400);
    expect((await call(usersUrl, 'PUT', '/api/v1/users', { username: 'bo', password: sha1('b') })).status).toBe(201);
    expect((await call(usersUrl, 'PUT', '/api/v1/users', { username: 'cy', password: sha1('c') })).status).toBe(201);
    expect(await call(usersUrl, 'GET', '/api/v1/users')).toEqual({ status: 200, body: ['ana', 'bo', 'cy'] });
    expect((await call(usersUrl, 'DELETE', '/api/v1/users/cy')).status).toBe(200);
    expect((await call(usersUrl, 'DELETE', '/api/v1/users/cy')).status).toBe(400);
    expect(await call(usersUrl, 'GET', '/api/v1/users')).toEqual({ status: 200, body: ['ana', 'bo'] });
    // Another service's `users` table lives in another database: not listed (with one flat table space it was listed as null).
    const other = new DbaasClient({ url: c.url, apiKey: OTHER_KEY });
    await other.insert('users', { _id: 'not-a-user', note: 'written by another service' });
    // A sign-up after it: the service's next read waits for a seq past the other document, so the list is read with it there.
    expect((await call(usersUrl, 'PUT', '/api/v1/users', { username: 'dee', password: sha1('d') })).status).toBe(201);
    expect(await call(usersUrl, 'GET', '/api/v1/users')).toEqual({ status: 200, body: ['ana', 'bo', 'dee'] });
    expect(await other.count('users')).toBe(1);
    // And its key reaches only its own database.
    const denied = await other.read('users', { database: 'users' }).catch((err: unknown) => err);
    expect(denied).toBeInstanceOf(DbaasClientError);
    expect((denied as DbaasClientError).code).toBe('DBAAS_AUTH_SCOPE_DENIED');
    await other.delete('users', { _id: 'not-a-user' });
    expect((await call(usersUrl, 'DELETE', '/api/v1/users/dee')).status).toBe(200);
  });

  it('rides: create, list upcoming, details, join, count, delete', async () => {
    const create = (body: Record<string, unknown>) => call(ridesUrl, 'POST', '/api/v1/rides', body);
    const ride1 = await create({ created_by: 'ana', timestamp: '25-11-2026:00-30-09', source: 1, destination: 2 });
    expect(ride1.status).toBe(201);
    const rideId = ride1.body.rideId as string;
    expect((await create({ created_by: 'ana', timestamp: '24-11-2026:00-00-08', source: '1', destination: '2' })).status).toBe(201);
    // In the past (before "now"), another route: not listed.
    expect((await create({ created_by: 'bo', timestamp: '20-11-2026:00-00-08', source: 1, destination: 2 })).status).toBe(201);
    expect((await create({ created_by: 'bo', timestamp: '26-11-2026:00-00-08', source: 3, destination: 4 })).status).toBe(201);

    for (const bad of [
      { created_by: 'nobody', timestamp: '25-11-2026:00-30-09', source: 1, destination: 2 },
      { created_by: 'ana', timestamp: '2026-11-25 09:30', source: 1, destination: 2 },
      { created_by: 'ana', timestamp: '25-11-2026:00-30-09', source: 0, destination: 2 },
      { created_by: 'ana', timestamp: '25-11-2026:00-30-09', source: 5, destination: 5 },
      { created_by: 'ana', timestamp: '25-11-2026:00-30-09', source: 1, destination: 199 },
    ]) {
      expect({ bad, status: (await create(bad)).status }).toEqual({ bad, status: 400 });
    }

    const upcoming = await call(ridesUrl, 'GET', '/api/v1/rides?source=1&destination=2');
    expect(upcoming.status).toBe(200);
    expect(upcoming.body).toEqual([
      { rideId: expect.any(String), username: 'ana', timestamp: '24-11-2026:00-00-08' },
      { rideId, username: 'ana', timestamp: '25-11-2026:00-30-09' },
    ]);
    expect((await call(ridesUrl, 'GET', '/api/v1/rides?source=2&destination=1')).status).toBe(204);
    expect((await call(ridesUrl, 'GET', '/api/v1/rides?source=x&destination=1')).status).toBe(400);

    expect((await call(ridesUrl, 'POST', `/api/v1/rides/${rideId}`, { username: 'bo' })).status).toBe(200);
    expect((await call(ridesUrl, 'POST', `/api/v1/rides/${rideId}`, { username: 'bo' })).status).toBe(200);
    expect((await call(ridesUrl, 'POST', `/api/v1/rides/${rideId}`, { username: 'ana' })).status).toBe(400);
    expect((await call(ridesUrl, 'POST', `/api/v1/rides/${rideId}`, { username: 'nobody' })).status).toBe(400);
    expect((await call(ridesUrl, 'POST', '/api/v1/rides/no-such-ride', { username: 'bo' })).status).toBe(400);

    expect(await call(ridesUrl, 'GET', `/api/v1/rides/${rideId}`)).toEqual({
      status: 200,
      body: { rideId, created_by: 'ana', users: ['bo'], timestamp: '25-11-2026:00-30-09', source: 1, destination: 2 },
    });
    expect(await call(ridesUrl, 'GET', '/api/v1/rides/count')).toEqual({ status: 200, body: [4] });

    expect((await call(ridesUrl, 'DELETE', `/api/v1/rides/${rideId}`)).status).toBe(200);
    expect((await call(ridesUrl, 'DELETE', `/api/v1/rides/${rideId}`)).status).toBe(400);
    expect((await call(ridesUrl, 'GET', `/api/v1/rides/${rideId}`)).status).toBe(204);
    expect(await call(ridesUrl, 'GET', '/api/v1/rides/count')).toEqual({ status: 200, body: [3] });
  });

  it('keeps the two services apart: neither key reaches the other database', async () => {
    const usersKey = new DbaasClient({ url: c.url, apiKey: USERS_KEY, retry: { attempts: 1 } });
    const ridesKey = new DbaasClient({ url: c.url, apiKey: RIDES_KEY, retry: { attempts: 1 } });
    const codeOf = (p: Promise<unknown>): Promise<string> => p.then(() => 'allowed', (err: unknown) => (err as DbaasClientError).code);
    expect(await codeOf(usersKey.read('rides', { database: 'rides' }))).toBe('DBAAS_AUTH_SCOPE_DENIED');
    expect(await codeOf(usersKey.insert('rides', { x: 1 }, {}))).toBe('DBAAS_AUTH_SCOPE_DENIED');
    expect(await codeOf(ridesKey.read('users', { database: 'users' }))).toBe('DBAAS_AUTH_SCOPE_DENIED');
    expect(await codeOf(ridesKey.write({ table: 'users', database: 'users', operation: 'delete', where: {} }))).toBe('DBAAS_AUTH_SCOPE_DENIED');
    expect((await usersKey.databases()).map((d) => d.name)).toEqual(['users']);
    // The rides database holds only rides, the users database only users.
    expect(await ridesKey.count('rides', {}, { database: 'rides' })).toBe(3);
    expect(await ridesKey.count('users', {}, { database: 'rides' })).toBe(0);
  });

  it('clears its own database through the users service (admin token); the rides service keeps its data', async () => {
    expect((await call(usersUrl, 'POST', '/api/v1/db/clear')).status).toBe(200);
    expect((await call(usersUrl, 'GET', '/api/v1/users')).status).toBe(204);
    expect(await call(ridesUrl, 'GET', '/api/v1/rides/count')).toEqual({ status: 200, body: [3] });
  });
});
