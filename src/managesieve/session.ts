/**
 * One ManageSieve connection (RFC 5804) with Pigeonhole's response texts:
 * greeting capabilities, AUTHENTICATE PLAIN and LOGIN (initial response or
 * quoted-string/literal continuations; only the `auth_mechanisms` enabled)
 * through the AuthEngine with auth_failure_delay and the server's per-IP
 * penalty, STARTTLS, then LISTSCRIPTS,
 * GETSCRIPT, PUTSCRIPT, SETACTIVE, DELETESCRIPT, RENAMESCRIPT, CHECKSCRIPT,
 * HAVESPACE, CAPABILITY, NOOP and LOGOUT. Scripts are checked by Sealmail's
 * Sieve compiler before they are stored, so a script Roundcube saves here
 * is one delivery can run. Like managesieve-login, the third invalid command
 * before login is answered by a BYE and the connection closed.
 * Deadlines and counts as Dovecot's: managesieve-login cuts a connection
 * 3 minutes after it came, managesieved logs a session out after 30 idle
 * minutes, and the master's verdicts (connection-limits.ts) end the oldest
 * unauthenticated connection or refuse a login.
 * Protocol only: storage is ScriptStorage's job.
 */
import type { Duplex } from 'node:stream';
import { compileScript, SieveCompileError, SUPPORTED_EXTENSIONS, type CompileOptions } from '../sieve/compile.js';
import { extensionSwitches, sieveCapability, notifyCapability } from '../sieve/extensions.js';
import type { DovecotConfig } from '../config/settings.js';
import type { AuthEngine } from '../auth/engine.js';
import type { Fields } from '../auth/databases.js';
import { Logger } from '../log/logger.js';
import { failureDelayMs, type AuthPenalty } from '../auth/penalty.js';
import { plaintextMechanisms } from '../auth/mechanisms.js';
import { ScriptStorage, ScriptError } from './storage.js';
import { checkScriptQuota, scriptQuotaLimits, sizeSetting, tooLarge, type ScriptQuotaLimits } from './quota.js';
import { faultText, guarded } from '../util/fault.js';
import { quickAck } from '../util/tcp-socket.js';
import type { LoginConn } from '../config/login-log.js';
import { expandLogFormat, trailingEol } from '../util/percent-vars.js';
import { DEADLINES, LoginProgress, maxUserIpConnections, userIpText, type ConnectionSlot } from '../config/connection-limits.js';
import { stopReading } from '../util/hand-off.js';
import { clientCertOf } from '../util/tls-client-cert.js';
import { parseXclient } from '../util/xclient.js';

/**
 * The largest script Sealmail reads into memory when `sieve_max_script_size`
 * is 0 (unlimited: Pigeonhole streams it to disk); a bigger one is refused
 * as over the size quota.
 */
const UNLIMITED_SCRIPT_CAP = 8 * 1024 * 1024;
/** managesieve-login's MAX_MANAGESIEVE_LINE: before login a command, literals included, fits in 8192 bytes. */
const PRELOGIN_MAX_LINE = 8192;
/**
 * managesieve-login's input buffer (LOGIN_MAX_INBUF_SIZE: MASTER_AUTH_MAX_DATA_SIZE less the
 * master prefix and session id, 1026 bytes): an argument that does not fit ends the connection.
 */
const PRELOGIN_INPUT_BUFFER = 1218 - 128 - 64;
/** managesieve's default managesieve_max_line_length. */
const DEFAULT_MAX_LINE = 65536;
/** The parser's fatal error for a literal over the line budget: BYE and disconnect. */
const LITERAL_TOO_LARGE = 'Literal size too large';
/** managesieve-login's CLIENT_MAX_BAD_COMMANDS: the third invalid command gets a BYE instead of its NO. */
const PRELOGIN_MAX_BAD_COMMANDS = 3;
/** managesieved's own limit after login: the twentieth invalid command in a row gets its NO, then a BYE. */
const POSTLOGIN_MAX_BAD_COMMANDS = 20;
/** How long a hung-up client's socket may linger for its last bytes (see hangUp). */
const HANGUP_GRACE_MS = 1000;
const BAD_RECEIVED = 'NO "Error in MANAGESIEVE command received by server."\r\n';
/** SASL LOGIN's two challenges, "Username:" and "Password:", as managesieved sends them (quoted base64). */
const LOGIN_CHALLENGES = ['"VXNlcm5hbWU6"\r\n', '"UGFzc3dvcmQ6"\r\n'];
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export interface SessionDeps {
  config: DovecotConfig;
  /** The passdb/userdb; absent where `login` replaces them (a login process) or no login happens (a mail process). */
  auth?: AuthEngine;
  /**
   * A login process's own ending of AUTHENTICATE (server/login-process.ts):
   * it authenticates elsewhere and answers with `reply`, or gives the
   * connection away (`detach`).
   */
  /** `validClientCert`: the TLS client certificate verified (the auth request's `valid-client-cert`). */
  login?(a: { mech: string; authz: string; login: string; password: string; validClientCert: boolean }): Promise<void>;
  /** userdb answer → home for the script storage */
  resolveHome(user: string, fields: Fields): string | undefined;
  tlsAvailable: boolean;
  secured: boolean;
  /** The client is in login_trusted_networks: plaintext logins allowed as over TLS (login-common). */
  trusted?: boolean;
  remoteIp?: string;
  localIp?: string;
  /** The server's per-IP auth penalty (Dovecot's anvil), shared with IMAP; none in unit tests. */
  penalty?: AuthPenalty;
  /** Replace the socket by a TLS one (STARTTLS); resolves with the new stream. */
  startTls?(): Promise<Duplex>;
  /** This connection's place in the master's connection count; none = no limits (unit tests). */
  slot?: ConnectionSlot;
}

