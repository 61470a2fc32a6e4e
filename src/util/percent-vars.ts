/**
 * The small %-variable formats of Dovecot's log lines (imap_logout_format,
 * managesieve_logout_format, deliver_log_format): `%x` and `%{name}` from a
 * table, `%%` a percent sign, anything unknown empty. No modifiers: these
 * formats hold counters and header values, and Dovecot's defaults use none.
 */
export function expandLogFormat(format: string, vars: Record<string, string>): string {
  return format.replace(/%(?:\{([a-z_]+)\}|([a-zA-Z$%]))/g, (_m, long: string | undefined, short: string | undefined) =>
    (short === '%' ? '%' : vars[long ?? short!] ?? ''));
}

/** The length of the line end a chunk of client input ends with (CRLF 2, LF 1, none 0). */
export function trailingEol(d: Buffer): number {
  const n = d.length;
  return n >= 2 && d[n - 2] === 0x0d && d[n - 1] === 0x0a ? 2 : n >= 1 && d[n - 1] === 0x0a ? 1 : 0;
}
