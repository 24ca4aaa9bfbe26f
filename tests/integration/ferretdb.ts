/**
 * One FerretDB of its own on the PostgreSQL server `npm test` sets up
 * (DBAAS_PG_URL), for tests of worker code against the real storage without a
 * cluster. `available` is false where there is none (DBAAS_DB_BACKEND=sqlite).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import { ferretdbUrl, PostgresDatabases, readMarker } from '../../orchestrator/runtimes/postgresql-databases.js';
import { eventually } from './harness.js';
import { freePort } from './infra.js';

const pgUrl = process.env.DBAAS_PG_URL;
const dbBin = process.env.DBAAS_DB_BIN ?? '';

/** Whether FerretDB on PostgreSQL is set up for tests. */
export const ferretdbOnPostgres = Boolean(pgUrl) && path.basename(dbBin).startsWith('ferretdb');

export interface TestFerretDb {
  /** The MongoDB wire address. */
  mongoUrl: string;
  /** The PostgreSQL database FerretDB keeps the data in. */
  pgUrl: string;
  /** A client connected to it. */
  mongo: MongoClient;
  close(): Promise<void>;
}

/** Starts FerretDB on a PostgreSQL database of its own (`prefix` names it) and waits until it answers. */
export async function startFerretDb(prefix: string): Promise<TestFerretDb> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `dbaas-${prefix}-`));
  const databases = new PostgresDatabases({ adminUrl: pgUrl ?? '', namespace: `${prefix}-${randomBytes(3).toString('hex')}` });
  const url = await databases.ensure('w1', dir);
  const port = await freePort();
  const ferret: ChildProcess = spawn(dbBin, [`--handler=postgresql`, `--postgresql-url=${ferretdbUrl(url)}`, `--listen-addr=127.0.0.1:${port}`, `--state-dir=${dir}`, '--debug-addr=-', '--telemetry=disable', '--log-level=warn'], {
    stdio: 'ignore',
  });
  const mongoUrl = `mongodb://127.0.0.1:${port}/`;
  const mongo = new MongoClient(mongoUrl, { serverSelectionTimeoutMS: 1000 });
  await eventually(() => mongo.connect().then(() => true, () => false), 30_000, 'FerretDB answering');
  return {
    mongoUrl,
    pgUrl: url,
    mongo,
    close: async () => {
      await mongo.close();
      ferret.kill('SIGKILL');
      const marker = readMarker(dir);
      if (marker) await databases.drop(marker);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whether a FerretDB binary is set up (it can run on SQLite, as the docker and swarm runtimes' workers do). */
export const ferretdbBinary = path.basename(dbBin).startsWith('ferretdb');

/** Starts FerretDB on SQLite in a directory of its own (`prefix` names it) and waits until it answers. */
export async function startFerretDbOnSqlite(prefix: string): Promise<{ mongoUrl: string; close(): Promise<void> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `dbaas-${prefix}-`));
  const port = await freePort();
  const ferret: ChildProcess = spawn(dbBin, ['--handler=sqlite', `--sqlite-url=file:${dir}/`, `--listen-addr=127.0.0.1:${port}`, `--state-dir=${dir}`, '--debug-addr=-', '--telemetry=disable', '--log-level=warn'], {
    stdio: 'ignore',
  });
  const mongoUrl = `mongodb://127.0.0.1:${port}/`;
  const mongo = new MongoClient(mongoUrl, { serverSelectionTimeoutMS: 1000 });
  await eventually(() => mongo.connect().then(() => true, () => false), 30_000, 'FerretDB on SQLite answering');
  await mongo.close();
  return {
    mongoUrl,
    close: async () => {
      ferret.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
