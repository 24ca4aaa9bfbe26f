/**
 * A starting worker's CPU priority (`DBAAS_WORKER_START_NICE`, issue 16): the process
 * runtime raises the priority of a worker and its database process from their spawn
 * until the orchestrator sees the worker serve (or {@link START_PRIORITY_MAX_MS} at the
 * most), then puts them back to normal, so a new slave's start does not queue for the
 * CPU behind the cluster's steady writes (docs/DECISIONS.md, "A starting worker's CPU
 * priority").
 *
 * Every worker and database process runs in a session of its own (spawned detached), and
 * with Linux's autogroup scheduling (`/proc/sys/kernel/sched_autogroup_enabled` 1) each
 * session is one scheduling group: a process's own nice then only ranks it within its
 * group, so the priority is set on the group (`/proc/<pid>/autogroup`). Without autogroup
 * it is the process's nice (`setpriority`, its main thread: threads made later inherit it).
 * A negative value needs CAP_SYS_NICE (root): refused once, the runtime says so and starts
 * workers at normal priority from then on. Putting a priority back to 0 needs no privilege.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import type { Logger } from '../../common/logger.js';

/** The longest a start keeps the raised priority: a long copy (a large snapshot) then runs on beside the writes as equals. */
export const START_PRIORITY_MAX_MS = 10_000;

function autogroupEnabled(): boolean {
  try {
    return readFileSync('/proc/sys/kernel/sched_autogroup_enabled', 'utf8').trim() === '1';
  } catch {
    return false;
  }
}

/** Sets process `pid`'s scheduling priority (its autogroup's, when autogroup scheduling is on). */
function setPriority(pid: number, nice: number, autogroup: boolean): void {
  if (autogroup) writeFileSync(`/proc/${pid}/autogroup`, String(nice));
  else os.setPriority(pid, nice);
}

/** The priority the scheduler gives process `pid`: its autogroup's nice with autogroup scheduling, else its own. */
export function schedulingNice(pid: number): number {
  if (!autogroupEnabled()) return os.getPriority(pid);
  return Number(/nice (-?\d+)/.exec(readFileSync(`/proc/${pid}/autogroup`, 'utf8'))?.[1]);
}

/** Whether this process may raise process `pid`'s priority (CAP_SYS_NICE): tried on it, then put back. */
export function mayRaise(pid: number): boolean {
  const autogroup = autogroupEnabled();
  try {
    setPriority(pid, -1, autogroup);
  } catch {
    return false;
  }
  setPriority(pid, 0, autogroup);
  return true;
}

export class StartPriority {
  private readonly autogroup = autogroupEnabled();
  /** False once a raise was refused (no CAP_SYS_NICE): starts then run at normal priority. */
  private allowed: boolean;
  /** The raised processes of each start under way, and the timer that ends the raise at the latest. */
  private readonly raised = new Map<string, { pids: number[]; timer: NodeJS.Timeout }>();

  constructor(
    /** The nice value during a start (-20…0); 0: no raise. */
    private readonly nice: number,
    private readonly logger: Logger,
    private readonly maxMs = START_PRIORITY_MAX_MS,
  ) {
    this.allowed = nice < 0;
  }

  /** Raises process `pid` of worker `id`'s start; ended by {@link lower} or after {@link START_PRIORITY_MAX_MS}. */
  raise(id: string, pid: number | undefined): void {
    if (!this.allowed || pid === undefined || pid <= 0) return;
    try {
      setPriority(pid, this.nice, this.autogroup);
    } catch (err) {
      // Gone already (its start fails anyway), or not allowed: only the latter stops the raises.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ESRCH') return;
      this.allowed = false;
      this.logger.warn({ err: (err as Error).message, nice: this.nice }, 'could not raise a starting worker\'s CPU priority (needs CAP_SYS_NICE); workers start at normal priority (DBAAS_WORKER_START_NICE)');
      return;
    }
    const entry = this.raised.get(id);
    if (entry) {
      entry.pids.push(pid);
      return;
    }
    const timer = setTimeout(() => this.lower(id), this.maxMs);
    timer.unref();
    this.raised.set(id, { pids: [pid], timer });
  }

  /** Puts worker `id`'s raised processes back to normal priority (its start ended). Idempotent. */
  lower(id: string): void {
    const entry = this.raised.get(id);
    if (!entry) return;
    this.raised.delete(id);
    clearTimeout(entry.timer);
    for (const pid of entry.pids) StartPriority.normal(pid, this.autogroup);
  }

  /** Normal priority for `pid` (a worker adopted from another orchestrator, which may have died during its start). */
  static normal(pid: number, autogroup = autogroupEnabled()): void {
    if (pid <= 0) return; // not known (a unit file's 0): 0 would be this process
    try {
      setPriority(pid, 0, autogroup);
    } catch {
      // gone, or never ours
    }
  }
}
