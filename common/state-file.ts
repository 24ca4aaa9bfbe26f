/**
 * Small state files one process writes while another may read them (the runtimes'
 * `unit.json`, a worker's PostgreSQL marker, `spare-*.json`, `drop-*.json`,
 * `cluster.json`, an orchestrator's pid file). `writeFileSync` truncates the file
 * and then writes it, so a reader in between saw an empty or half-written file
 * (a benchmark's stop crashed on one, leaving its orchestrator running). Written
 * here to a temporary file in the same directory and renamed into place (atomic
 * on one file system): a reader finds the old content, the new, or no file,
 * never part of one.
 */
import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Writes `data` to `file` whole or not at all. With `exclusive`, only when `file`
 * does not exist yet (throws EEXIST otherwise, as `writeFileSync` with flag `wx`),
 * still whole: the temporary file is hard-linked into place.
 */
export function writeFileAtomic(file: string, data: string, opts: { exclusive?: boolean } = {}): void {
  // A dot name ending in .tmp: no reader's pattern (a worker id, spare-*.json, drop-*.json) takes it.
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  writeFileSync(tmp, data, { flag: 'wx' });
  try {
    if (opts.exclusive) linkSync(tmp, file);
    else renameSync(tmp, file);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** A JSON state file's content; undefined when the file is absent or not whole JSON (a writer's crash, a foreign file). */
export function readJsonFile<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}
