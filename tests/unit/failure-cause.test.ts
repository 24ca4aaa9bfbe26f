/**
 * failureCause: what a unit's own logs say about a failed start (process runtime),
 * from log lines as the worker (pino JSON) and FerretDB (tab-separated) write them.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { causeFromLogs, failureCause } from '../../orchestrator/runtimes/failure-cause.js';

const dirs: string[] = [];
function unit(workerLog: string[], dbLog: string[]): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'failure-cause-'));
  dirs.push(dir);
  writeFileSync(path.join(dir, 'worker.log'), workerLog.map((l) => `${l}\n`).join(''));
  writeFileSync(path.join(dir, 'db.log'), dbLog.map((l) => `${l}\n`).join(''));
  return dir;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const REFUSED = '"client_encoding" is "SQL_ASCII"; supported value is "UTF8"';

describe('failureCause', () => {
  it('names the worker\'s fatal line and FerretDB\'s errors, without its call chain, request dumps or clients going away', () => {
    const dir = unit(
      [
        JSON.stringify({ level: 30, msg: 'starting' }),
        JSON.stringify({ level: 60, msg: 'worker failed to start', err: `the database at mongodb://127.0.0.1:1/ refuses to work: ${REFUSED}` }),
      ],
      [
        `2026-12-01T01:43:45.103Z\tWARN\tpool/pool.go:128\tPool: connection failed\t${JSON.stringify({ error: `[opendb.go:95 pool.openDB] [opendb.go:129 pool.checkConnection] ${REFUSED}` })}`,
        '2026-12-01T01:43:45.103Z\tWARN\tclientconn/conn.go:625\tResponse message:',
        '{',
        '  "ok": 0.0,',
        '}',
        `2026-12-01T01:43:45.120Z\tWARN\tclientconn/listener.go:300\tConnection stopped\t${JSON.stringify({ error: 'read: connection reset by peer' })}`,
      ],
    );
    expect(failureCause(dir)).toBe(`worker.log: worker failed to start: the database at mongodb://127.0.0.1:1/ refuses to work: ${REFUSED}; db.log: Pool: connection failed: ${REFUSED}`);
  });

  it('a worker that gave up says its reason; a database that could not start says its fatal line', () => {
    const dir = unit([JSON.stringify({ level: 60, msg: 'worker giving up; the orchestrator will replace it', reason: 'lost /master' })], ['2026-12-01T00:00:00.000Z\tFATAL\tferretdb/main.go:1\tFailed to listen\t{"error":"listen tcp 127.0.0.1:1: bind: address already in use"}']);
    expect(failureCause(dir)).toBe('worker.log: worker giving up; the orchestrator will replace it: lost /master; db.log: Failed to listen: listen tcp 127.0.0.1:1: bind: address already in use');
  });

  it('reads the error an answer dump carries, and FerretDB\'s levels above ERROR (a container\'s log, as the docker runtime hands it)', () => {
    const full = '[msg_createindexes.go:155 handler.(*Handler).MsgCreateIndexes] [registry.go:169 metadata.(*Registry).databaseGetOrCreate] database or disk is full (13)';
    const db = [
      '2026-12-01T02:34:29.597Z\tWARN\tclientconn/conn.go:625\tResponse message:',
      '{',
      `        "errmsg": ${JSON.stringify(full)},`,
      '        "ok": 0.0,',
      '}',
      `2026-12-01T02:34:29.608Z\tWARN\tclientconn/listener.go:300\tConnection stopped\t${JSON.stringify({ error: 'read: connection reset by peer' })}`,
    ];
    const worker = [JSON.stringify({ level: 60, msg: 'worker failed to start', err: 'database or disk is full (13)' })];
    expect(causeFromLogs({ name: 'dbaas-x-w1', lines: worker }, { name: 'dbaas-x-w1-db', lines: db })).toBe(
      'dbaas-x-w1: worker failed to start: database or disk is full (13); dbaas-x-w1-db: database or disk is full (13)',
    );
    const fatal = '2026-12-01T02:34:12.620Z\tERROR+3\tferretdb/main.go:539\tFailed to construct handler\t{"error":"[pool.go:106 pool.New] attempt to write a readonly database (8)"}';
    expect(causeFromLogs({ name: 'w', lines: [] }, { name: 'db', lines: [fatal] })).toBe('db: Failed to construct handler: attempt to write a readonly database (8)');
  });

  it('says nothing when the logs say nothing, or are not there', () => {
    expect(failureCause(unit([JSON.stringify({ level: 30, msg: 'worker ready' })], ['2026-12-01T00:00:00.000Z\tINFO\tx.go:1\tListening']))).toBeUndefined();
    expect(failureCause(path.join(os.tmpdir(), 'no-such-unit-dir'))).toBeUndefined();
  });
});
