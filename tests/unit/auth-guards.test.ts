import type { FastifyReply, FastifyRequest } from 'fastify';
import { describe, expect, it } from 'vitest';
import { loadOrchestratorConfig } from '../../common/config.js';
import { BASIC_CHALLENGE, bearerToken, makeGuards } from '../../orchestrator/auth.js';

const KEY = 'unit-key-0123456789';
const request = (authorization?: string): FastifyRequest => ({ headers: authorization === undefined ? {} : { authorization } }) as unknown as FastifyRequest;
function replyStub(): { reply: FastifyReply; headers: Record<string, string> } {
  const headers: Record<string, string> = {};
  const reply = { header: (k: string, v: string) => ((headers[k] = v), reply) } as unknown as FastifyReply;
  return { reply, headers };
}
const code = (p: Promise<void>): Promise<string> => p.then(() => 'ok', (err: { code: string }) => err.code);

describe('bearerToken', () => {
  it.each([
    [`Bearer ${KEY}`, KEY],
    [`bearer   ${KEY}  `, KEY],
    [`Basic ${Buffer.from(`anyone:${KEY}`).toString('base64')}`, KEY],
    [`Basic ${Buffer.from(`:${KEY}`).toString('base64')}`, KEY],
    [`Basic ${Buffer.from('user-only').toString('base64')}`, undefined],
    [`Basic ${Buffer.from('user:').toString('base64')}`, undefined],
    ['Basic !!!', undefined],
    ['Token abc', undefined],
  ])('%s → %s', (header, expected) => expect(bearerToken(request(header))).toBe(expected));
});

describe('page guard', () => {
  it('follows the API keys, with a Basic challenge on 401', async () => {
    const { requirePageKey } = makeGuards({ adminToken: undefined, apiKeys: [KEY] });
    const { reply, headers } = replyStub();
    expect(await code(requirePageKey(request(), reply))).toBe('DBAAS_AUTH_MISSING');
    expect(headers['www-authenticate']).toBe(BASIC_CHALLENGE);
    expect(await code(requirePageKey(request('Bearer wrong-key-00000000'), replyStub().reply))).toBe('DBAAS_AUTH_INVALID');
    expect(await code(requirePageKey(request(`Bearer ${KEY}`), replyStub().reply))).toBe('ok');
  });

  it('DBAAS_PUBLIC_DOCS=1 keeps the pages open, not the API', async () => {
    const config = loadOrchestratorConfig({ DBAAS_API_KEYS: KEY, DBAAS_PUBLIC_DOCS: '1' });
    expect(config.publicDocs).toBe(true);
    const { requirePageKey, requireApiKey } = makeGuards(config);
    expect(await code(requirePageKey(request(), replyStub().reply))).toBe('ok');
    expect(await code(requireApiKey(request()))).toBe('DBAAS_AUTH_MISSING');
  });

  it('without API keys the pages are open, as the API is', async () => {
    const { requirePageKey } = makeGuards(loadOrchestratorConfig({}));
    expect(await code(requirePageKey(request(), replyStub().reply))).toBe('ok');
  });
});

describe('HTTP timeout settings', () => {
  it('defaults, and a headers timeout longer than the request timeout is refused', () => {
    const c = loadOrchestratorConfig({});
    expect([c.httpHeadersTimeoutMs, c.httpRequestTimeoutMs, c.httpKeepAliveTimeoutMs, c.httpMaxRequestsPerSocket]).toEqual([10_000, 30_000, 5000, 0]);
    expect(() => loadOrchestratorConfig({ DBAAS_HTTP_HEADERS_TIMEOUT_MS: '20000', DBAAS_HTTP_REQUEST_TIMEOUT_MS: '10000' })).toThrow(/must not exceed DBAAS_HTTP_REQUEST_TIMEOUT_MS/);
  });
});
