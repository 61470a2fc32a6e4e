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
 * Log files are opened once, as root, before privileges are dropped, and the
 * descriptors are kept: Dovecot's log process stays root for this, so a
 * root-owned /var/log/dovecot.log keeps receiving lines. New files are
 * created 0600 like Dovecot's open_log_file() (src/lib/failures.c). IMAP
 * worker processes inherit the master's descriptors (logFdsForChild /
 * adoptLogFds). SIGUSR1 (`doveadm log reopen`, logrotate's postrotate) makes
 * Dovecot's root log process reopen the paths; here root is gone by then, so
 * reopenLogFiles() reopens a path the mail uid may open and otherwise keeps
 * the descriptor it has (logrotate's copytruncate keeps working), saying so
 * once on stderr. No line ever moves to stderr silently: a file that cannot
 * be opened or written is named once on stderr.
 *
 * This module sits below every layer (config → auth → …): it imports nothing
 * from the project. Callers must never pass passwords in messages (the one
 * exception: auth_verbose_passwords, which an admin sets to ask for them).
 */
import { closeSync, openSync, writeSync } from 'node:fs';

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
  /** the prefix of a mail user's lines (imap, pop3, managesieve, lmtp), Dovecot default `%s(%u)<%{pid}><%{session}>: ` */
  mail_log_prefix: string;
}

const DEFAULT_MAIL_LOG_PREFIX = '%s(%u)<%{pid}><%{session}>: ';

const DEFAULT_SETTINGS: LogSettings = {
  log_path: 'syslog',
  info_log_path: '',
  debug_log_path: '',
  log_timestamp: '%b %d %H:%M:%S ',
  debug: new Set(),
  mail_log_prefix: DEFAULT_MAIL_LOG_PREFIX,
};

let current: LogSettings = { ...DEFAULT_SETTINGS, debug: new Set() };
/** A warning, error, fatal or panic line, as `doveadm log errors` lists it (log-error-buffer.ts). */
export interface LogError { type: 'warning' | 'error' | 'fatal' | 'panic'; timestamp: number; prefix: string; text: string }
let errorObserver: ((e: LogError) => void) | null = null;

/** Be told of every warning/error/fatal/panic line this process logs (log-error-buffer.ts). */
export function onLogError(fn: ((e: LogError) => void) | null): void {
  errorObserver = fn;
}

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

/** Open descriptors by path: opened by the master as root, or inherited by a worker. */
const fds = new Map<string, number>();
/** Paths whose failure (open, write, reopen) was already reported on stderr. */
const reported = new Set<string>();
/** Environment variable telling a worker which inherited descriptor is which path. */
const FDS_ENV = 'SEALMAIL_LOG_FDS';

const isFile = (dest: string) => dest !== '' && dest !== 'syslog' && dest !== '/dev/stderr';

function reportOnce(key: string, text: string): void {
  if (reported.has(key)) return;
  reported.add(key);
  process.stderr.write(`${formatTimestamp(current.log_timestamp)}log: Error: ${text}\n`);
}

/** O_WRONLY|O_APPEND|O_CREAT with Dovecot's 0600: whole lines, ordered across processes. */
const openLog = (path: string): number => openSync(path, 'a', 0o600);

/**
 * Open every configured log file now (the master, while still root). Throws
 * Dovecot's "Can't open log file <path>: <reason>" (its exit code is 80).
 */
export function openLogFiles(): void {
  for (const path of new Set([current.log_path, current.info_log_path, current.debug_log_path])) {
    if (!isFile(path) || fds.has(path)) continue;
    try { fds.set(path, openLog(path)); } catch (e) { throw new Error(`Can't open log file ${path}: ${(e as Error).message}`); }
  }
}

/** Descriptors to pass to a child process at stdio positions from `first` on, and the env naming them. */
export function logFdsForChild(first: number): { stdio: number[]; env: Record<string, string> } {
  const paths = [...fds.keys()];
  const map = Object.fromEntries(paths.map((p, i) => [p, first + i]));
  return { stdio: paths.map((p) => fds.get(p)!), env: paths.length ? { [FDS_ENV]: JSON.stringify(map) } : {} };
}

/** In a child started with logFdsForChild: use the inherited descriptors for their paths. */
export function adoptLogFds(): void {
  const text = process.env[FDS_ENV];
  if (!text) return;
  delete process.env[FDS_ENV];
  for (const [path, fd] of Object.entries(JSON.parse(text) as Record<string, number>)) fds.set(path, fd);
}

/**
 * SIGUSR1: reopen each log path (after logrotate moved it). A path this
 * unprivileged process cannot open keeps its old descriptor, reported once.
 */
export function reopenLogFiles(): void {
  for (const [path, old] of fds) {
    let fd: number;
    try { fd = openLog(path); } catch (e) {
      reportOnce(`reopen ${path}`, `Can't reopen log file ${path}: ${(e as Error).message} (privileges were dropped); still writing to the file opened at start-up: rotate it with copytruncate, or restart`);
      continue;
    }
    fds.set(path, fd);
    try { closeSync(old); } catch { /* already closed */ }
  }
}

function writeFile(dest: string, line: string): void {
  let fd = fds.get(dest);
  if (fd === undefined) {
    // a process that never opened it (unit tests, sealadm without a sink): open now
    try { fd = openLog(dest); fds.set(dest, fd); } catch (e) {
      reportOnce(`open ${dest}`, `Can't open log file ${dest}: ${(e as Error).message}; its lines go to stderr`);
      process.stderr.write(line);
      return;
    }
  }
  try {
    // one write per line on an O_APPEND descriptor keeps lines whole and ordered across processes
    writeSync(fd, line);
  } catch (e) {
    reportOnce(`write ${dest}`, `Can't write to log file ${dest}: ${(e as Error).message}; its lines go to stderr`);
    process.stderr.write(line);
  }
}

function write(level: LogLevel, prefix: string, msg: string, sep = ': '): void {
  const text = msg.replace(/[\r\n]/g, ' ');
  const body = `${prefix}${sep}${LEVEL_TEXT[level]}: ${text}`;
  if (errorObserver && level !== 'debug' && level !== 'info') {
    errorObserver({ type: level, timestamp: Math.floor(Date.now() / 1000), prefix: prefix + sep, text });
  }
  if (sink) { sink(body, level); return; }
  const dest = destination(level);
  if (dest === 'syslog' || dest === '/dev/stderr' || dest === '') {
    const ts = dest === '/dev/stderr' ? formatTimestamp(current.log_timestamp) : '';
    process.stderr.write(ts + body + '\n');
    return;
  }
  writeFile(dest, formatTimestamp(current.log_timestamp) + body + '\n');
}

/**
 * A mail_log_prefix other than Dovecot's default, expanded for one user:
 * %s service, %u user, %n its name, %d its domain, %{pid} / %p this
 * process, %{session}, %%; other variables expand to nothing.
 */
function mailLogPrefix(format: string, service: string, user: string, session: string): string {
  const at = user.indexOf('@');
  const vars: Record<string, string> = {
    s: service, service, u: user, user, n: at < 0 ? user : user.slice(0, at), username: at < 0 ? user : user.slice(0, at),
    d: at < 0 ? '' : user.slice(at + 1), domain: at < 0 ? '' : user.slice(at + 1), p: String(process.pid), pid: String(process.pid), session,
  };
  return format.replace(/%(?:\{([a-z_]+)\}|([a-z%]))/g, (_m, long: string | undefined, short: string | undefined) => (short === '%' ? '%' : vars[long ?? short!] ?? ''));
}

export class Logger {
  /**
   * e.g. "imap(john@example.org)<4711><sessid>" or "auth"; `sep` goes between
   * it and the level (a mail_log_prefix set by the admin carries its own).
   */
  constructor(readonly prefix: string, private readonly debugCategory = '', private readonly sep = ': ') {}

  /** Dovecot's per-user prefix, mail_log_prefix: service(user)<pid><session> by default. */
  static forUser(service: string, user: string, session?: string): Logger {
    const category = service === 'auth' ? 'auth' : 'mail';
    if (current.mail_log_prefix !== DEFAULT_MAIL_LOG_PREFIX) return new Logger(mailLogPrefix(current.mail_log_prefix, service, user, session ?? ''), category, '');
    const sess = session ? `<${session}>` : '';
    return new Logger(`${service}(${user})<${process.pid}>${sess}`, category);
  }

  child(prefix: string): Logger {
    return new Logger(prefix, this.debugCategory);
  }

  get debugEnabled(): boolean {
    return current.debug.has(this.debugCategory) || current.debug.has('all');
  }

  debug(msg: string): void { if (this.debugEnabled) write('debug', this.prefix, msg, this.sep); }
  info(msg: string): void { write('info', this.prefix, msg, this.sep); }
  warn(msg: string): void { write('warning', this.prefix, msg, this.sep); }
  error(msg: string): void { write('error', this.prefix, msg, this.sep); }
  fatal(msg: string): void { write('fatal', this.prefix, msg, this.sep); }
  panic(msg: string): void { write('panic', this.prefix, msg, this.sep); }
}

