import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadOrchestratorConfig, loadWorkerConfig } from '../../common/config.js';

describe('loadOrchestratorConfig', () => {
  it('has the documented defaults', () => {
    const c = loadOrchestratorConfig({});
    expect(c).toMatchObject({
      port: 80,
      runtime: 'process',
      amqpUrl: 'amqp://guest:guest@127.0.0.1:5672',
      zkConnect: '127.0.0.1:2181',
      namespace: 'dbaas',
      initialSlaves: 1,
      scaleIntervalMs: 120000,
      readsPerSlave: 20,
      minSlaves: 1,
      maxSlaves: 16,
      dataDir: './data',
      zkSessionTimeoutMs: 2000,
    });
    expect(c.adminToken).toBeUndefined();
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('verifies the replicas every 10 minutes by default; 0 turns it off; a negative interval is refused', () => {
    expect(loadOrchestratorConfig({})).toMatchObject({ verifyIntervalMs: 600_000, verifyWaitMs: 60_000 });
    expect(loadOrchestratorConfig({ DBAAS_VERIFY_INTERVAL_MS: '0' }).verifyIntervalMs).toBe(0);
    expect(() => loadOrchestratorConfig({ DBAAS_VERIFY_INTERVAL_MS: '-1' })).toThrow(/DBAAS_VERIFY_INTERVAL_MS="-1" must be an integer from 0/);
  });

  it('caps tables per database at 1000 and databases at 100 by default; a cap of 0 tables is refused', () => {
    expect(loadOrchestratorConfig({})).toMatchObject({ maxTables: 1000, maxDatabases: 100 });
    expect(loadOrchestratorConfig({ DBAAS_MAX_DATABASES: '0' }).maxDatabases).toBe(0);
    expect(() => loadOrchestratorConfig({ DBAAS_MAX_TABLES: '0' })).toThrow(/DBAAS_MAX_TABLES="0" must be an integer from 1/);
    expect(() => loadOrchestratorConfig({ DBAAS_MAX_DATABASES: 'many' })).toThrow(/DBAAS_MAX_DATABASES/);
  });

  it('lists every problem at once', () => {
    let err: unknown;
    try {
      loadOrchestratorConfig({ DBAAS_PORT: 'eighty', DBAAS_RUNTIME: 'k8s', DBAAS_NAMESPACE: 'Bad Name', DBAAS_MIN_SLAVES: '5', DBAAS_MAX_SLAVES: '2' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(problems).toHaveLength(4);
    expect(problems.join('\n')).toMatch(/DBAAS_PORT/);
    expect(problems.join('\n')).toMatch(/DBAAS_RUNTIME.*process, docker/);
    expect(problems.join('\n')).toMatch(/DBAAS_NAMESPACE/);
    expect(problems.join('\n')).toMatch(/DBAAS_MIN_SLAVES \(5\) must not exceed DBAAS_MAX_SLAVES \(2\)/);
  });

  it('reads overrides', () => {
    const c = loadOrchestratorConfig({ DBAAS_PORT: '8080', DBAAS_ADMIN_TOKEN: 's3cret-token', DBAAS_INITIAL_SLAVES: '3' });
    expect(c.port).toBe(8080);
    expect(c.adminToken).toBe('s3cret-token');
    expect(c.initialSlaves).toBe(3);
  });

  it('reads the admin token from a file (a Docker secret) with @/path, and the Swarm runtime with its constraints', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dbaas-config-'));
    writeFileSync(path.join(dir, 'token'), 'from-a-secret-file\n');
    expect(loadOrchestratorConfig({ DBAAS_ADMIN_TOKEN: `@${dir}/token` }).adminToken).toBe('from-a-secret-file');
    expect(() => loadOrchestratorConfig({ DBAAS_ADMIN_TOKEN: `@${dir}/missing` })).toThrow(/DBAAS_ADMIN_TOKEN: cannot read/);
    rmSync(dir, { recursive: true });
    const c = loadOrchestratorConfig({ DBAAS_RUNTIME: 'swarm', DBAAS_SWARM_CONSTRAINTS: 'node.labels.dbaas==true, node.role!=manager' });
    expect(c.runtime).toBe('swarm');
    expect(c.swarmConstraints).toEqual(['node.labels.dbaas==true', 'node.role!=manager']);
    expect(loadOrchestratorConfig({}).swarmConstraints).toEqual([]);
    expect(() => loadOrchestratorConfig({ DBAAS_SWARM_CONSTRAINTS: 'anywhere' })).toThrow(/DBAAS_SWARM_CONSTRAINTS/);
  });
});

describe('loadWorkerConfig', () => {
  it('needs an id and a database URL', () => {
    expect(() => loadWorkerConfig({})).toThrow(/DBAAS_WORKER_MONGO_URL is required[\s\S]*DBAAS_WORKER_ID/);
  });

  it('reads a slave by default and a master when told', () => {
    const base = { DBAAS_WORKER_ID: 'w1', DBAAS_WORKER_MONGO_URL: 'mongodb://127.0.0.1:1/' };
    expect(loadWorkerConfig(base).role).toBe('slave');
    const m = loadWorkerConfig({ ...base, DBAAS_WORKER_ROLE: 'master', DBAAS_WORKER_TERM: '7' });
    expect(m.role).toBe('master');
    expect(m.term).toBe(7);
    expect(m.advertisedMongoUrl).toBe(base.DBAAS_WORKER_MONGO_URL);
  });
});

describe('worker tuning', () => {
  it('set on the orchestrator reaches the workers it starts', async () => {
    const { clusterEnv } = await import('../../common/config.js');
    const orchestrator = loadOrchestratorConfig({ DBAAS_AFTER_SEQ_WAIT_MS: '750', DBAAS_OPLOG_MAX_ENTRIES: '5000', DBAAS_WORKER_READ_PREFETCH: '8' });
    const worker = loadWorkerConfig({ ...clusterEnv(orchestrator), DBAAS_WORKER_ID: 'w1', DBAAS_WORKER_MONGO_URL: 'mongodb://127.0.0.1:1/' });
    expect(worker).toMatchObject({ afterSeqWaitMs: 750, oplogMaxEntries: 5000, readPrefetch: 8, writePrefetch: 64, dbName: 'dbaas' });
  });
});
