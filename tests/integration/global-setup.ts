/**
 * Runs once before the integration tests: makes sure the worker is built and the
 * database binary is known. The services themselves are started by
 * scripts/setup.sh (`npm test` runs it first).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { canConnect } from '../../common/probes.js';
import { dropOrphanDatabases } from '../../orchestrator/runtimes/postgresql-databases.js';
import { stopHaPlatformOf } from './ha-platform.js';

const root = path.resolve(import.meta.dirname, '../..');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

export default async function setup(): Promise<() => Promise<void>> {
  // A fresh directory for this run's service logs (see log-files.ts).
  const logDir = process.env.DBAAS_TEST_LOG_DIR ?? path.join(root, '.dbaas/test-logs');
  if (logDir) {
    rmSync(logDir, { recursive: true, force: true });
    mkdirSync(logDir, { recursive: true });
  }
  const built = path.join(root, 'dist/worker/main.js');
  const sources = Math.max(...['worker', 'common', 'orchestrator', 'client'].map((d) => newestMtime(path.join(root, d))));
  if (!existsSync(built) || statSync(built).mtimeMs < sources) {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  }
  const envFile = path.join(root, '.dbaas/runtime.env');
  if (!process.env.DBAAS_DB_BIN && existsSync(envFile)) {
    for (const line of readFileSync(envFile, 'utf8').split('\n')) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
      if (m?.[1] && m[2] !== undefined) process.env[m[1]] = m[2].replace(/^'(.*)'$/, '$1');
    }
  }
  // Databases of earlier runs' workers whose temporary directories are gone (a test that
  // deleted its data directory on purpose, a run killed halfway): PostgreSQL keeps them otherwise.
  if (process.env.DBAAS_PG_URL) await dropOrphanDatabases(process.env.DBAAS_PG_URL, os.tmpdir()).catch(() => []);
  const missing: string[] = [];
  if (!process.env.DBAAS_DB_BIN) missing.push('DBAAS_DB_BIN (FerretDB or mongod)');
  if (!(await canConnect(5672))) missing.push('RabbitMQ on 127.0.0.1:5672');
  if (!(await canConnect(2181))) missing.push('ZooKeeper on 127.0.0.1:2181');
  if (missing.length > 0) {
    throw new Error(`integration tests need ${missing.join(', ')}: run them with \`npm test\`, which sets these up`);
  }
  // The HA platform platform-ha.test.ts started, if its process died before its own afterAll stopped it
  // (its marker names this process, the parent of the test files' forks).
  return async () => {
    if (await stopHaPlatformOf(process.pid)) process.stdout.write('[global teardown] stopped the HA platform this run started\n');
  };
}
