/**
 * `GET /api/v1/platform`: every service the lifecycle manager(s) of the namespace
 * watch (orchestrator/lifecycle/), as they last published it in ZooKeeper: kind,
 * address, pid, state, restarts, last failure. The same on every orchestrator.
 * A service whose manager has not rewritten it for {@link STALE_AFTER_MS} is
 * marked `stale` (its manager is gone or cannot reach ZooKeeper). With the
 * Docker or Swarm runtime, the platform containers of the orchestrator's compose
 * project are listed too, as the engine reports them (platform-containers.ts).
 */
import type { FastifyInstance } from 'fastify';
import { DbaasError } from '../common/errors.js';
import type { OrchestratorConfig } from '../common/config.js';
import type { PlatformStore } from '../coordination/platform-store.js';
import type { PlatformServiceZnode } from '../coordination/schemas.js';
import type { Guard } from './auth.js';
import { composePlatform } from './platform-containers.js';
import { dockerClient } from './runtimes/index.js';

/** A manager rewrites its services every 5 s; three missed rewrites make them stale. */
export const STALE_AFTER_MS = 15_000;

export interface PlatformView {
  platform: OrchestratorConfig['platform'];
  services: Array<PlatformServiceZnode & { stale: boolean }>;
  /** Set when no manager has published anything for this namespace. */
  note?: string;
}

export function registerPlatformRoute(app: FastifyInstance, store: PlatformStore, config: OrchestratorConfig, guard: Guard): void {
  app.get('/api/v1/platform', { onRequest: guard }, async (): Promise<PlatformView> => {
    const services = await store.list().catch((err: unknown) => {
      throw new DbaasError('DBAAS_COORDINATION_UNAVAILABLE', `the platform view could not be read: ${(err as Error).message}`);
    });
    // In containers, the engine restarts and reports (an engine that does not answer adds nothing).
    if (config.runtime !== 'process') services.push(...(await composePlatform(dockerClient(config.dockerHost)).catch(() => [])));
    const now = Date.now();
    const view: PlatformView = { platform: config.platform, services: services.map((s) => ({ ...s, stale: now - Date.parse(s.updatedAt) > STALE_AFTER_MS })) };
    if (services.length === 0) view.note = 'no lifecycle manager has reported for this namespace and no compose project was found: `npm start` runs a manager; a test cluster has none';
    return view;
  });
}
