/**
 * A real cluster for one test file: its own namespace (queues, znodes), its own
 * data directory, real RabbitMQ, ZooKeeper and one database server per worker.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from '../../common/backoff.js';
import { loadOrchestratorConfig, type OrchestratorConfig } from '../../common/config.js';
import { createLogger } from '../../common/logger.js';
import type { FastifyInstance } from 'fastify';
import { startOrchestrator, type Orchestrator } from '../../orchestrator/orchestrator.js';
import { createRuntime, type Runtime } from '../../orchestrator/runtimes/index.js';
import { purgeNamespace } from './infra.js';
import { dropWorkerDatabases } from '../../orchestrator/runtimes/postgresql-databases.js';

export interface TestCluster {
  orch: Orchestrator;
  config: OrchestratorConfig;
  namespace: string;
  dataDir: string;
  /** Base URL when started with `listen`, else ''. */
  url: string;
  /** POST a JSON body; returns status and parsed body. */
  post(url: string, body?: unknown): Promise<{ status: number; body: any; headers: Record<string, unknown> }>;
  get(url: string): Promise<{ status: number; body: any }>;
  /** Stops the cluster and removes all it left (processes, queues, znodes, data), unless another open cluster shares its namespace. */
  close(): Promise<void>;
  /**
   * Hands the namespace and data over to a cluster started next with them:
   * `abandon` leaves the workers running (adoption), `stop` stops them and
   * keeps the master's data (a restart). The one started next cleans up.
   */
  handOver(how: 'abandon' | 'stop'): Promise<void>;
}

export interface TestClusterOptions {
  /** Reuse a namespace and data directory (to test adoption by a new orchestrator). */
  namespace?: string;
  dataDir?: string;
  /** Also listen on a loopback port (for clients that speak real HTTP). */
  listen?: boolean;
  /** Receives every orchestrator log line (JSON text) instead of stdout. */
  logSink?: (line: string) => void;
  /** Wraps the configured runtime (fault injection: say an adoption held back). */
  runtime?: (real: Runtime) => Runtime;
  /** Called with the base URL as soon as it listens (listen-early: before the election and the cluster start). */
  onListening?: (url: string) => void;
}

/** How many open test clusters use each namespace (a second orchestrator may adopt the first's). */
const namespaceUsers = new Map<string, number>();

export async function startTestCluster(env: Record<string, string> = {}, opts: TestClusterOptions = {}): Promise<TestCluster> {
  const namespace = opts.namespace ?? `t-${randomBytes(4).toString('hex')}`;
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'dbaas-test-'));
  const config = loadOrchestratorConfig({
    DBAAS_NAMESPACE: namespace,
    DBAAS_DATA_DIR: dataDir,
    DBAAS_PORT: '0',
    DBAAS_DB_BIN: process.env.DBAAS_DB_BIN,
    // The storage npm test set up (scripts/setup.sh: PostgreSQL unless DBAAS_DB_BACKEND=sqlite).
    DBAAS_DB_BACKEND: process.env.DBAAS_DB_BACKEND,
    DBAAS_PG_URL: process.env.DBAAS_PG_URL,
    DBAAS_LOG_LEVEL: process.env.DBAAS_TEST_LOG_LEVEL ?? 'warn',
    DBAAS_INITIAL_SLAVES: '1',
    ...env,
  });
  const sink = opts.logSink;
  const logger = sink
    ? createLogger('test-orchestrator', config.logLevel, {}, { write: (line: string) => sink(line) })
    : createLogger('test-orchestrator', config.logLevel);
  let url = '';
  // As main.ts does: it listens before the election and the cluster start (listen-early).
  const listen = async (app: FastifyInstance): Promise<void> => {
    url = await app.listen({ port: 0, host: '127.0.0.1' });
    opts.onListening?.(url);
  };
  const orch = await startOrchestrator(config, logger, {
    ...(opts.listen ? { listen } : {}),
    ...(opts.runtime ? { runtime: opts.runtime(createRuntime(config, logger)) } : {}),
  });
  namespaceUsers.set(namespace, (namespaceUsers.get(namespace) ?? 0) + 1);
  if (opts.listen) await orch.advertise(url);
  const inject = async (method: 'GET' | 'POST', url: string, body?: unknown) => {
    const res = await orch.app.inject({
      method,
      url,
      ...(body === undefined ? {} : { payload: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    let parsed: unknown;
    try {
      parsed = res.json();
    } catch {
      parsed = res.body;
    }
    return { status: res.statusCode, body: parsed as any, headers: res.headers as Record<string, unknown> };
  };
  return {
    orch,
    config,
    namespace,
    dataDir,
    url,
    post: (url, body) => inject('POST', url, body),
    get: (url) => inject('GET', url),
    handOver: async (how) => {
      await (how === 'abandon' ? orch.abandon() : orch.close());
      const users = (namespaceUsers.get(namespace) ?? 1) - 1;
      if (users > 0) namespaceUsers.set(namespace, users);
      else namespaceUsers.delete(namespace);
    },
    close: async () => {
      let leaked: number[] = [];
      let named: string[] = [];
      try {
        await orch.close();
      } finally {
        const users = (namespaceUsers.get(namespace) ?? 1) - 1;
        if (users > 0) namespaceUsers.set(namespace, users);
        else {
          // The last cluster of its namespace (an adopting cluster shares its predecessor's namespace
          // and data): even when closing failed, no process, queue or directory may outlive the test.
          namespaceUsers.delete(namespace);
          leaked = leftoverProcesses(namespace, dataDir);
          named = leaked.map((pid) => `${pid} (${commandOf(pid)})`);
          for (const pid of leaked) process.kill(pid, 'SIGKILL');
          // Workers whose data is still there (the master's, kept for a next start) may still own queues.
          const nsDir = path.join(dataDir, namespace);
          await purgeNamespace(namespace, existsSync(nsDir) ? readdirSync(nsDir) : []);
          // Their PostgreSQL databases too (DBAAS_DB_BACKEND=postgresql): the directory names them.
          await dropWorkerDatabases(nsDir);
          rmSync(dataDir, { recursive: true, force: true });
        }
      }
      if (leaked.length > 0) throw new Error(`closing the cluster left ${leaked.length} process(es) running: ${named.join(', ')}`);
    },
  };
}

/** A process's command line, for naming a leaked process ('' once it is gone). */
function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim().slice(0, 200);
  } catch {
    return '';
  }
}

/** Processes of this test cluster still running: databases under its data directory, workers of its namespace. */
function leftoverProcesses(namespace: string, dataDir: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
      if (cmdline.includes(dataDir) || environ.split('\0').includes(`DBAAS_NAMESPACE=${namespace}`)) found.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

/** Waits until `probe` returns true (bounded), for conditions that settle asynchronously. */
export async function eventually(probe: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  await waitFor(async () => ((await probe()) ? true : undefined), timeoutMs, () => new Error(`timed out waiting for ${what}`), 25);
}
