/**
 * One PostgreSQL database per worker, for FerretDB's PostgreSQL handler
 * (`DBAAS_DB_BACKEND=postgresql`, the process runtime).
 *
 * The PostgreSQL server is shared (scripts/setup.sh starts one per checkout,
 * `DBAAS_PG_URL`); each worker gets a database of its own, so "one database
 * server per worker" holds where it matters: no worker reads or writes another's
 * data, and removing a worker drops its database. A worker's directory
 * (`<dataDir>/<namespace>/<id>/db/`) keeps FerretDB's state and a marker,
 * `postgresql.json`, naming the database: the directory still says whether a
 * worker has data (the orchestrator's DBAAS_CLUSTER_DATA_MISSING check), and a
 * marker whose database is gone is an error at start, never an empty restart.
 *
 * Every database gets {@link COMPANION_INDEX_SQL}: FerretDB 1.24 creates its
 * indexes as btrees but queries by containment (`_jsonb -> 'f' @> '"v"'`),
 * which only a GIN index answers; without these every lookup is a scan.
 * Measured in docs/BENCHMARKS.md ("The database server behind each worker").
 *
 * Talks to PostgreSQL through `psql` (Debian's postgresql-client, installed with
 * the server): no driver in the orchestrator for a handful of statements.
 */
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { readJsonFile, writeFileAtomic } from '../../common/state-file.js';

/** Written into a worker's `db/` directory once its database exists. */
export const PG_MARKER = 'postgresql.json';

export interface PgMarker {
  /** The database's name on the server. */
  database: string;
  /** What FerretDB connects to (`--postgresql-url`). */
  url: string;
}

/**
 * Event triggers that give every single-field btree index FerretDB creates on
 * a user table a GIN (jsonb_path_ops) twin on the same expression, and drop the
 * twin with it. Idempotent. FerretDB does not see them (listIndexes shows its
 * own); they change no result, since FerretDB filters the rows it gets again.
 */
export const COMPANION_INDEX_SQL = String.raw`
CREATE OR REPLACE FUNCTION dbaas_companion_index() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE
  cmd record;
  expr text;
  tbl regclass;
BEGIN
  FOR cmd IN SELECT objid FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE INDEX' AND object_type = 'index' LOOP
    expr := NULL;
    SELECT pg_get_indexdef(i.indexrelid, 1, false), i.indrelid::regclass INTO expr, tbl
      FROM pg_index i
      JOIN pg_class ic ON ic.oid = i.indexrelid
      JOIN pg_am am ON am.oid = ic.relam
      JOIN pg_class tc ON tc.oid = i.indrelid
      WHERE i.indexrelid = cmd.objid AND am.amname = 'btree' AND i.indkey[0] = 0
        AND tc.relname NOT LIKE '\_ferretdb\_%';
    -- One top-level field only (_jsonb -> 'f'): FerretDB pushes no dotted path down.
    IF expr ~ '^\(*_jsonb -> ''' AND array_length(string_to_array(expr, ' -> '), 1) = 2 THEN
      -- fastupdate off: a pending list (up to 4 MB of unsorted entries) is read by every lookup
      -- until a vacuum merges it: 2.4 ms instead of 0.03 ms after 100,000 inserts.
      EXECUTE format('CREATE INDEX %I ON %s USING gin ((%s) jsonb_path_ops) WITH (fastupdate = off)', 'dbaas_gin_' || cmd.objid, tbl, expr);
    END IF;
  END LOOP;
END $$;

CREATE OR REPLACE FUNCTION dbaas_companion_index_drop() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE
  obj record;
BEGIN
  FOR obj IN SELECT objid, schema_name FROM pg_event_trigger_dropped_objects() WHERE object_type = 'index' LOOP
    EXECUTE format('DROP INDEX IF EXISTS %I.%I', obj.schema_name, 'dbaas_gin_' || obj.objid);
  END LOOP;
END $$;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'dbaas_companion_index') THEN
    CREATE EVENT TRIGGER dbaas_companion_index ON ddl_command_end WHEN TAG IN ('CREATE INDEX')
      EXECUTE FUNCTION dbaas_companion_index();
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'dbaas_companion_index_drop') THEN
    CREATE EVENT TRIGGER dbaas_companion_index_drop ON sql_drop WHEN TAG IN ('DROP INDEX')
      EXECUTE FUNCTION dbaas_companion_index_drop();
  END IF;
END $$;
`;

