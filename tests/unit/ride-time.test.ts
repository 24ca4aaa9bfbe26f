/** The example rides service's timestamps, the course's DD-MM-YYYY:SS-MM-HH. */
import { describe, expect, it } from 'vitest';
import { formatRideTime, parseRideTime } from '../../examples/rideshare/ride-time.js';

describe('ride timestamps (DD-MM-YYYY:SS-MM-HH)', () => {
  it('round-trips, and refuses what is not a real time', () => {
    expect(parseRideTime('21-11-2026:05-04-10')).toBe('2026-11-21T10:04:05.000Z');
    expect(formatRideTime('2026-11-21T10:04:05.000Z')).toBe('21-11-2026:05-04-10');
    for (const bad of ['31-02-2026:00-00-10', '21-11-2026 10:04:05', '21-13-2026:00-00-00', 5, undefined, '21-11-2026:60-00-00']) expect(parseRideTime(bad)).toBeUndefined();
  });
});
