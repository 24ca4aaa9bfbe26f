// Lint: type-aware rules that catch what bites a message-driven service
// (floating promises, promises passed where callbacks are expected) and import cycles.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', '.dbaas/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  importX.flatConfigs.typescript,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    settings: { 'import-x/resolver-next': [createTypeScriptImportResolver()] },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'import-x/no-cycle': 'error',
    },
  },
  {
    files: ['tests/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  // The architecture's seams (issue 14.6): the orchestrator and the worker meet only through the shared
  // layers (common/, coordination/) and the wire; the shared layers import neither side; the client speaks
  // HTTP and loads no server code. Dynamic import() counts too.
  {
    files: ['**/*.ts'],
    rules: { 'import-x/no-restricted-paths': ['error', { basePath: import.meta.dirname, zones: seams() }] },
  },
  // The documented exceptions, each for one file: the client's types re-export the server's own response
  // types (type-only: nothing of the orchestrator is loaded), and `dbaas teardown` is an admin command that
  // works with no orchestrator running, so the CLI loads orchestrator/teardown.ts on demand.
  {
    files: ['client/types.ts'],
    rules: {
      'import-x/no-restricted-paths': [
        'error',
        { basePath: import.meta.dirname, zones: seams({ client: ['./audit-log.ts', './autoscaler.ts', './verify.ts'] }) },
      ],
    },
  },
  {
    files: ['client/cli/teardown-command.ts'],
    rules: { 'import-x/no-restricted-paths': ['error', { basePath: import.meta.dirname, zones: seams({ client: ['./teardown.ts'] }) }] },
  },
);

/**
 * The zones of import-x/no-restricted-paths: which directory may not import which. `allowClient` lists
 * files of orchestrator/ (relative to it) that the client may import (per-file exceptions above).
 */
function seams({ client: allowClient = [] } = {}) {
  const message = (what) => `${what} (docs/DECISIONS.md, "Import seams"; issue 14.6)`;
  return [
    { target: './worker', from: './orchestrator', message: message('the worker and the orchestrator meet only through common/, coordination/ and the wire') },
    { target: './orchestrator', from: './worker', message: message('the orchestrator and the worker meet only through common/, coordination/ and the wire') },
    ...['./worker', './orchestrator'].map((target) => ({ target, from: './client', message: message('the service does not depend on its client') })),
    ...['./orchestrator', './worker', './coordination', './client'].map((from) => ({
      target: './common',
      from,
      message: message('common/ is the base layer: it imports only itself'),
    })),
    ...['./orchestrator', './worker', './client'].map((from) => ({
      target: './coordination',
      from,
      message: message('coordination/ is shared by both sides: it imports only common/ and itself'),
    })),
    { target: './client', from: './worker', message: message('the client speaks HTTP to the orchestrator and loads no worker code') },
    {
      target: './client',
      from: './orchestrator',
      ...(allowClient.length > 0 ? { except: allowClient } : {}),
      message: message('the client speaks HTTP to the orchestrator and loads no orchestrator code'),
    },
    ...['./orchestrator', './worker'].map((from) => ({ target: './examples', from, message: message('the examples use the client, like any service') })),
  ];
}
