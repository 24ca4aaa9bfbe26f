/**
 * A new slave's side of the stream copy on FerretDB/PostgreSQL (`DBAAS_WORKER_PG_URL`,
 * snapshot.ts "Stream"): a part's rows, FerretDB's own `_jsonb` read by the master
 * (pg-snapshot.ts), are written straight into this worker's FerretDB tables
 * (pg-layout.ts copyRows), one statement per table and part, instead of through
 * FerretDB's inserts (about ×10 the rate on this machine; docs/BENCHMARKS.md).
 * Each table is created through FerretDB first, so its metadata and indexes are
 * FerretDB's own.
 */
import pg from 'pg';
import { copyRows, rememberTables, tableIn, withTables } from './pg-layout.js';
import type { StreamRows } from './pg-snapshot.js';

export class RowCopier {
  /** Its table locations remembered (pg-layout.ts rememberTables) for the rest of the copy. */
  private pool: pg.Pool | undefined;

  constructor(
    private readonly url: string,
    private readonly dbName: string,
    /** Creates a table through FerretDB if it does not exist (Tables.ensureTable). */
    private readonly ensureTable: (table: string) => Promise<void>,
  ) {}

  private open(): pg.Pool {
    if (this.pool === undefined) {
      this.pool = new pg.Pool({ connectionString: this.url, max: 1, idleTimeoutMillis: 10_000, application_name: 'dbaas-copy' });
      // An idle client's error must not end the worker: the next part's query fails or reconnects.
      this.pool.on('error', () => undefined);
      rememberTables(this.pool);
    }
    return this.pool;
  }

  /**
   * Connects ahead of the first part (a new PostgreSQL backend is a process started, slow on a
   * busy server), while the slave waits for other things. A failure is the first part's to see.
   */
  warm(): void {
    void this.open()
      .connect()
      .then((client) => client.release())
      .catch(() => undefined);
  }

  /** Writes the rows (ids already there are skipped); returns how many were written. */
  async copy(rows: StreamRows): Promise<number> {
    const pool = this.open();
    const byTable = new Map<string, string[]>();
    for (const r of rows) {
      const list = byTable.get(r.table);
      if (list) list.push(r.jsonb);
      else byTable.set(r.table, [r.jsonb]);
    }
    // Where every table's rows go, asked at once: a table to make first (through FerretDB, on its own connections)
    // is then made while the rows of the tables before it are written, not after (issue 16: a writer's table beside
    // the data copied). Each is awaited in turn; none is left to reject unobserved.
    const places = new Map([...byTable.keys()].map((table) => [table, this.into(pool, table)]));
    for (const place of places.values()) place.catch(() => undefined);
    let written = 0;
    for (const [table, jsonbs] of byTable) {
      let place = places.get(table);
      // A table gone (a clear, which also restarts the stream) and back under FerretDB: withTables looks it up again, once.
      written += await withTables(pool, async () => {
        const into = await (place ?? this.into(pool, table));
        place = undefined;
        return copyRows(pool, into, jsonbs);
      });
    }
    return written;
  }

  /** Where a table's rows go, created through FerretDB first when it is not there. */
  private async into(pool: pg.Pool, table: string): Promise<string> {
    let into = await tableIn(pool, this.dbName, table);
    if (into === undefined) {
      await this.ensureTable(table);
      into = await tableIn(pool, this.dbName, table);
    }
    if (into === undefined) throw new Error(`table ${table} has no FerretDB table to copy into`);
    return into;
  }

  /** Ends the connection (the copy is done); a later copy opens a new one. */
  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.end().catch(() => undefined);
  }
}
