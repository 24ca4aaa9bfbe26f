/**
 * The course's ride timestamps, `DD-MM-YYYY:SS-MM-HH` (day, month, year, then
 * seconds, minutes, hours), taken as UTC. Stored as ISO 8601 so that the
 * database compares and sorts them as strings.
 */

const RIDE_TIME = /^(\d{2})-(\d{2})-(\d{4}):(\d{2})-(\d{2})-(\d{2})$/;

/** The ISO form of a course timestamp, or undefined when it is not one (or not a real date). */
export function parseRideTime(text: unknown): string | undefined {
  if (typeof text !== 'string') return undefined;
  const m = RIDE_TIME.exec(text);
  if (!m) return undefined;
  const [day, month, year, second, minute, hour] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const date = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  const same =
    date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day && date.getUTCHours() === hour && date.getUTCMinutes() === minute && date.getUTCSeconds() === second;
  return same ? date.toISOString() : undefined;
}

/** The course form of an ISO timestamp. */
export function formatRideTime(iso: string): string {
  const d = new Date(iso);
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${two(d.getUTCDate())}-${two(d.getUTCMonth() + 1)}-${d.getUTCFullYear()}:${two(d.getUTCSeconds())}-${two(d.getUTCMinutes())}-${two(d.getUTCHours())}`;
}
