/** Rate history and metrics fed by hooks, without a cluster. */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { clusterNames } from '../../common/names.js';
import type { AuditEvent } from '../../orchestrator/audit-log.js';
import { METRIC_SCOPES, Metrics, type WorkerDetail } from '../../orchestrator/metrics.js';
import { RateHistory } from '../../orchestrator/rate-history.js';
import type { RpcObserver } from '../../orchestrator/rpc-client.js';

describe('RateHistory', () => {
  it('counts per bucket, fills gaps with zeros, and forgets buckets older than the window', () => {
    const h = new RateHistory(1000, 5);
    h.record('reads', 10_100);
    h.record('reads', 10_900);
    h.record('writes', 12_500);
    let s = h.series(13_250);
    expect(s.points.map((p) => [p.t, p.reads, p.writes])).toEqual([
      [9000, 0, 0],
      [10_000, 2, 0],
      [11_000, 0, 0],
      [12_000, 0, 1],
      [13_000, 0, 0],
    ]);
    expect(s.points[4]?.spanMs).toBe(250);
    expect(s.points[3]?.spanMs).toBe(1000);
    // Five seconds on, the slot of 10_000 is reused for 15_000: the old count must not show.
    h.record('errors', 15_100);
    s = h.series(15_500);
    expect(s.points.map((p) => p.reads)).toEqual([0, 0, 0, 0, 0]);
    expect(s.points.at(-1)).toMatchObject({ t: 15_000, errors: 1, reads: 0 });
  });
});

