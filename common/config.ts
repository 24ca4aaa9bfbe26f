/**
 * Configuration: the only module that reads the environment.
 *
 * Every `DBAAS_*` variable is read and validated once; a bad value fails with a
 * {@link ConfigError} listing every problem at once. The result is frozen.
 * Durations end in `Ms`.
 */

import { readFileSync } from 'node:fs';
import { amqpUrlProblem } from './amqp-urls.js';

export type Env = Readonly<Record<string, string | undefined>>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/** Settings every process of a cluster shares. */
export interface ClusterConfig {
  readonly namespace: string;
  readonly amqpUrl: string;
  readonly zkConnect: string;
  readonly zkSessionTimeoutMs: number;
  /**
   * How long a ZooKeeper outage is ridden out: a master keeps applying writes and
   * slaves keep serving reads while ZooKeeper does not answer, for up to this long
   * (common/fencing.ts); past it a master fences itself and a worker starts a new session.
   */
  readonly zkOutageToleranceMs: number;
  readonly logLevel: string;
  /** Worker tuning: set on the orchestrator, handed to every worker it starts. */
  readonly dbName: string;
  readonly readPrefetch: number;
  readonly writePrefetch: number;
  /** How long a slave waits to reach a read's `afterSeq` before a 504. */
  readonly afterSeqWaitMs: number;
  readonly oplogMaxEntries: number;
  readonly oplogMaxAgeMs: number;
  /**
   * The retry horizon: how long a write's requestId is remembered in the request ledger
   * (worker/request-ledger.ts). A retry made within it answers the first result; one made
   * later, when its requestId tells its time, gets 409 DBAAS_WRITE_REQUEST_ID_EXPIRED.
   */
  readonly requestIdTtlMs: number;
  /**
   * Documents per snapshot page a new slave asks for (worker/snapshot.ts). The master reads
   * each page between two write batches; on FerretDB each page is a scan of the table, so
   * few large pages; small ones only to test the copy racing writes.
   */
  readonly snapshotPageDocs: number;
  /**
   * How long a read or write waits for its worker's answer before a 504. Workers
   * know it too: a read's database query gets it as `maxTimeMS`, so a read the
   * client has stopped waiting for does not keep a slave busy.
   */
  readonly requestTimeoutMs: number;
  /**
   * How long a slave's sync queue may stay unused (no consumer) before RabbitMQ
   * deletes it (`x-expires`): the queue of a worker that died while nobody was
   * there to remove it stops filling up with the replication stream.
   */
  readonly syncQueueExpiresMs: number;
  /**
   * `DBAAS_PLATFORM`: `single` (one RabbitMQ node, one ZooKeeper server: classic
   * queues) or `ha` (a RabbitMQ cluster and a ZooKeeper ensemble: the queues that
   * must survive a node are quorum queues, common/topology.ts). Every process of a
   * cluster must agree, so the orchestrator hands it to its workers.
   */
  readonly platform: Platform;
  /**
   * The most tables one database may hold (`DBAAS_MAX_TABLES`): a write that would create
   * one more is refused, 409 DBAAS_TABLE_LIMIT_REACHED. Enforced by the master (worker/table-quota.ts).
   */
  readonly maxTables: number;
  /** Dead-lettered (poison) messages kept for inspection: at most this many bytes … */
  readonly deadLetterMaxBytes: number;
  /** … and for at most this long. */
  readonly deadLetterTtlMs: number;
}

export const PLATFORMS = ['single', 'ha'] as const;
export type Platform = (typeof PLATFORMS)[number];

export const RUNTIME_KINDS = ['process', 'docker', 'swarm'] as const;
export type RuntimeKind = (typeof RUNTIME_KINDS)[number];

export const DB_BACKENDS = ['sqlite', 'postgresql'] as const;
export type DbBackend = (typeof DB_BACKENDS)[number];

