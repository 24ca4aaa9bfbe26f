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

/**
 * The environment dbaas's own processes start with, beside {@link NODE_FLAGS} (the same
 * processes; docker/Dockerfile repeats it as an ENV of its images).
 *
 * - `MALLOC_ARENA_MAX=1`: every thread allocates from glibc's one main arena. V8's
 *   optimizing compiler runs on background threads and takes its working memory from
 *   malloc; glibc gave each of those threads an arena of its own, which kept what a compile
 *   freed: 13-18 MiB resident in a worker after its first seconds of load (of a master's
 *   106 MiB peak in `npm run bench`'s write cells), 0.3 MiB with one arena, where the main
 *   thread's allocations reuse it (docs/DECISIONS.md, "The master's resident peak").
 */
export const NODE_ENV_VARS: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '1' };
