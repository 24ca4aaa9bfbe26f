/**
 * The `dbaas` command line: scripts a running orchestrator through its public
 * HTTP API (with the typed client). Human-readable tables by default, `--json`
 * for scripts. Exit codes are in {@link EXIT}.
 */
import { createReadStream, readFileSync } from 'node:fs';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { exportTable, importTable, restore } from '../archive.js';
import { DbaasClient, DbaasClientError, newRequestId } from '../dbaas-client.js';
import { CLIENT_TIMEOUT, CLIENT_UNREACHABLE } from '../retry.js';
import type { AuditEvent, Filter, ReadOptions, WorkerInfo, WriteBody } from '../types.js';
import type { Env } from '../../common/config.js';
import { formatDocuments, formatPairs, formatTable } from './table.js';
import { runTeardown } from './teardown-command.js';

/** Exit codes of `dbaas`. */
export const EXIT = {
  /** Done. */
  OK: 0,
  /** The orchestrator refused or failed the request (its error code is printed). */
  FAILED: 1,
  /** Bad command line. */
  USAGE: 2,
  /** The orchestrator could not be reached, or did not answer in time. */
  UNREACHABLE: 3,
  /** `status`: the orchestrator answered, but the cluster is not ready. */
  NOT_READY: 4,
  /** `verify`: a replica differs from the master. */
  DIVERGENT: 5,
  /** `verify`: no replica differs, but some could not be compared. */
  INCOMPLETE: 6,
} as const;

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Standard input, for `--data -`. */
  readStdin(): Promise<string>;
  /** Standard input and output as streams, for `backup`, `restore`, `export`, `import` (archives of any size). */
  input?: () => Readable;
  output?: () => Writable;
  /** Defaults for `--url`, `--token` and `--api-key` (from DBAAS_URL, DBAAS_ADMIN_TOKEN, DBAAS_API_KEY). */
  defaults: { url: string; adminToken?: string | undefined; apiKey?: string | undefined };
  /** Ends `events --follow`. */
  signal?: AbortSignal;
  fetch?: typeof fetch;
  /** This dbaas's version, for `--version`. */
  version?: string | undefined;
  /** `teardown`: asks for the confirmation (undefined when there is no terminal to ask). */
  ask?: (question: string) => Promise<string | undefined>;
  /** `teardown`: the environment holding the cluster's settings (DBAAS_AMQP_URL, DBAAS_ZK_CONNECT, DBAAS_DATA_DIR, …). */
  env?: Env;
}

