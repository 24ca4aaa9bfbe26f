/**
 * Fuzzing the HTTP API against a live cluster: thousands of generated requests,
 * mostly hostile, some valid. Properties: no 5xx, no hang, every error in the
 * catalogue shape, no worker crashed, and no rejected request changed anything
 * (every state change takes a seq, so the seq count must equal the accepted writes).
 *
 * The generator is seeded (DBAAS_FUZZ_SEED) so a failure can be replayed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE } from '../../common/errors.js';
import { startTestCluster, type TestCluster } from './harness.js';
import { rng } from '../prng.js';
import { alive } from './infra.js';

const SEED = Number(process.env.DBAAS_FUZZ_SEED ?? 20261121);
const REQUESTS = Number(process.env.DBAAS_FUZZ_REQUESTS ?? 2500);
const TIME_LIMIT_MS = 90_000;


class Gen {
  constructor(readonly r: () => number) {}
  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)] as T;
  }
  chance(p: number): boolean {
    return this.r() < p;
  }
  key(): string {
    return this.pick(['a', 'b', 'n', 'name', '_id', 'tags', 'nested.x', '$where', '$gt', '$expr', '__proto__', 'constructor', '', 'a.b', '$set', 'x\u0000y', 'k'.repeat(300), '$function', '$regex', '$in']);
  }
  scalar(): unknown {
    return this.pick([0, 1, -1, 1.5, 1e308, -0, '', 'ana', 'x'.repeat(this.int(3) === 0 ? 2_000_000 : 10), true, false, null, '(a+)+$', '((', 'username=\'ana\'']);
  }
  value(depth: number): unknown {
    if (depth > 4 || this.chance(0.45)) return this.scalar();
    if (this.chance(0.3)) return Array.from({ length: this.int(4) }, () => this.value(depth + 1));
    const o: Record<string, unknown> = {};
    for (let i = this.int(4); i > 0; i--) o[this.key()] = this.value(depth + 1);
    return o;
  }
  deep(levels: number): unknown {
    let v: unknown = 1;
    for (let i = 0; i < levels; i++) v = { a: v };
    return v;
  }
}

const TABLES = ['users', 'rides', 'fz'];

function validWrite(g: Gen): Record<string, unknown> {
  const table = g.pick(TABLES);
  switch (g.int(5)) {
    case 0:
      return { table, operation: 'insert', data: { name: `n${g.int(1000)}`, n: g.int(100), tags: ['a'] } };
    case 1:
      return { table, operation: 'update', where: { n: { $lt: g.int(100) } }, data: { $inc: { n: 1 }, $addToSet: { tags: 'b' } } };
    case 2:
      return { table, operation: 'upsert', where: { name: `n${g.int(50)}` }, data: { $set: { seen: true } } };
    case 3:
      return { table, operation: 'delete', where: { n: { $gt: 90 + g.int(20) } } };
    default:
      return { table, insert: [`u${g.int(100)}`, 'pw'], column: ['username', 'password'] };
  }
}

function validRead(g: Gen): Record<string, unknown> {
  return {
    table: g.pick(TABLES),
    where: g.pick([{}, { n: { $gte: g.int(50) } }, { name: { $regex: '^n1' } }, { $or: [{ n: 1 }, { tags: 'b' }] }, "username='u1'"]),
    ...(g.chance(0.5) ? { columns: ['name', 'n'] } : {}),
    ...(g.chance(0.3) ? { sort: { n: -1 }, limit: 1 + g.int(20) } : {}),
    ...(g.chance(0.2) ? { count: true } : {}),
  };
}

/** Mutates a valid body in one or more hostile ways. */
function mutate(g: Gen, body: Record<string, unknown>): unknown {
  const out: Record<string, unknown> = { ...body };
  for (let i = 1 + g.int(3); i > 0; i--) {
    const k = g.pick(Object.keys(out).concat(['extra', '$where', 'requestId', 'afterSeq', 'limit']));
    switch (g.int(7)) {
      case 0:
        out[k] = g.value(0);
        break;
      case 1:
        delete out[k];
        break;
      case 2:
        out[k] = g.deep(20 + g.int(20));
        break;
      case 3:
        out[g.key()] = g.value(1);
        break;
      case 4:
        if (typeof out.where === 'object' && out.where) out.where = { ...(out.where as object), [g.key()]: g.value(1) };
        else out.where = g.value(1);
        break;
      case 5:
        if (typeof out.data === 'object' && out.data) out.data = { ...(out.data as object), [g.key()]: g.value(1) };
        else out.data = g.value(1);
        break;
      default:
        out.table = g.pick(['', '1x', 'a$b', 'system.users', '_dbaas_oplog', 't'.repeat(70), 7, null, 'ok_table']);
    }
  }
  return out;
}