export interface OrchestratorConfig extends ClusterConfig {
  readonly port: number;
  readonly host: string;
  /**
   * `DBAAS_ADVERTISE_URL`: where other orchestrators of the namespace reach this
   * one's API (a follower forwards admin actions to the leader there). Default:
   * http://127.0.0.1:<port> when listening on every or the loopback address.
   */
  readonly advertiseUrl: string | undefined;
  readonly runtime: RuntimeKind;
  /**
   * `DBAAS_LOG_FORMAT`: `json` (one JSON object per line), `pretty` (one readable
   * line per entry), or `auto` (the default): pretty when stdout is a terminal, else JSON.
   */
  readonly logFormat: 'auto' | 'json' | 'pretty';
  readonly initialSlaves: number;
  readonly scaleIntervalMs: number;
  readonly readsPerSlave: number;
  readonly minSlaves: number;
  readonly maxSlaves: number;
  readonly adminToken: string | undefined;
  /** Keys for the data endpoints (`DBAAS_API_KEYS`: a comma list, or `@/path/to/file` with one key per line). Empty: open. */
  readonly apiKeys: readonly string[];
  /** The most databases besides `default` (`DBAAS_MAX_DATABASES`): one more is refused, 409 DBAAS_DATABASE_LIMIT_REACHED; 0: none may be created. */
  readonly maxDatabases: number;
  readonly dataDir: string;
  /**
   * `DBAAS_FORCE_NEW_CLUSTER=1`: start an empty cluster even though the namespace
   * records a master whose data is missing (otherwise start-up refuses, so an
   * acknowledged write is never silently dropped by a restart).
   */
  readonly forceNewCluster: boolean;
  /** Path of the database server each worker gets (FerretDB or mongod). */
  readonly dbBin: string | undefined;
  /**
   * `DBAAS_DB_BACKEND`: what each process-runtime worker's FerretDB stores its data in:
   * `sqlite` (a directory per worker) or `postgresql` (a database per worker in the
   * PostgreSQL server at {@link pgUrl}, which answers lookups by `_id` and by indexed
   * fields from an index; docs/DECISIONS.md). `npm start`/`npm test` choose it in
   * scripts/setup.sh (.dbaas/runtime.env); ignored for mongod and the Docker runtime.
   */
  readonly dbBackend: DbBackend;
  /** `DBAAS_PG_URL`: a superuser connection to that PostgreSQL server (`postgres://user@host:port/db`). */
  readonly pgUrl: string | undefined;
  /**
   * `DBAAS_SPARE_DATABASES`: with the `postgresql` backend, how many empty worker databases the
   * process runtime keeps made ahead, so a new worker does not wait for `CREATE DATABASE`
   * (issue 16; orchestrator/runtimes/spare-databases.ts); 0: none.
   */
  readonly spareDatabases: number;
  /**
   * `DBAAS_WORKER_START_NICE`: the process runtime's CPU priority for a starting worker and its database
   * process, from their spawn until the worker serves (10 s at most), -20…0; 0: none. Needs CAP_SYS_NICE
   * (root), else starts run at normal priority (issue 16; orchestrator/runtimes/start-priority.ts).
   */
  readonly workerStartNice: number;
  readonly bodyLimitBytes: number;
  /** Slow clients: a request's headers must arrive within this long, else 408 and the connection is closed. */
  readonly httpHeadersTimeoutMs: number;
  /** Slow clients: a whole request (headers and body) must arrive within this long, else 408 and close. */
  readonly httpRequestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long. */
  readonly httpKeepAliveTimeoutMs: number;
  /** A keep-alive connection is closed after this many requests (0: no limit). */
  readonly httpMaxRequestsPerSocket: number;
  /**
   * `DBAAS_PUBLIC_DOCS=1`: `/docs`, `/docs/json` and the dashboard's page stay open while
   * `DBAAS_API_KEYS` is set (the API calls the page makes still need a key).
   */
  readonly publicDocs: boolean;
  /** How long a write waits for a master to exist before a 503. */
  readonly masterWaitMs: number;
  /** How long a starting worker may go without progress (orchestrator/start-wait.ts). */
  readonly workerStartTimeoutMs: number;
  /**
   * `DBAAS_SLAVE_RESTARTS_IN_PLACE`: how many times within 10 minutes a dead slave is
   * restarted in place (same data and sync queue: it resumes, issue 16) before a fresh
   * slave replaces it; 0: always a fresh slave.
   */
  readonly slaveRestartsInPlace: number;
  /** How often the control loop verifies the replicas (replica checksums at one seq); 0 = never. */
  readonly verifyIntervalMs: number;
  /** How long a verify waits for each replica to reach its checkpoint before calling it not comparable. */
  readonly verifyWaitMs: number;
  /** Docker runtime: the engine's API endpoint, `unix:///path/docker.sock` or `tcp://host:port`. */
  readonly dockerHost: string;
  /** Docker runtime: the image a worker container runs (`node dist/worker/main.js`). */
  readonly dockerWorkerImage: string;
  /** Docker runtime: each worker's database image; serves on 27017 with its data in /data/db. */
  readonly dockerDbImage: string;
  /** Docker runtime: the bridge network every container of the namespace joins (`dbaas-<namespace>`). */
  readonly dockerNetwork: string;
  /** Docker runtime: RabbitMQ and ZooKeeper as seen from inside the containers (loopback becomes `host.docker.internal`). */
  readonly dockerAmqpUrl: string;
  readonly dockerZkConnect: string;
  /** Docker runtime: how long a database container may take to accept connections. */
  readonly dockerDbStartTimeoutMs: number;
  /** Swarm runtime: placement constraints every worker and database service gets (`DBAAS_SWARM_CONSTRAINTS`, comma-separated). */
  readonly swarmConstraints: string[];
}

