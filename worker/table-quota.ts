/**
 * The most tables one database may hold (`DBAAS_MAX_TABLES`), enforced by the
 * master as it builds writes (MasterRole.stage1): a write whose ops would put a
 * document in, or an index on, a table its database does not hold yet, when the
 * database already holds that many, is refused whole with 409
 * DBAAS_TABLE_LIMIT_REACHED and changes nothing.
 *
 * Tables come into being only through the master's writes, so it counts them in
 * memory: each database's tables are listed once (the first write to it since
 * this worker became master, or since a `clear` of it), then every table a
 * write admitted here creates is added. A write refused afterwards by the
 * storage (void-batch.ts) may leave its table counted until the next listing:
 * the count may run ahead of the data, never behind it.
 */
import type { SyncOp } from '../common/messages.js';
import { splitTable } from '../common/databases.js';
import { DbaasError } from '../common/errors.js';

export class TableQuota {
  /** database → the qualified names of its tables. */
  private readonly known = new Map<string, Set<string>>();

  constructor(
    private readonly max: number,
    /** A database's tables as the storage lists them, by qualified name (Tables.tablesOf). */
    private readonly list: (database: string) => Promise<string[]>,
  ) {}

  /** Admits a built write's ops (counting the tables they create), or throws DBAAS_TABLE_LIMIT_REACHED having counted none. */
  async admit(ops: readonly SyncOp[]): Promise<void> {
    const created = new Map<string, Set<string>>();
    for (const op of ops) {
      if (op.t === 'clear') {
        // Listed again at the next write: by then the clear is applied (the next batch waits for this one's data).
        if (op.database === undefined) this.known.clear();
        else this.known.delete(op.database);
        continue;
      }
      if (op.t !== 'put' && op.t !== 'index') continue;
      const { database } = splitTable(op.table);
      const tables = await this.tablesOf(database);
      if (tables.has(op.table)) continue;
      const adding = created.get(database) ?? new Set<string>();
      adding.add(op.table);
      created.set(database, adding);
      if (tables.size + adding.size > this.max) {
        throw new DbaasError(
          'DBAAS_TABLE_LIMIT_REACHED',
          `database ${JSON.stringify(database)} holds ${tables.size} tables, the most DBAAS_MAX_TABLES (${this.max}) allows; the write would create ${JSON.stringify(splitTable(op.table).table)}; nothing was changed`,
        );
      }
    }
    for (const [database, adding] of created) {
      const tables = await this.tablesOf(database);
      for (const t of adding) tables.add(t);
    }
  }

  private async tablesOf(database: string): Promise<Set<string>> {
    let tables = this.known.get(database);
    if (!tables) {
      tables = new Set(await this.list(database));
      this.known.set(database, tables);
    }
    return tables;
  }
}
