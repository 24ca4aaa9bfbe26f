/**
 * The namespace's databases (issue 20): one persistent znode per database under
 * `/<ns>/databases`, holding `{createdAt}`. The `default` database is implicit
 * (never stored: it always exists). Every orchestrator reads the list through
 * {@link DatabaseStore.exists}, cached behind a one-shot child watch, so a
 * database created or dropped through any orchestrator is seen by the others as
 * soon as ZooKeeper tells them; a name not in the cache is looked up again before
 * it is refused, so a database just created elsewhere is never refused.
 *
 * Only names live here; the data lives in the workers (worker/tables.ts).
 */
import { DEFAULT_DATABASE } from '../common/databases.js';
import type { ZkPaths } from './paths.js';
import { encodeZnode, parseZnode } from './schemas.js';
import { CreateMode, isNodeExists, isNoNode, type ZkStore } from './zk-session.js';

export interface DatabaseInfo {
  name: string;
  /** ISO time of its creation; absent for `default`. */
  createdAt?: string;
}

/** Where the databases' znodes live (beside paths.ts's, which it derives from). */
export function databasesPath(paths: ZkPaths): string {
  return `${paths.root}/databases`;
}

export class DatabaseStore {
  private readonly parent: string;
  /** The names ZooKeeper last listed; undefined once a change was signalled (or before the first read). */
  private cached: Set<string> | undefined;

  constructor(
    private readonly zk: ZkStore,
    paths: ZkPaths,
  ) {
    this.parent = databasesPath(paths);
  }

  private async names(): Promise<Set<string>> {
    if (this.cached) return this.cached;
    const children = await this.zk
      .getChildren(this.parent, () => {
        this.cached = undefined;
      })
      .catch(async (err: unknown) => {
        if (!isNoNode(err)) throw err;
        // No database created yet: watch for the parent instead (exists watches its creation).
        await this.zk.exists(this.parent, () => {
          this.cached = undefined;
        });
        return [] as string[];
      });
    this.cached = new Set(children);
    return this.cached;
  }

  /** Whether a database exists (`default` always does). */
  async exists(name: string): Promise<boolean> {
    if (name === DEFAULT_DATABASE) return true;
    if ((await this.names()).has(name)) return true;
    // Not in the cache: perhaps created a moment ago through another orchestrator.
    this.cached = undefined;
    return (await this.names()).has(name);
  }

  /** Every database, `default` first, then by name. */
  async list(): Promise<DatabaseInfo[]> {
    this.cached = undefined;
    const out: DatabaseInfo[] = [{ name: DEFAULT_DATABASE }];
    for (const name of [...(await this.names())].sort()) {
      try {
        const createdAt = parseZnode((await this.zk.getData(`${this.parent}/${name}`)).data)?.createdAt;
        out.push(typeof createdAt === 'string' ? { name, createdAt } : { name });
      } catch (err) {
        if (!isNoNode(err)) throw err;
      }
    }
    return out;
  }

  /** Records a new database; undefined when it exists already. */
  async create(name: string, now = new Date()): Promise<DatabaseInfo | undefined> {
    await this.zk.mkdirp(this.parent);
    const info = { name, createdAt: now.toISOString() };
    try {
      await this.zk.create(`${this.parent}/${name}`, encodeZnode({ createdAt: info.createdAt }), CreateMode.PERSISTENT);
    } catch (err) {
      if (isNodeExists(err)) return undefined;
      throw err;
    }
    this.cached = undefined;
    return info;
  }

  /** Forgets a database; false when there was none. */
  async remove(name: string): Promise<boolean> {
    try {
      await this.zk.remove(`${this.parent}/${name}`);
    } catch (err) {
      if (isNoNode(err)) return false;
      throw err;
    }
    this.cached = undefined;
    return true;
  }
}
