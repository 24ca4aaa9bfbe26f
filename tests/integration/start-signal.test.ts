/**
 * SIGINT or SIGTERM while an orchestrator starts its cluster (`npm start`'s
 * Ctrl-C, the lifecycle manager forwarding it): the orchestrator stops what it
 * started and exits 0, as after its start. Before, Node's default ended it at
 * once and the workers it had started ran on, unmanaged.
 *
 * The start is held where the test wants it: the database binary is a wrapper
 * that holds its Nth start (the master's, or the first slave's) until released,
 * so the signal comes during the start for sure.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { purgeNamespace, runProcesses, workerDirs } from '../../tools/nemesis/infra.js';
import { OrchestratorProcess, runtimeEnv } from '../../tools/nemesis/orchestrator-process.js';
import { eventually } from './harness.js';
import { freePort } from './infra.js';

const realDb = process.env.DBAAS_DB_BIN ?? runtimeEnv()['DBAAS_DB_BIN'] ?? '';

/** A database binary (named like FerretDB, so it gets FerretDB's arguments) that holds its `holdAt`-th start until `release` exists. */
function holdingDb(dir: string, holdAt: number): string {
  const bin = path.join(dir, 'ferretdb-held');
  writeFileSync(
    bin,
    `#!/bin/sh
n=$(( $(cat '${dir}/count' 2>/dev/null || echo 0) + 1 ))
echo $n > '${dir}/count'
if [ $n -eq ${holdAt} ]; then
  touch '${dir}/held'
  while [ ! -e '${dir}/release' ]; do sleep 0.05; done
fi
exec '${realDb}' "$@"
`,
  );
  chmodSync(bin, 0o755);
  return bin;
}

async function interruptedStart(signal: NodeJS.Signals, holdAt: 1 | 2): Promise<void> {
  const namespace = `t-sig-${process.pid}-${Date.now().toString(36)}`;
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'dbaas-sig-'));
  const logFile = path.join(dataDir, 'orch.log');
  const entry = path.resolve(import.meta.dirname, '../../dist/orchestrator/main.js');
  const o = new OrchestratorProcess({
    entry,
    port: await freePort(),
    namespace,
    dataDir,
    logFile,
    env: { DBAAS_DB_BIN: holdingDb(dataDir, holdAt), DBAAS_INITIAL_SLAVES: '1', DBAAS_MIN_SLAVES: '1', DBAAS_MAX_SLAVES: '1', DBAAS_LOG_LEVEL: 'info' },
  });
  try {
    o.spawn();
    // Held: the master's database (1) or the first slave's (2) does not start, so the cluster start cannot end.
    await eventually(() => existsSync(path.join(dataDir, 'held')), 60_000, `database start ${holdAt} held`);
    expect(readFileSync(logFile, 'utf8')).not.toContain('[dbaas] ready');
    o.signal(signal);
    const exit = await o.waitExit(60_000);
    const log = readFileSync(logFile, 'utf8');
    expect({ exit, tail: exit.code === 0 ? '' : o.logTail(20) }).toEqual({ exit: { code: 0, killed: false }, tail: '' });
    expect(log).toContain(`[dbaas] ${signal} during the start: stopping what it started`);
    expect(log).toContain('[dbaas] stopped');
    expect(log).not.toContain('[dbaas] ready');
    // Nothing of the namespace runs on: no worker, no database (the held one's shell polls every 50 ms: gone within 5 s).
    await eventually(() => runProcesses(namespace, dataDir).length === 0, 5_000, `no process of ${namespace} left (${runProcesses(namespace, dataDir).join(', ')})`);
  } finally {
    writeFileSync(path.join(dataDir, 'release'), '');
    o.signal('SIGKILL');
    await o.waitExit(10_000);
    for (const pid of runProcesses(namespace, dataDir)) process.kill(pid, 'SIGKILL');
    await purgeNamespace(namespace, workerDirs(dataDir, namespace)).catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

describe.skipIf(!path.basename(realDb).startsWith('ferretdb'))('a signal during the start', () => {
  it('SIGINT while the master starts: the orchestrator stops it and exits 0, leaving no process behind', async () => {
    await interruptedStart('SIGINT', 1);
  }, 120_000);

  it('SIGTERM while the first slave starts: the orchestrator stops the master and the slave and exits 0', async () => {
    await interruptedStart('SIGTERM', 2);
  }, 120_000);
});
