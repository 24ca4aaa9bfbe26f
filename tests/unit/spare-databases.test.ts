/**
 * The spare-database pool's count per namespace when two orchestrators share the
 * data directory (spare-databases.ts): an orchestrator that stood still during its
 * CREATE DATABASE past the stale limit (SIGSTOP in fault runs) neither rewrites
 * the file another one declared stale and claimed again, nor keeps its database.
 * PostgreSQL is a stand-in here (whose CREATE the test finishes when it chooses);
 * the files are real.
 */
import { existsSync, mkdtempSync, rmSync, utimesSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../common/backoff.js';
import { createLogger } from '../../common/logger.js';
import { type PgMarker, type PostgresDatabases, readSpare, spareMarkers } from '../../orchestrator/runtimes/postgresql-databases.js';
import { SpareDatabases, TOP_UP_DELAY_MS } from '../../orchestrator/runtimes/spare-databases.js';

/** A server whose CREATE DATABASE commits when the test says (a DROP … IF EXISTS before that finds nothing). */
class HeldServer {
  readonly live = new Set<string>();
  readonly creating: Array<{ database: string; commit: () => void }> = [];
  urlOfDatabase(database: string): string {
    return `postgres://127.0.0.1:1/${database}`;
  }
  commentSql(): string {
    return '';
  }
  query(): Promise<string> {
    return Promise.resolve('');
  }
  create(database: string): Promise<void> {
    return new Promise((resolve) =>
      this.creating.push({
        database,
        commit: () => {
          this.live.add(database);
          resolve();
        },
      }),
    );
  }
  drop(m: PgMarker): Promise<void> {
    this.live.delete(m.database);
    return Promise.resolve();
  }
}

describe('spare databases of one namespace, two orchestrators', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('a maker stopped past the stale limit drops its database instead of rewriting the slot another claimed: one spare, as configured', async () => {
    const nsDir = mkdtempSync(path.join(os.tmpdir(), 'dbaas-spares-'));
    dirs.push(nsDir);
    const server = new HeldServer();
    const pool = (): SpareDatabases =>
      new SpareDatabases({ postgres: server as unknown as PostgresDatabases, namespace: 'ns', nsDir, size: 1, busy: () => false, logger: createLogger('spares', 'silent') });
    const a = pool();
    const b = pool();

    // A starts making the namespace's one spare, and stands still in its CREATE.
    a.schedule();
    await waitFor(() => Promise.resolve(server.creating.length === 1 || undefined), 10_000, () => new Error('A made no spare'), 20);
    const [file] = spareMarkers(nsDir).map((m) => m.file);
    expect(readSpare(file ?? '')).toMatchObject({ database: server.creating[0]?.database, making: true });

    // Past the stale limit, B declares A's file stale (drops what it names, removes it), then makes the spare itself.
    const past = Date.now() / 1000 - 600;
    utimesSync(file ?? '', past, past);
    b.schedule();
    await waitFor(() => Promise.resolve(!existsSync(file ?? '') || undefined), 10_000, () => new Error('B did not forget the stale file'), 20);
    b.schedule(); // its first top-up saw the file still there (the drop under way)
    await waitFor(() => Promise.resolve(server.creating.length === 2 || undefined), 10_000, () => new Error('B made no spare'), 20);
    const [held, made] = server.creating;
    made?.commit();
    await waitFor(() => Promise.resolve(readSpare(file ?? '')?.making === undefined || undefined), 10_000, () => new Error('B did not finish its spare'), 20);

    // A wakes up: its CREATE commits after B's drop found nothing.
    held?.commit();
    await a.close();
    await b.close();
    expect(spareMarkers(nsDir).map((m) => m.database)).toEqual([made?.database]);
    expect([...server.live]).toEqual([made?.database]);
  });

  it('a taken spare dropped before its comment is fixed (its worker removed at once) does not stop the top-up', async () => {
    const nsDir = mkdtempSync(path.join(os.tmpdir(), 'dbaas-spares-'));
    dirs.push(nsDir);
    const server = new HeldServer();
    // The COMMENT naming the worker fails: the spare's database was dropped with the worker that took it.
    server.query = () => Promise.reject(new Error('ERROR:  database "ns_spare-x" does not exist'));
    const pool = new SpareDatabases({ postgres: server as unknown as PostgresDatabases, namespace: 'ns', nsDir, size: 1, busy: () => false, logger: createLogger('spares', 'silent') });
    pool.schedule();
    await waitFor(() => Promise.resolve(server.creating.length === 1 || undefined), 10_000, () => new Error('no first spare'), 20);
    server.creating[0]?.commit();
    await waitFor(() => Promise.resolve(spareMarkers(nsDir).some((m) => readSpare(m.file)?.making === undefined) || undefined), 10_000, () => new Error('the first spare was not finished'), 20);
    const workerDir = mkdtempSync(path.join(os.tmpdir(), 'dbaas-spare-taker-'));
    dirs.push(workerDir);
    expect(pool.take('w1', workerDir)?.database).toBe(server.creating[0]?.database);
    pool.schedule(); // after the start, as the runtime does
    await waitFor(() => Promise.resolve(server.creating.length === 2 || undefined), 10_000, () => new Error('no spare made after the failed comment'), 20);
    server.creating[1]?.commit();
    await pool.close();
    expect(spareMarkers(nsDir).map((m) => m.database)).toEqual([server.creating[1]?.database]);
  });

  it('a pool closed by detach() makes spares again once reopened (the runtime adopts the workers: its orchestrator leads again)', async () => {
    const nsDir = mkdtempSync(path.join(os.tmpdir(), 'dbaas-spares-'));
    dirs.push(nsDir);
    const server = new HeldServer();
    const pool = new SpareDatabases({ postgres: server as unknown as PostgresDatabases, namespace: 'ns', nsDir, size: 1, busy: () => false, logger: createLogger('spares', 'silent') });
    await pool.close();
    // Closed: a start's schedule() makes nothing (an open pool's top-up begins TOP_UP_DELAY_MS after the call).
    pool.schedule();
    await new Promise((r) => setTimeout(r, TOP_UP_DELAY_MS + 500));
    expect(server.creating).toHaveLength(0);
    pool.reopen();
    await waitFor(() => Promise.resolve(server.creating.length === 1 || undefined), 10_000, () => new Error('the reopened pool made no spare'), 20);
    server.creating[0]?.commit();
    await waitFor(() => Promise.resolve(spareMarkers(nsDir).some((m) => readSpare(m.file)?.making === undefined) || undefined), 10_000, () => new Error('the spare was not finished'), 20);
    await pool.close();
    expect([...server.live]).toEqual([server.creating[0]?.database]);
  });
});
