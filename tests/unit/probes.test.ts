/** The hand-written MongoDB ping of common/probes.ts, against the driver's own BSON. */
import { serialize } from 'bson';
import { describe, expect, it } from 'vitest';
import { pingMessage } from '../../common/probes.js';

describe('pingMessage', () => {
  it('is an OP_MSG whose body is the BSON of { ping: 1, $db: "admin" }', () => {
    const msg = pingMessage(7);
    const body = Buffer.from(serialize({ ping: 1, $db: 'admin' }));
    expect(msg.readInt32LE(0)).toBe(msg.length);
    expect(msg.readInt32LE(4)).toBe(7);
    expect(msg.readInt32LE(12)).toBe(2013);
    expect(msg.readUInt32LE(16)).toBe(0);
    expect(msg.readUInt8(20)).toBe(0);
    expect(msg.subarray(21).equals(body)).toBe(true);
  });
});
