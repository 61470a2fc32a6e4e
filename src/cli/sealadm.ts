/**
 * sealadm: the doveadm-compatible admin CLI. Global options are doveadm's
 * (getopt "+c:Df:hi:o:v": -c config file, -o key=value override, -f output
 * formatter, -D debug, -v verbose, -i instance accepted and ignored), so
 * existing scripts only swap the binary name. Commands are matched by their
 * words, longest first, like doveadm's command table.
 */
import { commands } from './commands/index.js';
import { CommandError, EX_USAGE, UsageError, type CommandEntry, type CommandContext } from './command.js';
import { FORMATTERS, Printer, type FormatterName } from './printer.js';
import { readPassword } from './password-prompt.js';
import { setLogSink } from '../log/logger.js';
import { getopt } from './args.js';
import { pathToFileURL } from 'node:url';
import { realpathSync } from 'node:fs';

export const DEFAULT_CONFIG = '/etc/dovecot/dovecot.conf';

interface GlobalOptions {
  configPath: string;
  overrides: [string, string][];
  formatter?: FormatterName;
  debug: boolean;
  verbose: boolean;
  rest: string[];
}

export function parseGlobalOptions(argv: string[]): GlobalOptions {
  const g: GlobalOptions = { configPath: process.env.SEALMAIL_CONFIG ?? DEFAULT_CONFIG, overrides: [], debug: false, verbose: false, rest: [] };
  // "+" in doveadm's getopt string: stop at the first non-option (the command).
  const { list, rest } = getopt(argv, 'c:Df:hi:o:v');
  for (const [opt, v] of list) {
    const val = v as string;
    switch (opt) {
      case 'c': g.configPath = val; break;
      case 'o': {
        const eq = val.indexOf('=');
        if (eq <= 0) throw new UsageError(`-o parameter must contain '=': ${val}`);
        g.overrides.push([val.slice(0, eq), val.slice(eq + 1)]);
        break;
      }
      case 'f':
        if (!(FORMATTERS as readonly string[]).includes(val)) throw new UsageError(`Unknown output formatter: ${val}`);
        g.formatter = val as FormatterName;
        break;
      case 'i': break; // instance name: one instance per config file here
      case 'D': g.debug = true; g.verbose = true; break;
      case 'v': g.verbose = true; break;
      case 'h': break;
    }
  }
  g.rest = rest;
  return g;
}

function findCommand(words: string[]): { cmd: CommandEntry; used: number } | null {
  let best: { cmd: CommandEntry; used: number } | null = null;
  for (const cmd of commands) {
    const parts = cmd.name.split(' ');
    if (parts.length > words.length) continue;
    if (parts.every((p, k) => p === words[k]) && (!best || parts.length > best.used)) best = { cmd, used: parts.length };
  }
  return best;
}

function usage(err: NodeJS.WritableStream, prefix?: string): void {
  if (prefix) err.write(prefix);
  err.write('usage: sealadm [-Dv] [-f <formatter>] [-c <config>] [-o <key>=<value>] <command> [<args>]\n');
  for (const c of [...commands].sort((a, b) => a.name.localeCompare(b.name))) err.write(`  ${c.name} ${c.usage}\n`);
}

export async function runCli(argv: string[], io: { out: NodeJS.WritableStream; err: NodeJS.WritableStream } = { out: process.stdout, err: process.stderr }): Promise<number> {
  let g: GlobalOptions;
  try {
    g = parseGlobalOptions(argv);
  } catch (e) {
    usage(io.err, `Fatal: ${(e as Error).message}\n`);
    return EX_USAGE;
  }
  if (g.rest.length === 0) { usage(io.err); return EX_USAGE; }
  const found = findCommand(g.rest);
  if (!found) {
    usage(io.err, `Unknown command '${g.rest.join(' ')}'\n`);
    return EX_USAGE;
  }
  // Commands report on stdout/stderr themselves. The layers below log as a
  // server would (auth: sql(user): Password mismatch …); doveadm leaves those
  // to the server's log, so sealadm shows them only with -v (-D adds debug).
  // A configuration error met on the way (a dovecot-sql.conf.ext key Dovecot
  // refuses, say) is shown always: doveadm would fail on it too ("Couldn't
  // connect to auth socket"), and sealadm's log is the only place it appears.
  setLogSink((line, level) => {
    if (g.debug || (g.verbose && level !== 'debug') || line.includes(': Error in configuration file ')) io.err.write(line + '\n');
  });
  const ctx: CommandContext = {
    args: g.rest.slice(found.used),
    configPath: g.configPath,
    overrides: g.overrides,
    formatter: g.formatter,
    debug: g.debug,
    verbose: g.verbose,
    out: io.out,
    err: io.err,
    printer: (def) => new Printer(g.formatter ?? def, io.out),
    readPassword,
  };
  try {
    return await (await found.cmd.load()).run(ctx);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err.write(`doveadm ${found.cmd.name}: ${e.message}\n`.replace(/^doveadm/, 'sealadm'));
      io.err.write(`usage: sealadm ${found.cmd.name} ${found.cmd.usage}\n`);
      return EX_USAGE;
    }
    if (e instanceof CommandError) {
      io.err.write(e.message.endsWith('\n') ? e.message : e.message + '\n');
      return e.exitCode;
    }
    io.err.write(`Error: ${(e as Error).message}\n`);
    if (g.debug) io.err.write(String((e as Error).stack) + '\n');
    return 70;
  }
}

export async function main(argv: string[]): Promise<void> {
  const code = await runCli(argv);
  // Let stdout drain before exiting (pipes to head/grep).
  process.stdout.write('', () => process.exit(code));
}

// Run when executed directly (node dist/src/cli/sealadm.js …), as tests do; bin/sealadm imports main().
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) void main(process.argv.slice(2));
