/**
 * `dbaas backup` whose archive stops mid-way (E's fault run against npm start: the orchestrator streaming it was
 * killed): a stable client error naming what happened and exit 3 (unreachable), not "unexpected error: terminated".
 */
import { Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { EXIT, runCli, type CliIo } from '../../client/cli/cli.js';

describe('dbaas backup cut off', () => {
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
});
