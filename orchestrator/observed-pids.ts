/**
 * The host pids of workers another orchestrator's runtime runs, for a
 * follower. In a container a worker sees itself as pid 1, and its znode says
 * so; only the runtime that started (or adopted) it knows the host's pid, and
 * that runtime is the leader's. A follower reads the engine instead
 * (`Runtime.observe`: a listing, nothing adopted or touched), once per new
 * registration (a znode's id and `startedAt` it has not covered yet), so that
 * `GET /api/v1/workers/list` answers the same on every orchestrator.
 */
import type { Logger } from '../common/logger.js';
import type { ClusterView } from '../coordination/cluster-view.js';
import type { Runtime } from './runtimes/runtime.js';

/** At most one engine read per this many ms (a registration the engine does not show yet is read again). */
const MIN_INTERVAL_MS = 250;

export class ObservedPids {
  private pids = new Map<string, number>();
  /** `id@startedAt` of the registrations the last read found. */
  private covered = new Set<string>();
  private reading: Promise<void> | undefined;
  private lastRead = 0;

  constructor(
    private readonly runtime: Pick<Runtime, 'observe'>,
    private readonly view: Pick<ClusterView, 'workers'>,
    private readonly logger: Logger,
  ) {}

  /** The host pid the engine showed for a worker at the last read. */
  get(id: string): number | undefined {
    return this.pids.get(id);
  }

  /** Whether a worker registered (or registered again) since the last read found it. */
  private stale(): boolean {
    for (const w of this.view.workers.values()) if (!this.covered.has(`${w.id}@${w.startedAt}`)) return true;
    return false;
  }

  /** Reads the engine again when a registration is not covered; resolves within `waitMs` either way. */
  async refresh(waitMs = 2000): Promise<void> {
    if (!this.runtime.observe || !this.stale()) return;
    this.reading ??= this.read();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.reading, new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
    clearTimeout(timer);
  }

  private async read(): Promise<void> {
    try {
      const wait = this.lastRead + MIN_INTERVAL_MS - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const registered = [...this.view.workers.values()].map((w) => ({ id: w.id, key: `${w.id}@${w.startedAt}` }));
      const found = (await this.runtime.observe?.()) ?? [];
      this.lastRead = Date.now();
      this.pids = new Map(found.map((w) => [w.id, w.pid]));
      this.covered = new Set(registered.filter((r) => this.pids.has(r.id)).map((r) => r.key));
    } catch (err) {
      this.lastRead = Date.now();
      this.logger.debug({ err: (err as Error).message }, 'listing the workers from the engine failed');
    } finally {
      this.reading = undefined;
    }
  }
}