export const WORKER_ROLES = ['master', 'slave'] as const;
export type WorkerRole = (typeof WORKER_ROLES)[number];

export interface WorkerConfig extends ClusterConfig {
  readonly workerId: string;
  /** The role the worker starts in; a slave may later be promoted. */
  readonly role: WorkerRole;
  /** Term to start with when starting as master; for a slave whose first page was asked for ahead, the term of the master asked. */
  readonly term: number;
  readonly mongoUrl: string;
  /** The URL other workers use to reach this worker's database (snapshots). */
  readonly advertisedMongoUrl: string;
  /**
   * `DBAAS_WORKER_PG_URL`, set by the process runtime when this worker's FerretDB keeps
   * its data in PostgreSQL: this worker's own database there. A master then copies
   * snapshots from one REPEATABLE READ transaction on it (worker/pg-snapshot.ts).
   */
  readonly pgUrl: string | undefined;
  /**
   * `DBAAS_WORKER_SNAPSHOT_ASKED=1`, set by the process runtime for a new slave whose first
   * snapshot page the orchestrator asked for before starting it (common/snapshot-request.ts):
   * the slave waits for that answer instead of asking itself, when its sync queue was there.
   */
  readonly snapshotAsked: boolean;
}

/** Collects problems instead of throwing at the first one. */
class Reader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  str(name: string, fallback: string): string {
    const v = this.env[name];
    return v === undefined || v === '' ? fallback : v;
  }

  optional(name: string): string | undefined {
    const v = this.env[name];
    return v === undefined || v === '' ? undefined : v;
  }

  required(name: string): string {
    const v = this.env[name];
    if (v === undefined || v === '') {
      this.problems.push(`${name} is required`);
      return '';
    }
    return v;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      this.problems.push(`${name}=${JSON.stringify(raw)} must be an integer from ${min} to ${max}`);
      return fallback;
    }
    return n;
  }

  /** A token: at least 8 characters, no white space; or `@/path` to a file holding it (a Docker secret, say). */
  secret(name: string): string | undefined {
    let v = this.optional(name);
    if (v?.startsWith('@')) {
      try {
        v = readFileSync(v.slice(1), 'utf8').trim();
      } catch (err) {
        this.problems.push(`${name}: cannot read ${v.slice(1)}: ${(err as Error).message}`);
        return undefined;
      }
    }
    if (v !== undefined && !/^\S{8,}$/.test(v)) {
      this.problems.push(`${name} must be at least 8 characters with no white space`);
      return undefined;
    }
    return v;
  }

  /** A comma list of tokens, or `@/path` to a file with one per line (blank lines and # comments ignored). */
  keyList(name: string): string[] {
    const raw = this.optional(name);
    if (raw === undefined) return [];
    let text = raw;
    if (raw.startsWith('@')) {
      try {
        text = readFileSync(raw.slice(1), 'utf8');
      } catch (err) {
        this.problems.push(`${name}: cannot read ${raw.slice(1)}: ${(err as Error).message}`);
        return [];
      }
    }
    const keys = text
      .split(raw.startsWith('@') ? /\r?\n/ : ',')
      .map((k) => k.trim())
      .filter((k) => k !== '' && !k.startsWith('#'));
    if (keys.length === 0) this.problems.push(`${name} is set but holds no key`);
    const weak = keys.filter((k) => !/^\S{8,}$/.test(k)).length;
    if (weak > 0) this.problems.push(`${name}: ${weak} key(s) shorter than 8 characters or with white space`);
    return keys;
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const raw = this.str(name, fallback);
    if (!(allowed as readonly string[]).includes(raw)) {
      this.problems.push(`${name}=${JSON.stringify(raw)} must be one of: ${allowed.join(', ')}`);
      return fallback;
    }
    return raw as T;
  }

  match(name: string, fallback: string, re: RegExp, what: string): string {
    const raw = this.str(name, fallback);
    if (!re.test(raw)) this.problems.push(`${name}=${JSON.stringify(raw)} ${what}`);
    return raw;
  }

  done<T extends object>(value: T): Readonly<T> {
    if (this.problems.length > 0) throw new ConfigError(this.problems);
    return Object.freeze(value);
  }
}

