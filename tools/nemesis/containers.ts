/**
 * The nemesis' view of a cluster whose workers run in containers (the `docker`
 * and `swarm` runtimes): a worker's two containers found by their labels (Swarm
 * names containers after its tasks), killed from outside, and its database
 * reached from this host for the replica checks.
 */
import type Docker from 'dockerode';
import { DOCKER_LABELS, removeDockerNamespace } from '../../orchestrator/runtimes/docker-runtime.js';
import { dockerClient } from '../../orchestrator/runtimes/index.js';
import { removeSwarmNamespace } from '../../orchestrator/runtimes/swarm-runtime.js';
import { runtimeEnv } from './orchestrator-process.js';

export type Part = 'worker' | 'db';

/** The running container of one half of a worker, or undefined. */
export async function runningContainer(docker: Docker, namespace: string, workerId: string, part: Part): Promise<Docker.ContainerInfo | undefined> {
  const found = await docker.listContainers({
    filters: { label: [`${DOCKER_LABELS.namespace}=${namespace}`, `${DOCKER_LABELS.workerId}=${workerId}`, `${DOCKER_LABELS.part}=${part}`], status: ['running'] },
  });
  return found.sort((a, b) => b.Created - a.Created)[0];
}

/** SIGKILL of one half of a worker (`docker kill`); answers the container's name. */
export async function killContainer(docker: Docker, namespace: string, workerId: string, part: Part): Promise<string> {
  const c = await runningContainer(docker, namespace, workerId, part);
  if (!c) throw new Error(`no running ${part} container of worker ${workerId}`);
  await docker.getContainer(c.Id).kill({ signal: 'SIGKILL' });
  return (c.Names[0] ?? c.Id).replace(/^\//, '');
}

/**
 * Addresses at which this host may reach a worker's database: the container's
 * addresses on its networks (a bridge network is routed from the host) and,
 * for a Swarm task, its address on `docker_gwbridge` (an overlay network is not).
 */
export async function containerUrls(docker: Docker, namespace: string, workerId: string): Promise<string[]> {
  const c = await runningContainer(docker, namespace, workerId, 'db');
  if (!c) return [];
  const urls: string[] = [];
  try {
    const gw = (await docker.getNetwork('docker_gwbridge').inspect()) as { Containers?: Record<string, { IPv4Address?: string }> };
    const ip = gw.Containers?.[c.Id]?.IPv4Address?.split('/')[0];
    if (ip) urls.push(`mongodb://${ip}:27017/`);
  } catch {
    // no swarm on this engine
  }
  for (const n of Object.values(c.NetworkSettings?.Networks ?? {})) if (n.IPAddress) urls.push(`mongodb://${n.IPAddress}:27017/`);
  return urls;
}

/** The DBAAS_DOCKER_* settings scripts/setup-docker.sh wrote (images, the addresses containers see), for an orchestrator child. */
export function containerSettings(): Record<string, string> {
  return Object.fromEntries(Object.entries(runtimeEnv()).filter(([k]) => k.startsWith('DBAAS_DOCKER_') && k !== 'DBAAS_DOCKER_STATUS'));
}

export type RuntimeKind = 'process' | 'docker' | 'swarm';

/** The `--runtime` argument of the nemesis and chaos tools, checked. */
export function parseRuntime(value: string | undefined): RuntimeKind {
  if (value !== 'swarm' && value !== 'docker' && value !== 'process') throw new Error(`--runtime must be swarm, docker or process, not ${JSON.stringify(value)}`);
  return value;
}

/**
 * What a run on `runtime` adds to runNemesis' options: the orchestrator's
 * DBAAS_RUNTIME (and the DBAAS_DOCKER_* settings), and for workers in
 * containers the engine (container faults, replica dumps) and the removal of
 * the namespace's containers or services after the run.
 */
export function runtimeRunOptions(runtime: RuntimeKind): { env: Record<string, string>; docker?: Docker; afterTeardown?: (namespace: string) => Promise<void> } {
  if (runtime === 'process') return { env: { DBAAS_RUNTIME: runtime } };
  const docker = dockerClient('unix:///var/run/docker.sock');
  return {
    env: { DBAAS_RUNTIME: runtime, ...containerSettings() },
    docker,
    afterTeardown: (ns) => (runtime === 'swarm' ? removeSwarmNamespace(docker, ns) : removeDockerNamespace(docker, ns)),
  };
}
