// Bundles the compiled worker (dist/worker/main.js) into one file,
// dist/worker-bundle/main.mjs, which the process runtime starts instead when it
// is at least as new as dist/worker/main.js (orchestrator/runtimes/process-runtime.ts).
// Loading its modules file by file, a new worker's process had used 0.27-0.34 s of
// CPU by the time its code was loaded (0.5-3 s of wall time on a busy 2-core
// machine); from one file, 0.13-0.15 s (issue 16: a new slave's start). Run by
// `npm run build:service`, after tsc. esbuild is a devDependency; where it is not
// installed, the worker runs unbundled, as before.
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
  outfile: 'dist/worker-bundle/main.mjs',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  logLevel: 'error',
  // CommonJS dependencies call require(), also for optional packages they may lack (kerberos, pg-native): one real require.
  banner: { js: "import { createRequire as dbaasCreateRequire } from 'node:module'; const require = dbaasCreateRequire(import.meta.url);" },
});