let c: TestCluster;

beforeAll(async () => {
  c = await startTestCluster({ DBAAS_INITIAL_SLAVES: '1' });
});

afterAll(async () => {
  await c?.close();
});

describe(`fuzzing the API (seed ${SEED})`, () => {
  it('never answers 5xx, never hangs, never crashes a worker, and rejected requests change nothing', async () => {
    const g = new Gen(rng(SEED));
    const seed = await c.post('/api/v1/db/write', { table: 'fz', operation: 'insert', data: [{ name: 'n1', n: 1 }, { name: 'n2', n: 2 }] });
    expect(seed.status).toBe(200);
    const seqBefore = seed.body.seq as number;
    const pidsBefore = (await c.get('/api/v1/workers/list')).body as number[];

    let acceptedWrites = 0;
    let sent = 0;
    const statuses = new Map<number, number>();
    const problems: string[] = [];
    const deadline = Date.now() + TIME_LIMIT_MS;

    const one = async (): Promise<void> => {
      const isWrite = g.chance(0.5);
      const base = isWrite ? validWrite(g) : validRead(g);
      const hostile = g.chance(0.8);
      let payload: string;
      if (hostile && g.chance(0.1)) {
        payload = g.pick(['{', '{"table":', 'null', '[]', '"x"', '\u0000\u0001', '{"table":"t","operation":"insert","data":{"__proto__":{"polluted":1}}}', '{"a":1}}']);
      } else {
        payload = JSON.stringify(hostile ? mutate(g, base) : base);
      }
      const started = Date.now();
      const res = await c.orch.app.inject({
        method: 'POST',
        url: isWrite ? '/api/v1/db/write' : '/api/v1/db/read',
        payload,
        headers: { 'content-type': 'application/json' },
      });
      sent += 1;
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
      const took = Date.now() - started;
      if (res.statusCode >= 500) problems.push(`${res.statusCode} for ${payload.slice(0, 300)}: ${res.body.slice(0, 300)}`);
      if (took > c.config.requestTimeoutMs + 1000) problems.push(`took ${took} ms: ${payload.slice(0, 200)}`);
      if (res.statusCode >= 400) {
        const body = res.json() as { error?: { code?: string; message?: string } };
        const code = body.error?.code ?? '';
        if (!(code in ERROR_CATALOGUE) || !body.error?.message || Object.keys(body).length !== 1) {
          problems.push(`malformed error body for ${payload.slice(0, 200)}: ${res.body.slice(0, 200)}`);
        }
        if (/\bat \S+ \(|node_modules|\.ts:\d+/.test(res.body)) problems.push(`stack trace leaked: ${res.body.slice(0, 200)}`);
      } else if (isWrite) {
        acceptedWrites += 1;
      }
    };

    // A few requests in flight at once, as real clients would send them.
    const lanes = Array.from({ length: 8 }, async () => {
      while (sent < REQUESTS && Date.now() < deadline) await one();
    });
    await Promise.all(lanes);

    expect(problems).toEqual([]);
    expect(sent).toBeGreaterThanOrEqual(Math.min(REQUESTS, 500));
    expect([...statuses.keys()].every((s) => s < 500)).toBe(true);
    // Mostly refusals, and some accepted writes: the generator reached both sides.
    expect(statuses.get(400) ?? 0).toBeGreaterThan(sent / 4);
    expect(acceptedWrites).toBeGreaterThan(10);

    // No worker crashed.
    expect((await c.get('/api/v1/workers/list')).body).toEqual(pidsBefore);
    for (const pid of pidsBefore) expect(alive(pid)).toBe(true);

    // Every change takes exactly one seq: only the accepted writes did.
    const probe = await c.post('/api/v1/db/write', { table: 'fz_probe', operation: 'insert', data: { p: 1 } });
    expect(probe.status).toBe(200);
    expect(probe.body.seq).toBe(seqBefore + acceptedWrites + 1);
    // And nothing leaked into Object.prototype anywhere in this process.
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    console.log(`fuzz: ${sent} requests, statuses ${JSON.stringify(Object.fromEntries(statuses))}, ${acceptedWrites} accepted writes`);
  }, TIME_LIMIT_MS + 60_000);
});
