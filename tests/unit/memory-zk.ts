/**
 * An in-memory ZooKeeper for unit tests of the coordination recipes: one
 * {@link MemoryZkServer} (the ensemble) and any number of {@link MemoryZk}
 * sessions on it, each a {@link ZkStore} like the real {@link ZkSession}.
 *
 * What it keeps of ZooKeeper's semantics, because the recipes rely on it:
 * persistent, ephemeral and sequential znodes (ten-digit counters per parent),
 * versions and compare-and-set (BAD_VERSION), a guarded set and a counted create in one transaction,
 * NO_NODE / NODE_EXISTS / NOT_EMPTY, one-shot data, exists and child watches
 * (one call per distinct function, fired asynchronously), and a session that
 * ends: {@link MemoryZkServer.expire} drops its ephemerals (firing watches), and
 * the session then starts again and re-runs its `onSession` callbacks, as
 * ZkSession does. A session can also be cut off ({@link MemoryZk.cutOff}):
 * every call then rejects, and no answer moves its contact age.
 */
import { EventEmitter } from 'node:events';
import { CreateMode, isNodeExists, zkError, type Watcher, type ZkEvent, type ZkStat, type ZkStore } from '../../coordination/zk-session.js';

interface Znode {
  data: Buffer;
  version: number;
  /** Session id of an ephemeral znode's owner. */
  owner?: number;
  /** Next sequence number for sequential children. */
  nextSeq: number;
}

type WatchKind = 'data' | 'exists' | 'child';

function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
}

function event(name: string, p: string): ZkEvent {
  return { getName: () => name, getPath: () => p };
}

export class MemoryZkServer {
  private readonly nodes = new Map<string, Znode>([['/', { data: Buffer.alloc(0), version: 0, nextSeq: 0 }]]);
  private readonly watches = new Map<string, Map<WatchKind, Map<Watcher, number>>>();
  private nextSession = 1;

  /** A new session on this server, started (`setup` first registers its session callbacks). */
  async session(setup?: (s: MemoryZk) => void): Promise<MemoryZk> {
    const s = new MemoryZk(this);
    setup?.(s);
    await s.start();
    return s;
  }

  /** @internal A new session id. */
  newSessionId(): number {
    return this.nextSession++;
  }

  /** Ends a session as the server does when it stops hearing from it: its ephemerals go, then the client starts a new session. */
  async expire(s: MemoryZk): Promise<void> {
    this.dropSession(s.sessionNumber);
    await s.renew();
  }

  /** @internal Deletes a session's ephemerals and its watches. */
  dropSession(id: number): void {
    for (const [p, n] of [...this.nodes]) if (n.owner === id) this.delete(p);
    for (const kinds of this.watches.values()) for (const m of kinds.values()) for (const [w, owner] of [...m]) if (owner === id) m.delete(w);
  }

  /** Every path (for assertions). */
  paths(): string[] {
    return [...this.nodes.keys()].sort();
  }

  private watch(p: string, kind: WatchKind, w: Watcher, session: number): void {
    let kinds = this.watches.get(p);
    if (!kinds) this.watches.set(p, (kinds = new Map()));
    let m = kinds.get(kind);
    if (!m) kinds.set(kind, (m = new Map()));
    m.set(w, session);
  }

  private fire(p: string, kinds: WatchKind[], name: string): void {
    const all = this.watches.get(p);
    if (!all) return;
    const fns = new Set<Watcher>();
    for (const k of kinds) {
      const m = all.get(k);
      if (!m) continue;
      for (const w of m.keys()) fns.add(w);
      all.delete(k);
    }
    for (const w of fns) setImmediate(() => w(event(name, p)));
  }

  private node(p: string): Znode {
    const n = this.nodes.get(p);
    if (!n) throw zkError('NO_NODE', p);
    return n;
  }

  private delete(p: string): void {
    this.nodes.delete(p);
    this.fire(p, ['data', 'exists', 'child'], 'NODE_DELETED');
    this.fire(parentOf(p), ['child'], 'NODE_CHILDREN_CHANGED');
  }

  private children(p: string): string[] {
    const prefix = p === '/' ? '/' : `${p}/`;
    return [...this.nodes.keys()].filter((k) => k !== p && k.startsWith(prefix) && !k.slice(prefix.length).includes('/')).map((k) => k.slice(prefix.length));
  }

  create(session: number, path: string, data: Buffer | null, mode: number): string {
    const parent = this.nodes.get(parentOf(path));
    if (!parent) throw zkError('NO_NODE', path);
    if (parent.owner !== undefined) throw zkError('NO_NODE', path);
    let p = path;
    if (mode === CreateMode.PERSISTENT_SEQUENTIAL || mode === CreateMode.EPHEMERAL_SEQUENTIAL) {
      p = `${path}${String(parent.nextSeq).padStart(10, '0')}`;
      parent.nextSeq += 1;
    }
    if (this.nodes.has(p)) throw zkError('NODE_EXISTS', p);
    const ephemeral = mode === CreateMode.EPHEMERAL || mode === CreateMode.EPHEMERAL_SEQUENTIAL;
    this.nodes.set(p, { data: Buffer.from(data ?? Buffer.alloc(0)), version: 0, nextSeq: 0, ...(ephemeral ? { owner: session } : {}) });
    this.fire(p, ['exists'], 'NODE_CREATED');
    this.fire(parentOf(p), ['child'], 'NODE_CHILDREN_CHANGED');
    return p;
  }

  remove(path: string, version: number): void {
    const n = this.node(path);
    if (version !== -1 && n.version !== version) throw zkError('BAD_VERSION', path);
    if (this.children(path).length > 0) throw zkError('NOT_EMPTY', path);
    this.delete(path);
  }

