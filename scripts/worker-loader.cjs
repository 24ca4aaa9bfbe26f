// The process runtime's entry for a worker: dist/worker-bundle/main.cjs (copied here by
// scripts/bundle-worker.mjs). It loads the bundled worker, dist/worker-bundle/worker.cjs, with
// the V8 code cache made at build time (worker.cjs.v8cache), so a new worker does not compile
// the bundle again: with the workers' V8 flags its process has used 0.11 s of CPU when its code is
// loaded, against 0.17 s for the ES-module bundle (issue 16: a new slave's start, where CPU
// contention with a writer stretches that step; node alone uses 0.05 s). V8 takes the cache only for
// the same source, node and V8 flags (common/node-flags.ts); otherwise, or without the file, the
// bundle is compiled as usual and a line on stderr says why it was slower.
// `node main.cjs --write-code-cache` (the build) runs the bundle without a configuration, so it
// loads every module and stops at the configuration check, and writes the cache of all the
// code compiled by then.
'use strict';
/* global require, module, __dirname, process */
/* eslint-disable @typescript-eslint/no-require-imports -- a CommonJS file: the loader must be one */
const fs = require('node:fs');
const Module = require('node:module');
const path = require('node:path');
const vm = require('node:vm');

const filename = path.join(__dirname, 'worker.cjs');
const cacheFile = `${filename}.v8cache`;
const writing = process.argv.includes('--write-code-cache');
let cachedData;
if (!writing) {
  try {
    cachedData = fs.readFileSync(cacheFile);
  } catch {
    cachedData = undefined;
  }
}
const script = new vm.Script(Module.wrap(fs.readFileSync(filename, 'utf8')), { filename, cachedData });
if (cachedData && script.cachedDataRejected) {
  process.stderr.write(`worker code cache ${cacheFile} not taken (another node or V8 flags): compiling the bundle\n`);
}
if (writing) {
  process.on('exit', () => {
    fs.writeFileSync(`${cacheFile}.tmp`, script.createCachedData());
    fs.renameSync(`${cacheFile}.tmp`, cacheFile);
  });
}
const mod = new Module(filename, module);
mod.filename = filename;
script.runInThisContext().call(mod.exports, mod.exports, Module.createRequire(filename), mod, filename, __dirname);
