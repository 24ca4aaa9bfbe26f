/**
 * Runs the example users and rides services against a running dbaas:
 *
 *   DBAAS_URL=http://127.0.0.1:8080 node dist/examples/rideshare/main.js --users-port 8081 --rides-port 8082
 *
 * Each service keeps its data in its own database (`--users-db`, `--rides-db`;
 * default `users` and `rides`), created at start when the admin token is set.
 * Each can use its own API key, scoped to its database (`--users-key-file`,
 * `--rides-key-file`: a file holding the key; default DBAAS_API_KEY for both).
 * DBAAS_ADMIN_TOKEN is used when set (creating the databases, /api/v1/db/clear).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadClientConfig } from '../../common/config.js';
import { DbaasClient, DbaasClientError } from '../../client/index.js';
import { buildRidesService } from './rides-service.js';
import { buildUsersService } from './users-service.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'users-port': { type: 'string', default: '8081' },
      'rides-port': { type: 'string', default: '8082' },
      host: { type: 'string', default: '127.0.0.1' },
      'users-db': { type: 'string', default: 'users' },
      'rides-db': { type: 'string', default: 'rides' },
      'users-key-file': { type: 'string' },
      'rides-key-file': { type: 'string' },
    },
  });
  const config = loadClientConfig();
  const keyFrom = (file: string | undefined): string | undefined => (file ? readFileSync(file, 'utf8').trim() : config.apiKey);
  const client = (database: string, apiKey: string | undefined): DbaasClient =>
    new DbaasClient({
      url: config.url,
      database,
      ...(apiKey ? { apiKey } : {}),
      ...(config.adminToken ? { adminToken: config.adminToken } : {}),
    });
  const usersDb = values['users-db'];
  const ridesDb = values['rides-db'];
  if (config.adminToken) {
    const admin = new DbaasClient({ url: config.url, adminToken: config.adminToken });
    for (const name of [usersDb, ridesDb]) await createIfMissing(admin, name);
  }
  // One client (one read-your-writes session, one database, one key) per service.
  const users = buildUsersService(client(usersDb, keyFrom(values['users-key-file'])));
  const usersUrl = await users.listen({ port: Number(values['users-port']), host: values.host });
  const rides = buildRidesService(client(ridesDb, keyFrom(values['rides-key-file'])), { usersUrl });
  const ridesUrl = await rides.listen({ port: Number(values['rides-port']), host: values.host });
  process.stdout.write(`users service: ${usersUrl}\nrides service: ${ridesUrl}\n(dbaas at ${config.url})\n`);
  const stop = (): void => {
    void Promise.all([users.close(), rides.close()]).then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

/** Creates a database unless it exists. */
async function createIfMissing(admin: DbaasClient, name: string): Promise<void> {
  try {
    await admin.createDatabase(name);
  } catch (err) {
    if (!(err instanceof DbaasClientError && (err.code === 'DBAAS_DATABASE_EXISTS' || err.code === 'DBAAS_DATABASE_PROTECTED'))) throw err;
  }
}

void main();
