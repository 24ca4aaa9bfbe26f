import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Backoff } from '../../common/backoff.js';
import { loadOrchestratorConfig } from '../../common/config.js';
import { createLogger } from '../../common/logger.js';
import { DockerEvents, LineSplitter, sinceOf, type DockerEvent } from '../../orchestrator/runtimes/docker-events.js';
import type Docker from 'dockerode';
import { demuxLogs, DockerRuntime, splitExitCode } from '../../orchestrator/runtimes/docker-runtime.js';

const logger = createLogger('test', 'silent');

/** A `die` event as the engine writes it; timeNano has more digits than a double keeps. */
function eventLine(id: string, timeNano: string): string {
  const e: Omit<DockerEvent, 'timeNano'> = { Type: 'container', Action: 'die', Actor: { ID: id, Attributes: { exitCode: '137' } }, time: Number(timeNano.slice(0, 10)) };
  return `${JSON.stringify(e).slice(0, -1)},"timeNano":${timeNano}}`;
}

describe('docker events', () => {
  it('splits chunks into lines, keeping a partial line for the next chunk', () => {
    const s = new LineSplitter();
    expect(s.push('{"a":1}\n{"b"')).toEqual(['{"a":1}']);
    expect(s.push(':2}\n\n{"c":3}\n')).toEqual(['{"b":2}', '{"c":3}']);
    expect(s.push('')).toEqual([]);
  });

  it('formats since as seconds.nanoseconds', () => {
    expect(sinceOf(1_763_700_000_000_000_123n)).toBe('1763700000.000000123');
    expect(sinceOf(5_000_000_000)).toBe('5.000000000');
  });

  it('reconnects after the stream ends, from the last event seen, and asks for a re-list', async () => {
    const streams: PassThrough[] = [];
    const sinces: Array<string | undefined> = [];
    const seen: string[] = [];
    let reconnects = 0;
    let failNext = 0;
    const events = new DockerEvents({
      subscribe: async (since) => {
        sinces.push(since);
        if (failNext > 0) {
          failNext--;
          throw new Error('connect ECONNREFUSED /var/run/docker.sock');
        }
        const s = new PassThrough();
        streams.push(s);
        return s;
      },
      onEvent: (e) => seen.push(e.Actor.ID),
      onReconnect: () => reconnects++,
      logger,
      backoff: new Backoff(1, 5),
    });
    await events.start();
    expect(sinces).toEqual([undefined]);

    // An event split across two chunks, and a junk line that is skipped.
    const line = eventLine('c1', '1763700000123456789');
    streams[0]!.write(line.slice(0, 10));
    streams[0]!.write(`${line.slice(10)}\nnot json\n`);
    await new Promise((r) => setImmediate(r));
    expect(seen).toEqual(['c1']);

    // The daemon goes away: the first attempts fail, then it is back.
    failNext = 2;
    streams[0]!.end();
    await waitUntil(() => streams.length === 2);
    expect(sinces.slice(1)).toEqual(['1763700000.123456789', '1763700000.123456789', '1763700000.123456789']);
    expect(reconnects).toBe(1);

    streams[1]!.write(`${eventLine('c2', '1763700001000000000')}\n`);
    await waitUntil(() => seen.length === 2);
    expect(seen).toEqual(['c1', 'c2']);

    events.close();
    streams[1]!.destroy();
    await new Promise((r) => setTimeout(r, 20));
    expect(streams).toHaveLength(2); // no reconnect after close
  });

  it('rejects start when the engine is unreachable, and can start later', async () => {
    let up = false;
    const events = new DockerEvents({
      subscribe: async () => {
        if (!up) throw new Error('down');
        return new PassThrough();
      },
      onEvent: () => undefined,
      onReconnect: () => undefined,
      logger,
    });
    await expect(events.start()).rejects.toThrow('down');
    up = true;
    await events.start();
    events.close();
  });
});

describe('docker runtime helpers', () => {
  it('turns 128+N exit codes into signals', () => {
    expect(splitExitCode(137)).toEqual({ code: null, signal: 'SIGKILL' });
    expect(splitExitCode(143)).toEqual({ code: null, signal: 'SIGTERM' });
    expect(splitExitCode(0)).toEqual({ code: 0, signal: null });
    expect(splitExitCode(1)).toEqual({ code: 1, signal: null });
    expect(splitExitCode(null)).toEqual({ code: null, signal: null });
  });

  it('a failed worker\'s cause is given up on (undefined) when the engine does not answer, within its short timeout', async () => {
    const silent = { listContainers: () => new Promise(() => undefined) } as unknown as Docker;
    const runtime = new DockerRuntime({ docker: silent, namespace: 'n', dataDir: '/nonexistent', network: 'n', workerImage: 'w', dbImage: 'd', clusterEnv: {}, logger });
    const started = Date.now();
    await expect(runtime.failureCause('w1')).resolves.toBeUndefined();
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('demultiplexes container logs', () => {
    const frame = (stream: number, text: string): Buffer => {
      const body = Buffer.from(text);
      const head = Buffer.alloc(8);
      head[0] = stream;
      head.writeUInt32BE(body.length, 4);
      return Buffer.concat([head, body]);
    };
    expect(demuxLogs(Buffer.concat([frame(1, 'out\n'), frame(2, 'err\n')]))).toBe('out\nerr\n');
  });
});

describe('docker settings', () => {
  it('defaults: per-namespace network, and loopback services reached as host.docker.internal', () => {
    const c = loadOrchestratorConfig({ DBAAS_NAMESPACE: 'rides' });
    expect(c.dockerNetwork).toBe('dbaas-rides');
    expect(c.dockerAmqpUrl).toBe('amqp://guest:guest@host.docker.internal:5672');
    expect(c.dockerZkConnect).toBe('host.docker.internal:2181');
    expect(c.dockerHost).toBe('unix:///var/run/docker.sock');
    expect(c.dockerDbImage).toBe('mongo:7');
  });

  it('keeps service names that are not loopback, and takes explicit values', () => {
    const c = loadOrchestratorConfig({
      DBAAS_AMQP_URL: 'amqp://u:p@rabbitmq:5672',
      DBAAS_ZK_CONNECT: 'zookeeper:2181,localhost:2182',
      DBAAS_DOCKER_NETWORK: 'dbaas-net',
      DBAAS_DOCKER_HOST: 'tcp://10.0.0.5:2375',
    });
    expect(c.dockerAmqpUrl).toBe('amqp://u:p@rabbitmq:5672');
    expect(c.dockerZkConnect).toBe('zookeeper:2181,host.docker.internal:2182');
    expect(c.dockerNetwork).toBe('dbaas-net');
    expect(c.dockerHost).toBe('tcp://10.0.0.5:2375');
  });

  it('rejects a docker host that is neither unix:// nor tcp://', () => {
    expect(() => loadOrchestratorConfig({ DBAAS_DOCKER_HOST: '/var/run/docker.sock' })).toThrow(/DBAAS_DOCKER_HOST/);
  });
});

async function waitUntil(cond: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 5));
  }
}
