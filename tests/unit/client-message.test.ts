import { describe, expect, it } from 'vitest';
import { clientMessage, withoutCallChain } from '../../common/client-message.js';
import { DbaasError, httpErrorBody } from '../../common/errors.js';

// The drivers' words as they reached the operator's log (session 8 test logs).
const BACKUP =
  'backup bmx419i1l-e449ba1f: the slave failed: [msg_find.go:344 handler.handleMaxTimeMSError] [collection.go:109 postgresql.(*collection).Query] ' +
  'failed to connect to `user=postgres database=e7-r2_spare-ddc19493`:\n\t127.0.0.1:18553 (127.0.0.1): dial error: dial tcp 127.0.0.1:18553: connect: connection refused\n\t' +
  '127.0.0.1:18553 (127.0.0.1): dial error: dial tcp 127.0.0.1:18553: connect: connection refused';
const WORKER_DB =
  "this worker's database could not answer now; retry (with the same requestId for a write): " +
  'failed to connect to `user=postgres database=t-21a1a022_wmx4a3vos-c202b1`:\n\t127.0.0.1:15433 (127.0.0.1): tls error: server refused TLS connection\n\t' +
  '127.0.0.1:15433 (127.0.0.1): server error: FATAL: database "t-21a1a022_wmx4a3vos-c202b1" is not currently accepting connections (SQLSTATE 55000)';
const INTERNALS = /127\.0\.0\.1|1855\d|15433|postgres|e7-r2|t-21a1a022|wmx|\.go:\d/;

describe('clientMessage', () => {
  it("says a backup slave's refused connection in words, without address, user or database", () => {
    expect(clientMessage(BACKUP)).toBe('backup bmx419i1l-e449ba1f: the slave failed: failed to connect to the database: dial error: connect: connection refused');
  });

  it("says a worker's database not accepting connections in words", () => {
    const said = clientMessage(WORKER_DB);
    expect(said).toBe(
      "this worker's database could not answer now; retry (with the same requestId for a write): failed to connect to the database: " +
        'tls error: server refused TLS connection; server error: FATAL: database is not currently accepting connections (SQLSTATE 55000)',
    );
    expect(said).not.toMatch(INTERNALS);
  });

  it('drops URLs, key=value settings and names from messages cut short', () => {
    expect(clientMessage('database at mongodb://127.0.0.1:18553/ did not answer within 5000 ms')).toBe('database at an internal address did not answer within 5000 ms');
    expect(clientMessage('password authentication failed for user "postgres" (host=10.0.0.7 port=5432)')).toBe('password authentication failed for user');
    const cut = clientMessage(`${WORKER_DB.slice(0, 200)}…`);
    expect(cut).not.toMatch(INTERNALS);
    expect(cut.endsWith('…')).toBe(true);
  });

  it('leaves a message without internals as it is', () => {
    const plain = 'table must match ^[A-Za-z][A-Za-z0-9_]{0,63}$; the filter uses $where at 12:30';
    expect(clientMessage(plain)).toBe(plain);
  });

  it('reads at most 1,000 characters of a hostile message (its rules backtrack over long words)', () => {
    // Uncut, this took about 6 s (quadratic in the run of word characters), blocking the event loop.
    const huge = `unknown field ${'k'.repeat(200_000)} at 127.0.0.1:15433`;
    const started = performance.now();
    const said = clientMessage(huge);
    expect(performance.now() - started).toBeLessThan(500);
    expect(said.length).toBeLessThanOrEqual(1001);
    expect(said.endsWith('…')).toBe(true);
  });

  it('is what the HTTP body says; the error keeps the full text for the log', () => {
    const err = new DbaasError('DBAAS_WORKER_DB_UNAVAILABLE', WORKER_DB);
    const body = httpErrorBody(err, { requestId: 'r1' });
    expect(JSON.stringify(body)).not.toMatch(INTERNALS);
    expect(body.error).toMatchObject({ code: 'DBAAS_WORKER_DB_UNAVAILABLE', requestId: 'r1' });
    expect(err.message).toBe(WORKER_DB);
  });
});

describe('withoutCallChain', () => {
  // FerretDB's position in its own code, whole and cut; "] unexpected EOF" reached clients in session 8's fault runs.
  const shapes: Array<[string, string, string]> = [
    ['whole', '[msg_insert.go:168 handler.(*Handler).MsgInsert] duplicate key', 'duplicate key'],
    ['two in a row', '[opendb.go:95 pool.openDB] [opendb.go:129 pool.checkConnection] connection refused', 'connection refused'],
    ['a generic function\'s [...] inside', '[iterator.go:60 iterator.ConsumeValues[...]] unexpected EOF', 'unexpected EOF'],
    ['generic, then another', '[msg_find.go:344 handler.x] [iterator.go:60 iterator.ConsumeValues[...]] unexpected EOF', 'unexpected EOF'],
    ['cut at its start', 'nsert.go:168 handler.(*Handler).MsgInsert] unexpected EOF', 'unexpected EOF'],
    ['cut at its start, generic inside', 'go:60 iterator.ConsumeValues[...]] [pool.go:1 p.Get] unexpected EOF', 'unexpected EOF'],
    ['cut at its end', 'the write failed: [msg_insert.go:168 handler.(*Handler).Msg', 'the write failed:'],
    ['cut at its end inside a generic', 'the write failed: [iterator.go:60 iterator.ConsumeValues[..', 'the write failed:'],
  ];
  it.each(shapes)('%s', (_name, text, plain) => {
    expect(withoutCallChain(text)).toBe(plain);
    expect(clientMessage(text)).toBe(plain);
  });

  it('leaves brackets that are not a code position', () => {
    const text = 'table must match ^[A-Za-z][A-Za-z0-9_]{0,63}$ [see docs] at go:12';
    expect(withoutCallChain(text)).toBe(text);
  });

  it('is linear on a hostile message', () => {
    const huge = `${'[a.go:1 '.repeat(20_000)}${'['.repeat(20_000)}x.go:1 ${'y'.repeat(50_000)}`;
    const started = performance.now();
    withoutCallChain(huge);
    expect(performance.now() - started).toBeLessThan(500);
  });
});