  exists(session: number, path: string, watcher?: Watcher): ZkStat | null {
    if (watcher) this.watch(path, 'exists', watcher, session);
    const n = this.nodes.get(path);
    return n ? { version: n.version } : null;
  }

  getData(session: number, path: string, watcher?: Watcher): { data: Buffer | undefined; stat: ZkStat } {
    const n = this.node(path);
    if (watcher) this.watch(path, 'data', watcher, session);
    return { data: n.data.length === 0 ? undefined : Buffer.from(n.data), stat: { version: n.version } };
  }

  setData(path: string, data: Buffer, version: number): ZkStat {
    const n = this.node(path);
    if (version !== -1 && n.version !== version) throw zkError('BAD_VERSION', path);
    n.data = Buffer.from(data);
    n.version += 1;
    this.fire(path, ['data', 'exists'], 'NODE_DATA_CHANGED');
    return { version: n.version };
  }

  setDataGuarded(path: string, data: Buffer, version: number, guardPath: string, guardVersion: number): void {
    const guard = this.node(guardPath);
    if (guard.version !== guardVersion) throw zkError('BAD_VERSION', guardPath);
    const n = this.node(path);
    if (version !== -1 && n.version !== version) throw zkError('BAD_VERSION', path);
    this.setData(path, data, version);
  }

  createCounted(session: number, path: string, data: Buffer | null, mode: number, counterPath: string, counterVersion: number): void {
    const counter = this.node(counterPath);
    if (counter.version !== counterVersion) throw zkError('BAD_VERSION', counterPath);
    if (!this.nodes.has(parentOf(path))) throw zkError('NO_NODE', path);
    if (this.nodes.has(path)) throw zkError('NODE_EXISTS', path);
    this.setData(counterPath, Buffer.alloc(0), counterVersion);
    this.create(session, path, data, mode);
  }

  getChildren(session: number, path: string, watcher?: Watcher): string[] {
    this.node(path);
    if (watcher) this.watch(path, 'child', watcher, session);
    return this.children(path);
  }
}

/** One session on a {@link MemoryZkServer}. */
export class MemoryZk extends EventEmitter implements ZkStore {
  private live = false;
  private cut = false;
  private closed = false;
  private id: number;
  private lastContactAt = 0;
  private readonly callbacks: Array<() => Promise<void>> = [];

  constructor(private readonly server: MemoryZkServer) {
    super();
    this.id = server.newSessionId();
  }

  get connected(): boolean {
    return this.live && !this.cut;
  }

  /** This session's id on the server. */
  get sessionNumber(): number {
    return this.id;
  }

  onSession(cb: () => Promise<void>): void {
    this.callbacks.push(cb);
  }

  contactAgeMs(now = Date.now()): number {
    return this.lastContactAt === 0 ? Infinity : now - this.lastContactAt;
  }

  /** Runs the session callbacks (the first session); resolves once it is live. */
  async start(): Promise<void> {
    for (const cb of this.callbacks) await cb();
    this.live = true;
    this.lastContactAt = Date.now();
    this.emit('session');
  }

  /** @internal After the server expired this session: a new one, its callbacks run again. */
  async renew(): Promise<void> {
    this.live = false;
    this.emit('expired');
    this.id = this.server.newSessionId();
    await this.start();
  }

  /** While cut off, every call rejects (a lost connection) and the contact age grows; `false` reconnects. */
  cutOff(cut = true): void {
    this.cut = cut;
    this.emit(cut ? 'disconnected' : 'reconnected');
  }

  /** Ends the session: its ephemerals go at once. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.live = false;
    this.server.dropSession(this.id);
  }

  private async call<T>(fn: () => T): Promise<T> {
    await Promise.resolve();
    if (this.closed) throw new Error('zookeeper client not started');
    if (this.cut) throw new Error('connection loss (memory zk cut off)');
    this.lastContactAt = Date.now();
    return fn();
  }

  create(path: string, data: Buffer | null, mode: number): Promise<string> {
    return this.call(() => this.server.create(this.id, path, data, mode));
  }

  async mkdirp(path: string): Promise<string> {
    const parts = path.split('/').filter((p) => p !== '');
    let p = '';
    for (const part of parts) {
      p += `/${part}`;
      try {
        await this.create(p, null, CreateMode.PERSISTENT);
      } catch (err) {
        if (!isNodeExists(err)) throw err;
      }
    }
    return path;
  }

  remove(path: string, version = -1): Promise<void> {
    return this.call(() => this.server.remove(path, version));
  }

  exists(path: string, watcher?: Watcher): Promise<ZkStat | null> {
    return this.call(() => this.server.exists(this.id, path, watcher));
  }

  getData(path: string, watcher?: Watcher): Promise<{ data: Buffer | undefined; stat: ZkStat }> {
    return this.call(() => this.server.getData(this.id, path, watcher));
  }

  setData(path: string, data: Buffer, version = -1): Promise<ZkStat> {
    return this.call(() => this.server.setData(path, data, version));
  }

  setDataGuarded(path: string, data: Buffer, version: number, guardPath: string, guardVersion: number): Promise<void> {
    return this.call(() => this.server.setDataGuarded(path, data, version, guardPath, guardVersion));
  }

  createCounted(path: string, data: Buffer | null, mode: number, counterPath: string, counterVersion: number): Promise<void> {
    return this.call(() => this.server.createCounted(this.id, path, data, mode, counterPath, counterVersion));
  }

  getChildren(path: string, watcher?: Watcher): Promise<string[]> {
    return this.call(() => this.server.getChildren(this.id, path, watcher));
  }
}