export const USAGE = `usage: dbaas [options] <command> [arguments]

commands:
  status                        is the cluster ready? master, slaves, autoscaler target (exit 4 when not ready)
  workers                       every worker: pid, role, state, applied seq, lag
  events [--after N] [--follow] the audit log: failovers, replacements, scaling, drills
                                (--follow without --after shows only events from now on)
  crash master|slave [--wait]   fault drill: kill the master, or the slave with the highest pid (admin);
                                --wait returns once a master and as many caught-up slaves serve again
  scale N                       set the slave target by hand (admin)
  read TABLE [--where JSON] [--columns a,b] [--sort JSON] [--limit N] [--skip N] [--count] [--after-seq N]
  write TABLE insert|update|upsert|delete [--data JSON] [--where JSON] [--request-id ID]
  clear                         empty every table on every worker, or only those of --db (admin)
  backup [--oplog-after SEQ]    every database at one seq, taken on a slave, as a gzip NDJSON archive on stdout (admin);
                                --oplog-after: also the oplog entries after SEQ (for a point-in-time restore)
  restore [--db D] [--from-db S] [--resume] [--oplog FILE [--to-seq N | --to-time T]]
                                write an archive from stdin back through the write path into an empty or new database
                                (--db: into D; --from-db: only S of the archive), then check it against the manifest;
                                --oplog: a later archive taken with --oplog-after, whose entries are laid over it up to
                                seq N or time T (point-in-time restore)
  export --table T [--db D]     one table as NDJSON on stdout (keyset pages by _id, any size)
  import --table T --id ID [--db D]
                                NDJSON documents from stdin, in batches with requestIds ID-0, ID-1, …: run it again
                                with the same ID after a failure and no batch is applied twice
  databases                     the databases (a scoped key sees its own)
  databases create|drop NAME    create a database, or drop one and its data on every replica (admin)
  tables                        the tables of the database (--db): documents (~ = the storage's estimate) and indexes
  verify                        checksum every table on every replica at one seq; divergent slaves get replaced (admin)
  switchover [TARGET]           planned switchover: the master hands over to a caught-up slave (id or pid; admin)
  orchestrators                 every orchestrator of the namespace and which one leads
  platform                      every platform service and orchestrator the lifecycle manager watches, with its state
  teardown --namespace NS [--yes]
                                remove a STOPPED namespace: its queues, exchanges, znodes, Docker containers, volumes,
                                network and data directory (admin: talks to RabbitMQ, ZooKeeper, Docker and the disk
                                with the DBAAS_* settings; refused while an orchestrator runs it; asks unless --yes)

options:
  --url URL          the orchestrator (default: $DBAAS_URL, else http://127.0.0.1:$DBAAS_PORT); several,
                     comma-separated, of one namespace: a try that cannot reach one moves to the next
  --token TOKEN      admin token for crash, scale, clear (default: $DBAAS_ADMIN_TOKEN)
  --api-key KEY      key for the data and cluster endpoints (default: $DBAAS_API_KEY)
  --db NAME          the database of read, write, clear (default: the server's default database)
  --json             print JSON instead of tables (errors too, as {"error": …})
  --timeout MS       how long one try may take (default 10000; verify and backup 120000)
  --retries N        retries of safe requests on 503/504/no answer (default 3; writes keep their requestId)
  -h, --help         this text
  -V, --version      print the version of dbaas

--data and --where take JSON, @FILE (read a file) or - (read standard input).

exit codes: 0 done, 1 refused or failed by the orchestrator, 2 bad command line,
            3 orchestrator unreachable or too slow, 4 cluster not ready (status),
            5 a replica differs from the master (verify, restore), 6 some replica not compared (verify, restore)`;

const OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
  'api-key': { type: 'string' },
  db: { type: 'string' },
  json: { type: 'boolean' },
  timeout: { type: 'string' },
  retries: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
  where: { type: 'string' },
  columns: { type: 'string' },
  sort: { type: 'string' },
  limit: { type: 'string' },
  skip: { type: 'string' },
  count: { type: 'boolean' },
  'after-seq': { type: 'string' },
  data: { type: 'string' },
  'request-id': { type: 'string' },
  table: { type: 'string' },
  'from-db': { type: 'string' },
  'oplog-after': { type: 'string' },
  oplog: { type: 'string' },
  'to-seq': { type: 'string' },
  'to-time': { type: 'string' },
  resume: { type: 'boolean' },
  id: { type: 'string' },
  after: { type: 'string' },
  follow: { type: 'boolean', short: 'f' },
  wait: { type: 'boolean', short: 'w' },
  namespace: { type: 'string' },
  yes: { type: 'boolean', short: 'y' },
} as const;

type Values = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]['type'] extends 'string' ? string : boolean };

const GLOBAL = ['url', 'token', 'api-key', 'db', 'json', 'timeout', 'retries', 'help', 'version'];
/** Options each command takes beyond the global ones. */
const COMMAND_OPTIONS: Record<string, string[]> = {
  status: [],
  workers: [],
  events: ['after', 'follow'],
  crash: ['wait'],
  scale: [],
  read: ['where', 'columns', 'sort', 'limit', 'skip', 'count', 'after-seq'],
  write: ['data', 'where', 'request-id'],
  clear: ['request-id'],
  backup: ['oplog-after'],
  restore: ['from-db', 'resume', 'oplog', 'to-seq', 'to-time'],
  export: ['table'],
  import: ['table', 'id'],
  databases: [],
  tables: [],
  verify: [],
  switchover: [],
  orchestrators: [],
  platform: [],
  teardown: ['namespace', 'yes'],
};

class UsageError extends Error {}

function usage(message: string): never {
  throw new UsageError(message);
}

