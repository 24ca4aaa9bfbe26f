#!/usr/bin/env node
/**
 * `dbaas`, the command line (package.json "bin"): `node dist/client/cli/main.js
 * <command>` from a checkout, or `dbaas <command>` once installed or linked.
 */
import { createInterface } from 'node:readline/promises';
import { ConfigError, loadClientConfig } from '../../common/config.js';
import { EXIT, runCli } from './cli.js';
import { packageVersion } from '../../common/package-version.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Asks on the terminal; undefined when standard input is not one (a script must pass --yes). */
async function ask(question: string): Promise<string | undefined> {
  if (!process.stdin.isTTY) return undefined;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return await rl.question(question);
  } finally {
    rl.close();
  }
}

async function main(): Promise<void> {
  let defaults;
  try {
    defaults = loadClientConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`dbaas: ${err.message}\n`);
    process.exitCode = EXIT.USAGE;
    return;
  }
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  const code = await runCli(process.argv.slice(2), {
    stdout: (text) => process.stdout.write(`${text}\n`),
    stderr: (text) => process.stderr.write(`${text}\n`),
    readStdin,
    input: () => process.stdin,
    output: () => process.stdout,
    defaults,
    signal: stop.signal,
    version: packageVersion(import.meta.url),
    ask,
    env: process.env,
  });
  process.exitCode = code;
  if (stop.signal.aborted) process.exit(code);
}

void main();
