/**
 * `DBAAS_*` variables that nothing reads: almost always typos
 * (`DBAAS_INTIAL_SLAVES=3` would otherwise start one slave, silently).
 * The orchestrator warns about them at start, with the nearest known name.
 */
import { loadClientConfig, loadLifecycleConfig, loadOrchestratorConfig, loadWorkerConfig, type Env } from './config.js';

/**
 * Read by the project's scripts, tools and tests rather than by the service's
 * configuration (tests/unit/unknown-settings.test.ts finds every `DBAAS_*`
 * name those files use and fails when one is missing here).
 */
export const SCRIPT_SETTINGS: readonly string[] = [
  'DBAAS_BENCH_BACKUP', 'DBAAS_BENCH_BACKUP_DOCS', 'DBAAS_CHECKOUT_ID', 'DBAAS_CHECK_URL', 'DBAAS_CHROMIUM', 'DBAAS_DOCKERD_ARGS', 'DBAAS_DOCKER_HOST_GATEWAY',
  'DBAAS_DOCKER_STATUS', 'DBAAS_ERLANG_COOKIE', 'DBAAS_FERRETDB_BIN', 'DBAAS_FUZZ_REQUESTS', 'DBAAS_FUZZ_SEED', 'DBAAS_HA_KILLS', 'DBAAS_HA_TEST', 'DBAAS_IMAGE_FORCE',
  'DBAAS_IMAGE_TAG', 'DBAAS_MID_FAULTS_ALL', 'DBAAS_NEMESIS_SEED', 'DBAAS_PG_DIR', 'DBAAS_PG_PORT', 'DBAAS_PORT_HOST', 'DBAAS_PROXY_BACKENDS', 'DBAAS_PROXY_HOST',
  'DBAAS_PROXY_PORT', 'DBAAS_PROXY_STATE_DIR', 'DBAAS_RABBITMQ_DIR', 'DBAAS_RABBITMQ_PASSWORD', 'DBAAS_REQUIRE_BROWSER',
  'DBAAS_REQUIRE_DOCKER', 'DBAAS_REQUIRE_PROXY', 'DBAAS_ROOT', 'DBAAS_RUNTIME_ENV', 'DBAAS_SERVICE_TIMEOUT_S',
  'DBAAS_SETUP_STARTED_LOG', 'DBAAS_STARTED_FILE', 'DBAAS_STATE_DIR', 'DBAAS_SWARM_ADVERTISE_ADDR', 'DBAAS_SWARM_STATUS', 'DBAAS_SWEEP_SEED',
  // scripts/swarm-trial.sh and its opt-in test
  'DBAAS_SWARM_TRIAL_PREFIX', 'DBAAS_SWARM_TRIAL_SUBNET', 'DBAAS_SWARM_TRIAL_TEST',
  // docker/stack.yaml's own knobs (images, replicas, the health check's node)
  'DBAAS_ORCHESTRATORS', 'DBAAS_ORCHESTRATORS_PER_NODE', 'DBAAS_ORCHESTRATOR_IMAGE', 'DBAAS_WORKER_IMAGE', 'DBAAS_DB_IMAGE', 'DBAAS_NODE_BIN',
  'DBAAS_RABBITMQ_IMAGE', 'DBAAS_ZOOKEEPER_IMAGE', 'DBAAS_TEST_LOG_DIR', 'DBAAS_TEST_LOG_LEVEL',
  // docker/compose.ha.yaml's own knobs (the management UI's host port, the proxy's image)
  'DBAAS_RABBITMQ_UI_PORT', 'DBAAS_HAPROXY_IMAGE',
  'DBAAS_UPDATE_SCREENSHOT', 'DBAAS_VERIFY_COST', 'DBAAS_ZK_DIR', 'DBAAS_ZK_PID_FILE',
];

let known: ReadonlySet<string> | undefined;

/** Every name the configuration loaders read (recorded by running them on an empty, watching environment), plus {@link SCRIPT_SETTINGS}. */
export function knownSettings(): ReadonlySet<string> {
  if (known) return known;
  const seen = new Set<string>(SCRIPT_SETTINGS);
  const watching = new Proxy({} as Env, {
    get(_target, key) {
      if (typeof key === 'string') seen.add(key);
      return undefined;
    },
  });
  for (const load of [loadOrchestratorConfig, loadWorkerConfig, loadClientConfig, loadLifecycleConfig]) {
    try {
      load(watching);
    } catch {
      // The worker's required settings are missing here: what matters is which names it read.
    }
  }
  known = seen;
  return known;
}

/** The `DBAAS_*` names in `env` that nothing reads, each with the closest known name when one is near (≤ 3 edits). */
export function unknownSettings(env: Env): Array<{ name: string; suggestion: string | undefined }> {
  const names = knownSettings();
  return Object.keys(env)
    .filter((name) => name.startsWith('DBAAS_') && !names.has(name))
    .sort()
    .map((name) => {
      let best: { name: string; d: number } | undefined;
      for (const candidate of names) {
        const d = editDistance(name, candidate);
        if (d <= 3 && (!best || d < best.d)) best = { name: candidate, d };
      }
      return { name, suggestion: best?.name };
    });
}

/** Levenshtein distance (two rows). */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}