function integer(raw: string | undefined, name: string, min: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) usage(`--${name} must be an integer ≥ ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

/** A JSON argument: inline text, `@file`, or `-` for standard input. */
async function jsonArg(raw: string | undefined, name: string, io: CliIo): Promise<unknown> {
  if (raw === undefined) return undefined;
  let text = raw;
  if (raw === '-') text = await io.readStdin();
  else if (raw.startsWith('@')) {
    try {
      text = readFileSync(raw.slice(1), 'utf8');
    } catch (err) {
      usage(`--${name}: cannot read ${raw.slice(1)}: ${(err as Error).message}`);
    }
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    usage(`--${name} is not valid JSON: ${(err as Error).message}`);
  }
}

function time(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** Runs one command line; resolves with the exit code. Never throws. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let json = argv.includes('--json');
  const out = (value: unknown, text: () => string): void => io.stdout(json ? JSON.stringify(value, null, 2) : text());
  try {
    let parsed;
    try {
      parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    } catch (err) {
      usage((err as Error).message);
    }
    const values = parsed.values as Values;
    const [command, ...args] = parsed.positionals;
    json = values.json === true;
    if (values.version || command === 'version') {
      io.stdout(`dbaas ${io.version ?? 'unknown'}`);
      return EXIT.OK;
    }
    if (values.help || command === 'help') {
      io.stdout(USAGE);
      return EXIT.OK;
    }
    if (command === undefined) usage('no command given');
    const allowed = COMMAND_OPTIONS[command];
    if (!allowed) usage(`unknown command ${JSON.stringify(command)}`);
    for (const key of Object.keys(values)) {
      if (!GLOBAL.includes(key) && !allowed.includes(key)) usage(`${command} does not take --${key}`);
    }

    if (command === 'teardown') {
      if (args.length !== 0 || values.namespace === undefined) usage('usage: dbaas teardown --namespace NS [--yes]');
      return await runTeardown(values.namespace, { yes: values.yes === true, json }, io);
    }

    // A verify waits for every replica to reach its checkpoint and hash (DBAAS_VERIFY_WAIT_MS, 60 s by default); a
    // backup's headers wait for its checkpoint and the slave's first part as long (E's fault runs: 11.6 s, 22.8 s).
    const timeoutMs = integer(values.timeout, 'timeout', 1) ?? (command === 'verify' || command === 'backup' ? 120_000 : 10_000);
    const retries = integer(values.retries, 'retries', 0) ?? 3;
    const url = values.url ?? io.defaults.url;
    if (!/^https?:\/\/[^/]/.test(url)) usage(`--url must be an http(s) URL, got ${JSON.stringify(url)}`);
    const adminToken = values.token ?? io.defaults.adminToken;
    const apiKey = values['api-key'] ?? io.defaults.apiKey;
    const client = new DbaasClient({
      url,
      timeoutMs,
      retry: { attempts: retries + 1 },
      readYourWrites: false,
      ...(adminToken ? { adminToken } : {}),
      ...(apiKey ? { apiKey } : {}),
      ...(values.db ? { database: values.db } : {}),
      ...(io.fetch ? { fetch: io.fetch } : {}),
    });
    const streams = (): { input: Readable; output: Writable } => {
      if (!io.input || !io.output) usage(`${command} needs standard input and output as streams`);
      return { input: io.input(), output: io.output() };
    };
    const expectArgs = (n: number, shape: string): void => {
      if (args.length !== n) usage(`usage: dbaas ${command} ${shape}`.trim());
    };

    switch (command) {
      case 'status': {
        expectArgs(0, '');
        const ready = await client.readiness();
        const [workers, scale] = await Promise.all([client.workers(), client.autoscaler()]);
        const master = workers.find((w) => w.role === 'master');
        const slaves = workers.filter((w) => w.role === 'slave');
        out({ ...ready, workers, autoscaler: scale }, () =>
          formatPairs([
            ['ready', ready.ready ? 'yes' : 'NO'],
            ['master', master ? `pid ${master.pid} (${master.id}, seq ${master.appliedSeq})` : 'none'],
            ['slaves', `${slaves.length} (${ready.servingSlaves} serving), target ${scale.targetSlaves}`],
            ['broker', ready.broker ? 'connected' : 'DISCONNECTED'],
            ['autoscaler', scale.started ? `${scale.readsInWindow} read(s) in this ${Math.round(scale.intervalMs / 1000)} s window` : 'waiting for the first read'],
          ]),
        );
        return ready.ready ? EXIT.OK : EXIT.NOT_READY;
      }
      case 'workers': {
        expectArgs(0, '');
        const workers = await client.workers();
        out(workers, () =>
          formatTable(
            ['PID', 'ROLE', 'STATE', 'SEQ', 'LAG', 'ID', 'STARTED'],
            workers.map((w) => [w.pid, w.role, w.state, w.appliedSeq, w.lag, w.id, time(w.startedAt)]),
            new Set(['PID', 'SEQ', 'LAG']),
          ),
        );
        return EXIT.OK;
      }
      case 'events': {
        expectArgs(0, '[--after N] [--follow]');
        let after = integer(values.after, 'after', 0);
        const rows = (events: AuditEvent[]): string =>
          formatTable(
            ['SEQ', 'TIME', 'KIND', 'MS', 'REASON'],
            events.map((e) => [e.seq, time(e.at), e.kind, e.durationMs ?? '', e.reason]),
            new Set(['SEQ', 'MS']),
          );
        const first = await client.events(after ?? 0);
        if (!values.follow) {
          out(first, () => (first.length === 0 ? '(no events)' : rows(first)));
          return EXIT.OK;
        }
        // Follow: one line per event as it comes (JSON lines with --json), until interrupted.
        // Without --after, only what happens from now on (as tail -f); --after N replays from N first.
        let header = true;
        const print = (events: AuditEvent[]): void => {
          if (events.length === 0) return;
          if (json) for (const e of events) io.stdout(JSON.stringify(e));
          else io.stdout(header ? rows(events) : rows(events).split('\n').slice(1).join('\n'));
          header = false;
        };
        if (after !== undefined) print(first);
        after = Math.max(after ?? 0, ...first.map((e) => e.seq));
        while (!io.signal?.aborted) {
          await new Promise((resolve) => setTimeout(resolve, 1000));
          if (io.signal?.aborted) break;
          const more = await client.events(after);
          print(more);
          after = Math.max(after, ...more.map((e) => e.seq));
        }
        return EXIT.OK;
      }
      case 'crash': {
        const role = args[0];
        if (args.length !== 1 || (role !== 'master' && role !== 'slave')) usage('usage: dbaas crash master|slave');
        const before = values.wait ? await client.workers() : [];
        const pid = await client.crash(role);
        if (!values.wait) {
          out({ role, pid }, () => `killed ${role} pid ${pid}; recovery runs on its own (dbaas events --follow, or --wait)`);
          return EXIT.OK;
        }
        const started = Date.now();
        const slaves = before.filter((w) => w.role === 'slave').length;
        const workers = await waitForRecovery(client, pid, slaves, Math.max(60_000, timeoutMs), io.signal);
        const ms = Date.now() - started;
        if (!workers) {
          io.stderr(`killed ${role} pid ${pid}; the cluster had no master and ${slaves} caught-up slave(s) again after ${ms} ms (see dbaas workers, dbaas events)`);
          return EXIT.NOT_READY;
        }
        out({ role, pid, recoveredMs: ms, workers }, () => `killed ${role} pid ${pid}; serving again after ${ms} ms: master pid ${workers.find((w) => w.role === 'master')?.pid}, ${workers.length - 1} caught-up slave(s)`);
        return EXIT.OK;
      }
      case 'scale': {
        expectArgs(1, 'N');
        const n = integer(args[0], 'N', 1) as number;
        const target = await client.scale(n);
        out({ targetSlaves: target }, () => `slave target: ${target}`);
        return EXIT.OK;
      }
      case 'read': {
        expectArgs(1, 'TABLE [--where JSON] [--columns a,b] [--sort JSON] [--limit N] [--skip N] [--count] [--after-seq N]');
        const table = args[0] as string;
        const where = (await jsonArg(values.where, 'where', io)) as Filter | undefined;
        const opts: ReadOptions = {};
        if (values.columns !== undefined) opts.columns = values.columns.split(',').map((c) => c.trim()).filter((c) => c !== '');
        if (values.sort !== undefined) opts.sort = (await jsonArg(values.sort, 'sort', io)) as Record<string, 1 | -1>;
        const limit = integer(values.limit, 'limit', 1);
        const skip = integer(values.skip, 'skip', 0);
        const afterSeq = integer(values['after-seq'], 'after-seq', 0);
        if (limit !== undefined) opts.limit = limit;
        if (skip !== undefined) opts.skip = skip;
        if (afterSeq !== undefined) opts.afterSeq = afterSeq;
        if (values.count) {
          const n = await client.count(table, where ?? {}, opts);
          out({ count: n }, () => `count: ${n}`);
          return EXIT.OK;
        }
        const docs = await client.read(table, { ...opts, ...(where === undefined ? {} : { where }) });
        out(docs, () => formatDocuments(docs));
        return EXIT.OK;
      }
      case 'write': {
        expectArgs(2, 'TABLE insert|update|upsert|delete [--data JSON] [--where JSON] [--request-id ID]');
        const [table, operation] = args as [string, string];
        if (!['insert', 'update', 'upsert', 'delete'].includes(operation)) usage(`the operation must be insert, update, upsert or delete, got ${JSON.stringify(operation)}`);
        const data = await jsonArg(values.data, 'data', io);
        const where = await jsonArg(values.where, 'where', io);
        // Sent as is: the orchestrator says what is missing or wrong, with its error code.
        const body = { table, operation, ...(data === undefined ? {} : { data }), ...(where === undefined ? {} : { where }) } as WriteBody;
        const requestId = values['request-id'] ?? newRequestId();
        const result = await client.write(body, { requestId });
        out({ ...result, requestId }, () =>
          formatPairs([
            ['seq', result.seq],
            ['inserted', result.inserted],
            ['ids', result.ids.join(', ') || '-'],
            ['matched', result.matched],
            ['modified', result.modified],
            ['deleted', result.deleted],
            ['requestId', requestId],
          ]),
        );
        return EXIT.OK;
      }
      case 'clear': {
        expectArgs(0, '');
        const requestId = values['request-id'] ?? newRequestId();
        const result = await client.clear({ requestId, ...(values.db ? { database: values.db } : {}) });
        out({ ...result, requestId }, () => `cleared ${values.db ? `every table of database ${values.db}` : 'every table'} (seq ${result.seq})`);
        return EXIT.OK;
      }
      case 'tables': {
        expectArgs(0, '');
        const list = await client.tables(values.db ? { database: values.db } : {});
        const keys = (k: Record<string, 1 | -1>): string => Object.entries(k).map(([p, d]) => (d === 1 ? p : `${p} desc`)).join(', ');
        const count = (t: (typeof list)[number]): string => (t.documents === null ? '?' : `${t.exact ? '' : '~'}${t.documents}`);
        out(list, () =>
          formatTable(
            ['TABLE', 'DOCUMENTS', 'INDEXES'],
            list.map((t) => [t.table, count(t), t.indexes.map((i) => `${i.name} (${keys(i.keys)}${i.unique ? ', unique' : ''})`).join('; ') || '-']),
          ),
        );
        return EXIT.OK;
      }
      case 'databases': {
        const [action, name] = args;
        if (action === undefined) {
          const list = await client.databases();
          out(list, () => formatTable(['DATABASE', 'CREATED'], list.map((d) => [d.name, d.createdAt ?? '-'])));
          return EXIT.OK;
        }
        if ((action !== 'create' && action !== 'drop') || name === undefined || args.length !== 2) usage('usage: dbaas databases [create|drop NAME]');
        if (action === 'create') {
          const created = await client.createDatabase(name);
          out(created, () => `created database ${created.name}`);
        } else {
          const dropped = await client.dropDatabase(name);
          out(dropped, () => `dropped database ${dropped.dropped} (seq ${dropped.seq})`);
        }
        return EXIT.OK;
      }
      case 'backup': {
        expectArgs(0, '');
        const oplogAfter = integer(values['oplog-after'], 'oplog-after', 0);
        const { seq, body } = await client.backup(oplogAfter === undefined ? {} : { oplogAfter });
        const sink = streams().output;
        try {
          await pipeline(Readable.fromWeb(body as import('node:stream/web').ReadableStream<Uint8Array>), sink, { end: false });
        } catch (err) {
          // The archive stopped mid-way (the orchestrator or the slave went away; E's fault run printed
          // "unexpected error: terminated"): what was written has no manifest line, and restore refuses it.
          const cause = (err as { cause?: { code?: string } }).cause?.code;
          throw new DbaasClientError(CLIENT_UNREACHABLE, `backup at seq ${seq} was cut off (${(err as Error).message}${cause ? `: ${cause}` : ''}); the output is incomplete (no manifest, restore refuses it): take the backup again`, 0, true);
        }
        io.stderr(`backup at seq ${seq} written`);
        return EXIT.OK;
      }
      case 'restore': {
        expectArgs(0, '');
        if ((values['to-seq'] !== undefined || values['to-time'] !== undefined) && !values.oplog) usage('--to-seq and --to-time need --oplog FILE (a later archive taken with --oplog-after)');
        const report = await restore(client, streams().input, {
          ...(values.db ? { database: values.db } : {}),
          ...(values['from-db'] ? { fromDatabase: values['from-db'] } : {}),
          ...(values.resume ? { resume: true } : {}),
          // An incomplete closing verify is asked again as often as a request is retried (--retries).
          verifyTries: retries + 1,
          ...(values.oplog ? { oplog: createReadStream(values.oplog) } : {}),
          ...(values['to-seq'] !== undefined ? { toSeq: integer(values['to-seq'], 'to-seq', 0) as number } : {}),
          ...(values['to-time'] !== undefined ? { toTime: values['to-time'] } : {}),
          log: (line) => io.stderr(line),
        });
        out(report, () =>
          [
            `restored backup ${report.backupId} (seq ${report.seq}): ${report.documents} documents in ${report.tables.length} table(s), ${report.indexes} index(es)`,
            ...report.tables.map((t) => `  ${t.from} -> ${t.to}: ${t.count}`),
            report.verified ? 'verified: every restored table equals the manifest on every replica' : `NOT verified: ${report.mismatches.join('; ')}`,
          ].join('\n'),
        );
        // Only some replica not compared (it was starting or catching up) is not a difference: exit 6, as `dbaas verify`.
        const onlyIncomplete = report.replicas === 'incomplete' && report.mismatches.length === 1;
        return report.verified ? EXIT.OK : onlyIncomplete ? EXIT.INCOMPLETE : EXIT.DIVERGENT;
      }
      case 'export': {
        expectArgs(0, '');
        if (!values.table) usage('usage: dbaas export --table T [--db D]');
        const n = await exportTable(client, values.table, streams().output, values.db ? { database: values.db } : {});
        io.stderr(`exported ${n} document(s)`);
        return EXIT.OK;
      }
      case 'import': {
        expectArgs(0, '');
        if (!values.table || !values.id) usage('usage: dbaas import --table T --id ID [--db D]');
        const n = await importTable(client, values.table, streams().input, { id: values.id, ...(values.db ? { database: values.db } : {}) });
        out({ imported: n }, () => `imported ${n} document(s)`);
        return EXIT.OK;
      }
      case 'switchover': {
        if (args.length > 1) usage('switchover takes at most one TARGET (a worker id or pid)');
        const result = await client.switchover(args[0]);
        out(result, () => `switched over from ${result.from} to ${result.to} (pid ${result.toPid}) in ${result.durationMs} ms`);
        return EXIT.OK;
      }
      case 'orchestrators': {
        expectArgs(0, '');
        const list = await client.orchestrators();
        out(list, () =>
          formatTable(
            ['URL', 'PID', 'HOST', 'LEADER', 'SINCE'],
            list.orchestrators.map((o) => [o.url, String(o.pid), o.host, o.leader ? `yes (epoch ${list.leader?.epoch ?? '?'})` : '', o.startedAt]),
          ),
        );
        return EXIT.OK;
      }
      case 'platform': {
        expectArgs(0, '');
        const view = await client.platform();
        out(view, () =>
          [
            `platform: ${view.platform}${view.note ? ` (${view.note})` : ''}`,
            formatTable(
              ['SERVICE', 'KIND', 'ADDRESS', 'PID', 'STATE', 'RESTARTS', 'LAST FAILURE'],
              view.services.map((s) => [
                s.name,
                s.kind,
                s.address,
                String(s.pid ?? s.containerId ?? '-'),
                `${s.state}${s.stale ? ' (stale)' : ''}${s.managed ? '' : ' (watched)'}`,
                String(s.restarts),
                s.lastFailure ? `${s.lastFailure.at} ${s.lastFailure.reason}` : '-',
              ]),
            ),
          ].join('\n'),
        );
        return EXIT.OK;
      }
      case 'verify': {
        expectArgs(0, '');
        const report = await client.verify();
        const counts = new Map<string, number>();
        for (const r of report.replicas) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
        const tables = Object.entries(report.tables);
        out(report, () =>
          [
            formatPairs([
              ['result', report.result === 'equal' ? 'equal' : report.result.toUpperCase()],
              ['seq', report.seq],
              ['master', report.master],
              ['replicas', [...counts].map(([status, n]) => `${n} ${status}`).join(', ')],
              ['tables', tables.length === 0 ? '(none)' : tables.map(([name, t]) => `${name} (${t.count})`).join(', ')],
              ['took', `${report.durationMs} ms`],
              ...(report.suspect ? [['suspect', 'the master: every slave agrees with the others and differs from it; nothing was replaced'] as [string, string]] : []),
            ]),
            formatTable(
              ['PID', 'ROLE', 'STATUS', 'DOCS', 'HASH MS', 'ID', 'DETAIL'],
              report.replicas.map((r) => [r.pid, r.role, r.status, r.documents ?? '', r.hashMs ?? '', r.id, r.tables ? `differs in ${r.tables.join(', ')}` : (r.reason ?? '')]),
              new Set(['PID', 'DOCS', 'HASH MS']),
            ),
          ].join('\n\n'),
        );
        return report.result === 'equal' ? EXIT.OK : report.result === 'divergent' ? EXIT.DIVERGENT : EXIT.INCOMPLETE;
      }
      default:
        usage(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`dbaas: ${err.message}\n(dbaas --help for usage)`);
      return EXIT.USAGE;
    }
    if (err instanceof DbaasClientError) {
      const unreachable = err.code === CLIENT_UNREACHABLE || err.code === CLIENT_TIMEOUT;
      if (json) io.stdout(JSON.stringify({ error: { code: err.code, message: err.message, status: err.status, ...(err.serverRequestId ? { requestId: err.serverRequestId } : {}) } }, null, 2));
      else io.stderr(`dbaas: ${err.code}${err.status ? ` (HTTP ${err.status})` : ''}: ${err.message}`);
      return unreachable ? EXIT.UNREACHABLE : EXIT.FAILED;
    }
    io.stderr(`dbaas: unexpected error: ${(err as Error).message}`);
    return EXIT.FAILED;
  }
}

/**
 * After a crash drill: polls the workers until a master and `slaves` caught-up
 * slaves serve, none of them the killed pid. Undefined when `waitMs` passes first.
 */
async function waitForRecovery(client: DbaasClient, killedPid: number, slaves: number, waitMs: number, signal?: AbortSignal): Promise<WorkerInfo[] | undefined> {
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline && !signal?.aborted) {
    const workers = await client.workers().catch(() => undefined);
    if (workers && !workers.some((w) => w.pid === killedPid)) {
      const master = workers.filter((w) => w.role === 'master' && w.state === 'master');
      const serving = workers.filter((w) => w.role === 'slave' && w.state === 'slave');
      if (master.length === 1 && serving.length >= slaves) return [...master, ...serving];
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return undefined;
}
