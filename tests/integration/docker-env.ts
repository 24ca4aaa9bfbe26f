/**
 * Whether the Docker tests can run here, and the settings they need.
 *
 * Runs `scripts/setup-docker.sh --optional` (idempotent: it reuses the engine
 * and rebuilds the images only when dist/ changed), then reads the result from
 * .dbaas/runtime.env. When Docker cannot be made ready the Docker tests are
 * skipped with a loud message — or fail, when DBAAS_REQUIRE_DOCKER=1 (CI).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');

export type DockerTestEnv = { ready: true; env: Record<string, string> } | { ready: false; reason: string };

/** `KEY=value` lines of a settings file the scripts wrote (.dbaas/runtime.env by default). */
export function readRuntimeEnv(file = path.join(root, '.dbaas/runtime.env')): Record<string, string> {
  const out: Record<string, string> = {};
  if (!existsSync(file)) return out;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!m?.[1] || m[2] === undefined) continue;
    // Values are written by bash's printf %q: unquote the simple forms it produces.
    let v = m[2];
    if (/^'.*'$/.test(v)) v = v.slice(1, -1);
    else if (/^\$'.*'$/.test(v)) v = v.slice(2, -1);
    else v = v.replace(/\\(.)/g, '$1');
    out[m[1]] = v;
  }
  return out;
}

let cached: DockerTestEnv | undefined;

export function dockerTestEnv(): DockerTestEnv {
  if (cached) return cached;
  let setupError = '';
  const known = process.env.DBAAS_DOCKER_STATUS;
  if (known !== undefined && known !== 'ready') {
    // `npm test` has just tried (scripts/test.sh): do not try again for every file.
    return unavailable(known);
  }
  try {
    execFileSync('bash', [path.join(root, 'scripts/setup-docker.sh'), '--optional'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    setupError = e.stderr?.toString().trim().split('\n').slice(-5).join(' | ') || e.message;
  }
  const env = readRuntimeEnv();
  const status = env.DBAAS_DOCKER_STATUS ?? 'unavailable: scripts/setup-docker.sh recorded no status';
  if (status === 'ready' && !setupError) {
    const docker = Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith('DBAAS_DOCKER_') && k !== 'DBAAS_DOCKER_STATUS'));
    cached = { ready: true, env: docker };
  } else {
    cached = unavailable(setupError || status);
  }
  return cached;
}

function unavailable(reason: string, what = 'Docker'): DockerTestEnv {
  if (process.env.DBAAS_REQUIRE_DOCKER === '1') throw new Error(`DBAAS_REQUIRE_DOCKER=1 but ${what} is not ready: ${reason}`);
  const bar = '!'.repeat(78);
  console.warn(
    `\n${bar}\n!! ${what.toUpperCase()} TESTS SKIPPED: ${reason}\n!! (the ${what} runtime is NOT tested in this run; DBAAS_REQUIRE_DOCKER=1 makes this fail)\n${bar}\n`,
  );
  return { ready: false, reason };
}

let swarmCached: DockerTestEnv | undefined;

/**
 * Whether the Swarm tests can run here: Docker as above, and this engine a
 * manager of a swarm (`scripts/setup-swarm.sh --optional` makes a single-node
 * one when the engine is in none). Same settings as the Docker tests.
 */
export function swarmTestEnv(): DockerTestEnv {
  if (swarmCached) return swarmCached;
  const docker = dockerTestEnv();
  if (!docker.ready) return (swarmCached = docker);
  const known = process.env.DBAAS_SWARM_STATUS;
  if (known !== undefined && known !== 'ready') return (swarmCached = unavailable(known, 'Swarm'));
  let setupError = '';
  try {
    execFileSync('bash', [path.join(root, 'scripts/setup-swarm.sh'), '--optional'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    setupError = e.stderr?.toString().trim().split('\n').slice(-5).join(' | ') || e.message;
  }
  const status = readRuntimeEnv().DBAAS_SWARM_STATUS ?? 'unavailable: scripts/setup-swarm.sh recorded no status';
  swarmCached = status === 'ready' && !setupError ? docker : unavailable(setupError || status, 'Swarm');
  return swarmCached;
}
