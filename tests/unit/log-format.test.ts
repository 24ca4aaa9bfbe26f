import { describe, expect, it } from 'vitest';
import { createLogger, formatLogLine, readableDestination } from '../../common/logger.js';

describe('readable log lines (DBAAS_LOG_FORMAT=pretty, or auto at a terminal)', () => {
  it('shows time, level, component, message and the other fields once', () => {
    const line = JSON.stringify({ level: 40, time: Date.UTC(2026, 10, 30, 10, 42, 1, 123), pid: 7, hostname: 'h', name: 'dbaas-orchestrator', component: 'cluster', reqId: 'r-1', worker: 'w1', reason: 'its process exited', msg: 'master is lost' });
    expect(formatLogLine(`${line}\n`)).toBe('10:42:01.123 WARN  cluster  master is lost  reqId=r-1 worker=w1 reason="its process exited"\n');
  });

  it('passes through what is not a JSON object', () => {
    expect(formatLogLine('[dbaas] ready\n')).toBe('[dbaas] ready\n');
    expect(formatLogLine('[1,2]')).toBe('[1,2]');
  });

  it('a logger on the readable destination writes readable lines, one reqId each', () => {
    const out: string[] = [];
    const logger = createLogger('t', 'info', {}, readableDestination({ write: (t: string) => out.push(t) }));
    logger.child({ reqId: 'abc' }).info({ status: 503 }, 'request');
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}request {2}reqId=abc status=503\n$/);
  });
});