/** A PostgreSQL connection URL: `postgres://user@host:port/database`. */
const PG_URL_RE = /^postgres(ql)?:\/\/[^/]+\/?[^/]*$/;
const NAMESPACE_RE = /^[a-z][a-z0-9_-]{0,62}$/;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** A ZooKeeper connect string: `host[:port]` entries separated by commas (an ensemble), optionally followed by a `/chroot`. */
const ZK_CONNECT_RE = /^[^,/:\s]+(:\d{1,5})?(,[^,/:\s]+(:\d{1,5})?)*(\/[^\s]*)?$/;

function readCluster(r: Reader): ClusterConfig {
  // One URL, or several separated by commas (the nodes of a RabbitMQ cluster): common/amqp-urls.ts.
  const amqpUrl = r.str('DBAAS_AMQP_URL', 'amqp://guest:guest@127.0.0.1:5672');
  const amqpProblem = amqpUrlProblem(amqpUrl);
  if (amqpProblem !== undefined) r.problems.push(`DBAAS_AMQP_URL ${amqpProblem}`);
  return {
    namespace: r.match('DBAAS_NAMESPACE', 'dbaas', NAMESPACE_RE, 'must match ^[a-z][a-z0-9_-]{0,62}$'),
    amqpUrl,
    zkConnect: r.match('DBAAS_ZK_CONNECT', '127.0.0.1:2181', ZK_CONNECT_RE, 'must be host:port, or several separated by commas (an ensemble), optionally followed by /chroot'),
    zkSessionTimeoutMs: r.int('DBAAS_ZK_SESSION_TIMEOUT_MS', 2000, 500, 60000),
    zkOutageToleranceMs: r.int('DBAAS_ZK_OUTAGE_TOLERANCE_MS', 30_000, 1000, 600_000),
    logLevel: r.oneOf('DBAAS_LOG_LEVEL', 'info', LOG_LEVELS),
    dbName: r.match('DBAAS_WORKER_DB_NAME', 'dbaas', /^[A-Za-z][A-Za-z0-9_-]{0,62}$/, 'must match ^[A-Za-z][A-Za-z0-9_-]{0,62}$'),
    readPrefetch: r.int('DBAAS_WORKER_READ_PREFETCH', 32, 1, 10000),
    writePrefetch: r.int('DBAAS_WORKER_WRITE_PREFETCH', 64, 1, 10000),
    afterSeqWaitMs: r.int('DBAAS_AFTER_SEQ_WAIT_MS', 2000, 0, 600_000),
    oplogMaxEntries: r.int('DBAAS_OPLOG_MAX_ENTRIES', 100_000, 100, 100_000_000),
    oplogMaxAgeMs: r.int('DBAAS_OPLOG_MAX_AGE_MS', 86_400_000, 60_000, 365 * 86_400_000),
    requestIdTtlMs: r.int('DBAAS_REQUEST_ID_TTL_MS', 600_000, 1000, 7 * 86_400_000),
    snapshotPageDocs: r.int('DBAAS_SNAPSHOT_PAGE_DOCS', 50_000, 10, 1_000_000),
    requestTimeoutMs: r.int('DBAAS_REQUEST_TIMEOUT_MS', 5000, 100, 600_000),
    syncQueueExpiresMs: r.int('DBAAS_SYNC_QUEUE_EXPIRES_MS', 3_600_000, 60_000, 30 * 86_400_000),
    deadLetterMaxBytes: r.int('DBAAS_DEAD_LETTER_MAX_BYTES', 16 * 1_048_576, 1024, 1024 * 1_048_576),
    deadLetterTtlMs: r.int('DBAAS_DEAD_LETTER_TTL_MS', 86_400_000, 1000, 30 * 86_400_000),
    platform: r.oneOf('DBAAS_PLATFORM', 'single', PLATFORMS),
    maxTables: r.int('DBAAS_MAX_TABLES', 1000, 1, 1_000_000),
  };
}

