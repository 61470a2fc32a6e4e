/**
 * `sealadm log errors [-s <min_timestamp>]` = doveadm log errors
 * (doveadm-log.c): the warnings and errors the running server kept (the last
 * 1000; log/log-error-buffer.ts), oldest first, printed as doveadm's
 * formatter does: `%{timestamp} %{type}: %{prefix}: %{text}`, the timestamp
 * as "%b %d %H:%M:%S" in local time, the prefix and type without their
 * trailing ": ". -s drops the lines before that UNIX time (a value that is
 * not a number is ignored, as doveadm 2.3.19 does). Dovecot asks
 * base_dir/log-errors; Sealmail's master keeps the ring and answers on its
 * admin socket. A server that cannot be reached: doveadm's
 * "Fatal: net_connect_unix(…) failed", exit 75.
 */
import { formatTimestamp } from '../../log/logger.js';
import { getopt } from '../args.js';
import { CommandError, EX_USAGE, type CliCommand } from '../command.js';
import { ask } from './who.js';

const TYPE_TEXT: Record<string, string> = { warning: 'Warning', error: 'Error', fatal: 'Fatal', panic: 'Panic' };

/** doveadm's t_cmd_log_error_trim: trailing spaces, then one ':'. */
function trim(s: string): string {
  const t = s.replace(/ +$/, '');
  return t.endsWith(':') ? t.slice(0, -1) : t;
}

export const logErrorsCommand: CliCommand = {
  async run(ctx) {
    const { opts, rest } = getopt(ctx.args, 's:');
    if (rest.length) throw new CommandError(`Error: Extraneous arguments found: ${rest.join(' ')}`, EX_USAGE);
    const since = opts.get('s');
    const min = typeof since === 'string' && /^-?[0-9]+$/.test(since) ? Number(since) : 0;
    for (const line of await ask(ctx, 'LOG-ERRORS')) {
      if (line === '') continue;
      const [type, ts, prefix, text] = line.split('\t');
      if (text === undefined) { ctx.err.write(`Error: Invalid input from log: ${line}\n`); continue; }
      const t = Number(ts);
      if (t < min) continue;
      ctx.out.write(`${formatTimestamp('%b %d %H:%M:%S', new Date(t * 1000))} ${TYPE_TEXT[type] ?? '?'}: ${trim(prefix)}: ${text}\n`);
    }
    return 0;
  },
};
