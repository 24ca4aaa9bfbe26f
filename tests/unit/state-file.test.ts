/**
 * Small state files other processes read while they are written (common/state-file.ts): a reader in
 * another process, racing many rewrites, finds the file whole every time (with a plain
 * `writeFileSync` it finds it empty or cut short: truncated, then written); an exclusive write
 * still refuses an existing file; a file cut short reads as not there.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readJsonFile, writeFileAtomic } from '../../common/state-file.js';

/** Reads `file` in a loop until `stop` exists (then once more), counting whole, partial and absent reads. */
const READER = `
const fs = require('node:fs');
const [file, stop, size] = process.argv.slice(1);
const seen = { whole: 0, partial: 0, absent: 0 };
for (let first = true; ; first = false) {
  const last = fs.existsSync(stop);
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (typeof v.fill === 'string' && v.fill.length === Number(size)) seen.whole++;
    else seen.partial++;
  } catch (err) {
    if (err.code === 'ENOENT') seen.absent++;
    else seen.partial++;
  }
  if (first) process.stdout.write('ready\\n');
  if (last) break;
}
process.stdout.write(JSON.stringify(seen) + '\\n');
`;

describe('state files (writeFileAtomic, readJsonFile)', () => {
  const dirs: string[] = [];
  const tmpDir = (): string => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'dbaas-state-file-'));
    dirs.push(d);
    return d;
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('a reader in another process racing 400 rewrites never finds the file partial or absent', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'unit.json');
    const stop = path.join(dir, 'stop');
    const size = 64 * 1024;
    const content = (i: number): string => JSON.stringify({ seq: i, fill: String.fromCharCode(97 + (i % 26)).repeat(size) });
    writeFileAtomic(file, content(0));
    const reader = spawn(process.execPath, ['-e', READER, file, stop, String(size)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    reader.stdout.setEncoding('utf8');
    const exited = new Promise<number | null>((resolve) => reader.once('exit', resolve));
    // Writes only once the reader reads, so the two overlap.
    await new Promise<void>((resolve, reject) => {
      reader.stdout.on('data', (chunk: string) => {
        out += chunk;
        if (out.includes('ready\n')) resolve();
      });
      reader.once('exit', () => reject(new Error(`the reader exited early: ${out}`)));
    });
    for (let i = 1; i <= 400; i++) writeFileAtomic(file, content(i));
    writeFileSync(stop, '');
    expect(await exited).toBe(0);
    const seen = JSON.parse(out.split('\n').filter((l) => l.startsWith('{')).at(-1) ?? '{}') as { whole: number; partial: number; absent: number };
    expect(seen.partial).toBe(0);
    expect(seen.absent).toBe(0);
    expect(seen.whole).toBeGreaterThanOrEqual(2); // its first read and its last, at least
    expect(readJsonFile<{ seq: number }>(file)?.seq).toBe(400);
    expect(readdirSync(dir).sort()).toEqual(['stop', 'unit.json']); // no temporary file left
  });

  it('an exclusive write refuses an existing file and leaves it as it was', () => {
    const file = path.join(tmpDir(), 'spare-0.json');
    writeFileAtomic(file, '{"database":"a"}', { exclusive: true });
    expect(() => writeFileAtomic(file, '{"database":"b"}', { exclusive: true })).toThrow(expect.objectContaining({ code: 'EEXIST' }) as Error);
    expect(readFileSync(file, 'utf8')).toBe('{"database":"a"}');
    expect(readdirSync(path.dirname(file))).toEqual(['spare-0.json']);
  });

  it('a file cut short or absent reads as not there; a whole one as its content', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'unit.json');
    expect(readJsonFile(file)).toBeUndefined();
    writeFileSync(file, '{"id":"w1","workerPid":12');
    expect(readJsonFile(file)).toBeUndefined();
    writeFileSync(file, '');
    expect(readJsonFile(file)).toBeUndefined();
    writeFileAtomic(file, '{"id":"w1","workerPid":123}');
    expect(readJsonFile(file)).toEqual({ id: 'w1', workerPid: 123 });
  });
});
