import path from 'node:path';
import { defineConfig } from 'vitest/config';

/** Where the integration tests' service logs go (tests/integration/log-files.ts); global-setup empties it. */
export const testLogDir = process.env.DBAAS_TEST_LOG_DIR ?? path.join(import.meta.dirname, '.dbaas/test-logs');

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['tests/unit/**/*.test.ts'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'integration',
          include: ['tests/integration/**/*.test.ts'],
          environment: 'node',
          // Clusters of real processes on 2 cores: one file at a time, and broker
          // restarts must not hit another file's cluster.
          pool: 'forks',
          poolOptions: { forks: { singleFork: true } },
          testTimeout: 60_000,
          hookTimeout: 120_000,
          globalSetup: ['tests/integration/global-setup.ts'],
          // Service logs go to .dbaas/test-logs/ (shown with a test that fails); DBAAS_TEST_LOG_DIR= (empty): to the console.
          setupFiles: ['tests/integration/log-files.ts'],
          env: { DBAAS_TEST_LOG_DIR: testLogDir },
        },
      },
    ],
  },
});
