/**
 * `dbaas backup` whose first byte comes late (a failover: it waits as a verify does), or whose archive stops
 * mid-way (E's fault run against npm start: the orchestrator streaming it was killed): a stable client error
 * naming what happened and exit 3 (unreachable), not "unexpected error: terminated".
 */
import { Readable, Writable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EXIT, runCli, type CliIo } from '../../client/cli/cli.js';

describe('dbaas backup: cut off, or slow to start', () => {
  it('says the output is incomplete and exits 3', async () => {
    const written: Buffer[] = [];
    const err: string[] = [];
    const fetch = (async () => {
      let sent = false;
      const body = new ReadableStream<Uint8Array>({
        pull(ctl) {
          if (!sent) {
            sent = true;
            ctl.enqueue(new Uint8Array([0x1f, 0x8b, 1, 2, 3]));
          } else ctl.error(new TypeError('terminated'));
        },
      });
      return new Response(body, { status: 200, headers: { 'content-type': 'application/gzip', 'x-dbaas-backup-seq': '42' } });
    }) as unknown as typeof globalThis.fetch;
    const io: CliIo = {
      stdout: () => undefined,
      stderr: (t) => err.push(t),
      readStdin: async () => '',
      input: () => Readable.from([]),
      output: () => new Writable({ write: (chunk: Buffer, _enc, cb) => { written.push(chunk); cb(); } }), // what got through before the cut
      defaults: { url: 'http://orch:8080', adminToken: 'env-admin-token' },
      fetch,
    };
    const code = await runCli(['backup'], io);
    expect(code).toBe(EXIT.UNREACHABLE);
    expect(err.join('\n')).toMatch(/DBAAS_CLIENT_UNREACHABLE: backup at seq 42 was cut off \(terminated\); the output is incomplete/);
    expect(err.join('\n')).not.toMatch(/unexpected error/);
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  it("waits for the answer's headers as long as a verify does: a backup's first byte comes after its checkpoint and the slave's first part", async () => {
    // E's fault runs against npm start: first bytes came after 11.6 s and 22.8 s during failovers (the server waits up to
    // DBAAS_VERIFY_WAIT_MS for the slave), and at the 10 s default most CLI backups under faults gave up (14 of 16).
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const err: string[] = [];
    let answer: (() => void) | undefined;
    const fetch = ((_url: string, init: RequestInit) =>
      new Promise<Response>((resolve, reject) => {
        init.signal?.addEventListener('abort', () => reject(new DOMException('This operation was aborted', 'AbortError')));
        answer = () => resolve(new Response(new Uint8Array([0x1f, 0x8b]), { status: 200, headers: { 'content-type': 'application/gzip', 'x-dbaas-backup-seq': '77' } }));
      })) as unknown as typeof globalThis.fetch;
    const io: CliIo = {
      stdout: () => undefined,
      stderr: (t) => err.push(t),
      readStdin: async () => '',
      input: () => Readable.from([]),
      output: () => new Writable({ write: (_c, _e, cb) => cb() }),
      defaults: { url: 'http://orch:8080', adminToken: 'env-admin-token' },
      fetch,
    };
    const done = runCli(['backup'], io);
    await vi.advanceTimersByTimeAsync(25_000);
    answer?.();
    vi.useRealTimers();
    expect(await done).toBe(EXIT.OK);
    expect(err.join('\n')).toMatch(/backup at seq 77 written/);
  });
});
