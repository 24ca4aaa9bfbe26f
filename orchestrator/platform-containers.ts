/**
 * The platform as a container engine runs it (docker/compose.yaml,
 * docker/compose.ha.yaml): there the engine's restart policy restarts what
 * dies and no lifecycle manager runs, so `GET /api/v1/platform` asks the engine.
 * The orchestrator finds its own container (its hostname is the container id),
 * reads its compose project, and lists the ZooKeeper, RabbitMQ and orchestrator
 * containers of that project with the engine's restart count and state.
 */
import os from 'node:os';
import type Docker from 'dockerode';
import type { PlatformServiceKind, PlatformServiceState, PlatformServiceZnode } from '../coordination/schemas.js';

const PROJECT_LABEL = 'com.docker.compose.project';
const SERVICE_LABEL = 'com.docker.compose.service';
const PORTS: Record<PlatformServiceKind, number> = { zookeeper: 2181, rabbitmq: 5672, orchestrator: 80 };

/** What {@link containerService} reads of `docker inspect`. */
export interface ContainerFacts {
  Id: string;
  RestartCount: number;
  Config: { Labels?: Record<string, string> | null };
  HostConfig: { RestartPolicy?: { Name?: string } };
  State: { Running: boolean; Paused: boolean; Restarting: boolean; Pid: number; ExitCode: number; OOMKilled: boolean; FinishedAt: string; Health?: { Status: string } };
}

/** One container as a platform service, or undefined when it is none (the proxy, a worker). */
export function containerService(c: ContainerFacts, now = new Date()): PlatformServiceZnode | undefined {
  const service = c.Config.Labels?.[SERVICE_LABEL] ?? '';
  const kind = (['zookeeper', 'rabbitmq', 'orchestrator'] as const).find((k) => service.startsWith(k));
  if (!kind) return undefined;
  const st = c.State;
  const health = st.Health?.Status;
  const state: PlatformServiceState = st.Restarting
    ? 'restarting'
    : !st.Running
      ? 'down'
      : st.Paused || health === 'unhealthy'
        ? 'wedged'
        : health === 'starting'
          ? 'starting'
          : 'running';
  const failed = c.RestartCount > 0 || !st.Running;
  return {
    name: service,
    kind,
    address: `${service}:${PORTS[kind]}`,
    containerId: c.Id.slice(0, 12),
    ...(st.Pid > 0 ? { pid: st.Pid } : {}),
    state,
    restarts: c.RestartCount,
    ...(failed && st.FinishedAt && !st.FinishedAt.startsWith('0001-')
      ? { lastFailure: { at: st.FinishedAt, reason: `exited with ${st.ExitCode}${st.OOMKilled ? ' (out of memory)' : ''}` } }
      : {}),
    // Restarted by the engine unless its policy is "no".
    managed: (c.HostConfig.RestartPolicy?.Name ?? 'no') !== 'no',
    by: 'docker',
    updatedAt: now.toISOString(),
  };
}

/** The platform containers of this orchestrator's compose project ([] when it runs in none). */
export async function composePlatform(docker: Docker, self = os.hostname()): Promise<PlatformServiceZnode[]> {
  let project: string | undefined;
  try {
    project = (await docker.getContainer(self).inspect()).Config.Labels?.[PROJECT_LABEL];
  } catch {
    return [];
  }
  if (!project) return [];
  const list = await docker.listContainers({ all: true, filters: { label: [`${PROJECT_LABEL}=${project}`] } });
  const out: PlatformServiceZnode[] = [];
  for (const summary of list) {
    const facts = (await docker.getContainer(summary.Id).inspect()) as unknown as ContainerFacts;
    const service = containerService(facts);
    if (service) out.push(service);
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}