/** Containers reach the Docker host as `host.docker.internal`, not as loopback. */
function loopbackToDockerHost(address: string): string {
  return address.replace(/(^|[/@,])(127\.0\.0\.1|localhost|\[::1\])(?=[:/,]|$)/g, '$1host.docker.internal');
}

export function loadOrchestratorConfig(env: Env = process.env): Readonly<OrchestratorConfig> {
  const r = new Reader(env);
  const cluster = readCluster(r);
  const minSlaves = r.int('DBAAS_MIN_SLAVES', 1, 1, 256);
  const maxSlaves = r.int('DBAAS_MAX_SLAVES', 16, 1, 256);
  if (minSlaves > maxSlaves) r.problems.push(`DBAAS_MIN_SLAVES (${minSlaves}) must not exceed DBAAS_MAX_SLAVES (${maxSlaves})`);
  const httpHeadersTimeoutMs = r.int('DBAAS_HTTP_HEADERS_TIMEOUT_MS', 10_000, 100, 600_000);
  const httpRequestTimeoutMs = r.int('DBAAS_HTTP_REQUEST_TIMEOUT_MS', 30_000, 100, 3_600_000);
  // Node checks the headers deadline only while the whole-request one has not passed.
  if (httpHeadersTimeoutMs > httpRequestTimeoutMs) {
    r.problems.push(`DBAAS_HTTP_HEADERS_TIMEOUT_MS (${httpHeadersTimeoutMs}) must not exceed DBAAS_HTTP_REQUEST_TIMEOUT_MS (${httpRequestTimeoutMs})`);
  }
  const dbBackend = r.oneOf('DBAAS_DB_BACKEND', 'sqlite', DB_BACKENDS);
  const pgUrl = r.optional('DBAAS_PG_URL');
  if (pgUrl !== undefined && !PG_URL_RE.test(pgUrl)) r.problems.push(`DBAAS_PG_URL must be postgres://user@host:port/database`);
  if (dbBackend === 'postgresql' && pgUrl === undefined) {
    r.problems.push('DBAAS_DB_BACKEND=postgresql needs DBAAS_PG_URL (scripts/setup.sh starts a PostgreSQL server and writes it to .dbaas/runtime.env)');
  }
  const config: OrchestratorConfig = {
    ...cluster,
    port: r.int('DBAAS_PORT', 80, 0, 65535),
    host: r.str('DBAAS_HOST', '0.0.0.0'),
    advertiseUrl: r.optional('DBAAS_ADVERTISE_URL'),
    runtime: r.oneOf('DBAAS_RUNTIME', 'process', RUNTIME_KINDS),
    logFormat: r.oneOf('DBAAS_LOG_FORMAT', 'auto', ['auto', 'json', 'pretty'] as const),
    initialSlaves: r.int('DBAAS_INITIAL_SLAVES', 1, 1, 256),
    scaleIntervalMs: r.int('DBAAS_SCALE_INTERVAL_MS', 120000, 1000, 86_400_000),
    readsPerSlave: r.int('DBAAS_READS_PER_SLAVE', 20, 1, 1_000_000_000),
    maxDatabases: r.int('DBAAS_MAX_DATABASES', 100, 0, 100_000),
    minSlaves,
    maxSlaves,
    adminToken: r.secret('DBAAS_ADMIN_TOKEN'),
    apiKeys: r.keyList('DBAAS_API_KEYS'),
    dataDir: r.str('DBAAS_DATA_DIR', './data'),
    forceNewCluster: r.oneOf('DBAAS_FORCE_NEW_CLUSTER', '0', ['0', '1'] as const) === '1',
    dbBin: r.optional('DBAAS_DB_BIN'),
    dbBackend,
    pgUrl,
    spareDatabases: r.int('DBAAS_SPARE_DATABASES', 1, 0, 8),
    workerStartNice: r.int('DBAAS_WORKER_START_NICE', -10, -20, 0),
    bodyLimitBytes: r.int('DBAAS_BODY_LIMIT_BYTES', 1_048_576, 1024, 64 * 1_048_576),
    httpHeadersTimeoutMs,
    httpRequestTimeoutMs,
    httpKeepAliveTimeoutMs: r.int('DBAAS_HTTP_KEEP_ALIVE_TIMEOUT_MS', 5000, 100, 600_000),
    httpMaxRequestsPerSocket: r.int('DBAAS_HTTP_MAX_REQUESTS_PER_SOCKET', 0, 0, 1_000_000_000),
    publicDocs: r.oneOf('DBAAS_PUBLIC_DOCS', '0', ['0', '1'] as const) === '1',
    masterWaitMs: r.int('DBAAS_MASTER_WAIT_MS', 4000, 0, 600_000),
    workerStartTimeoutMs: r.int('DBAAS_WORKER_START_TIMEOUT_MS', 30000, 1000, 600_000),
    slaveRestartsInPlace: r.int('DBAAS_SLAVE_RESTARTS_IN_PLACE', 3, 0, 100),
    verifyIntervalMs: r.int('DBAAS_VERIFY_INTERVAL_MS', 600_000, 0, 7 * 86_400_000),
    verifyWaitMs: r.int('DBAAS_VERIFY_WAIT_MS', 60_000, 100, 600_000),
    dockerHost: r.match('DBAAS_DOCKER_HOST', 'unix:///var/run/docker.sock', /^(unix:\/\/\/.+|tcp:\/\/[^/]+)$/, 'must be unix:///path or tcp://host:port'),
    dockerWorkerImage: r.str('DBAAS_DOCKER_WORKER_IMAGE', 'dbaas-worker:latest'),
    dockerDbImage: r.str('DBAAS_DOCKER_DB_IMAGE', 'mongo:7'),
    dockerNetwork: r.str('DBAAS_DOCKER_NETWORK', `dbaas-${cluster.namespace}`),
    dockerAmqpUrl: r.str('DBAAS_DOCKER_AMQP_URL', loopbackToDockerHost(cluster.amqpUrl)),
    dockerZkConnect: r.str('DBAAS_DOCKER_ZK_CONNECT', loopbackToDockerHost(cluster.zkConnect)),
    dockerDbStartTimeoutMs: r.int('DBAAS_DOCKER_DB_START_TIMEOUT_MS', 30000, 1000, 600_000),
    swarmConstraints: r
      .match('DBAAS_SWARM_CONSTRAINTS', '', /^$|^\s*[\w.-]+\s*(==|!=)\s*[^,\s][^,]*(,\s*[\w.-]+\s*(==|!=)\s*[^,\s][^,]*)*$/, 'must be comma-separated Swarm constraints such as node.labels.dbaas==true')
      .split(',')
      .map((c) => c.trim())
      .filter((c) => c !== ''),
  };
  return r.done(config);
}

