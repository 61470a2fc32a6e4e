/**
 * POSIX getopt(3) as doveadm uses it, for the global options and for every
 * subcommand: clustered flags (`-Dv`), attached or separate option values
 * (`-uUSER`, `-u USER`), `--` ends options, and parsing stops at the first
 * non-option (doveadm's "+" getopt strings). One parser, so every command
 * reports bad usage with the same texts.
 */
import { UsageError } from './command.js';

export interface ParsedOptions {
  /** Last value of each option (flags map to true). */
  opts: Map<string, string | true>;
  /** Every option in command-line order, for repeatable ones such as `-o`. */
  list: [string, string | true][];
  /** Arguments after the options. */
  rest: string[];
}

/**
 * `spec` is a getopt string: a letter per option, followed by ':' when it
 * takes a value. `longs` names flags such as `help` accepted as `--help`
 * (listed under that name); doveadm has none, sealadm adds --help/--version.
 */
export function getopt(args: string[], spec: string, longs: readonly string[] = []): ParsedOptions {
  const opts = new Map<string, string | true>();
  const list: [string, string | true][] = [];
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i];
    if (a === '--') { i++; break; }
    if (!a.startsWith('-') || a === '-') break;
    if (a.startsWith('--') && longs.includes(a.slice(2))) {
      opts.set(a.slice(2), true);
      list.push([a.slice(2), true]);
      continue;
    }
    for (let j = 1; j < a.length; j++) {
      const o = a[j];
      const k = spec.indexOf(o);
      if (k < 0 || o === ':') throw new UsageError(`invalid option -- '${o}'`);
      if (spec[k + 1] === ':') {
        const v = j + 1 < a.length ? a.slice(j + 1) : args[++i];
        if (v === undefined) throw new UsageError(`option requires an argument -- '${o}'`);
        opts.set(o, v);
        list.push([o, v]);
        break;
      }
      opts.set(o, true);
      list.push([o, true]);
    }
  }
  return { opts, list, rest: args.slice(i) };
}
