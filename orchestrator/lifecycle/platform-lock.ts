/**
 * Only one lifecycle manager of a checkout acts on its platform services (several
 * `npm start`s, one per orchestrator, share them): the one whose pid is in
 * `.dbaas/lifecycle/platform.lock`. The others watch and report. A lock whose
 * pid is not a live process is taken over; two managers that take over a dead
 * holder's lock at the same moment both write it, and the one that reads back
 * another's pid at its next check steps down, so at most one acts after one
 * probe interval. A host-local lock, not one in ZooKeeper: ZooKeeper is one of
 * the services it guards, and a service can only be restarted on its own host.
 */
import { mkdirSync, openSync, closeSync, writeSync, rmSync } from 'node:fs';
import path from 'node:path';
import { processAlive, readPidFile } from './probes.js';

export class PlatformLock {
  constructor(
    private readonly file: string,
    /** What a live holder's command line contains (the manager's entry point; a test's runner). */
    private readonly marker = 'orchestrator/lifecycle/main.js',
    private readonly me = process.pid,
  ) {}

  /** Whether this process holds the lock now (taking it when free or abandoned). */
  check(): boolean {
    const holder = readPidFile(this.file);
    if (holder === this.me) return true;
    if (holder !== undefined && processAlive(holder, this.marker)) return false;
    rmSync(this.file, { force: true });
    mkdirSync(path.dirname(this.file), { recursive: true });
    try {
      const fd = openSync(this.file, 'wx');
      writeSync(fd, `${this.me}\n`);
      closeSync(fd);
    } catch {
      // another manager took it first
    }
    return readPidFile(this.file) === this.me;
  }

  /** Releases it if held. */
  release(): void {
    if (readPidFile(this.file) === this.me) rmSync(this.file, { force: true });
  }
}
