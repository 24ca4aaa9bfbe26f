import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE } from '../../common/errors.js';
import { knownSettings, unknownSettings } from '../../common/unknown-settings.js';

const root = path.resolve(import.meta.dirname, '../..');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? files(full) : /\.(ts|sh|mjs|yaml|yml)$/.test(name) ? [full] : [];
  });
}

describe('unknown DBAAS_* settings', () => {
  it('names a typo and the setting it was probably meant to be', () => {
    expect(unknownSettings({ DBAAS_INTIAL_SLAVES: '3', DBAAS_PORT: '8080', PATH: '/bin' })).toEqual([{ name: 'DBAAS_INTIAL_SLAVES', suggestion: 'DBAAS_INITIAL_SLAVES' }]);
    expect(unknownSettings({ DBAAS_SOMETHING_ELSE_ENTIRELY: '1' })).toEqual([{ name: 'DBAAS_SOMETHING_ELSE_ENTIRELY', suggestion: undefined }]);
  });

  it('knows every setting the service reads, for the orchestrator, the worker and the client', () => {
    for (const name of ['DBAAS_PORT', 'DBAAS_NAMESPACE', 'DBAAS_AMQP_URL', 'DBAAS_ZK_CONNECT', 'DBAAS_WORKER_ID', 'DBAAS_URL', 'DBAAS_API_KEY', 'DBAAS_FORCE_NEW_CLUSTER']) {
      expect(knownSettings().has(name), name).toBe(true);
    }
    expect(unknownSettings({ DBAAS_PORT: '1', DBAAS_INITIAL_SLAVES: '2', DBAAS_ADMIN_TOKEN: 'x' })).toEqual([]);
  });

  it('knows every DBAAS_* variable the scripts, tools, images and tests use (so none of them is reported as a typo)', () => {
    const codes = new Set(Object.keys(ERROR_CATALOGUE));
    const used = new Map<string, string>();
    for (const dir of ['scripts', 'tools', 'docker', 'tests', '.ci']) {
      for (const file of files(path.join(root, dir))) {
        for (const [name] of readFileSync(file, 'utf8').matchAll(/DBAAS_[A-Z0-9_]+/g)) {
          // Prefixes (DBAAS_DOCKER_…) and error codes are not settings; DBAAS_X is a made-up code in a wire test.
          if (name.endsWith('_') || codes.has(name) || name.startsWith('DBAAS_CLIENT_') || name === 'DBAAS_X') continue;
          if (!used.has(name)) used.set(name, path.relative(root, file));
        }
      }
    }
    const missing = [...used].filter(([name]) => !knownSettings().has(name)).map(([name, file]) => `${name} (${file})`);
    // Names made up inside this test file are examples, not settings.
    expect(missing.filter((m) => !m.includes('unknown-settings.test.ts'))).toEqual([]);
  });
});
