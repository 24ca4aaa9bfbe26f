/**
 * `npm run bench -- --ramp [options]` (scripts/bench.sh sends `--ramp` here):
 * the load ramp of tools/bench/ramp.ts. `--help` lists the options.
 */
import { rampMain } from './ramp.js';

rampMain(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`[ramp] ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
