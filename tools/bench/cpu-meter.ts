/**
 * Where the CPU goes during a measurement: user + system time of each process
 * of the cluster (and of the broker and the load generator), from /proc.
 * On a 2-core machine everything shares the same cores, so this is what
 * says which part limits a figure.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux). */
const TICKS = 100;

export type Component = 'load generator' | 'orchestrator' | 'master' | 'slaves' | 'databases' | 'rabbitmq';

function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** The pid of the local RabbitMQ server (beam.smp), if it runs here. */
export function findBrokerPid(): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === 'beam.smp') {
        const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
        if (cmd.includes('rabbit')) return Number(entry);
      }
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

export class CpuMeter {
  private pids = new Map<number, Component>();
  private start = new Map<number, number>();
  private startedAt = 0;

  setPids(pids: ReadonlyArray<[number, Component]>): void {
    this.pids = new Map(pids.filter(([pid]) => pid > 0));
  }

  begin(): void {
    this.startedAt = performance.now();
    this.start = new Map([...this.pids.keys()].map((pid) => [pid, cpuTicks(pid)]));
  }

  /** CPU seconds per component since begin(), and the wall time, in seconds. */
  end(): { wallSec: number; cpuSec: Partial<Record<Component, number>> } {
    const cpuSec: Partial<Record<Component, number>> = {};
    for (const [pid, component] of this.pids) {
      const used = (cpuTicks(pid) - (this.start.get(pid) ?? 0)) / TICKS;
      cpuSec[component] = (cpuSec[component] ?? 0) + used;
    }
    return { wallSec: (performance.now() - this.startedAt) / 1000, cpuSec };
  }
}
