/**
 * The contract every sealadm command implements, and doveadm's exit codes
 * (sysexits.h values, as doveadm returns them) so scripts testing $? keep
 * working.
 */
import type { FormatterName, Printer } from './printer.js';

export const EX_OK = 0;
export const EX_USAGE = 64;
export const EX_DATAERR = 65;
export const EX_NOINPUT = 66;
export const EX_NOUSER = 67;
export const EX_SOFTWARE = 70;
export const EX_TEMPFAIL = 75;
export const EX_NOPERM = 77;
export const EX_CONFIG = 78;

export class UsageError extends Error {}
/** A failure with a message for stderr and a doveadm exit code. */
export class CommandError extends Error {
  constructor(message: string, readonly exitCode: number) { super(message); }
}

export interface CommandContext {
  /** Arguments after the command words. */
  args: string[];
  /** -c FILE (default /etc/dovecot/dovecot.conf). */
  configPath: string;
  /** -o key=value, in order given. */
  overrides: [string, string][];
  /** -f, when given; otherwise the command's default. */
  formatter?: FormatterName;
  debug: boolean;
  verbose: boolean;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  printer(defaultFormat: FormatterName): Printer;
  /** Prompt on the terminal with echo off, or read one line from stdin. */
  readPassword(prompt: string): Promise<string>;
}

/** A command's implementation, what each file in commands/ exports. */
export interface CliCommand {
  /** Returns the exit code. Throw UsageError / CommandError for failures. */
  run(ctx: CommandContext): Promise<number>;
}

/** A row of the command table (commands/index.ts): known without loading the implementation. */
export interface CommandEntry {
  /** Command words, e.g. "mailbox cryptokey generate". */
  name: string;
  /** Text after the name in the usage line. */
  usage: string;
  /** Import the command's module (only the command that runs is loaded). */
  load(): Promise<CliCommand>;
}
