/**
 * The HA platform (scripts/platform-ha.sh) as the integration tests use it:
 * platform-ha.test.ts starts it and, when the run started it, stops it at the
 * end; the global teardown (global-setup.ts) stops it if that file's process
 * died before its afterAll. Which run started it is a marker file naming the
 * vitest process (the parent of the file's fork), so that another checkout's
 * or engineer's run never stops a platform it did not start.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const root = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);
const marker = path.join(root, '.dbaas/ha/started-by-test');

/** `scripts/platform-ha.sh <cmd>`'s output (`status` exits 1 when a service is down: its output all the same). */
export async function platformHa(cmd: 'start' | 'stop' | 'env' | 'status'): Promise<string> {
  try {
    const { stdout } = await run('bash', [path.join(root, 'scripts/platform-ha.sh'), cmd], { timeout: 400_000, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: unknown };
    if (cmd === 'status' && e.code === 1 && e.stdout) return e.stdout;
    throw new Error(`scripts/platform-ha.sh ${cmd} failed: ${e.stderr?.trim().split('\n').slice(-5).join('\n') ?? (err as Error).message}`);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The vitest process whose run started the platform, if a marker names one. */
function markedBy(): number | undefined {
  if (!existsSync(marker)) return undefined;
  const pid = Number(readFileSync(marker, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * Starts the platform (idempotent) and says whether this run owns it: none of
 * its six services was running, or what runs was started by a test run that
 * is gone. An owned platform is marked with `runPid` (the vitest process).
 */
export async function startHaPlatform(runPid: number): Promise<boolean> {
  const states = (await platformHa('status'))
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.split('\t')[4]);
  const by = markedBy();
  const owned = states.every((s) => s === 'down') || (by !== undefined && by !== runPid && !alive(by)) || by === runPid;
  if (owned) {
    mkdirSync(path.dirname(marker), { recursive: true });
    writeFileSync(marker, `${runPid}\n`);
  }
  await platformHa('start');
  return owned;
}

/** Stops the platform if the run `runPid` started it (its marker), and removes the marker. */
export async function stopHaPlatformOf(runPid: number): Promise<boolean> {
  if (markedBy() !== runPid) return false;
  await platformHa('stop');
  rmSync(marker, { force: true });
  return true;
}
