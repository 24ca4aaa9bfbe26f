/** Small probes of the local machine, shared by the process runtime and the tests. */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { waitFor } from './backoff.js';

/** Whether something accepts TCP connections on host:port. */
export function canConnect(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/** Whether a process runs; a zombie (exited, not yet reaped) counts as dead. */
export function isAlive(pid: number): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

/**
 * Resolves once the server of a single-host URL (`mongodb://host:port/`) accepts
 * TCP connections, polling every 20 ms; rejects after `timeoutMs`. A URL it cannot
 * read (several hosts, a DNS seed list) resolves at once: the driver waits for those.
 */
export async function untilListening(url: string, timeoutMs: number): Promise<void> {
  let host: string;
  let port: number;
  try {
    const u = new URL(url);
    if (u.protocol !== 'mongodb:' || u.hostname === '') return;
    host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    port = Number(u.port || 27017);
  } catch {
    return;
  }
  await waitFor(async () => ((await canConnect(port, host)) ? true : undefined), timeoutMs, () => new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`), 20);
}

/**
 * One MongoDB `ping` (OP_MSG, `{ ping: 1, $db: 'admin' }`), BSON written by hand so that
 * callers need no driver. Its bytes are checked against the driver's BSON in
 * tests/unit/probes.test.ts.
 */
export function pingMessage(requestId = 1): Buffer {
  const db = Buffer.from('admin\0');
  const docLength = 4 + (1 + 5 + 4) + (1 + 4 + 4 + db.length) + 1;
  const doc = Buffer.alloc(docLength);
  let o = doc.writeInt32LE(docLength, 0);
  o = doc.writeUInt8(0x10, o);
  o += doc.write('ping\0', o, 'latin1');
  o = doc.writeInt32LE(1, o);
  o = doc.writeUInt8(0x02, o);
  o += doc.write('$db\0', o, 'latin1');
  o = doc.writeInt32LE(db.length, o);
  o += db.copy(doc, o);
  doc.writeUInt8(0, o);
  const header = Buffer.alloc(16 + 4 + 1);
  header.writeInt32LE(header.length + doc.length, 0);
  header.writeInt32LE(requestId, 4);
  header.writeInt32LE(0, 8);
  header.writeInt32LE(2013, 12); // OP_MSG
  header.writeUInt32LE(0, 16); // flag bits
  header.writeUInt8(0, 20); // section kind 0: the body
  return Buffer.concat([header, doc]);
}

/**
 * Sends one `ping` to the MongoDB-wire server on 127.0.0.1:`port` and resolves once any
 * reply (a whole message) has come, or after `timeoutMs`, or on an error: never rejects.
 * The process runtime uses it to have a new worker's FerretDB open its PostgreSQL
 * connections while the worker still loads its code (issue 16: its first request paid that).
 */
export function pingOnce(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    let got = 0;
    let want = -1;
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.once('connect', () => sock.write(pingMessage()));
    sock.on('data', (chunk: Buffer) => {
      if (want < 0 && chunk.length >= 4) want = chunk.readInt32LE(0);
      got += chunk.length;
      if (want >= 0 && got >= want) done(true);
    });
    sock.once('error', () => done(false));
    sock.once('close', () => done(false));
  });
}
