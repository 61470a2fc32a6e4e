/**
 * sealadm: the doveadm-compatible admin CLI. Global options are doveadm's
 * (getopt "+c:Df:hi:o:v": -c config file, -o key=value override, -f output
 * formatter, -D debug, -v verbose, -i instance accepted and ignored), so
 * existing scripts only swap the binary name. Commands are matched by their
 * words, longest first, like doveadm's command table. `--help`, `help [CMD]`,
 * `CMD --help` and `--version` are Sealmail's own (doveadm's `help CMD` opens
 * a man page); an unknown command or option gets doveadm's answer.
 */
import { commands } from './commands/index.js';
import { CommandError, EX_USAGE, UsageError, type CommandEntry, type CommandContext } from './command.js';
import { FORMATTERS, Printer, type FormatterName } from './printer.js';
import { readPassword } from './password-prompt.js';
import { setLogSink } from '../log/logger.js';
import { getopt } from './args.js';
import { pathToFileURL } from 'node:url';
import { readFileSync, realpathSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';

export const DEFAULT_CONFIG = '/etc/dovecot/dovecot.conf';
/** doveadm's exit for a getopt error in its global options (FATAL_DEFAULT: `return FATAL_DEFAULT` in doveadm.c). */
const EX_FATAL_DEFAULT = 89;

interface GlobalOptions {
  configPath: string;
  overrides: [string, string][];
  formatter?: FormatterName;
  debug: boolean;
  verbose: boolean;
  help: boolean;
  version: boolean;
  rest: string[];
}

export function parseGlobalOptions(argv: string[]): GlobalOptions {
  const g: GlobalOptions = { configPath: process.env.SEALMAIL_CONFIG ?? DEFAULT_CONFIG, overrides: [], debug: false, verbose: false, help: false, version: false, rest: [] };
  // "+" in doveadm's getopt string: stop at the first non-option (the command).
  // A getopt error: doveadm's one line ("doveadm: invalid option -- 'Z'") and exit 89, no usage.
  let parsed: ReturnType<typeof getopt>;
  try {
    parsed = getopt(argv, 'c:Df:hi:o:v', ['help', 'version']);
  } catch (e) {
    if (e instanceof UsageError) throw new CommandError(`sealadm: ${e.message}`, EX_FATAL_DEFAULT);
    throw e;
  }
  const { list, rest } = parsed;
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
      case 'help': g.help = true; break;
      case 'version': g.version = true; break;
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

/** The commands under a first word such as `mailbox` (doveadm_has_subcommands), or null. */
function groupOf(word: string | undefined): string | null {
  return word !== undefined && commands.some((c) => c.name.startsWith(word + ' ')) ? word : null;
}

/** doveadm's usage_prefix(): the global usage line, then every command (of `group` only, named without it). */
function usage(out: NodeJS.WritableStream, group?: string | null): void {
  out.write(`usage: sealadm [-Dv] [-f <formatter>] [-c <config>] [-o <key>=<value>] ${group ? group + ' ' : ''}<command> [<args>]\n`);
  const shown = group ? commands.filter((c) => c.name.startsWith(group + ' ')) : commands;
  for (const c of [...shown].sort((a, b) => a.name.localeCompare(b.name))) out.write(`  ${group ? c.name.slice(group.length + 1) : c.name} ${c.usage}\n`);
}

function commandUsage(cmd: CommandEntry): string {
  return `usage: sealadm ${cmd.name} ${cmd.usage}`.trimEnd() + '\n';
}

/** doveadm's answer to an unknown command: usage (of its group, if the first word is one) on stderr, exit 64; sealadm names the cause last. */
function unknownCommand(words: string[], err: NodeJS.WritableStream): number {
  usage(err, groupOf(words[0]));
  err.write(`sealadm: Unknown command '${words.join(' ')}'\n`);
  return EX_USAGE;
}

/** `help [CMD]`, `--help [CMD]`: on stdout, exit 0; an unknown CMD as an unknown command. */
function help(words: string[], io: { out: NodeJS.WritableStream; err: NodeJS.WritableStream }): number {
  if (words.length === 0) { usage(io.out); return 0; }
  const found = findCommand(words);
  if (found && found.used === words.length) { io.out.write(commandUsage(found.cmd)); return 0; }
  if (words.length === 1 && groupOf(words[0])) { usage(io.out, words[0]); return 0; }
  return unknownCommand(words, io.err);
}

function packageVersion(): string {
  // dist/src/cli/sealadm.js -> the package root, in the repository and in an installed package alike.
  return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

export async function runCli(argv: string[], io: { out: NodeJS.WritableStream; err: NodeJS.WritableStream } = { out: process.stdout, err: process.stderr }): Promise<number> {
  let g: GlobalOptions;
  try {
    g = parseGlobalOptions(argv);
  } catch (e) {
    if (e instanceof CommandError) { io.err.write(e.message + '\n'); return e.exitCode; }
    io.err.write(`Fatal: ${(e as Error).message}\n`);
    usage(io.err);
    return EX_USAGE;
  }
  if (g.version) { io.out.write(`sealadm (Sealmail) ${packageVersion()}\n`); return 0; }
  if (g.help) return help(g.rest, io);
  if (g.rest[0] === 'help') return help(g.rest.slice(1), io);
  if (g.rest.length === 0) { usage(io.err); return EX_USAGE; }
  const found = findCommand(g.rest);
  if (!found) return unknownCommand(g.rest, io.err);
  const cmdArgs = g.rest.slice(found.used);
  const dashDash = cmdArgs.indexOf('--');
  if ((dashDash < 0 ? cmdArgs : cmdArgs.slice(0, dashDash)).includes('--help')) { io.out.write(commandUsage(found.cmd)); return 0; }
  // Commands report on stdout/stderr themselves. The layers below log as a
  // server would (auth: sql(user): Password mismatch …); doveadm leaves those
  // to the server's log, so sealadm shows them only with -v (-D adds debug).
  // A configuration error met on the way (a dovecot-sql.conf.ext key Dovecot
  // refuses, say) is shown always: doveadm would fail on it too ("Couldn't
  // connect to auth socket"), and sealadm's log is the only place it appears.
  setLogSink((line, level) => {
    if (g.debug || (g.verbose && level !== 'debug') || line.includes(': Error in configuration file ')) io.err.write(line + '\n');
  });
  // -v is asked to show why a lookup failed: the passdb's "Password mismatch" / "unknown user"
  // lines, which the server logs only with auth_verbose = yes (auth/engine.ts)
  const overrides: [string, string][] = g.verbose && !g.overrides.some(([k]) => k === 'auth_verbose') ? [...g.overrides, ['auth_verbose', 'yes']] : g.overrides;
  const ctx: CommandContext = {
    args: cmdArgs,
    configPath: g.configPath,
    overrides,
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
      io.err.write(commandUsage(found.cmd));
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
  // A short-lived process: WebAssembly (sql.js for an SQLite userdb) is
  // compiled by the baseline compiler only. With V8's default tier-up, the
  // optimising compiler's background jobs for the whole 0.7 MB module were
  // still running at exit, and process.exit() waits for them: about half of
  // a `sealadm user` call's CPU time went there (bench/sealadm.bench.ts).
  // Set before the first compile; the server, long-lived, keeps tier-up.
  setFlagsFromString('--liftoff-only');
  const code = await runCli(argv);
  // Let stdout drain before exiting (pipes to head/grep).
  process.stdout.write('', () => process.exit(code));
}

// Run when executed directly (node dist/src/cli/sealadm.js …), as tests do; bin/sealadm imports main().
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) void main(process.argv.slice(2));
