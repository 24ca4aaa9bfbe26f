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
