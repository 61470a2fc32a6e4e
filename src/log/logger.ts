/**
 * Logging in Dovecot 2.3's line shape, so admins' log watchers and fail2ban
 * filters written for Dovecot keep matching:
 *
 *   <log_timestamp>imap(john@example.org)<4711><sessid>: Info: Logged out in=10 out=200
 *   <log_timestamp>imap-login: Info: Login: user=<john@example.org>, method=PLAIN, rip=...
 *
 * Destinations follow log_path / info_log_path / debug_log_path. Dovecot's
 * default "syslog" has no Node equivalent without native code (syslog needs a
 * unix *datagram* socket), so "syslog" writes the same lines without a
 * timestamp to stderr, where systemd's journal picks them up (dovecot-compat.md).
 *
 * This module sits below every layer (config → auth → …): it imports nothing
 * from the project. Callers must never pass passwords in messages.
 */
import { appendFileSync } from 'node:fs';

export type LogLevel = 'debug' | 'info' | 'warning' | 'error' | 'fatal' | 'panic';

const LEVEL_TEXT: Record<LogLevel, string> = {
  debug: 'Debug',
  info: 'Info',
  warning: 'Warning',
  error: 'Error',
  fatal: 'Fatal',
  panic: 'Panic',
};

export interface LogSettings {
  log_path: string;
  info_log_path: string;
  debug_log_path: string;
  /** strftime-like, Dovecot default "%b %d %H:%M:%S " */
  log_timestamp: string;
  /** which debug categories print: auth_debug, mail_debug, … */
  debug: Set<string>;
}

const DEFAULT_SETTINGS: LogSettings = {
  log_path: 'syslog',
  info_log_path: '',
  debug_log_path: '',
  log_timestamp: '%b %d %H:%M:%S ',
  debug: new Set(),
};

let current: LogSettings = { ...DEFAULT_SETTINGS, debug: new Set() };
/** Lines captured by tests or by the CLI (which prints to stderr instead). */
let sink: ((line: string, level: LogLevel) => void) | null = null;

export function configureLogging(s: Partial<LogSettings>): void {
  current = { ...current, ...s, debug: s.debug ?? current.debug };
}

/** Route every line to a function instead of files (CLI and tests). */
export function setLogSink(fn: ((line: string, level: LogLevel) => void) | null): void {
  sink = fn;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** The subset of strftime that log_timestamp uses in practice. */
export function formatTimestamp(fmt: string, d = new Date()): string {
  return fmt.replace(/%([a-zA-Z%])/g, (_m, c: string) => {
    switch (c) {
      case 'b': return MONTHS[d.getMonth()];
      case 'd': return pad(d.getDate());
      case 'e': return String(d.getDate()).padStart(2, ' ');
      case 'H': return pad(d.getHours());
      case 'M': return pad(d.getMinutes());
      case 'S': return pad(d.getSeconds());
      case 'Y': return String(d.getFullYear());
      case 'm': return pad(d.getMonth() + 1);
      case 'y': return pad(d.getFullYear() % 100);
      case 'z': {
        const off = -d.getTimezoneOffset();
        const a = Math.abs(off);
        return (off >= 0 ? '+' : '-') + pad(Math.floor(a / 60)) + pad(a % 60);
      }
      case '%': return '%';
      default: return '%' + c;
    }
  });
}

function destination(level: LogLevel): string {
  if (level === 'debug' && current.debug_log_path) return current.debug_log_path;
  if ((level === 'info' || level === 'debug') && current.info_log_path) return current.info_log_path;
  return current.log_path;
}

function write(level: LogLevel, prefix: string, msg: string): void {
  const body = `${prefix}: ${LEVEL_TEXT[level]}: ${msg.replace(/[\r\n]/g, ' ')}`;
  if (sink) { sink(body, level); return; }
  const dest = destination(level);
  if (dest === 'syslog' || dest === '/dev/stderr' || dest === '') {
    const ts = dest === '/dev/stderr' ? formatTimestamp(current.log_timestamp) : '';
    process.stderr.write(ts + body + '\n');
    return;
  }
  const line = formatTimestamp(current.log_timestamp) + body + '\n';
  try {
    // Synchronous append keeps lines whole and ordered across processes
    // (O_APPEND), as Dovecot's log process does for its children.
    appendFileSync(dest, line);
  } catch {
    process.stderr.write(line);
  }
}

export class Logger {
  /** e.g. "imap(john@example.org)<4711><sessid>" or "auth" */
  constructor(readonly prefix: string, private readonly debugCategory = '') {}

  /** Dovecot's per-user prefix: service(user)<pid><session>. */
  static forUser(service: string, user: string, session?: string): Logger {
    const sess = session ? `<${session}>` : '';
    return new Logger(`${service}(${user})<${process.pid}>${sess}`, service === 'auth' ? 'auth' : 'mail');
  }

  child(prefix: string): Logger {
    return new Logger(prefix, this.debugCategory);
  }

  get debugEnabled(): boolean {
    return current.debug.has(this.debugCategory) || current.debug.has('all');
  }

  debug(msg: string): void { if (this.debugEnabled) write('debug', this.prefix, msg); }
  info(msg: string): void { write('info', this.prefix, msg); }
  warn(msg: string): void { write('warning', this.prefix, msg); }
  error(msg: string): void { write('error', this.prefix, msg); }
  fatal(msg: string): void { write('fatal', this.prefix, msg); }
  panic(msg: string): void { write('panic', this.prefix, msg); }
}

