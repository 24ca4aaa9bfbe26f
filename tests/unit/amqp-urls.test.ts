import { describe, expect, it } from 'vitest';
import { amqpHosts, amqpUrlProblem, nextUrlIndex, parseAmqpUrls, redactAmqpUrl } from '../../common/amqp-urls.js';
import { ConfigError, loadOrchestratorConfig, loadWorkerConfig } from '../../common/config.js';

const LIST = 'amqp://guest:guest@127.0.0.1:5682, amqp://guest:guest@127.0.0.1:5683,,amqp://guest:guest@127.0.0.1:5684';

describe('DBAAS_AMQP_URL as a list', () => {
  it('splits on commas, trims, drops empty entries and keeps the order', () => {
    expect(parseAmqpUrls('amqp://guest:guest@127.0.0.1:5672')).toEqual(['amqp://guest:guest@127.0.0.1:5672']);
    expect(parseAmqpUrls(LIST)).toEqual(['amqp://guest:guest@127.0.0.1:5682', 'amqp://guest:guest@127.0.0.1:5683', 'amqp://guest:guest@127.0.0.1:5684']);
    expect(parseAmqpUrls(' , ')).toEqual([]);
  });

  it('moves on to the next URL, wrapping around; a single URL is tried again', () => {
    expect([0, 1, 2].map((i) => nextUrlIndex(i, 3))).toEqual([1, 2, 0]);
    expect(nextUrlIndex(0, 1)).toBe(0);
    expect(() => nextUrlIndex(0, 0)).toThrow(/no broker URL/);
  });

  it('never shows a password', () => {
    expect(redactAmqpUrl('amqp://dbaas:s3cret@rabbit-1:5672/vh?heartbeat=5')).toBe('amqp://dbaas:***@rabbit-1:5672/vh?heartbeat=5');
    expect(redactAmqpUrl('amqps://user@host')).toBe('amqps://user@host');
    expect(redactAmqpUrl('amqp://host:5672')).toBe('amqp://host:5672');
    // Not a valid URL (a port that is not a number): still no password.
    expect(redactAmqpUrl('amqp://u:p@ss@host:x')).not.toContain('p@ss');
    expect(amqpHosts('amqp://a:pw@h1:5682,amqps://a:pw@h2,amqp://h3')).toEqual(['h1:5682', 'h2:5671', 'h3:5672']);
  });

  it('names what is wrong with an entry, without its password', () => {
    expect(amqpUrlProblem(LIST)).toBeUndefined();
    expect(amqpUrlProblem('')).toMatch(/at least one/);
    expect(amqpUrlProblem('amqp://u:pw1@h1:5672,http://u:pw2@h2')).toBe('has an entry that is not amqp:// or amqps://: "http://u:***@h2"');
    expect(amqpUrlProblem('amqp://u:pw@h1:5672,not a url')).toMatch(/not a URL/);
  });

  it('is validated by the configuration: a list is accepted, a bad entry refused with the others problems', () => {
    const c = loadOrchestratorConfig({ DBAAS_AMQP_URL: LIST, DBAAS_ZK_CONNECT: '127.0.0.1:2281,127.0.0.1:2282,127.0.0.1:2283' });
    expect(c.amqpUrl).toBe(LIST);
    expect(c.zkConnect).toBe('127.0.0.1:2281,127.0.0.1:2282,127.0.0.1:2283');
    // The Docker runtime's containers reach the host's loopback services as host.docker.internal: every entry is translated.
    expect(c.dockerAmqpUrl).toBe(LIST.replaceAll('127.0.0.1', 'host.docker.internal'));
    expect(c.dockerZkConnect).toBe('host.docker.internal:2281,host.docker.internal:2282,host.docker.internal:2283');
    expect(loadWorkerConfig({ DBAAS_AMQP_URL: LIST, DBAAS_WORKER_ID: 'w1', DBAAS_WORKER_MONGO_URL: 'mongodb://x' }).amqpUrl).toBe(LIST);
    let err: unknown;
    try {
      loadOrchestratorConfig({ DBAAS_AMQP_URL: 'amqp://u:topsecret@h1,redis://u:topsecret@h2', DBAAS_ZK_CONNECT: 'zk1:2181,,zk2' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/^DBAAS_AMQP_URL has an entry that is not amqp:\/\/ or amqps:\/\//);
    expect(problems[1]).toMatch(/^DBAAS_ZK_CONNECT=.* must be host:port/);
    expect(String((err as Error).message)).not.toContain('topsecret');
  });

  it('accepts the ZooKeeper forms node-zookeeper-client accepts: ports optional, a chroot', () => {
    expect(loadOrchestratorConfig({ DBAAS_ZK_CONNECT: 'zookeeper' }).zkConnect).toBe('zookeeper');
    expect(loadOrchestratorConfig({ DBAAS_ZK_CONNECT: 'zk1:2181,zk2,zk3:2183/dbaas' }).zkConnect).toBe('zk1:2181,zk2,zk3:2183/dbaas');
  });
});