describe('Metrics', () => {
  function setup() {
    const names = clusterNames('mtest');
    const workers: WorkerDetail[] = [
      { id: 'wa', role: 'master', pid: 10, state: 'master', appliedSeq: 9, lag: 0, startedAt: '', poisonMessages: 0 },
      { id: 'wb', role: 'slave', pid: 11, state: 'slave', appliedSeq: 7, lag: 2, startedAt: '', poisonMessages: 0 },
      { id: 'wc', role: 'slave', pid: 12, state: 'syncing', appliedSeq: 0, lag: 9, startedAt: '', poisonMessages: 0 },
    ];
    const listeners: Array<(e: AuditEvent) => void> = [];
    const rpc = {
      connected: true,
      observer: undefined as RpcObserver | undefined,
      queueStats: async (queue: string) => {
        if (queue.includes('sync.wc')) throw new Error('no queue');
        return { messageCount: queue === names.readQueue ? 3 : 0, consumerCount: 1 };
      },
    };
    const zk = Object.assign(new EventEmitter(), { connected: true });
    const metrics = new Metrics({
      names,
      cluster: { workersDetail: () => workers, ready: () => true },
      autoscaler: { status: () => ({ started: true, readsInWindow: 4, windowOpenedAt: null, intervalMs: 1000, targetSlaves: 2 }) },
      rpc,
      audit: { onRecord: (l) => listeners.push(l) },
      zk,
    });
    const audit = (kind: AuditEvent['kind'], details?: Record<string, unknown>) => listeners.forEach((l) => l({ seq: 1, at: '', kind, reason: '', ...(details ? { details } : {}) }));
    return { names, metrics, rpc, zk, audit };
  }

  it('reads the cluster at scrape time and counts what the hooks report', async () => {
    const { names, metrics, rpc, zk, audit } = setup();
    metrics.observeRequest('POST', '/api/v1/db/read', 200, 0.002);
    metrics.observeRequest('POST', '/api/v1/db/write', 503, 0.5);
    metrics.observeRequest('GET', undefined, 404, 0.001);
    rpc.observer?.call?.(names.writeQueue, 3, undefined);
    rpc.observer?.call?.(names.controlQueue('wb'), 3, 'DBAAS_RPC_TIMEOUT');
    rpc.observer?.connected?.(false);
    rpc.observer?.disconnected?.('gone');
    rpc.observer?.connected?.(true);
    zk.emit('expired');
    audit('promotion');
    audit('scaling', { target: 3, previous: 1, reads: 50 });
    audit('scaling', { target: 1, previous: 1, manual: true });
    audit('scaling', { id: 'wd' }); // a new slave came up: not a decision
    const { body, contentType } = await metrics.render();
    expect(contentType).toMatch(/^text\/plain/);
    for (const line of [
      'dbaas_http_requests_total{method="POST",route="/api/v1/db/read",status="200"} 1',
      'dbaas_http_requests_total{method="GET",route="unmatched",status="404"} 1',
      'dbaas_rpc_duration_seconds_count{queue="write",outcome="ok"} 1',
      'dbaas_rpc_duration_seconds_count{queue="control",outcome="DBAAS_RPC_TIMEOUT"} 1',
      'dbaas_amqp_reconnects_total 1',
      'dbaas_amqp_disconnects_total 1',
      'dbaas_zk_session_events_total{event="expired"} 1',
      'dbaas_failovers_total 1',
      'dbaas_scaling_decisions_total{trigger="autoscaler",direction="up"} 1',
      'dbaas_scaling_decisions_total{trigger="manual",direction="keep"} 1',
      'dbaas_audit_events_total{kind="scaling"} 3',
      'dbaas_workers{role="slave",state="syncing"} 1',
      'dbaas_workers{role="master",state="master"} 1',
      'dbaas_replication_lag_entries{worker="wb"} 2',
      'dbaas_replication_lag_max_entries 9',
      'dbaas_worker_applied_seq{worker="wa",role="master"} 9',
      'dbaas_queue_messages{queue="mtest.readQ"} 3',
      'dbaas_queue_consumers{queue="mtest.sync.wb"} 1',
      'dbaas_autoscaler_target_slaves 2',
      'dbaas_autoscaler_reads_in_window 4',
      'dbaas_ready 1',
      'dbaas_zk_connected 1',
    ]) {
      expect(body.split('\n'), line).toContain(line);
    }
    expect(body).not.toContain('mtest.sync.wc');
    const rates = metrics.rateSeries().points.at(-1);
    expect(rates).toMatchObject({ reads: 1, writes: 1, errors: 1 });
  });

  it('opens every help text with its scope, and classifies every metric it serves', async () => {
    const { metrics } = setup();
    const { body } = await metrics.render();
    const helps = [...body.matchAll(/^# HELP (dbaas_\w+) (.*)$/gm)];
    expect(helps.length).toBeGreaterThan(20);
    for (const [, name = '', text = ''] of helps) {
      const scope = METRIC_SCOPES[name];
      expect(scope, `${name} has no scope`).toBeDefined();
      expect(text.startsWith(scope === 'cluster' ? 'Cluster (the same from every orchestrator):' : 'This orchestrator:'), `${name}: ${text}`).toBe(true);
    }
    // Every classified metric is served.
    expect(Object.keys(METRIC_SCOPES).filter((name) => !helps.some((h) => h[1] === name))).toEqual([]);
    // Without an election it is the only orchestrator, and leads.
    expect(body.split('\n')).toContain('dbaas_orchestrators 1');
    expect(body.split('\n')).toContain('dbaas_orchestrator_leader 1');
    expect(body).not.toMatch(/^dbaas_leader_epoch\{/m);
  });

  it("reports the leader's epoch and the orchestrators from the election, and whether this one leads", async () => {
    const { metrics } = setup();
    let leading = false;
    let leader: { epoch?: number; url?: string } | undefined = { epoch: 7, url: 'http://a:80' };
    metrics.followElection({
      get isLeader() {
        return leading;
      },
      leader: async () => leader,
      members: async () => [{}, {}, {}],
    });
    let lines = (await metrics.render()).body.split('\n');
    expect(lines).toContain('dbaas_leader_epoch{leader="http://a:80"} 7');
    expect(lines).toContain('dbaas_orchestrators 3');
    expect(lines).toContain('dbaas_orchestrator_leader 0');
    // An election under way: no epoch sample (the next scrape reads ZooKeeper again, after 500 ms).
    leading = true;
    leader = undefined;
    await new Promise((r) => setTimeout(r, 600));
    lines = (await metrics.render()).body.split('\n');
    expect(lines.filter((l) => l.startsWith('dbaas_leader_epoch{'))).toEqual([]);
    expect(lines).toContain('dbaas_orchestrator_leader 1');
  });
});
