// Bundles the compiled worker (dist/worker/main.js) into one file,
// dist/worker-bundle/worker.cjs, with the V8 code cache of its loading
// (worker.cjs.v8cache) and its loader, dist/worker-bundle/main.cjs
// (scripts/worker-loader.cjs), which the process runtime starts instead when it
// is at least as new as dist/worker/main.js (orchestrator/runtimes/process-runtime.ts).
// Loading its modules file by file, a new worker's process had used 0.27-0.34 s of
// CPU by the time its code was loaded (0.5-3 s of wall time on a busy 2-core
// machine); from one file, 0.13-0.15 s; with the code cache, 0.11 s (issue 16: a
// new slave's start). Run by `npm run build:service`, after tsc. esbuild is a
// devDependency; where it is not installed, the worker runs unbundled, as before.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import process from 'node:process';

let build;
try {
  ({ build } = await import('esbuild'));
} catch {
  process.stderr.write('bundle-worker: esbuild is not installed; workers run dist/worker/main.js unbundled (a slower start)\n');
  process.exit(0);
}

await build({
  entryPoints: ['dist/worker/main.js'],
  outfile: 'dist/worker-bundle/worker.cjs',
  bundle: true,
  platform: 'node',
  target: 'node20',
  // CommonJS, so that the loader can compile it with a code cache (vm.Script; node 20 has none for ES modules).
  format: 'cjs',
  logLevel: 'error',
  // pg's check for Cloudflare Workers (pg/lib/stream.js, run as pg loads) builds a fetch Response when node
  // has no `navigator` (node 20), which loads node's fetch (undici): 50 ms of CPU at every worker start for
  // nothing. The worker uses no fetch; the free identifier Response (only that one) is undefined in the bundle.
  define: { Response: 'undefined' },
});
// V8 keeps the bundle's source for as long as the worker runs: one byte a character when all of it is
// ASCII, two for every character when a single one is not. esbuild escapes the code's own; the comments it
// keeps (an arrow, an ellipsis, a dash in ours and pg's) are escaped here: 5.4 → 2.7 MB of every worker's heap.
const bundled = 'dist/worker-bundle/worker.cjs';
const source = readFileSync(bundled, 'utf8');
const ascii = source.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
if (ascii !== source) writeFileSync(bundled, ascii);
// The bundle's own copy of the loader: it reads the bundle beside it.
copyFileSync('scripts/worker-loader.cjs', 'dist/worker-bundle/main.cjs');
// The cache is taken only under the same V8 flags as the workers run with. Without a configuration the
// worker stops at its check (exit 2), after loading every module.
const { NODE_FLAGS } = await import('../dist/common/node-flags.js');
const cache = 'dist/worker-bundle/worker.cjs.v8cache';
rmSync(cache, { force: true });
spawnSync(process.execPath, [...NODE_FLAGS, 'dist/worker-bundle/main.cjs', '--write-code-cache'], { env: { PATH: process.env.PATH ?? '' }, stdio: 'ignore' });
if (!existsSync(cache)) process.stderr.write(`bundle-worker: no ${cache} was made; workers compile the bundle at each start (a slower start)\n`);
