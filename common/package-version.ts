/** The installed dbaas version: `dbaas --version`, and the OpenAPI document's info.version. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The version in the package.json of the dbaas package that holds `from` (a
 * file URL): the nearest package.json named "dbaas" above it, so it is the
 * same from the sources and from dist/. Undefined when there is none.
 */
export function packageVersion(from: string): string | undefined {
  let dir = path.dirname(fileURLToPath(from));
  for (;;) {
    const file = path.join(dir, 'package.json');
    if (existsSync(file)) {
      try {
        const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
        if (pkg.name === 'dbaas' && typeof pkg.version === 'string') return pkg.version;
      } catch {
        // not readable JSON: keep looking further up
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}