const PSQL_TIMEOUT_MS = 30_000;

/** The newest `psql` under Debian's /usr/lib/postgresql/<version>/bin, else `psql` from PATH. */
export function findPsql(): string {
  const base = '/usr/lib/postgresql';
  if (existsSync(base)) {
    const versions = readdirSync(base)
      .filter((v) => existsSync(path.join(base, v, 'bin/psql')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return path.join(base, versions[0], 'bin/psql');
  }
  return 'psql';
}

/** A PostgreSQL identifier (database name) for a worker: `<namespace>_<id>`, shortened with a hash past 63 bytes. */
export function workerDatabaseName(namespace: string, id: string): string {
  const name = `${namespace}_${id}`;
  if (name.length <= 63) return name;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 8);
  return `${namespace.slice(0, Math.max(1, 63 - id.length - 10))}_${hash}_${id}`.slice(0, 63);
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function quoteLiteral(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

/**
 * FerretDB's connection pool for one worker's database: `pool_max_conns=128`
 * unless the URL sets it. FerretDB 1.24 caps its pool at 50 connections, and an
 * update holds one (the query that finds the documents) while it waits for
 * another (the transaction that writes them): 50 or more concurrent updates
 * deadlock the pool for good (seen here: the benchmark's direct path, 64
 * concurrent `updateOne`s, stalled with 50 idle connections). The workers send
 * one write at a time; a client of the database straight is safe below 128.
 */
export const FERRETDB_POOL_MAX_CONNS = 128;

/** `url` with FerretDB's pool size (see {@link FERRETDB_POOL_MAX_CONNS}). */
export function ferretdbUrl(url: string): string {
  const u = new URL(url);
  if (!u.searchParams.has('pool_max_conns')) u.searchParams.set('pool_max_conns', String(FERRETDB_POOL_MAX_CONNS));
  return u.toString();
}

/** The URL of database `name` on the server `adminUrl` points at. */
export function databaseUrl(adminUrl: string, name: string): string {
  const u = new URL(adminUrl);
  u.pathname = `/${encodeURIComponent(name)}`;
  return u.toString();
}

/** A spare database's file (spare-databases.ts): its marker, and `making` until the database exists. */
export interface SpareFile extends PgMarker {
  making?: boolean;
}

const SPARE_FILE = /^spare-[0-9a-f]+\.json$/;
/** A removed worker's database whose drop failed (pending-drops.ts), kept until a retry drops it. */
const DROP_FILE = /^drop-[0-9a-f]+\.json$/;

/** A marker file (a worker's, or a spare's with its `making`); undefined when absent or not one. */
export function readSpare(file: string): SpareFile | undefined {
  const m = readJsonFile<Partial<SpareFile> | null>(file);
  return typeof m?.database === 'string' && typeof m.url === 'string' ? { database: m.database, url: m.url, ...(m.making ? { making: true } : {}) } : undefined;
}

/** The spare databases' files in `nsDir` (`<dataDir>/<namespace>`) and what they name, made or being made. */
export function spareMarkers(nsDir: string): Array<PgMarker & { file: string }> {
  return markersIn(nsDir, SPARE_FILE);
}

/** The databases of removed workers still to be dropped (`drop-*.json` in `nsDir`, pending-drops.ts). */
export function dropMarkers(nsDir: string): Array<PgMarker & { file: string }> {
  return markersIn(nsDir, DROP_FILE);
}

function markersIn(nsDir: string, pattern: RegExp): Array<PgMarker & { file: string }> {
  if (!existsSync(nsDir)) return [];
  return readdirSync(nsDir)
    .filter((f) => pattern.test(f))
    .flatMap((f) => {
      const m = readSpare(path.join(nsDir, f));
      return m ? [{ database: m.database, url: m.url, file: path.join(nsDir, f) }] : [];
    });
}

export function readMarker(dbDir: string): PgMarker | undefined {
  const m = readSpare(path.join(dbDir, PG_MARKER));
  return m && { database: m.database, url: m.url };
}

/**
 * Creates, checks and drops workers' databases on one PostgreSQL server.
 * Every method may throw when the server does not answer (`psql` fails).
 */
export class PostgresDatabases {
  private readonly psql: string;

  constructor(
    private readonly opts: {
      /** A superuser connection (`DBAAS_PG_URL`). */
      adminUrl: string;
      namespace: string;
      psql?: string;
    },
  ) {
    this.psql = opts.psql ?? findPsql();
  }

  /** Runs SQL on the admin connection; returns its rows, one per line. */
  query(sql: string): Promise<string> {
    return this.run(this.opts.adminUrl, sql);
  }

  private async run(url: string, sql: string): Promise<string> {
    const child = promisify(execFile)(this.psql, ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', url, '-f', '-'], {
      timeout: PSQL_TIMEOUT_MS,
    });
    child.child.stdin?.end(sql);
    try {
      return (await child).stdout.trim();
    } catch (err) {
      const e = err as Error & { stderr?: string };
      throw new Error(`psql: ${(e.stderr ?? e.message).trim().split('\n').slice(-2).join(' ')}`);
    }
  }

  /**
   * The worker's database, for FerretDB's `--postgresql-url`: created (with the
   * companion-index triggers) the first time and recorded in `dbDir`'s marker;
   * afterwards only checked. Throws when the marker names a database that no
   * longer exists: restarting that worker on an empty database would lose data.
   */
  async ensure(id: string, dbDir: string): Promise<string> {
    const marker = readMarker(dbDir);
    if (marker) {
      if (!(await this.exists(marker.url, marker.database))) {
        throw new Error(`the PostgreSQL database ${marker.database} of worker ${id} is gone (recorded in ${path.join(dbDir, PG_MARKER)}); its data is lost`);
      }
      return marker.url;
    }
    const database = workerDatabaseName(this.opts.namespace, id);
    const url = this.urlOf(id, dbDir);
    // A database of that name without a marker is not this worker's (another checkout?): CREATE fails, and so does the start.
    await this.create(database, url, this.commentSql(database, id, dbDir));
    writeFileAtomic(path.join(dbDir, PG_MARKER), JSON.stringify({ database, url } satisfies PgMarker));
    return url;
  }

  /**
   * Makes database `database` (at `url`) with the companion-index triggers, and `comment` (SQL run
   * right after the CREATE). One psql for all (\connect to the new database for the triggers): each
   * psql costs 0.1-0.2 s on a busy machine (issue 16).
   */
  async create(database: string, url: string, comment: string): Promise<void> {
    await this.run(this.opts.adminUrl, `CREATE DATABASE ${quoteIdent(database)};\n${comment}\n\\connect ${quoteLiteral(url.replaceAll('\\', '\\\\'))}\n${COMPANION_INDEX_SQL}`);
  }

  /** The comment a worker's database carries: whose it is, and its data directory (what {@link dropOrphanDatabases} reads). */
  commentSql(database: string, id: string, dbDir: string, what = `worker ${id}`): string {
    return `COMMENT ON DATABASE ${quoteIdent(database)} IS ${quoteLiteral(`dbaas ${what} of namespace ${this.opts.namespace}, data directory ${dbDir}`)};`;
  }

  /** The URL of database `database` on this server. */
  urlOfDatabase(database: string): string {
    return databaseUrl(this.opts.adminUrl, database);
  }

  /** The URL {@link ensure} returns for this worker, known before its database exists (the worker is started meanwhile). */
  urlOf(id: string, dbDir: string): string {
    return readMarker(dbDir)?.url ?? this.urlOfDatabase(workerDatabaseName(this.opts.namespace, id));
  }

  private async exists(url: string, database: string): Promise<boolean> {
    const out = await this.run(databaseUrl(url, 'postgres'), `SELECT 1 FROM pg_database WHERE datname = ${quoteLiteral(database)};`);
    return out === '1';
  }

  /**
   * Whether the marker's database exists, synchronously (for `hasData`); undefined
   * when the server does not answer.
   */
  existsSync(marker: PgMarker): boolean | undefined {
    const r = spawnSync(this.psql, ['-X', '-q', '-A', '-t', '-d', databaseUrl(marker.url, 'postgres'), '-c', `SELECT 1 FROM pg_database WHERE datname = ${quoteLiteral(marker.database)}`], {
      timeout: 10_000,
      encoding: 'utf8',
    });
    if (r.status !== 0) return undefined;
    return r.stdout.trim() === '1';
  }

  /** Drops the marker's database (closing FerretDB's leftover connections). Idempotent. */
  async drop(marker: PgMarker): Promise<void> {
    await this.run(databaseUrl(marker.url, 'postgres'), `DROP DATABASE IF EXISTS ${quoteIdent(marker.database)} WITH (FORCE);`);
  }
}

/**
 * Drops the PostgreSQL databases that the workers under `nsDir`
 * (`<dataDir>/<namespace>`) name in their markers, for a teardown or a test's
 * cleanup; the directories stay for the caller to delete. Returns the names
 * dropped. Idempotent; throws when the server does not answer.
 */
export async function dropWorkerDatabases(nsDir: string, psql = findPsql()): Promise<string[]> {
  if (!existsSync(nsDir)) return [];
  const dropped: string[] = [];
  for (const entry of readdirSync(nsDir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const marker = readMarker(path.join(nsDir, entry.name, 'db'));
    if (!marker) continue;
    await new PostgresDatabases({ adminUrl: marker.url, namespace: '', psql }).drop(marker);
    dropped.push(marker.database);
  }
  // The spare databases made ahead for new workers (spare-databases.ts), made or being made.
  for (const spare of spareMarkers(nsDir)) {
    await new PostgresDatabases({ adminUrl: spare.url, namespace: '', psql }).drop(spare);
    dropped.push(spare.database);
  }
  // Removed workers' databases whose drop failed (pending-drops.ts): done with once dropped.
  for (const pending of dropMarkers(nsDir)) {
    await new PostgresDatabases({ adminUrl: pending.url, namespace: '', psql }).drop(pending);
    rmSync(pending.file, { force: true });
    dropped.push(pending.database);
  }
  return dropped;
}

/**
 * Drops the worker databases on the server at `adminUrl` whose data directory
 * (recorded in the database's comment when it was created) is under `under`
 * and no longer exists: what a test run or a benchmark left behind when its
 * temporary directory went without a teardown. A database whose directory
 * still exists is never touched. Returns the names dropped.
 */
export async function dropOrphanDatabases(adminUrl: string, under: string, psql = findPsql()): Promise<string[]> {
  const dbs = new PostgresDatabases({ adminUrl, namespace: '', psql });
  const rows = await dbs.query(`SELECT datname || '|' || shobj_description(oid, 'pg_database') FROM pg_database WHERE shobj_description(oid, 'pg_database') LIKE 'dbaas worker %';`);
  const prefix = path.resolve(under) + path.sep;
  const dropped: string[] = [];
  for (const row of rows.split('\n')) {
    const [database, comment] = [row.slice(0, row.indexOf('|')), row.slice(row.indexOf('|') + 1)];
    const dir = /, data directory (.+)$/.exec(comment)?.[1];
    if (!database || !dir || !dir.startsWith(prefix) || existsSync(dir)) continue;
    await dbs.drop({ database, url: databaseUrl(adminUrl, database) });
    dropped.push(database);
  }
  return dropped;
}
