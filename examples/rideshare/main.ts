/**
 * Runs the example users and rides services against a running dbaas:
 *
 *   DBAAS_URL=http://127.0.0.1:8080 node dist/examples/rideshare/main.js --users-port 8081 --rides-port 8082
 *
 * DBAAS_API_KEY and DBAAS_ADMIN_TOKEN are used when set (the admin token only for /api/v1/db/clear).
 */
import { parseArgs } from 'node:util';
import { loadClientConfig } from '../../common/config.js';
import { DbaasClient } from '../../client/index.js';
import { buildRidesService } from './rides-service.js';
import { buildUsersService } from './users-service.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'users-port': { type: 'string', default: '8081' },
      'rides-port': { type: 'string', default: '8082' },
      host: { type: 'string', default: '127.0.0.1' },
    },
  });
  const config = loadClientConfig();
  const client = (): DbaasClient =>
    new DbaasClient({
      url: config.url,
      ...(config.apiKey ? { apiKey: config.apiKey } : {}),
      ...(config.adminToken ? { adminToken: config.adminToken } : {}),
    });
  // One client (one read-your-writes session) per service.
  const users = buildUsersService(client());
  const usersUrl = await users.listen({ port: Number(values['users-port']), host: values.host });
  const rides = buildRidesService(client(), { usersUrl });
  const ridesUrl = await rides.listen({ port: Number(values['rides-port']), host: values.host });
  process.stdout.write(`users service: ${usersUrl}\nrides service: ${ridesUrl}\n(dbaas at ${config.url})\n`);
  const stop = (): void => {
    void Promise.all([users.close(), rides.close()]).then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

void main();
