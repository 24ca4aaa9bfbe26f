import { describe, expect, it } from 'vitest';
import { loadOrchestratorConfig } from '../../common/config.js';
import { tokenMatchesAny } from '../../orchestrator/auth.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

describe('tokenMatchesAny', () => {
  it('matches exactly one of the candidates, whatever the lengths', () => {
    expect(tokenMatchesAny('abcdefgh', ['zzzzzzzzzzzz', 'abcdefgh'])).toBe(true);
    expect(tokenMatchesAny('abcdefg', ['abcdefgh'])).toBe(false);
    expect(tokenMatchesAny('abcdefghi', ['abcdefgh'])).toBe(false);
    expect(tokenMatchesAny('', [])).toBe(false);
  });
});

describe('DBAAS_API_KEYS and DBAAS_ADMIN_TOKEN', () => {
  it('reads a comma list', () => {
    expect(loadOrchestratorConfig({ DBAAS_API_KEYS: ' key-one-123 , key-two-456 ' }).apiKeys).toEqual(['key-one-123', 'key-two-456']);
  });

  it('reads a file with one key per line, ignoring comments and blank lines', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'keys-'));
    const file = path.join(dir, 'keys');
    writeFileSync(file, '# service keys\nkey-users-0001\n\nkey-rides-0002\n');
    expect(loadOrchestratorConfig({ DBAAS_API_KEYS: `@${file}` }).apiKeys).toEqual(['key-users-0001', 'key-rides-0002']);
  });

  it('refuses weak or unreadable secrets, listing each problem', () => {
    expect(() => loadOrchestratorConfig({ DBAAS_API_KEYS: 'short', DBAAS_ADMIN_TOKEN: 'tiny' })).toThrow(
      /DBAAS_ADMIN_TOKEN must be at least 8[\s\S]*DBAAS_API_KEYS: 1 key\(s\) shorter than 8/,
    );
    expect(() => loadOrchestratorConfig({ DBAAS_API_KEYS: '@/nonexistent/keys' })).toThrow(/cannot read \/nonexistent\/keys/);
  });

  it('is open by default', () => {
    const c = loadOrchestratorConfig({});
    expect(c.apiKeys).toEqual([]);
    expect(c.adminToken).toBeUndefined();
  });
});
