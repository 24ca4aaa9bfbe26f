/**
 * The namespace's databases (issue 20): one persistent znode per database under
 * `/<ns>/databases`, holding `{createdAt}`. The `default` database is implicit
 * (never stored: it always exists). Every orchestrator reads the list through
 * {@link DatabaseStore.exists}, cached behind a one-shot child watch, so a
 * database created or dropped through any orchestrator is seen by the others as
 * soon as ZooKeeper tells them; a name not in the cache is looked up again before
 * it is refused, so a database just created elsewhere is never refused.
 *
 * A ZooKeeper outage is ridden out as the write path rides it out: a name the
 * store last saw listed (or created itself) is still admitted while ZooKeeper
 * does not answer, and any other lookup, list, create or drop is a 503
 * DBAAS_COORDINATION_UNAVAILABLE (retry it), never a 500. A session that expired
 * took its watch with it, so the list is read again on the next lookup.
 *
 * Only names live here; the data lives in the workers (worker/tables.ts).
 */
import { DEFAULT_DATABASE } from '../common/databases.js';
import { DbaasError } from '../common/errors.js';
import type { ZkPaths } from './paths.js';
import { encodeZnode, parseZnode } from './schemas.js';
import { CreateMode, isBadVersion, isNodeExists, isNoNode, type ZkStore } from './zk-session.js';

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
  /** The names last listed, kept through invalidations: what a lookup falls back on while ZooKeeper does not answer. */
  private readonly known = new Set<string>();
  /**
   * The one watcher of the parent: the client keeps each distinct watcher function until its znode changes,
   * so a new closure per read (every lookup of an unknown name, every list) piled up listeners without bound.
   */
  private readonly invalidate = (): void => {
    this.cached = undefined;
  };

  constructor(
    private readonly zk: ZkStore,
    paths: ZkPaths,
  ) {
    this.parent = databasesPath(paths);
    // A watch lives in its session: after an expiry no change would ever be signalled for the cached list.
    zk.on('expired', () => {
      this.cached = undefined;
    });
  }

  private async names(): Promise<Set<string>> {
    if (this.cached) return this.cached;
    const children = await this.zk
      .getChildren(this.parent, this.invalidate)
      .catch(async (err: unknown) => {
        if (!isNoNode(err)) throw err;
        // No database created yet: watch for the parent instead (exists watches its creation).
        await this.zk.exists(this.parent, this.invalidate);
        return [] as string[];
      })
      .catch(unavailable);
    this.cached = new Set(children);
    this.known.clear();
    for (const name of children) this.known.add(name);
    return this.cached;
  }

  /** Whether a database exists (`default` always does). */
  async exists(name: string): Promise<boolean> {
    if (name === DEFAULT_DATABASE || this.cached?.has(name)) return true;
    // Not in a current list: perhaps created a moment ago through another orchestrator.
    this.cached = undefined;
    try {
      return (await this.names()).has(name);
    } catch (err) {
      if (this.known.has(name)) return true;
      throw err;
    }
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
        if (!isNoNode(err)) unavailable(err);
      }
    }
    return out;
  }

  /**
   * Records a new database; undefined when it exists already; 409 DBAAS_DATABASE_LIMIT_REACHED when there
   * are `max` besides `default`. Exact across concurrent creates and orchestrators: every create moves the
   * parent znode's version in the same transaction as it adds its child, and goes through only if the
   * version is still the one read before the children were counted (else counted again). A drop does not
   * move it: a create counted before a drop only ever counts one too many, never one too few.
   */
  async create(name: string, max: number, now = new Date()): Promise<DatabaseInfo | undefined> {
    await this.zk.mkdirp(this.parent).catch(unavailable);
    const info = { name, createdAt: now.toISOString() };
    // Each lost race means another create went through, so this ends by the cap; the bound is for drops churning beside it.
    for (let attempt = 0; ; attempt += 1) {
      const stat = await this.zk.exists(this.parent).catch(unavailable);
      const children = await this.zk.getChildren(this.parent).catch(unavailable);
      if (!stat) unavailable(new Error(`${this.parent} vanished`));
      if (children.includes(name)) return undefined;
      if (children.length >= max) throw limitReached(children.length, max);
      try {
        await this.zk.createCounted(`${this.parent}/${name}`, encodeZnode({ createdAt: info.createdAt }), CreateMode.PERSISTENT, this.parent, stat.version);
        break;
      } catch (err) {
        if (isNodeExists(err)) return undefined;
        if (!isBadVersion(err) || attempt >= CREATE_ATTEMPTS) unavailable(err);
      }
    }
    this.cached = undefined;
    this.known.add(name);
    return info;
  }

  /** Forgets a database; false when there was none. */
  async remove(name: string): Promise<boolean> {
    try {
      await this.zk.remove(`${this.parent}/${name}`);
    } catch (err) {
      if (isNoNode(err)) return false;
      unavailable(err);
    }
    this.cached = undefined;
    this.known.delete(name);
    return true;
  }
}

/** Counted again at most this often when other creates keep winning the race (each a database created). */
const CREATE_ATTEMPTS = 100;

/** The 409 of a create past DBAAS_MAX_DATABASES. */
export function limitReached(count: number, max: number): DbaasError {
  return new DbaasError('DBAAS_DATABASE_LIMIT_REACHED', `there are ${count} databases besides default, the most DBAAS_MAX_DATABASES (${max}) allows; drop one first`);
}

/** A ZooKeeper call that failed otherwise than by an answer the store expects: 503, retry. */
function unavailable(err: unknown): never {
  throw new DbaasError('DBAAS_COORDINATION_UNAVAILABLE', `the list of databases could not be read or changed: ${(err as Error).message}`);
}
