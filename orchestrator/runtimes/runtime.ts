/**
 * Where workers run. One interface, several backends (`process`, `docker`),
 * chosen by `DBAAS_RUNTIME`; the same conformance tests run against each.
 *
 * A "worker" here is the unit the runtime manages: the worker program plus its
 * own database server. Its pid is the worker program's pid as the host sees it.
 */
import type { WorkerRole } from '../../common/config.js';

export interface WorkerSpec {
  id: string;
  role: WorkerRole;
  /** Term a master starts with; for a slave with {@link snapshotAsked}, the term of the master asked (else 0). */
  term: number;
  /**
   * A new slave whose first snapshot page the orchestrator has asked for (common/snapshot-request.ts):
   * a runtime that passes it on (DBAAS_WORKER_SNAPSHOT_ASKED) says so with {@link Runtime.passesSnapshotAsked}.
   */
  snapshotAsked?: boolean;
}

export interface WorkerHandle {
  id: string;
  pid: number;
}

export interface ExitInfo {
  id: string;
  pid: number;
  code: number | null;
  signal: string | null;
  /** True when the runtime was asked to stop or kill it (not a failure). */
  expected: boolean;
}

export type ExitListener = (info: ExitInfo) => void;

export interface Runtime {
  readonly kind: string;
  /** True when startWorker hands {@link WorkerSpec.snapshotAsked} to the worker: only then does the orchestrator ask ahead. */
  readonly passesSnapshotAsked?: boolean;
  /**
   * Starts the worker and its database. Resolves once both processes run (the
   * database accepts connections); registration in ZooKeeper is the caller's
   * to wait for. Throws if either cannot start.
   */
  startWorker(spec: WorkerSpec): Promise<WorkerHandle>;
  /**
   * SIGKILLs the worker and its database; resolves when both are gone. Idempotent.
   * Resolves true when this runtime runs (or ran) the worker, so it is dead for
   * certain now; false for a worker it does not know, which it cannot fence.
   */
  kill(id: string): Promise<boolean>;
  /** SIGTERM, then SIGKILL after `timeoutMs`; resolves when gone. Idempotent. */
  stop(id: string, timeoutMs: number): Promise<void>;
  /**
   * Deletes what the worker left behind (data directory, containers). Only for
   * dead workers this runtime started or adopted: anything else throws, so an
   * orchestrator never deletes the data of a worker it was not handed.
   */
  remove(id: string): Promise<void>;
  /** Whether a (dead) worker's data is still there, so it could be restarted in place. */
  hasData?(id: string): boolean;
  /** Workers this runtime knows to be running. */
  list(): WorkerHandle[];
  /**
   * The namespace's running workers as the engine shows them, read only
   * (nothing adopted, watched or touched): how a follower orchestrator lists
   * the host pids the leader's runtime knows. Absent where a worker's own
   * znode already has its host pid (the process runtime).
   */
  observe?(): Promise<WorkerHandle[]>;
  /**
   * Takes over the workers of this namespace that a previous orchestrator left
   * running (after an orchestrator crash or restart): from then on they are
   * listed, killed, stopped and reported on exit like workers started here.
   * Returns them. Idempotent.
   */
  adopt(): Promise<WorkerHandle[]>;
  /** Called once per worker death, expected or not. */
  onExit(listener: ExitListener): void;
  /**
   * What worker `id`'s own logs say about why it failed (its last fatal line, its database's last
   * errors), for a failed start's message; undefined when they say nothing or the runtime cannot tell.
   * Read before the worker is forgotten (its directory, or its containers, go with it); the docker and
   * swarm runtimes ask the engine for the containers' logs, within a few seconds.
   */
  failureCause?(id: string): string | undefined | Promise<string | undefined>;
  /**
   * Worker `id`'s start has ended (it reached its state, or the start failed): a runtime that raised the
   * start's CPU priority puts it back (the process runtime, `DBAAS_WORKER_START_NICE`, start-priority.ts).
   */
  startEnded?(id: string): void;
  /** Stops every worker it started (gracefully, within `timeoutMs`). Idempotent. */
  close(timeoutMs: number): Promise<void>;
  /** Stops watching without touching the workers, which keep running for a new orchestrator to adopt. */
  detach?(): void;
}
