/**
 * ZkSession against a real ZooKeeper behind a proxy that can swallow traffic:
 * a client whose connection stops being answered while the server is fine is
 * given a new session after max(6 s, 3T), not only at the end of the outage
 * tolerance.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { ZkSession } from '../../coordination/zk-session.js';
import { eventually } from './harness.js';
import { zkProxy } from './infra.js';

let cleanUp: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanUp.reverse()) await f();
  cleanUp = [];
});

describe('ZkSession', () => {
  it('starts a new session soon when its connection stops being answered while the server is up', async () => {
    const proxy = await zkProxy();
    cleanUp.push(() => proxy.close());
    const zk = new ZkSession({ connect: `127.0.0.1:${proxy.port}`, sessionTimeoutMs: 2000, stuckAfterMs: 30_000, logger: createLogger('test-zk', 'silent') });
    cleanUp.push(() => zk.close());
    let sessions = 0;
    let expired = 0;
    zk.on('session', () => (sessions += 1));
    zk.on('expired', () => (expired += 1));
    zk.start();
    await zk.waitUntilConnected(10_000);
    expect(sessions).toBe(1);
    const swallowedAt = Date.now();
    proxy.swallow();
    // New connections through the proxy pass traffic again: the server answers, this client does not hear it.
    await eventually(() => sessions === 2, 25_000, 'a new session');
    const ms = Date.now() - swallowedAt;
    expect(expired).toBe(1);
    // max(6 s, 3T) of silence, then the server answering for max(3 s, 2T) while this client does not:
    // about 10 s, well before the 30 s tolerance.
    expect(ms).toBeGreaterThanOrEqual(9000);
    expect(ms).toBeLessThan(20_000);
    expect(await zk.exists('/')).not.toBeNull();
    console.log(`a swallowed ZooKeeper connection was replaced by a new session after ${ms} ms`);
  }, 40_000);
});
