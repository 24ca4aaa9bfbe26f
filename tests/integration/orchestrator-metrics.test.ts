/**
 * `/metrics` of two orchestrators of one namespace (issue 15.2): the metrics
 * that describe the cluster (workers, roles, replication, queues, readiness,
 * the leader's epoch, the orchestrators) read the same from both; the ones
 * that describe a process (requests it served, reads it counted, whether it
 * leads) are each orchestrator's own. Scopes: `METRIC_SCOPES` in
 * orchestrator/metrics.ts.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { METRIC_SCOPES } from '../../orchestrator/metrics.js';
import { eventually, startTestCluster, type TestCluster } from './harness.js';

let clusters: TestCluster[] = [];
afterAll(async () => {
  // The follower first, so that the leader is the last one and stops the workers.
  for (const c of clusters.slice().reverse()) await c.close().catch(() => undefined);
  clusters = [];
});

/** `name{labels}` → value for every dbaas_ sample of a scrape. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(dbaas_[a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m?.[1] && m[2] !== undefined) out.set(m[1], Number(m[2]));
  }
  return out;
}

/** The metric a sample belongs to (a histogram's _bucket, _sum and _count belong to it). */
function family(key: string): string {
  const name = key.replace(/\{.*$/, '');
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return METRIC_SCOPES[base] !== undefined ? base : name;
}

/** The samples of the metrics of one scope. */
function ofScope(all: Map<string, number>, scope: 'cluster' | 'process'): Record<string, number> {
  return Object.fromEntries([...all].filter(([key]) => METRIC_SCOPES[family(key)] === scope).sort(([x], [y]) => x.localeCompare(y)));
}

describe('metrics of two orchestrators', () => {
  it('agree on the cluster and keep each process its own', async () => {
    const a = await startTestCluster({ DBAAS_INITIAL_SLAVES: '2' }, { listen: true });
    clusters.push(a);
    const b = await startTestCluster({ DBAAS_INITIAL_SLAVES: '2' }, { listen: true, namespace: a.namespace, dataDir: a.dataDir });
    clusters.push(b);
    expect(a.orch.election.isLeader).toBe(true);
    expect(b.orch.election.isLeader).toBe(false);

    // Requests through each: 2 writes through the leader, 5 reads through the follower.
    let seq = 0;
    for (let i = 0; i < 2; i++) seq = (await a.post('/api/v1/db/write', { table: 'm', operation: 'insert', data: { i } })).body.seq;
    for (let i = 0; i < 5; i++) expect((await b.post('/api/v1/db/read', { table: 'm', where: {}, afterSeq: seq })).status).toBe(200);

    const scrape = async (c: TestCluster): Promise<Map<string, number>> => {
      const res = await fetch(`${c.url}/metrics`);
      expect(res.status).toBe(200);
      return samples(await res.text());
    };
    // Workers publish their applied seq every so often: wait until every slave has published the last write, and both agree.
    let ma = new Map<string, number>();
    let mb = new Map<string, number>();
    await eventually(
      async () => {
        [ma, mb] = await Promise.all([scrape(a), scrape(b)]);
        const applied = [...ma].filter(([k]) => k.startsWith('dbaas_worker_applied_seq{')).map(([, v]) => v);
        return JSON.stringify(ofScope(ma, 'cluster')) === JSON.stringify(ofScope(mb, 'cluster')) && applied.length === 3 && applied.every((v) => v === seq);
      },
      15_000,
      'the cluster metrics of both orchestrators to agree',
    );
    const cluster = ofScope(ma, 'cluster');
    expect(ofScope(mb, 'cluster')).toEqual(cluster);
    // What they agree on is the cluster as it is: 1 master and 2 slaves, every worker at the last seq, one leader with its epoch.
    expect(cluster['dbaas_workers{role="master",state="master"}']).toBe(1);
    expect(cluster['dbaas_workers{role="slave",state="slave"}']).toBe(2);
    expect(Object.entries(cluster).filter(([k]) => k.startsWith('dbaas_worker_applied_seq{')).map(([, v]) => v)).toEqual([seq, seq, seq]);
    expect(cluster['dbaas_replication_lag_max_entries']).toBe(0);
    expect(cluster['dbaas_ready']).toBe(1);
    expect(cluster[`dbaas_leader_epoch{leader="${a.url}"}`]).toBe(a.orch.election.epoch);
    expect(cluster['dbaas_orchestrators']).toBe(2);
    expect(cluster[`dbaas_queue_consumers{queue="${a.namespace}.writeQ"}`]).toBe(1);

    // Each process counts its own requests.
    const reads = (m: Map<string, number>): number => m.get('dbaas_http_requests_total{method="POST",route="/api/v1/db/read",status="200"}') ?? 0;
    const writes = (m: Map<string, number>): number => m.get('dbaas_http_requests_total{method="POST",route="/api/v1/db/write",status="200"}') ?? 0;
    expect([reads(ma), reads(mb)]).toEqual([0, 5]);
    expect([writes(ma), writes(mb)]).toEqual([2, 0]);
    expect(mb.get('dbaas_autoscaler_reads_in_window')).toBe(5);
    expect([ma.get('dbaas_orchestrator_leader'), mb.get('dbaas_orchestrator_leader')]).toEqual([1, 0]);

    // Every dbaas_ metric either serves is classified (METRIC_SCOPES is complete).
    const unclassified = [...new Set([...ma.keys(), ...mb.keys()].map(family))].filter((f) => METRIC_SCOPES[f] === undefined);
    expect(unclassified).toEqual([]);
  }, 120_000);
});
