/**
 * Spare PostgreSQL databases (issue 16: a new slave's start): empty worker
 * databases, triggers included, made ahead by the process runtime, so a new
 * worker takes one instead of waiting for `CREATE DATABASE` (0.1 s idle, 0.4 s
 * and more of both cores' time under a writer). The process runtime also has the
 * worker's own collections made in each (`prepare`: common/worker-collections.ts),
 * through a FerretDB started for that alone, so a new slave runs no DDL of its own
 * before its copy.
 *
 * Each spare is a file `spare-<slot>.json` in the namespace's data directory
 * (`<dataDir>/<namespace>/`, beside the workers' directories, so it is no worker
 * id on disk; slot 0 to DBAAS_SPARE_DATABASES-1, created exclusively, so the
 * count holds per namespace however many orchestrators top up), holding the {@link PgMarker} of its database and `making: true`
 * until the database exists. A worker takes a spare by renaming the file to its
 * own `db/postgresql.json` (atomic: two orchestrators sharing a data directory
 * never take the same one); from then on it is that worker's database like any
 * other. The files outlive the orchestrator, so a restarted service takes the
 * spares it made before; a teardown drops them (`dropWorkerDatabases`), and a
 * database whose namespace directory is gone is an orphan (`dropOrphanDatabases`:
 * the comment names that directory).
 *
 * The pool is topped up off the critical path: after a start, once no start has
 * been under way for {@link TOP_UP_DELAY_MS}, one `CREATE DATABASE` at a time.
 */
