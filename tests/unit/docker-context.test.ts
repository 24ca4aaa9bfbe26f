/**
 * The registry build (docker/Dockerfile) compiles only what its build context
 * admits (docker/Dockerfile.dockerignore) and what its build stage copies. The
 * offline images reuse the host's dist/, so nothing else would notice a service
 * file importing something the context leaves out. This test lays out exactly
 * those files in a temporary directory and runs the Dockerfile's build command
 * there.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');

/** A .dockerignore pattern as a regular expression over slash-separated relative paths. */
function patternRegex(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*' && pattern[i + 1] === '*') {
      re += '.*';
      i++;
      if (pattern[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * Docker's rule: the last pattern that matches a path (or one of its parent
 * directories) decides; `!` patterns admit again.
 */
function dockerignoreFilter(text: string): (file: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const admit = l.startsWith('!');
      const p = path.posix.normalize((admit ? l.slice(1) : l).trim()).replace(/^\/+/, '');
      return { admit, re: patternRegex(p) };
    });
  return (file) => {
    const prefixes = file.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'));
    let admitted = true;
    for (const r of rules) if (prefixes.some((p) => r.re.test(p))) admitted = r.admit;
    return admitted;
  };
}

/** Every file under `dir` (relative, slash-separated), without what a build context never holds anyway. */
function walk(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (rel === '' && ['.git', 'node_modules', 'dist', '.dbaas', 'data'].includes(e.name)) continue;
    if (e.isDirectory()) out.push(...walk(dir, r));
    else if (e.isFile()) out.push(r);
  }
  return out;
}

interface BuildStage {
  /** [sources, destination] of each COPY from the context. */
  copies: Array<[string[], string]>;
  /** The `npm run …` commands of its RUN instructions. */
  npmRuns: string[];
}

/** The first stage of a Dockerfile (the build stage), with continuation lines joined. */
function buildStage(dockerfile: string): BuildStage {
  const lines = dockerfile.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim());
  const from = lines.findIndex((l) => /^FROM\s/i.test(l));
  const next = lines.findIndex((l, i) => i > from && /^FROM\s/i.test(l));
  const stage = lines.slice(from + 1, next === -1 ? undefined : next);
  const copies: Array<[string[], string]> = [];
  const npmRuns: string[] = [];
  for (const l of stage) {
    const copy = /^COPY\s+(.*)$/i.exec(l);
    if (copy?.[1] && !/--from=/.test(copy[1])) {
      const words = copy[1].split(/\s+/).filter((w) => !w.startsWith('--'));
      copies.push([words.slice(0, -1), words[words.length - 1] as string]);
    }
    const run = /^RUN\s+(.*)$/i.exec(l);
    if (run?.[1]) for (const m of run[1].matchAll(/npm run ([\w:-]+)/g)) npmRuns.push(m[1] as string);
  }
  return { copies, npmRuns };
}

describe('docker/Dockerfile build context', () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'dbaas-docker-context-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('the dockerignore rules: last match wins, a directory pattern covers its files', () => {
    const admit = dockerignoreFilter('**\n!package.json\n!common/**\ncommon/secret.ts\n');
    expect(['package.json', 'common/a.ts', 'common/x/b.ts', 'tools/bench/main.ts', 'README.md', 'common/secret.ts'].map(admit)).toEqual([
      true,
      true,
      true,
      false,
      false,
      false,
    ]);
    expect(dockerignoreFilter('dist\n')('dist/a.js')).toBe(false);
  });

  it('compiles with exactly the files the context admits and the build stage copies', () => {
    const admit = dockerignoreFilter(readFileSync(path.join(root, 'docker/Dockerfile.dockerignore'), 'utf8'));
    const context = walk(root).filter(admit);
    // The tools and tests are not part of the service images.
    expect(context.some((f) => f.startsWith('tools/') || f.startsWith('tests/'))).toBe(false);
    expect(context).toContain('orchestrator/main.ts');

    const stage = buildStage(readFileSync(path.join(root, 'docker/Dockerfile'), 'utf8'));
    expect(stage.npmRuns.length).toBeGreaterThan(0);
    for (const [sources, dest] of stage.copies) {
      for (const src of sources) {
        const s = path.posix.normalize(src).replace(/\/$/, '');
        const files = context.filter((f) => f === s || f.startsWith(`${s}/`));
        expect(files, `COPY ${src}: nothing in the build context`).not.toHaveLength(0);
        for (const f of files) {
          const rel = f === s ? (dest.endsWith('/') || sources.length > 1 ? path.posix.join(dest, path.posix.basename(f)) : dest) : path.posix.join(dest, f.slice(s.length + 1));
          const target = path.join(work, rel);
          mkdirSync(path.dirname(target), { recursive: true });
          cpSync(path.join(root, f), target);
        }
      }
    }
    // npm ci's result, borrowed: the dependencies are not what this test is about.
    symlinkSync(path.join(root, 'node_modules'), path.join(work, 'node_modules'), 'dir');
    for (const script of stage.npmRuns.filter((s) => s.startsWith('build'))) {
      try {
        execFileSync('npm', ['run', '-s', script], { cwd: work, stdio: 'pipe', timeout: 170_000 });
      } catch (err) {
        const e = err as { stdout?: Buffer; stderr?: Buffer; message: string };
        throw new Error(`npm run ${script} fails in the Docker build context:\n${e.stdout?.toString() ?? ''}${e.stderr?.toString() ?? e.message}`);
      }
    }
    for (const entry of ['dist/orchestrator/main.js', 'dist/worker/main.js', 'dist/coordination/zk-session.js', 'dist/orchestrator/dashboard/index.html']) {
      expect(existsSync(path.join(work, entry)) && statSync(path.join(work, entry)).size > 0, entry).toBe(true);
    }
  }, 180_000);
});