type Token = { kind: 'atom'; v: string } | { kind: 'str'; v: Buffer };

/**
 * The budgets of Pigeonhole's managesieve parser (lib-managesieve): `buffer`,
 * the input an unfinished argument may fill; `line`, the command line
 * (literals count, except a script's); `script`, after login, the largest
 * PUTSCRIPT/CHECKSCRIPT script literal read (a bigger one is skipped).
 */
export interface ParseLimits { buffer: number; line: number; script?: number }
const DEFAULT_LIMITS: ParseLimits = { buffer: DEFAULT_MAX_LINE, line: DEFAULT_MAX_LINE, script: 1 << 20 };

/** What went wrong parsing a command line: `syntax` ("received by server"), or a budget exceeded. */
export class CommandLineError extends Error {
  constructor(readonly kind: 'syntax' | 'argument' | 'line' | 'literal', readonly command: string | null) {
    super(kind === 'syntax' ? 'received by server' : kind === 'argument' ? 'Too long argument' : kind === 'line' ? 'MANAGESIEVE command line too large' : LITERAL_TOO_LARGE);
  }
}

function quote(s: string): string { return '"' + s.replace(/[\\"]/g, '\\$&') + '"'; }
function literal(b: Buffer): Buffer { return Buffer.concat([Buffer.from(`{${b.length}}\r\n`), b]); }

/**
 * Parse one complete command from buf: tokens + bytes used, null if incomplete; throws
 * CommandLineError. `skip`: a script literal over `limits.script` whose data (that many bytes,
 * then the rest of the line) the caller discards; the command gets an empty script token with
 * `oversize` set. `hint.need` is set, when a literal's data is what is missing, to the buffer
 * length at which parsing can go on.
 */
export function parseCommand(buf: Buffer, limits: ParseLimits = DEFAULT_LIMITS, hint?: { need: number }): { tokens: Token[]; used: number; skip?: number; oversize?: number } | null {
  const tokens: Token[] = [];
  const cmd = () => (tokens[0]?.kind === 'atom' ? tokens[0].v.toUpperCase() : null);
  // an argument fills the input buffer from its first byte: it must end within it
  const unfinished = (start: number) => { if (buf.length - start >= limits.buffer) throw new CommandLineError('argument', cmd()); return null; };
  let i = 0;
  /** Script literal bytes: read as a stream by managesieved, not part of the line. */
  let streamed = 0;
  for (;;) {
    while (buf[i] === 0x20) i++;
    if (i - streamed > limits.line) throw new CommandLineError('line', cmd());
    if (i >= buf.length) return null;
    const c = buf[i];
    if (c === 0x0d || c === 0x0a) {
      if (c === 0x0d) { if (i + 1 >= buf.length) return null; if (buf[i + 1] !== 0x0a) throw new CommandLineError('syntax', cmd()); i++; }
      return { tokens, used: i + 1 };
    }
    if (c === 0x22) {
      const out: number[] = [];
      const start = i++;
      for (;;) {
        if (i >= buf.length) return unfinished(start);
        const d = buf[i];
        if (d === 0x5c) { if (i + 1 >= buf.length) return unfinished(start); out.push(buf[i + 1]); i += 2; continue; }
        if (d === 0x22) { i++; break; }
        if (d === 0x0d || d === 0x0a) throw new CommandLineError('syntax', cmd());
        out.push(d); i++;
      }
      if (i - start >= limits.buffer) unfinished(start - limits.buffer);
      tokens.push({ kind: 'str', v: Buffer.from(out) });
      continue;
    }
    if (c === 0x7b) {
      const end = buf.indexOf(0x0a, i);
      if (end < 0) { if (buf.length - i > 32) throw new CommandLineError('syntax', cmd()); return null; }
      const m = /^\{(\d+)\+?\}\r?$/.exec(buf.subarray(i, end).toString('latin1'));
      if (!m) throw new CommandLineError('syntax', cmd());
      const n = Number(m[1]);
      const start = end + 1;
      // PUTSCRIPT's second and CHECKSCRIPT's first argument is read as a stream, outside the line budget
      const script = limits.script !== undefined && ((cmd() === 'PUTSCRIPT' && tokens.length === 2) || (cmd() === 'CHECKSCRIPT' && tokens.length === 1));
      if (script && n > limits.script!) { tokens.push({ kind: 'str', v: Buffer.alloc(0) }); return { tokens, used: start, skip: n, oversize: n }; }
      if (!script && (i - streamed >= limits.line || n > limits.line - (end + 1 - streamed))) throw new CommandLineError('literal', cmd());
      if (buf.length < start + n) { if (hint) hint.need = start + n; return null; }
      tokens.push({ kind: 'str', v: Buffer.from(buf.subarray(start, start + n)) });
      i = start + n;
      if (script) streamed += n;
      continue;
    }
    let j = i;
    while (j < buf.length && buf[j] !== 0x20 && buf[j] !== 0x0d && buf[j] !== 0x0a) j++;
    if (j >= buf.length) return unfinished(i);
    if (j - i >= limits.buffer) unfinished(i - limits.buffer);
    tokens.push({ kind: 'atom', v: buf.subarray(i, j).toString('latin1') });
    i = j;
  }
}

export class ManageSieveSession {
  private buf = Buffer.alloc(0);
  /**
   * Bytes received while a literal's data is still short of `need`: kept as chunks and joined
   * once, not re-joined and re-parsed per TCP segment (an 8 MB PUTSCRIPT sent in small segments
   * cost quadratic copying on the master's event loop).
   */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private readonly hint = { need: 0 };
  private user: string | null = null;
  /** The user's userdb fields: sieve_* ones override plugin settings (sieve_quota_max_storage from SQL). */
  private fields: Fields | null = null;
  /** Read once at login (the settings and userdb fields of the session). */
  private postLoginLimits: ParseLimits | null = null;
  private quotaLimits: ScriptQuotaLimits | null = null;
  private storage: ScriptStorage | null = null;
  private busy = false;
  private closed = false;
  /** An AUTHENTICATE waiting for the client's next response: the mechanism and what was said so far. */
  private pendingAuth: { mech: 'PLAIN' | 'LOGIN'; got: string[] } | null = null;
  private badCount = 0;
  /** After a refused command line: its rest is discarded up to the next LF (input_skip_line). */
  private skipLine = false;
  /** Bytes of a refused script literal still to discard. */
  private skipBytes = 0;
  private lastInvalid = false;
  private log = new Logger('managesieve-login');
  private readonly connectedAt = Date.now();
  /** The login deadline before login, the autologout timer after it. */
  private timer: NodeJS.Timeout | null = null;
  private idleTimerArmed = false;
  /** Age and AUTHENTICATE attempts, for managesieve-login's disconnect log lines. */
  private readonly progress = new LoginProgress();
  /** After login: managesieve(user)<pid><session>, and the bytes of managesieve_logout_format. */
  private sessionLog: Logger | null = null;
  private bytesIn = 0;
  private bytesOut = 0;
  private lastEol = 0;
  private endLogged = false;

  constructor(private stream: Duplex, private readonly deps: SessionDeps) {}

  start(): void {
    this.attach();
    // managesieve-login's deadline: 3 minutes from connect, whatever the client sends (login-common)
    this.timer = setTimeout(() => {
      if (this.user !== null) return;
      if (this.closed) { this.stream.destroy(); return; } // ended by us, never closed by the client
      const sasl = this.pendingAuth !== null;
      this.loginLog(sasl ? 'Inactivity during authentication' : 'Inactivity');
      this.bye(sasl ? 'Disconnected for inactivity during authentication.' : 'Disconnected for inactivity.');
    }, DEADLINES.loginMs);
    this.timer.unref();
    this.write(this.capabilities(false) + `OK ${quote(this.deps.config.get('login_greeting') || 'Dovecot ready.')}\r\n`);
  }

  private attach(): void {
    // once our side is done (LOGOUT, BYE), the socket goes a moment later even if the client never
    // closes its side (Dovecot closes the fd at once)
    const stream = this.stream;
    stream.once('finish', () => setTimeout(() => stream.destroy(), HANGUP_GRACE_MS).unref());
    // the session's fault boundary: whatever a command throws ends this connection only
    this.stream.on('data', guarded((e) => this.fault(e), (d: Buffer) => {
      this.touch();
      if (this.user !== null) this.countInput(d);
      this.pending.push(d);
      this.pendingBytes += d.length;
      if (this.buf.length + this.pendingBytes < this.hint.need) return;
      this.buf = Buffer.concat([this.buf, ...this.pending]);
      this.pending = [];
      this.pendingBytes = 0;
      return this.pump();
    }));
    this.stream.on('error', () => this.ended());
    this.stream.on('close', () => this.ended());
  }

  private ended(): void {
    if (this.user === null) this.loginLog('Connection closed');
    else this.logSessionEnd('Connection closed', false);
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.deps.slot?.release();
  }

  /** managesieved's autologout: 30 minutes without input once logged in (CLIENT_IDLE_TIMEOUT_MSECS). */
  private touch(): void {
    if (this.user === null || this.closed) return;
    if (this.idleTimerArmed && this.timer) { this.timer.refresh(); return; } // no new timer per packet
    if (this.timer) clearTimeout(this.timer);
    this.idleTimerArmed = true;
    this.timer = setTimeout(() => {
      if (this.closed) { this.stream.destroy(); return; } // ended by us, never closed by the client
      this.logSessionEnd('Disconnected for inactivity');
      this.bye('Disconnected for inactivity');
    }, DEADLINES.idleMs);
    this.timer.unref();
  }

  /**
   * BYE and close for a client the server gives up on (deadline, eviction):
   * the socket goes a moment later even if the client neither reads nor
   * closes its side (Dovecot closes the fd at once).
   */
  private bye(text: string): void {
    this.write(`BYE ${quote(text)}\r\n`);
    this.hangUp();
  }

  private hangUp(): void {
    const stream = this.stream;
    stream.end();
    this.closed = true;
    // 'finish' (attach()) never comes to a client that does not read
    setTimeout(() => stream.destroy(), HANGUP_GRACE_MS).unref();
  }

  /** A pre-login disconnect as managesieve-login logs it (client_get_extra_disconnect_reason + login_log_format). */
  private loginLog(reason: string): void {
    this.progress.logDisconnect(this.log, reason, this.pendingAuth !== null, this.conn());
  }

  private conn(): LoginConn {
    return { config: this.deps.config, service: 'sieve', rip: this.deps.remoteIp ?? '', lip: this.deps.localIp ?? '', tls: this.deps.secured, trusted: this.deps.trusted, clientCert: clientCertOf(this.stream) };
  }

  /** This connection's login session id (session=<…>), passed to the mail process with the login. */
  get loginSession(): string { return this.progress.session(this.conn()); }

  /** A login process handed the session to mail process `mpid`: managesieve-login's `Login:` line. */
  logHandedOff(user: string, mech: string, mpid: number): void { this.progress.logLogin(this.log, this.conn(), user, mech, mpid); }

  /** The passdb refused `user`: the line logged when the connection ends names it. */
  authFailed(user: string, temp: boolean): void { this.progress.failed(user, temp); }

  /** Input after login, less the line end of the last command (Dovecot's parser has not consumed it yet). */
  private countInput(d: Buffer): void {
    this.bytesIn += d.length;
    this.lastEol = trailingEol(d);
  }

  /**
   * managesieved's last line of a session: `Disconnected: <reason> <managesieve_logout_format>`
   * (default `bytes=%i/%o`), once; the client's close is logged without the prefix (client_disconnect).
   */
  private logSessionEnd(reason: string, prefixed = true): void {
    if (this.endLogged || this.user === null) return;
    this.endLogged = true;
    const format = this.deps.config.get('managesieve_logout_format', { protocol: 'sieve' }) || 'bytes=%i/%o';
    const input = String(this.bytesIn - this.lastEol);
    const stats = expandLogFormat(format, { i: input, input, o: String(this.bytesOut), output: String(this.bytesOut) });
    (this.sessionLog ?? Logger.forUser('managesieve', this.user)).info(`${prefixed ? 'Disconnected: ' : ''}${reason} ${stats}`);
  }

  /** The master dropped this connection to make room (login service full): client_destroy_oldest. */
  evict(): void {
    if (this.closed || this.user !== null) return;
    this.loginLog('Connection queue full');
    this.bye('Connection queue full');
  }

  /** sealadm kick (doveadm kick: SIGTERM to the managesieve process): its clients get Pigeonhole's shutdown BYE. */
  kick(): void {
    if (this.closed) return;
    this.logSessionEnd('Server shutting down.');
    this.bye('Server shutting down.');
  }

  private write(s: string | Buffer): void {
    if (this.closed) return;
    if (this.user !== null) this.bytesOut += s.length;
    this.stream.write(s);
  }

  /** A user's script may use the extensions sieve_extensions switches on. */
  private compileOptions(): CompileOptions {
    const plugin = this.deps.config.plugin({ protocol: 'sieve' });
    // (settings: editheader's sieve_editheader_max_header_size limits literal addheader values at compile time)
    return { enabled: extensionSwitches(plugin).enabled, settings: plugin };
  }

  capabilities(authed: boolean): string {
    const cfg = this.deps.config;
    const impl = cfg.get('managesieve_implementation_string') || 'Dovecot (Debian) Pigeonhole';
    // as Pigeonhole's settings plugin computes them from sieve_extensions (explicit settings win)
    const plugin = cfg.plugin({ protocol: 'sieve' });
    const sieve = cfg.get('managesieve_sieve_capability') || sieveCapability(plugin, SUPPORTED_EXTENSIONS);
    const notify = cfg.get('managesieve_notify_capability') || notifyCapability(plugin, SUPPORTED_EXTENSIONS);
    // managesieved announces the enabled mechanisms, none where plaintext is refused
    const mechs = this.plaintextAllowed() ? plaintextMechanisms(cfg) : [];
    const lines = [`"IMPLEMENTATION" ${quote(impl)}`, `"SIEVE" ${quote(sieve)}`];
    // managesieved: MAXREDIRECTS before NOTIFY; managesieve-login: NOTIFY before SASL
    if (authed) lines.push(`"MAXREDIRECTS" ${quote(cfg.get('sieve_max_redirects') || '4')}`);
    if (notify) lines.push(`"NOTIFY" ${quote(notify)}`);
    if (!authed) {
      lines.push(`"SASL" ${quote(mechs.join(' '))}`);
      if (this.deps.tlsAvailable && !this.deps.secured) lines.push('"STARTTLS"');
    }
    lines.push('"VERSION" "1.0"');
    if (!authed && this.deps.trusted) lines.push('"XCLIENT"');
    return lines.map((l) => l + '\r\n').join('');
  }

  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (!this.closed) {
        if (!this.discard()) break;
        let parsed;
        this.hint.need = 0;
        try { parsed = parseCommand(this.buf, this.limits(), this.hint); } catch (e) {
          if (!(e instanceof CommandLineError)) throw e;
          if (!this.lineError(e)) break;
          continue;
        }
        if (!parsed) break;
        this.buf = this.buf.subarray(parsed.used);
        if (parsed.skip !== undefined) { this.skipBytes = parsed.skip; this.skipLine = true; }
        await this.handle(parsed.tokens, parsed.oversize);
      }
    } finally {
      this.busy = false;
      // our ACK of the input at once: a client holding its next small write for it (a literal's CRLF) never waits 40 ms
      quickAck(this.stream);
    }
  }

  /**
   * managesieve_max_compile_errors (default 5; 0 = all): Pigeonhole's error
   * handler stops logging there, the closing "… failed." line included.
   */
  private capErrors(lines: string[]): string {
    const max = Number(this.deps.config.get('managesieve_max_compile_errors') || '5');
    return (max > 0 ? lines.slice(0, max) : lines).join('\r\n') + '\r\n';
  }

  /** The parser's budgets: managesieve-login's before login, managesieve's settings after. */
  private limits(): ParseLimits {
    if (this.user === null) return { buffer: PRELOGIN_INPUT_BUFFER, line: PRELOGIN_MAX_LINE };
    if (this.postLoginLimits) return this.postLoginLimits;
    const cfg = this.deps.config;
    const line = sizeSetting(cfg.get('managesieve_max_line_length'), DEFAULT_MAX_LINE);
    const max = this.quota().maxScriptSize;
    return (this.postLoginLimits = { buffer: line, line, script: max > 0 ? max : UNLIMITED_SCRIPT_CAP });
  }

  private quota(): ScriptQuotaLimits {
    return (this.quotaLimits ??= scriptQuotaLimits({ ...this.deps.config.plugin({ protocol: 'sieve' }), ...Object.fromEntries((this.fields ?? []).filter(([k]) => k.startsWith('sieve'))) }));
  }

  /** Drops what a refused command left (a skipped literal, the rest of its line); false while more is to come. */
  private discard(): boolean {
    if (this.skipBytes > 0) {
      const n = Math.min(this.skipBytes, this.buf.length);
      this.buf = this.buf.subarray(n);
      this.skipBytes -= n;
      if (this.skipBytes > 0) return false;
    }
    if (this.skipLine) {
      const nl = this.buf.indexOf(0x0a);
      if (nl < 0) { this.buf = Buffer.alloc(0); return false; }
      this.buf = this.buf.subarray(nl + 1);
      this.skipLine = false;
    }
    return true;
  }

  /**
   * A command line over a budget or unparsable, answered as managesieved /
   * managesieve-login do; false when the connection ends.
   */
  private lineError(e: CommandLineError): boolean {
    const pre = this.user === null;
    if (e.kind === 'literal' || (pre && e.kind === 'argument')) {
      // fatal parser errors, and managesieve-login's full input buffer
      this.write(`BYE ${quote(e.kind === 'literal' ? LITERAL_TOO_LARGE : 'Input buffer full, aborting')}\r\n`);
      this.hangUp();
      return false;
    }
    if (e.kind === 'syntax') this.write(BAD_RECEIVED);
    else if (pre) this.write(`NO ${quote(e.message)}\r\n`);
    else this.write(`NO ${quote(`Error in MANAGESIEVE command ${e.command ?? ''}: ${e.message}${e.kind === 'argument' ? '.' : ''}`)}\r\n`);
    this.skipLine = true;
    return true;
  }

  private async handle(tokens: Token[], oversize?: number): Promise<void> {
    const authed = this.user !== null && !this.pendingAuth;
    this.lastInvalid = false;
    if (oversize !== undefined) {
      // the script literal is over sieve_max_script_size: refused before it is read (cmd-putscript.c)
      this.write(`NO (QUOTA/MAXSIZE) ${quote(`Script is too large (max ${this.limits().script} bytes).`)}\r\n`);
      return;
    }
    await this.handleCommand(tokens);
    // after login any command not refused as invalid starts the count again
    if (authed && !this.lastInvalid) this.badCount = 0;
  }

  private async handleCommand(tokens: Token[]): Promise<void> {
    if (this.pendingAuth) {
      const p = this.pendingAuth;
      this.pendingAuth = null;
      return this.continueAuth(p.mech, p.got, tokens[0]?.kind === 'str' ? tokens[0].v.toString('latin1') : tokens[0]?.v.toString() ?? '');
    }
    if (!tokens.length) return;
    const head = tokens[0];
    if (head.kind !== 'atom') { if (this.user === null) this.invalid(); else this.badAuthed(BAD_RECEIVED); return; }
    const cmd = head.v.toUpperCase();
    const args = tokens.slice(1);
    // Before login every syntax error is the login process's bare "received by server" (checked
    // against managesieved: AUTHENTICATE without arguments, LISTSCRIPTS "x" "y"), and counts.
    const bad = (msg: string) => this.user === null ? this.invalid() : this.badAuthed(`NO "Error in MANAGESIEVE command ${cmd}: ${msg}."\r\n`);
    const strArgs = (n: number, max = n): string[] | null => {
      if (args.length < n) { bad('Missing arguments'); return null; }
      if (args.length > max) { bad('Too many command arguments'); return null; }
      if (args.some((a) => a.kind !== 'str')) { bad('Invalid arguments'); return null; }
      return args.map((a) => (a.v as Buffer).toString('utf8'));
    };
    // Commands in any state
    switch (cmd) {
      case 'LOGOUT':
        this.write('OK "Logout completed."\r\n');
        if (this.user === null) this.loginLog('Aborted login by logging out'); else this.logSessionEnd('Logged out');
        this.stream.end(); this.closed = true; return;
      case 'NOOP': {
        const a = strArgs(0, 1); if (!a) return;
        this.write(a.length ? `OK (TAG ${quote(a[0])}) "Done"\r\n` : 'OK "NOOP Completed"\r\n');
        return;
      }
      case 'CAPABILITY': this.write(this.capabilities(this.user !== null) + 'OK "Capability completed."\r\n'); return;
    }
    if (this.user === null) {
      switch (cmd) {
        case 'XCLIENT': {
          // managesieve-login's cmd_xclient: atoms only; anything else, or a bad value, is an invalid command
          if (!this.deps.trusted) { this.write('NO "You are not from trusted IP"\r\n'); return; }
          const u = args.every((a) => a.kind === 'atom') ? parseXclient(args.map((a) => a.v.toString())) : null;
          if (!u) { this.invalid(); return; }
          if (u.rip !== undefined) this.deps.remoteIp = u.rip;
          this.write('OK "Updated"\r\n');
          return;
        }
        case 'STARTTLS': {
          if (this.deps.secured) { this.write('NO "TLS is already active."\r\n'); return; }
          if (!this.deps.tlsAvailable || !this.deps.startTls) { this.write('NO "TLS support isn\'t enabled."\r\n'); return; }
          this.write('OK "Begin TLS negotiation now."\r\n');
          this.stream.removeAllListeners('data');
          // plaintext that came after STARTTLS is never run inside the TLS session (RFC 5804 §2.2; the
          // command injection of CVE-2011-0411): only what arrives through TLS counts
          this.buf = Buffer.alloc(0);
          this.pending = [];
          this.pendingBytes = 0;
          try {
            this.stream = await this.deps.startTls();
          } catch (e) {
            // a failed handshake ends this connection, as in managesieve-login; startTls destroyed the socket
            this.closed = true;
            this.stream.destroy();
            this.progress.logDisconnect(this.log, '', false, { ...this.conn(), tlsError: (e as Error).message });
            return;
          }
          this.deps.secured = true;
          this.attach();
          this.write(this.capabilities(false) + 'OK "TLS negotiation successful."\r\n');
          return;
        }
        case 'AUTHENTICATE': {
          const a = strArgs(1, 2); if (!a) return;
          const mech = a[0].toUpperCase();
          this.progress.attempt(mech);
          if ((mech !== 'PLAIN' && mech !== 'LOGIN') || !plaintextMechanisms(this.deps.config).includes(mech)) { this.write('NO "Unsupported authentication mechanism."\r\n'); return; }
          if (!this.plaintextAllowed()) { this.write('NO "Plaintext authentication disallowed on non-secure (SSL/TLS) connections."\r\n'); return; }
          if (a.length === 2) return this.continueAuth(mech, [], a[1], true);
          this.pendingAuth = { mech, got: [] };
          this.write(mech === 'PLAIN' ? '""\r\n' : LOGIN_CHALLENGES[0]);
          return;
        }
        default:
          // Pigeonhole's login process knows no other command; its error text has no command name.
          this.invalid();
          return;
      }
    }
    const st = this.storage!;
    try {
      switch (cmd) {
        case 'LISTSCRIPTS': {
          if (!strArgs(0)) return;
          const l = await st.list();
          this.write(l.map((s) => quote(s.name) + (s.active ? ' ACTIVE' : '') + '\r\n').join('') + 'OK "Listscripts completed."\r\n');
          return;
        }
        case 'GETSCRIPT': {
          const a = strArgs(1); if (!a) return;
          const data = await st.get(a[0]);
          this.write(Buffer.concat([literal(data), Buffer.from('\r\nOK "Getscript completed."\r\n')]));
          return;
        }
        case 'PUTSCRIPT': case 'CHECKSCRIPT': {
          const a = cmd === 'PUTSCRIPT' ? strArgs(2) : strArgs(1); if (!a) return;
          const name = cmd === 'PUTSCRIPT' ? a[0] : '';
          const data = (args[args.length - 1].v as Buffer);
          // quotas are checked before the name and the script (cmd-putscript.c), CHECKSCRIPT only the size
          const q = this.quota();
          const refused = cmd === 'PUTSCRIPT' ? await checkScriptQuota(st.dir, st.activeLink, name, data.length, q)
            : q.maxScriptSize > 0 && data.length > q.maxScriptSize ? tooLarge(q.maxScriptSize) : null;
          if (refused) { this.write(`NO (${refused.code}) ${quote(refused.text)}\r\n`); return; }
          if (cmd === 'PUTSCRIPT' && !(await this.nameOk(name))) return;
          try { compileScript(data.toString('utf8'), name, this.compileOptions()); } catch (e) {
            if (!(e instanceof SieveCompileError)) throw e;
            const pre = name ? `${name}: ` : '';
            this.write(Buffer.concat([Buffer.from('NO '), literal(Buffer.from(this.capErrors([...e.errors, `${pre}error: ${e.kind} failed.`]))), Buffer.from('\r\n')]));
            return;
          }
          if (cmd === 'CHECKSCRIPT') { this.write('OK "Script checked successfully."\r\n'); return; }
          await st.put(name, data);
          this.log.info(`sieve: stored script ${name}`);
          this.write('OK "PUTSCRIPT completed."\r\n');
          return;
        }
        case 'SETACTIVE': {
          const a = strArgs(1); if (!a) return;
          if (a[0] === '') {
            const had = await st.active();
            await st.setActive('');
            this.write(had ? 'OK "Active script is now deactivated."\r\n' : 'OK "No scripts currently active."\r\n');
            return;
          }
          // Activating a script re-checks it, as Pigeonhole does.
          compileScript((await st.get(a[0])).toString('utf8'), a[0], this.compileOptions());
          await st.setActive(a[0]);
          this.write('OK "Setactive completed."\r\n');
          return;
        }
        case 'DELETESCRIPT': { const a = strArgs(1); if (!a) return; await st.delete(a[0]); this.write('OK "Deletescript completed."\r\n'); return; }
        case 'RENAMESCRIPT': { const a = strArgs(2); if (!a) return; if (!(await this.nameOk(a[1]))) return; await st.rename(a[0], a[1]); this.write('OK "Renamescript completed."\r\n'); return; }
        case 'HAVESPACE': {
          if (args.length !== 2 || args[0].kind !== 'str' || args[1].kind !== 'atom' || !/^\d+$/.test(args[1].v)) { bad(args.length < 2 ? 'Missing arguments' : 'Invalid arguments'); return; }
          const name = args[0].v.toString('utf8');
          if (!(await this.nameOk(name))) return;
          if (Number(args[1].v) === 0) { this.write('NO "Cannot upload empty script."\r\n'); return; }
          const refused = await checkScriptQuota(st.dir, st.activeLink, name, Number(args[1].v), this.quota());
          if (refused) { this.write(`NO (${refused.code}) ${quote(refused.text)}\r\n`); return; }
          this.write('OK "Putscript would succeed."\r\n');
          return;
        }
        case 'AUTHENTICATE': case 'STARTTLS': bad('Unknown command'); return;
        default: bad('Unknown command'); return;
      }
    } catch (e) {
      if (e instanceof ScriptError) {
        this.write(e.code === 'INVALID' ? `NO ${quote(e.message)}\r\n` : `NO (${e.code}) ${quote(e.message)}\r\n`);
      } else if (e instanceof SieveCompileError) {
        this.write(Buffer.concat([Buffer.from('NO '), literal(Buffer.from(this.capErrors(e.errors))), Buffer.from('\r\n')]));
      } else {
        Logger.forUser('managesieve', this.user!).error(`${cmd}: ${(e as Error).message}`);
        this.write('NO (TRYLATER) "Internal error occurred. Refer to server log for more information."\r\n');
      }
    }
  }

  /**
   * The session's fault boundary: an exception no command handled is logged
   * (with the user's prefix once logged in) and ends this connection with
   * Dovecot's internal-error BYE; the process and every other session go on.
   */
  private fault(e: unknown): void {
    const log = this.user === null ? this.log : Logger.forUser('managesieve', this.user);
    log.error(`Internal error: ${faultText(e)}`);
    if (this.closed) { this.stream.destroy(); return; }
    this.closed = true;
    try {
      this.stream.end('BYE "Internal error occurred. Refer to server log for more information."\r\n');
    } catch {
      this.stream.destroy();
    }
  }

  /**
   * Dovecot's disable_plaintext_auth (and ssl = required): PLAIN only over TLS
   * or on a connection Dovecot counts as secure (loopback, or local IP = remote IP).
   */
  private plaintextAllowed(): boolean {
    const cfg = this.deps.config;
    const off = cfg.getBool('disable_plaintext_auth') || cfg.get('ssl') === 'required';
    if (!off || this.deps.secured || this.deps.trusted) return true;
    const rip = this.deps.remoteIp ?? '';
    return rip === '' || rip === '::1' || rip.startsWith('127.') || rip === this.deps.localIp;
  }

  private async nameOk(name: string): Promise<boolean> {
    try { await this.storage!.exists(name); return true; } catch (e) {
      if (e instanceof ScriptError) { this.write(`NO ${quote(e.message)}\r\n`); return false; }
      throw e;
    }
  }

  /**
   * A pre-login command managesieve-login does not accept: NO, or BYE and
   * close on the third, as its CLIENT_MAX_BAD_COMMANDS does (checked against
   * managesieved: FOO, FOO, FOO → NO, NO, BYE).
   */
  private invalid(): void {
    if (++this.badCount < PRELOGIN_MAX_BAD_COMMANDS) { this.write(BAD_RECEIVED); return; }
    this.write('BYE "Too many invalid MANAGESIEVE commands."\r\n');
    this.stream.end();
    this.closed = true;
  }

  /**
   * An invalid command after login: its NO, then a BYE and close on the
   * twentieth in a row (managesieved's CLIENT_MAX_BAD_COMMANDS; any accepted
   * command starts the count again, as the oracle shows).
   */
  private badAuthed(reply: string): void {
    this.write(reply);
    this.lastInvalid = true;
    if (++this.badCount < POSTLOGIN_MAX_BAD_COMMANDS) return;
    this.write('BYE "Too many invalid MANAGESIEVE commands."\r\n');
    this.stream.end();
    this.closed = true;
  }

  /**
   * One client response of a SASL exchange: PLAIN takes one, LOGIN two (user
   * name, then password, each after its challenge). "*" aborts.
   */
  private async continueAuth(mech: 'PLAIN' | 'LOGIN', got: string[], b64: string, initial = false): Promise<void> {
    if (b64 === '*') { this.write('NO "Authentication aborted by client."\r\n'); return; }
    if (!BASE64.test(b64)) { this.write(initial ? 'NO "Invalid base64 data in initial response"\r\n' : 'NO "Invalid base64 in response"\r\n'); return; }
    const text = Buffer.from(b64, 'base64').toString('utf8');
    if (mech === 'PLAIN') {
      const parts = text.split('\0');
      if (parts.length !== 3 || !parts[1]) { this.write('NO "Authentication failed."\r\n'); return; }
      return this.finishAuth('PLAIN', parts[0], parts[1], parts[2]);
    }
    if (got.length === 0) {
      this.pendingAuth = { mech, got: [text] };
      this.write(LOGIN_CHALLENGES[1]);
      return;
    }
    return this.finishAuth('LOGIN', '', got[0], text);
  }

  private async finishAuth(mech: string, authz: string, login: string, password: string): Promise<void> {
    const validClientCert = clientCertOf(this.stream) === 'valid';
    if (this.deps.login) return this.deps.login({ mech, authz, login, password, validClientCert });
    if (!this.deps.auth) throw new Error('no auth engine');
    const info = { service: 'sieve', rip: this.deps.remoteIp, lip: this.deps.localIp, mech, secured: this.deps.secured, session: this.loginSession, validClientCert };
    // the per-IP penalty is waited out before the attempt is even looked at, as IMAP does (login.ts)
    const wait = this.deps.penalty?.delayBefore(this.deps.remoteIp) ?? 0;
    if (wait) await new Promise((r) => setTimeout(r, wait));
    // an authzid other than the login asks for a master user login (refused without master passdbs)
    const out = await this.deps.auth.authenticate(login, password, { ...info, loginUser: authz && authz !== login ? authz : undefined });
    if (out.clientCertRefused) { this.authFailedWith(out.reason ?? ''); return; }
    if (out.result !== 'ok' || out.nologin) {
      if (out.result !== 'tempfail') this.deps.penalty?.failed(this.deps.remoteIp);
      await new Promise((r) => setTimeout(r, failureDelayMs(this.deps.config.getTime('auth_failure_delay'), out.nodelay)));
      this.write(out.result === 'tempfail' ? 'NO (TRYLATER) "Temporary authentication failure."\r\n' : 'NO "Authentication failed."\r\n');
      this.progress.failed(login, out.result === 'tempfail');
      return;
    }
    this.deps.penalty?.succeeded(this.deps.remoteIp);
    const u = await this.deps.auth.lookupUser(out.user, info, out.userdbFields, true);
    const home = u.result === 'ok' ? this.homeOrRefuse(u.user, u.fields) : undefined;
    if (!home) return;
    if (!await this.admit(u.user, mech)) return;
    this.progress.logLogin(this.log, this.conn(), u.user, mech, process.pid);
    this.loggedIn(u.user, u.fields, home, this.loginSession);
  }

  /**
   * An auth failure with a reason (auth_ssl_require_client_cert's):
   * managesieve-login's `NO "<reason>"` (AUTHFAILED_REASON); refused before
   * the name was looked at, so the failure line names no user (user=<>).
   */
  authFailedWith(reason: string): void {
    this.write(`NO ${quote(reason)}\r\n`);
    this.progress.failed('', false);
  }

  /**
   * After the passdb accepted a login: the master's verdict on the counts
   * (mail_max_userip_connections, service managesieve's limits), refused as
   * managesieve-login refuses it; false when refused (the connection is closing).
   */
  async admit(user: string, mech: string): Promise<boolean> {
    const verdict = this.deps.slot ? await this.deps.slot.admit(user) : 'ok';
    if (verdict === 'ok') return true;
    if (verdict === 'userip') {
      const text = userIpText(maxUserIpConnections(this.deps.config, 'sieve', { rip: this.deps.remoteIp ?? '', lip: this.deps.localIp ?? '' }));
      this.progress.logRefused(this.log, this.conn(), text, user, mech);
      this.write(`NO ${quote(text)}\r\n`);
    } else {
      this.log.error(`master(sieve): destination service { process_limit } reached (rip=${this.deps.remoteIp ?? ''})`);
      this.progress.logRefused(this.log, this.conn(), 'Internal login failure', user, mech);
    }
    this.hangUp();
    return false;
  }

  private homeOrRefuse(user: string, fields: Fields): string | undefined {
    const home = this.deps.resolveHome(user, fields);
    if (!home) {
      this.write('NO (TRYLATER) "Temporary authentication failure."\r\n');
      Logger.forUser('managesieve', user).error('user has no home directory: cannot store Sieve scripts');
    }
    return home;
  }

  private loggedIn(user: string, fields: Fields, home: string, session?: string): void {
    this.user = user;
    this.fields = fields;
    this.sessionLog = Logger.forUser('managesieve', user, session);
    this.touch(); // the login deadline gives way to autologout
    const plugin = this.deps.config.plugin({ protocol: 'sieve' });
    this.storage = new ScriptStorage(plugin.sieve ?? '', { username: user, home, fields });
    this.write('OK "Logged in."\r\n');
  }

  /** A login process's answer to the AUTHENTICATE it ended (`login`). */
  reply(text: string): void { this.write(text); }

  /**
   * A login process gives the connection away after the login: no more
   * reading, no timers. `input`: what the client sent after the command
   * that logged it in (pipelined), for the mail process; the stream is
   * paused so that nothing more is read until it is passed on.
   */
  detach(): { stream: Duplex; input: Buffer } {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    stopReading(this.stream);
    const input = Buffer.concat([this.buf, ...this.pending]);
    this.buf = Buffer.alloc(0);
    this.pending = [];
    this.pendingBytes = 0;
    return { stream: this.stream, input };
  }

  /** A mail process: the session of a user a login process authenticated, answered `OK "Logged in."` here. */
  startLoggedIn(user: string, fields: Fields, session?: string): void {
    this.attach();
    const home = this.homeOrRefuse(user, fields);
    if (home) this.loggedIn(user, fields, home, session); else this.hangUp();
  }
}
