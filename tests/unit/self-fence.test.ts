/**
 * SelfFence (worker/fencing.ts): a master whose ZooKeeper session expired takes
 * /master back on the next session, even when that session is up before the
 * fence (closing its channels) has finished. Seen on a master streaming a
 * big snapshot: the next session registered ~100 ms after the expiry while the
 * fence still waited on its channels, the reclaim was skipped, and the master
 * stayed registered (state master) without /master: no master served.
 */
import { describe, expect, it } from 'vitest';
import type { WorkerConfig } from '../../common/config.js';
import type { Logger } from '../../common/logger.js';
import { SelfFence, type FencingHost } from '../../worker/fencing.js';

function host(fenceDone: Promise<void>) {
  const calls: string[] = [];
  const master = {
    term: 7,
    fence: async () => {
      calls.push('fence');
      await fenceDone;
      calls.push('fenced');
    },
    resume: () => void calls.push('resume'),
    attach: async () => void calls.push('attach'),
  };
  const h: FencingHost = {
    config: { zkSessionTimeoutMs: 2000, zkOutageToleranceMs: 30_000 } as WorkerConfig,
    logger: { warn: () => undefined, info: () => undefined } as unknown as Logger,
    state: () => 'master',
    master: () => master,
    connection: () => undefined,
    fail: (reason: string) => {
      throw new Error(`failed: ${reason}`);
    },
    zk: {
      contactAgeMs: () => 0,
      readTerm: async () => 7,
      claimMaster: async (term: number) => void calls.push(`claim ${term}`),
      watchTerm: async () => void calls.push('watch'),
    },
  };
  return { h, calls };
}

describe('SelfFence after a session expiry', () => {
  it('takes /master back when the next session registers before the fence has finished, and only after the fence', async () => {
    let finishFence!: () => void;
    const { h, calls } = host(new Promise<void>((resolve) => (finishFence = resolve)));
    const fence = new SelfFence(h);
    const expired = fence.sessionExpired();
    // The next session is up while the channels are still closing.
    const registered = fence.registered();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(calls).toEqual(['fence']);
    finishFence();
    await expect(expired).resolves.toBe(true);
    await registered;
    expect(calls).toEqual(['fence', 'fenced', 'watch', 'claim 7', 'resume']);
  });

  it('takes /master back when the fence finished first', async () => {
    const { h, calls } = host(Promise.resolve());
    const fence = new SelfFence(h);
    await fence.sessionExpired();
    await fence.registered();
    expect(calls).toEqual(['fence', 'fenced', 'watch', 'claim 7', 'resume']);
  });
});
