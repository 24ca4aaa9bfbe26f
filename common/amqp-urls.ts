/**
 * `DBAAS_AMQP_URL` as a list: one broker URL, or several separated by commas
 * (the nodes of a RabbitMQ cluster). A process connects to one of them at a
 * time and moves on to the next when that one fails or is lost
 * (common/amqp-connection.ts). Passwords never reach a log line: every URL
 * shown is passed through {@link redactAmqpUrl} first.
 */

/** The URLs of a comma-separated list, trimmed, empty entries dropped, in the order given. */
export function parseAmqpUrls(list: string): string[] {
  return list
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u.length > 0);
}

/** What is wrong with a `DBAAS_AMQP_URL` value, or undefined when every entry is an amqp:// or amqps:// URL with a host. */
export function amqpUrlProblem(list: string): string | undefined {
  const urls = parseAmqpUrls(list);
  if (urls.length === 0) return 'must name at least one amqp:// URL';
  for (const u of urls) {
    let parsed: URL;
    try {
      parsed = new URL(u);
    } catch {
      return `has an entry that is not a URL: ${JSON.stringify(redactAmqpUrl(u))}`;
    }
    if (parsed.protocol !== 'amqp:' && parsed.protocol !== 'amqps:') return `has an entry that is not amqp:// or amqps://: ${JSON.stringify(redactAmqpUrl(u))}`;
    if (parsed.hostname === '') return `has an entry without a host: ${JSON.stringify(redactAmqpUrl(u))}`;
  }
  return undefined;
}

/** The URL with its password (if any) replaced by `***`, for logs and messages. Not a URL? Everything between `//` and `@` is hidden. */
export function redactAmqpUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^@/]*)@/i, (_m, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    return colon < 0 ? `${scheme}${userinfo}@` : `${scheme}${userinfo.slice(0, colon)}:***@`;
  });
}

/** `host:port` of every URL of the list (port 5672, or 5671 for amqps, when none is given), for messages. */
export function amqpHosts(list: string): string[] {
  return parseAmqpUrls(list).map((u) => {
    try {
      const p = new URL(u);
      return `${p.hostname}:${p.port || (p.protocol === 'amqps:' ? '5671' : '5672')}`;
    } catch {
      return redactAmqpUrl(u);
    }
  });
}

/**
 * The order in which to try the URLs after the one at `current` failed or was
 * lost: the next one first, wrapping around, the failed one last (a single URL
 * is tried again, as before the list existed).
 */
export function nextUrlIndex(current: number, count: number): number {
  if (count <= 0) throw new Error('no broker URL to choose from');
  return (current + 1) % count;
}
