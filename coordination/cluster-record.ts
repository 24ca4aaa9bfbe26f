/**
 * `/<ns>/cluster`: which worker's data is the master's, with the data directory
 * and host it was in. It outlives a data directory that was deleted, so a start
 * that finds the master's data missing can say where it was.
 */
import type { ZkPaths } from './paths.js';
import { decodeClusterRecord, encodeZnode, type ClusterRecord } from './schemas.js';
import { CreateMode, isNoNode, readZnode, type ZkStore } from './zk-session.js';

/** The record, or undefined when there is none (or it does not decode). */
export function readClusterRecord(zk: ZkStore, paths: ZkPaths): Promise<ClusterRecord | undefined> {
  return readZnode(zk, paths.cluster, decodeClusterRecord);
}

/** Writes the record, creating it the first time. */
export async function writeClusterRecord(zk: ZkStore, paths: ZkPaths, record: ClusterRecord): Promise<void> {
  const data = encodeZnode(record);
  await zk.setData(paths.cluster, data).catch(async (err: unknown) => {
    if (!isNoNode(err)) throw err;
    await zk.create(paths.cluster, data, CreateMode.PERSISTENT);
  });
}
