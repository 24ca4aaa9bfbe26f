/**
 * What a client is told of an error's message: the cause in words, without the internals a
 * storage driver's words carry (FerretDB's call chain, pgx's `user=… database=…`, host:port
 * addresses, connection URLs, PostgreSQL role and database names). The operator's log keeps the
 * full text; {@link httpErrorBody} (common/errors.ts) applies this to every HTTP error answer.
 *
 *   failed to connect to `user=postgres database=t-…_wmx…`:\n\t127.0.0.1:15433 (127.0.0.1): tls error: …
 *   → failed to connect to the database: tls error: …
 */

/** IPv4 (a cut one too), [IPv6], localhost or a dotted host name, with a port. */
const HOST_PORT = String.raw`(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]|localhost|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+):\d{1,5}`;

/** What may stand inside a code position: no brackets, or a Go generic function's one level of "[...]". */
const IN_POSITION = String.raw`(?:[^\[\]]|\[[^\[\]]*\])*`;
/**
 * FerretDB's position in its own code, "[msg_find.go:344 handler.handleMaxTimeMSError] ": whole (a generic function's
 * "[...]" inside too: "[iterator.go:60 iterator.ConsumeValues[...]] "), cut at the message's start ("sert.go:98 x] "),
 * or cut at its end ("… [msg_insert.go:168 handler.(*Han"). Matching only the first "]" left a stray one: "] unexpected EOF".
 */
const CALL_CHAIN: readonly RegExp[] = [
  new RegExp(String.raw`\[[^\[\]\s]*\.go:\d+${IN_POSITION}\]\s*`, 'g'),
  new RegExp(String.raw`^[^\[\]\s]*\.?go:\d+${IN_POSITION}\]\s*`),
  new RegExp(String.raw`\s?\[[^\[\]\s]*\.go:\d+${IN_POSITION}(?:\[[^\[\]]*)?$`),
];

/** `text` without FerretDB's positions in its own code (whole or cut: {@link CALL_CHAIN}). */
export function withoutCallChain(text: string): string {
  let plain = text;
  for (const pattern of CALL_CHAIN) plain = plain.replace(pattern, '');
  return plain;
}

const RULES: ReadonlyArray<readonly [RegExp, string]> = [
  // pgx's connection string: "failed to connect to `user=postgres database=…`:" (or cut short).
  [/failed to connect to `[^`]*(?:`:?|$)/g, 'failed to connect to the database:'],
  // A connection URL (mongodb://, postgres://, amqp://, http://...).
  [/\b[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s'"`,;)]+/g, 'an internal address'],
  // Go's "dial tcp 127.0.0.1:18553: " and pgx's "127.0.0.1:15433 (127.0.0.1): ".
  [new RegExp(String.raw`(?:dial|read|write) (?:tcp|udp|unix)[46]? (?:${HOST_PORT}->)?${HOST_PORT}:?\s*`, 'g'), ''],
  [new RegExp(String.raw`${HOST_PORT}(?: \([^)\s]*\))?:?\s*`, 'g'), ''],
  // key=value settings: user=postgres database=… host=… (a bracket holding only those goes too).
  [/\s*\((?:\s*(?:user|database|dbname|host|hostaddr|port|password)=[^\s)]*)+\s*\)/gi, ''],
  [/\b(?:user|database|dbname|host|hostaddr|port|password)=[^\s)]+\s*/gi, ''],
  // PostgreSQL's quoted names: database "t-…", role "postgres", for user "postgres".
  [/\b(database|role|user|relation|schema)\s+"[^"]*"/gi, '$1'],
];

/**
 * The longest message the rules below read. Some of them backtrack over a long run of word
 * characters (the host-name part of HOST_PORT), which is quadratic: a 16,000-character message
 * took 151 ms and a 100,000-character key in an error (hostile input) held the orchestrator's
 * event loop for seconds, long enough to lose its ZooKeeper session. A message to a client need
 * not be longer; validation's own messages stop at 500 (common/json-shape.ts).
 */
const MAX_CLIENT_MESSAGE = 1000;

/** `message` as a client may see it: internal addresses and names dropped, repeated lines said once. */
export function clientMessage(message: string): string {
  let text = withoutCallChain(message.length > MAX_CLIENT_MESSAGE ? `${message.slice(0, MAX_CLIENT_MESSAGE)}…` : message);
  for (const [pattern, replacement] of RULES) text = text.replace(pattern, replacement);
  // A message cut short ("…") may end inside an address or a name: drop the cut word.
  text = text.replace(/\S*…$/, '…');
  // pgx says the same for every address it tried, one per line.
  const lines = text.split(/\s*\n\s*/).map((line) => line.trim()).filter((line) => line !== '');
  return [...new Set(lines)].join('; ').replace(/:\s*;/g, ':').replace(/ {2,}/g, ' ');
}
