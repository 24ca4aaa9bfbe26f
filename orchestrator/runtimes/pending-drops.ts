/**
 * Removed workers' PostgreSQL databases whose drop failed (the server down or
 * not answering when the worker was removed), dropped later instead of left
 * behind: a long-running service replaced workers during a PostgreSQL outage and
 * kept every one of their databases until a teardown (found by fault runs).
 *
 * Before a drop the database's {@link PgMarker} is written to a file
 * `drop-<hex>.json` in the namespace's data directory (`<dataDir>/<namespace>/`,
 * beside the workers' directories and the spare-*.json files), and removed once
 * the drop succeeded. A failed drop leaves the file: it is retried with capped
 * exponential backoff while the runtime runs, and at the next start (`resume`,
 * called when the runtime adopts its workers), by whichever orchestrator of the
 * namespace gets there first (`DROP DATABASE IF EXISTS` is idempotent). A
 * teardown drops what is still named there (`dropWorkerDatabases`).
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { Backoff } from '../../common/backoff.js';
import type { Logger } from '../../common/logger.js';
import { writeFileAtomic } from '../../common/state-file.js';
import { dropMarkers, type PgMarker, type PostgresDatabases } from './postgresql-databases.js';

/** The first retry after a failed drop, doubling up to {@link RETRY_MAX_MS}. */
export const RETRY_INITIAL_MS = 1000;
const RETRY_MAX_MS = 60_000;

export class PendingDrops {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private paused = false;
  private readonly backoff = new Backoff(RETRY_INITIAL_MS, RETRY_MAX_MS);

  constructor(
    private readonly opts: {
      postgres: PostgresDatabases;
      /** `<dataDir>/<namespace>`. */
      nsDir: string;
      logger: Logger;
    },
  ) {}

  /**
   * Drops `marker`'s database, remembered first: resolves once it is dropped, or
   * once a failed drop is remembered for a retry (the caller may delete the
   * worker's directory either way). Throws only when the file cannot be written.
   */
  async drop(marker: PgMarker): Promise<void> {
    const file = path.join(this.opts.nsDir, `drop-${randomBytes(4).toString('hex')}.json`);
    writeFileAtomic(file, JSON.stringify({ database: marker.database, url: marker.url } satisfies PgMarker));
    if (await this.tryDrop({ ...marker, file })) return;
    this.schedule(this.backoff.next());
  }

  /** Drops what earlier runs left to drop, now (the runtime starts or leads again), and retries from then on. */
  resume(): void {
    this.paused = false;
    if (dropMarkers(this.opts.nsDir).length > 0) this.schedule(0);
  }

  /** Stops retrying (the runtime closes or leaves the workers to another orchestrator); waits for a retry under way. */
  async pause(): Promise<void> {
    this.paused = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private async tryDrop(m: PgMarker & { file: string }): Promise<boolean> {
    try {
      await this.opts.postgres.drop(m);
    } catch (err) {
      this.opts.logger.warn({ database: m.database, err: (err as Error).message }, 'could not drop a removed worker\'s PostgreSQL database; retrying later');
      return false;
    }
    rmSync(m.file, { force: true });
    this.opts.logger.info({ database: m.database }, 'removed worker\'s PostgreSQL database dropped');
    return true;
  }

  private schedule(delayMs: number): void {
    if (this.paused || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.running) void this.running.then(() => this.schedule(0)); // files remembered meanwhile
      else this.running = this.retry().finally(() => (this.running = undefined));
    }, delayMs);
    this.timer.unref();
  }

  private async retry(): Promise<void> {
    let failed = false;
    for (const m of dropMarkers(this.opts.nsDir)) {
      if (this.paused) return;
      if (!(await this.tryDrop(m))) failed = true;
    }
    if (failed) this.schedule(this.backoff.next());
    else this.backoff.reset();
  }
}
