/**
 * One JSON request to a running orchestrator, for the repository's own tools
 * (`npm run bench`, `npm run drill`): the status and the body, parsed when it
 * is JSON and kept as text otherwise. Services use the typed client instead.
 */
export interface HttpJsonOptions {
  headers?: Record<string, string>;
  /** Aborts the request after this long (no limit when absent). */
  timeoutMs?: number;
}

export async function httpJson<T = unknown>(
  url: string,
  method: 'GET' | 'POST',
  body?: unknown,
  opts: HttpJsonOptions = {},
): Promise<{ status: number; body: T }> {
  const res = await fetch(url, {
    method,
    headers: { 'content-type': 'application/json', ...opts.headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    ...(opts.timeoutMs === undefined ? {} : { signal: AbortSignal.timeout(opts.timeoutMs) }),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed as T };
}
