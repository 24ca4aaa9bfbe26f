/**
 * Where a worker's start goes (issue 16: a new slave's time to serve): named
 * marks in milliseconds since its process started (performance.now() counts from
 * the process's time origin), logged once as `start timeline` when it is ready,
 * with the process's start as wall-clock time so a tool can line the marks up with
 * the orchestrator's (tools/bench/catch-up.ts).
 */
export class StartTimeline {
  private readonly marks: Record<string, number> = {};

  /** Notes that `name` is done now (a second mark of the same name keeps the first). */
  mark(name: string): void {
    this.marks[name] ??= Math.round(performance.now());
  }

  /** The fields of the log line: when the process started (ms since the epoch) and each mark. */
  fields(): { processStartedAt: number; marks: Readonly<Record<string, number>> } {
    return { processStartedAt: Math.round(performance.timeOrigin), marks: { ...this.marks } };
  }
}
