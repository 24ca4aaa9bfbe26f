/**
 * Which worker's data is the master's, kept where it survives a restart of the
 * whole service: `<dataDir>/<ns>/cluster.json`, and the ZooKeeper record
 * (coordination/cluster-record.ts), which also names the data directory and
 * host, so a start that finds the master's data missing can say where it was.
 */
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { OrchestratorConfig } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import { readJsonFile, writeFileAtomic } from '../common/state-file.js';
import { writeClusterRecord } from '../coordination/cluster-record.js';
import type { ZkPaths } from '../coordination/paths.js';
import type { ClusterRecord } from '../coordination/schemas.js';
import type { ZkStore } from '../coordination/zk-session.js';

function clusterFile(config: Pick<OrchestratorConfig, 'dataDir' | 'namespace'>): string {
  return path.resolve(config.dataDir, config.namespace, 'cluster.json');
}

/** The master named in the data directory, if any. */
export function readClusterFile(config: Pick<OrchestratorConfig, 'dataDir' | 'namespace'>): ClusterRecord | undefined {
  const parsed = readJsonFile<Partial<ClusterRecord> | null>(clusterFile(config));
  return typeof parsed?.masterId === 'string' && parsed.masterId !== '' ? { masterId: parsed.masterId } : undefined;
}

/** Records which worker's data is the master's: in the data directory, and (in the background) in ZooKeeper. */
export function writeClusterFile(
  d: { config: Pick<OrchestratorConfig, 'dataDir' | 'namespace'>; zk: ZkStore; paths: ZkPaths; logger: Logger },
  record: { masterId: string },
): void {
  const file = clusterFile(d.config);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomic(file, JSON.stringify(record));
  void writeClusterRecord(d.zk, d.paths, { ...record, dataDir: path.resolve(d.config.dataDir), host: os.hostname() }).catch((err: unknown) =>
    d.logger.warn({ err: (err as Error).message }, 'could not record the master in ZooKeeper'),
  );
}