export function loadWorkerConfig(env: Env = process.env): Readonly<WorkerConfig> {
  const r = new Reader(env);
  const cluster = readCluster(r);
  const mongoUrl = r.required('DBAAS_WORKER_MONGO_URL');
  const config: WorkerConfig = {
    ...cluster,
    workerId: r.match('DBAAS_WORKER_ID', '', /^[a-z0-9][a-z0-9-]{0,62}$/, 'must be set to ^[a-z0-9][a-z0-9-]{0,62}$'),
    role: r.oneOf('DBAAS_WORKER_ROLE', 'slave', WORKER_ROLES),
    term: r.int('DBAAS_WORKER_TERM', 0, 0, Number.MAX_SAFE_INTEGER),
    mongoUrl,
    advertisedMongoUrl: r.str('DBAAS_WORKER_ADVERTISED_MONGO_URL', mongoUrl),
    pgUrl: r.optional('DBAAS_WORKER_PG_URL'),
    snapshotAsked: r.oneOf('DBAAS_WORKER_SNAPSHOT_ASKED', '0', ['0', '1'] as const) === '1',
  };
  if (config.pgUrl !== undefined && !PG_URL_RE.test(config.pgUrl)) r.problems.push('DBAAS_WORKER_PG_URL must be postgres://user@host:port/database');
  return r.done(config);
}

