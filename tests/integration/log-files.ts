/**
 * Set-up file of the integration tests: the services' JSON logs (every logger
 * created without a destination: test orchestrators, runtimes, ZooKeeper and
 * AMQP clients) go to a file under .dbaas/test-logs/ instead of the console,
 * so the run prints the test reporter and not tens of thousands of log lines.
 * When a test fails, the log lines written during it are printed with it.
 *
 * DBAAS_TEST_LOG_DIR (set by vitest.config.ts) names the directory; set it to
 * the empty string to log to the console as before.
 */
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { destination as fileDestination } from 'pino';
import { beforeEach } from 'vitest';
import { setDefaultLogDestination } from '../../common/logger.js';

/** How many of a failed test's log lines are printed (all of them stay in the file). */
const SHOWN_ON_FAILURE = 60;

const dir = process.env.DBAAS_TEST_LOG_DIR;
if (dir) {
  mkdirSync(dir, { recursive: true });
  // One file per test process: the integration files run one after another in one process.
  const file = path.join(dir, `services-${process.pid}.log`);
  // Synchronous writes: a test's lines are in the file when it fails. One
  // stream per process (this file runs again for every test file).
  const holder = globalThis as { dbaasTestLog?: ReturnType<typeof fileDestination> };
  const destination = (holder.dbaasTestLog ??= fileDestination({ dest: file, append: true, sync: true }));
  setDefaultLogDestination(destination);

  beforeEach((ctx) => {
    destination.write(`${JSON.stringify({ time: Date.now(), msg: `---- test: ${ctx.task.file.name} > ${ctx.task.name}` })}\n`);
    const start = statSync(file).size;
    ctx.onTestFailed(() => {
      const lines = readFileSync(file).subarray(start).toString('utf8').split('\n').filter((l) => l !== '');
      if (lines.length === 0) {
        console.error(`no service log lines during this test (log: ${file})`);
        return;
      }
      const shown = lines.slice(-SHOWN_ON_FAILURE);
      const what = shown.length < lines.length ? `the last ${shown.length} of ${lines.length}` : `all ${lines.length}`;
      console.error(`service log lines during this test (${what}; log: ${file}):\n${shown.join('\n')}`);
    });
  });
}
