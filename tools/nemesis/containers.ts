/**
 * The nemesis' view of a cluster whose workers run in containers (the `docker`
 * and `swarm` runtimes): a worker's two containers found by their labels (Swarm
 * names containers after its tasks), killed from outside, and its database
 * reached from this host for the replica checks.
 */
import type Docker from 'dockerode';
import { DOCKER_LABELS } from '../../orchestrator/runtimes/docker-runtime.js';
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