/** The cluster settings (worker tuning included) as environment variables, for handing to a child worker. */
export function clusterEnv(c: ClusterConfig): Record<string, string> {
  return {
    DBAAS_NAMESPACE: c.namespace,
    DBAAS_AMQP_URL: c.amqpUrl,
    DBAAS_ZK_CONNECT: c.zkConnect,
    DBAAS_ZK_SESSION_TIMEOUT_MS: String(c.zkSessionTimeoutMs),
    DBAAS_ZK_OUTAGE_TOLERANCE_MS: String(c.zkOutageToleranceMs),
    DBAAS_LOG_LEVEL: c.logLevel,
    DBAAS_WORKER_DB_NAME: c.dbName,
    DBAAS_WORKER_READ_PREFETCH: String(c.readPrefetch),
    DBAAS_WORKER_WRITE_PREFETCH: String(c.writePrefetch),
    DBAAS_MAX_TABLES: String(c.maxTables),
    DBAAS_AFTER_SEQ_WAIT_MS: String(c.afterSeqWaitMs),
    DBAAS_OPLOG_MAX_ENTRIES: String(c.oplogMaxEntries),
    DBAAS_OPLOG_MAX_AGE_MS: String(c.oplogMaxAgeMs),
    DBAAS_REQUEST_ID_TTL_MS: String(c.requestIdTtlMs),
    DBAAS_SNAPSHOT_PAGE_DOCS: String(c.snapshotPageDocs),
    DBAAS_REQUEST_TIMEOUT_MS: String(c.requestTimeoutMs),
    DBAAS_SYNC_QUEUE_EXPIRES_MS: String(c.syncQueueExpiresMs),
    DBAAS_DEAD_LETTER_MAX_BYTES: String(c.deadLetterMaxBytes),
    DBAAS_DEAD_LETTER_TTL_MS: String(c.deadLetterTtlMs),
    DBAAS_PLATFORM: c.platform,
  };
}

