/**
 * The coordination recipes against the real ZooKeeper: the same suite as
 * tests/unit/coordination.test.ts runs against the in-memory fake. Each test
 * works in a namespace of its own, removed afterwards.
 */
import { randomBytes } from 'node:crypto';
import { createLogger } from '../../common/logger.js';
import { ZkSession } from '../../coordination/zk-session.js';
import { coordinationSuite, type Session } from '../coordination-suite.js';

const logger = createLogger('coordination-test', 'silent');
const run = randomBytes(3).toString('hex');
let next = 0;

coordinationSuite('real ZooKeeper', {
  namespace: () => `it-coord-${run}-${++next}`,
  session: async (setup?: (s: Session) => void): Promise<Session> => {
    const zk = new ZkSession({ connect: '127.0.0.1:2181', sessionTimeoutMs: 2000, logger });
    setup?.(zk);
    zk.start();
    await zk.waitUntilConnected(10_000);
    return zk;
  },
});
