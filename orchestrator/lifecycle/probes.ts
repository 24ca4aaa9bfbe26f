/**
 * The health probes and process checks of the lifecycle manager. Each probe
 * answers undefined when the service answered, else a short reason; none
 * throws, and none takes longer than its timeout (a SIGSTOPped server accepts
 * TCP connections in the kernel and never answers: only the timeout tells).
 */
import { readFileSync } from 'node:fs';
import { connectToAny } from '../../common/amqp-connection.js';
import { isAlive } from '../../common/probes.js';
import { zkRuok } from '../../coordination/zk-session.js';

/** ZooKeeper's `ruok`: `imok` from a serving (or electing) server. */
export async function probeZookeeper(host: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return (await zkRuok(host, port, timeoutMs)) ? undefined : `no imok to ruok on ${host}:${port} within ${timeoutMs} ms`;
}

/**
 * RabbitMQ: an AMQP connection opened (the handshake needs the node's Erlang VM
 * to run) and closed. Cheaper than `rabbitmq-diagnostics ping`, which boots an
 * Erlang VM of its own for every probe (about a second of CPU on these machines).
 */
export async function probeRabbitmq(url: string, timeoutMs: number): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const attempt = connectToAny(url, 'dbaas-lifecycle-probe', timeoutMs);
  try {
    const conn = await Promise.race([
      attempt,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no AMQP handshake within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    // Not awaited: a node that dies between the handshake and close-ok leaves close() unsettled (seen in the
    // HA kill test: it held the manager's whole step, and nothing was restarted any more). Such a connection
    // later emits 'error' (ECONNRESET, heartbeat timeout): with no listener that would throw in the manager.
    conn.on('error', () => undefined);
    void conn.close().catch(() => undefined);
    return undefined;
  } catch (err) {
    // A connection that opens after the timeout is closed, not leaked.
    void attempt.then((late) => late.on('error', () => undefined).close()).catch(() => undefined);
    return (err as Error).message.replace(/^no RabbitMQ broker of [^:]+ accepted a connection: /, '');
  } finally {
    clearTimeout(timer);
  }
}

/** An orchestrator's `GET /healthz`: 200 within the timeout. */
export async function probeHttp(url: string, timeoutMs: number): Promise<string | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return res.ok ? undefined : `${url} answered ${res.status}`;
  } catch (err) {
    const e = err as Error;
    return `${url}: ${e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : e.message}`;
  }
}

/**
 * Whether `pid` is a live process whose command line contains `marker` (a pid
 * file can outlive its process and the pid be reused). A zombie counts as dead;
 * a stopped (SIGSTOP) process as alive: its probe tells it is wedged.
 */
export function processAlive(pid: number | undefined, marker: string): boolean {
  if (pid === undefined || !Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
  } catch {
    return false;
  }
}

/** A pid from a pid file (its first line), or undefined. */
export function readPidFile(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, 'utf8').split('\n', 1)[0]?.trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}