/** What a client tool (the fault drill, the CLI) needs to reach a running orchestrator. */
export interface ClientConfig {
  readonly url: string;
  readonly adminToken: string | undefined;
  /** The key a client sends on data and cluster endpoints (`DBAAS_API_KEY`, one of the server's `DBAAS_API_KEYS`). */
  readonly apiKey: string | undefined;
}

export function loadClientConfig(env: Env = process.env): Readonly<ClientConfig> {
  const r = new Reader(env);
  const port = r.int('DBAAS_PORT', 80, 1, 65535);
  return r.done({
    url: r.str('DBAAS_URL', `http://127.0.0.1:${port}`).replace(/\/+$/, ''),
    adminToken: r.optional('DBAAS_ADMIN_TOKEN'),
    apiKey: r.optional('DBAAS_API_KEY'),
  });
}

/**
 * The lifecycle manager (orchestrator/lifecycle/, started by `npm start`): how it
 * watches the platform services and the orchestrator it runs, and what it may restart.
 */
export interface LifecycleConfig {
  /** The orchestrator it starts and watches (the same environment). */
  readonly orchestrator: Readonly<OrchestratorConfig>;
  /**
   * `DBAAS_LIFECYCLE_MANAGED`: the platform services this `npm start` started (scripts/start.sh passes
   * them: `zookeeper`, `rabbitmq`, `platform-ha`), which the manager restarts; others are only watched.
   */
  readonly managed: readonly string[];
  /** How often every service is probed. */
  readonly probeIntervalMs: number;
  /** How long one probe (`ruok`, an AMQP connection, `/healthz`) may take before it counts as failed. */
  readonly probeTimeoutMs: number;
  /** Consecutive failed probes of a live process before it counts as wedged (and is killed and restarted). */
  readonly wedgedAfter: number;
  /** Restarts allowed within {@link restartWindowMs}; past them the service is left `failed`. */
  readonly maxRestarts: number;
  readonly restartWindowMs: number;
  /** The delay before a second restart within the window; it doubles for each further one (capped at 30 s). The first is immediate. */
  readonly backoffMs: number;
  /** How long a (re)started service may take to answer its first probe. */
  readonly startGraceMs: number;
}

export const LIFECYCLE_MANAGEABLE = ['zookeeper', 'rabbitmq', 'platform-ha'] as const;

export function loadLifecycleConfig(env: Env = process.env): Readonly<LifecycleConfig> {
  const r = new Reader(env);
  const managed = (r.optional('DBAAS_LIFECYCLE_MANAGED') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  // setup.sh records other names too (epmd, postgresql, …): those are not supervised, and are ignored here.
  const supervised = managed.filter((s) => (LIFECYCLE_MANAGEABLE as readonly string[]).includes(s));
  const lifecycle = {
    managed: supervised,
    probeIntervalMs: r.int('DBAAS_LIFECYCLE_PROBE_INTERVAL_MS', 1000, 100, 60_000),
    probeTimeoutMs: r.int('DBAAS_LIFECYCLE_PROBE_TIMEOUT_MS', 2000, 100, 60_000),
    wedgedAfter: r.int('DBAAS_LIFECYCLE_WEDGED_AFTER', 3, 1, 100),
    maxRestarts: r.int('DBAAS_LIFECYCLE_MAX_RESTARTS', 5, 0, 1000),
    restartWindowMs: r.int('DBAAS_LIFECYCLE_RESTART_WINDOW_MS', 600_000, 1000, 7 * 86_400_000),
    backoffMs: r.int('DBAAS_LIFECYCLE_BACKOFF_MS', 1000, 0, 600_000),
    startGraceMs: r.int('DBAAS_LIFECYCLE_START_GRACE_MS', 120_000, 1000, 3_600_000),
  };
  let orchestrator: Readonly<OrchestratorConfig> | undefined;
  try {
    orchestrator = loadOrchestratorConfig(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    r.problems.push(...err.problems);
  }
  return r.done({ ...lifecycle, orchestrator: orchestrator as Readonly<OrchestratorConfig> });
}