import { randomBytes } from 'node:crypto';
import { renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../common/logger.js';
import { writeFileAtomic } from '../../common/state-file.js';
import { PG_MARKER, type PgMarker, type PostgresDatabases, readSpare, type SpareFile, spareMarkers, workerDatabaseName } from './postgresql-databases.js';

/** How long after the last start the pool waits before it makes a database (a start's own steps go first). */
export const TOP_UP_DELAY_MS = 1000;

/** A file still `making` after this long was left by an orchestrator that died meanwhile (psql's own timeout is 30 s). */
const STALE_MAKING_MS = 120_000;

export class SpareDatabases {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private closed = false;
  /** Spares taken since the last top-up: their comment still names the pool, not the worker. */
  private readonly taken: Array<{ database: string; id: string; dbDir: string }> = [];
  /** Files this runtime is making now (not stale, whoever looks). */
  private readonly making = new Set<string>();

  constructor(
    private readonly opts: {
      postgres: PostgresDatabases;
      namespace: string;
      /** `<dataDir>/<namespace>`. */
      nsDir: string;
      /** How many spares to keep (`DBAAS_SPARE_DATABASES`). */
      size: number;
      /** True while a worker's start is under way: the pool waits for it. */
      busy: () => boolean;
      /**
       * Makes what a worker would make first in a new database (the process runtime: its own collections,
       * common/worker-collections.ts), once the database exists; a spare it fails on is dropped.
       */
      prepare?: (url: string) => Promise<void>;
      logger: Logger;
    },
  ) {}

  /**
   * A made spare for worker `id`, moved to its `dbDir` as its marker; undefined when
   * none is ready. Synchronous: the worker's URL is known at once.
   */
  take(id: string, dbDir: string): PgMarker | undefined {
    if (this.opts.size === 0) return undefined;
    for (const m of spareMarkers(this.opts.nsDir)) {
      if (readSpare(m.file)?.making) continue;
      const target = path.join(dbDir, PG_MARKER);
      try {
        renameSync(m.file, target);
      } catch {
        continue; // taken by another orchestrator meanwhile
      }
      const marker: PgMarker = { database: m.database, url: m.url };
      writeFileAtomic(target, JSON.stringify(marker));
      this.taken.push({ database: m.database, id, dbDir });
      return marker;
    }
    return undefined;
  }

  /** Tops the pool up once no start has been under way for {@link TOP_UP_DELAY_MS} (called after every start). */
  schedule(): void {
    if (this.opts.size === 0 || this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.opts.busy()) return; // that start schedules again when it ends
      if (!this.running) this.running = this.topUp().finally(() => (this.running = undefined));
    }, TOP_UP_DELAY_MS);
    this.timer.unref();
  }

  private async topUp(): Promise<void> {
    const { postgres, logger } = this.opts;
    try {
      await this.fixComments();
      this.forgetStale();
      while (!this.closed && !this.opts.busy() && spareMarkers(this.opts.nsDir).length < this.opts.size) {
        const id = `spare-${randomBytes(4).toString('hex')}`;
        const database = workerDatabaseName(this.opts.namespace, id);
        const url = postgres.urlOfDatabase(database);
        // Written first, so a teardown meanwhile drops the database too (DROP … IF EXISTS).
        const file = this.claimSlot({ database, url, making: true });
        if (!file) break; // every slot is being filled or full (by another orchestrator of the namespace)
        this.making.add(file);
        const started = Date.now();
        try {
          await postgres.create(database, url, postgres.commentSql(database, id, this.opts.nsDir, 'worker (spare)'));
          await this.opts.prepare?.(url).catch(async (err: unknown) => {
            await postgres.drop({ database, url });
            rmSync(file, { force: true });
            throw err;
          });
          if (readSpare(file)?.database !== database) {
            // This orchestrator stood still past STALE_MAKING_MS (SIGSTOP) and another declared the file stale and
            // dropped it (or claimed the slot again): the database is nobody's, and the file is not ours to rewrite.
            await postgres.drop({ database, url });
            break;
          }
          writeFileAtomic(file, JSON.stringify({ database, url } satisfies SpareFile));
        } finally {
          this.making.delete(file);
        }
        logger.info({ database, ms: Date.now() - started }, 'spare PostgreSQL database made');
      }
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'could not make a spare PostgreSQL database; a new worker makes its own');
    }
  }

  /**
   * Creates the first free slot's file, `spare-<slot>.json` (slot 0 to size-1), exclusively: two
   * orchestrators of one namespace (one data directory) that top up at once cannot both make the
   * namespace's last spare (found by fault runs: two spares with DBAAS_SPARE_DATABASES=1). A taken
   * spare's file is renamed away, freeing its slot. Undefined when every slot has a file.
   */
  private claimSlot(content: SpareFile): string | undefined {
    for (let slot = 0; slot < this.opts.size; slot++) {
      const file = path.join(this.opts.nsDir, `spare-${slot.toString(16)}.json`);
      try {
        writeFileAtomic(file, JSON.stringify(content), { exclusive: true });
        return file;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    return undefined;
  }

  /** The comments of the databases taken since the last top-up name their worker (for people; orphans are found either way). */
  private async fixComments(): Promise<void> {
    // One at a time: a taken spare whose worker was removed meanwhile is dropped already (its COMMENT fails), and
    // that must neither stop the others' nor the top-up, which no later start might schedule again.
    for (const t of this.taken.splice(0)) {
      await this.opts.postgres.query(this.opts.postgres.commentSql(t.database, t.id, t.dbDir)).catch((err: unknown) => {
        this.opts.logger.info({ database: t.database, err: (err as Error).message }, 'a taken spare database was not renamed in its comment (dropped meanwhile?)');
      });
    }
  }

  /** Spare files left `making` by an orchestrator that died during the CREATE: their database (if any) is dropped. */
  private forgetStale(): void {
    for (const m of spareMarkers(this.opts.nsDir)) {
      if (this.making.has(m.file) || !readSpare(m.file)?.making) continue;
      let age = 0;
      try {
        age = Date.now() - statSync(m.file).mtimeMs;
      } catch {
        continue;
      }
      if (age < STALE_MAKING_MS) continue;
      void this.opts.postgres
        .drop(m)
        .then(() => rmSync(m.file, { force: true }))
        .catch(() => undefined);
    }
  }

  /** Tops up again after a {@link close} (the runtime adopts the workers again: this orchestrator leads again). */
  reopen(): void {
    this.closed = false;
    this.schedule();
  }

  /** Stops topping up and waits for a CREATE under way (its database is then a spare like the others). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
