/**
 * The V8 flags dbaas's own processes start with: workers (the process runtime),
 * the orchestrator (the lifecycle manager, i.e. `npm start`) and the benchmark's
 * cluster (tools/bench/bench-cluster.ts), so that `npm run bench` measures what
 * runs. docker/Dockerfile repeats them in its images' CMD.
 *
 * - `--max-semi-space-size=2`: a young generation of 2 MB semi-spaces, not up to
 *   16 MB (a worker 112 → 86 MiB, throughput unchanged: docs/BENCHMARKS.md).
 * - `--heap-growing-percent=20`: after a full GC the old generation may grow to
 *   1.2× what survived it (plus V8's minimum step), not up to 4×. Under load V8
 *   otherwise let garbage pile up to twice the live heap and more before the next
 *   full GC, so the resident peak followed the request rate, not what is kept: a
 *   worker's heap after `npm run bench`'s write cells was 46-52 MiB and 24-26 MiB
 *   after a forced full GC (docs/DECISIONS.md, "Memory under load").
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--heap-growing-percent=20'];
