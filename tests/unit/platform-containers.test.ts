/** How a compose container becomes a platform service at GET /api/v1/platform (orchestrator/platform-containers.ts). */
import { describe, expect, it } from 'vitest';
import { containerService, type ContainerFacts } from '../../orchestrator/platform-containers.js';

const now = new Date('2026-11-30T14:00:00.000Z');
const facts = (service: string, state: Partial<ContainerFacts['State']> = {}, restarts = 0, policy = 'unless-stopped'): ContainerFacts => ({
  Id: 'abcdef0123456789abcdef',
  RestartCount: restarts,
  Config: { Labels: { 'com.docker.compose.project': 'dbaas-ha', 'com.docker.compose.service': service } },
  HostConfig: { RestartPolicy: { Name: policy } },
  State: { Running: true, Paused: false, Restarting: false, Pid: 4242, ExitCode: 0, OOMKilled: false, FinishedAt: '0001-01-01T00:00:00Z', ...state },
});

describe('platform containers', () => {
  it('a running ZooKeeper container: kind, address, container id, host pid, restarted by the engine', () => {
    expect(containerService(facts('zookeeper-2', { Health: { Status: 'healthy' } }), now)).toEqual({
      name: 'zookeeper-2',
      kind: 'zookeeper',
      address: 'zookeeper-2:2181',
      containerId: 'abcdef012345',
      pid: 4242,
      state: 'running',
      restarts: 0,
      managed: true,
      by: 'docker',
      updatedAt: '2026-11-30T14:00:00.000Z',
    });
  });

  it('the engine restarted a RabbitMQ node twice: its restarts and last exit are reported', () => {
    const s = containerService(facts('rabbitmq-1', { ExitCode: 137, FinishedAt: '2026-11-30T13:59:00Z' }, 2), now);
    expect(s).toMatchObject({ kind: 'rabbitmq', address: 'rabbitmq-1:5672', state: 'running', restarts: 2, lastFailure: { at: '2026-11-30T13:59:00Z', reason: 'exited with 137' } });
  });

  it('states: restarting, down (no restart policy: not managed), unhealthy or paused = wedged, health starting', () => {
    expect(containerService(facts('orchestrator-1', { Running: false, Restarting: true }), now)?.state).toBe('restarting');
    const down = containerService(facts('orchestrator-2', { Running: false, Pid: 0, ExitCode: 1, FinishedAt: '2026-11-30T13:58:00Z' }, 0, 'no'), now);
    expect(down).toMatchObject({ state: 'down', managed: false, lastFailure: { reason: 'exited with 1' } });
    expect(down?.pid).toBeUndefined();
    expect(containerService(facts('zookeeper-1', { Health: { Status: 'unhealthy' } }), now)?.state).toBe('wedged');
    expect(containerService(facts('zookeeper-1', { Paused: true }), now)?.state).toBe('wedged');
    expect(containerService(facts('rabbitmq-3', { Health: { Status: 'starting' } }), now)?.state).toBe('starting');
  });

  it('the proxy and containers of no compose service are not platform services', () => {
    expect(containerService(facts('proxy'), now)).toBeUndefined();
    expect(containerService({ ...facts('x'), Config: { Labels: null } }, now)).toBeUndefined();
  });
});
