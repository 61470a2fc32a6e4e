/**
 * One POP3 connection (RFC 1939, RFC 2449 CAPA, RFC 5034 AUTH, RFC 2595
 * STLS) with the texts of Dovecot's pop3-login and pop3: the
 * AUTHORIZATION state as pop3-login has it (greeting `+OK <login_greeting>`,
 * CAPA with STLS/USER/SASL as the connection allows, USER/PASS, AUTH PLAIN
 * and LOGIN with or without an initial response and the SASL probe of a
 * bare AUTH, STLS, QUIT "Logging out"; the third unknown command gets "Too
 * many invalid bad commands." and the connection closes; a line longer than
 * login-common's 1026-byte input buffer gets "Input buffer full,
 * aborting"), then the TRANSACTION state (transaction.ts) with pop3's own
 * limits: 2048-byte lines ("Input line too long."), more than 20 bad
 * commands in a row ("Too many bad commands."), 10 minutes idle.
 * Authentication goes through the AuthEngine with the per-IP penalty and
 * auth_failure_delay, as IMAP's (imap/login.ts), or, in a login process,
 * through `deps.login`, which hands the connection to a mail process.
 * Commands are run one at a time in the order they came (PIPELINING);
 * while one runs, input is buffered up to a bound, then reading pauses.
 */
import type { Duplex } from 'node:stream';
import type { DovecotConfig } from '../config/settings.js';
import type { AuthEngine } from '../auth/engine.js';
import type { Fields } from '../auth/databases.js';
import { failureDelayMs, type AuthPenalty } from '../auth/penalty.js';
import { plaintextMechanisms } from '../auth/mechanisms.js';
import { DEADLINES, LoginProgress, maxUserIpConnections, userIpText, type ConnectionSlot } from '../config/connection-limits.js';
import type { LoginConn } from '../config/login-log.js';
import { Logger } from '../log/logger.js';
import { faultText, guarded } from '../util/fault.js';
import { quickAck } from '../util/tcp-socket.js';
import type { Maildrop } from './maildrop.js';
import { openPop3User, type Pop3OpenResult } from './login.js';
import { POP3_CAPABILITY, Pop3Disconnect, Pop3Transaction } from './transaction.js';
import { logoutLine } from './logout-format.js';
import { stopReading } from '../util/hand-off.js';
import { clientCertOf } from '../util/tls-client-cert.js';
import { parseXclient } from '../util/xclient.js';
import { LOGIN_PROXY_TTL } from '../util/login-proxy.js';
import { pop3Route, proxyPop3Login, referPop3Login } from './login-proxy.js';
import type { LoginRoute } from '../auth/proxy-fields.js';
import type { Socket } from 'node:net';

/** login-common's LOGIN_MAX_INBUF_SIZE: MASTER_AUTH_MAX_DATA_SIZE − master prefix − session id (1218 − 128 − 64). */
const LOGIN_MAX_INBUF = 1026;
/** login-common's LOGIN_MAX_AUTH_BUF_SIZE: a SASL response line. */
const LOGIN_MAX_AUTH_BUF = 8192;
/** pop3's MAX_INBUF_SIZE (the RFC says 512 suffices). */
const MAX_INBUF = 2048;
/** pop3-login's CLIENT_MAX_BAD_COMMANDS. */
const LOGIN_MAX_BAD_COMMANDS = 3;
/** pop3's CLIENT_MAX_BAD_COMMANDS: more than this many in a row disconnect. */
const MAX_BAD_COMMANDS = 20;
/** pop3's CLIENT_IDLE_TIMEOUT_MSECS. */
const IDLE_MS = 10 * 60_000;
/** Input buffered while a command runs before reading pauses (pipelining clients, RETR to a slow reader). */
const INPUT_HIGH_WATER = 64 * 1024;
const HANGUP_GRACE_MS = 1000;
const LOGIN_CHALLENGES = ['VXNlcm5hbWU6', 'UGFzc3dvcmQ6'];
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const INTERNAL = 'Internal error occurred. Refer to server log for more information.';

export interface Pop3Deps {
  config: DovecotConfig;
  /** The passdb/userdb when this process authenticates itself. */
  auth?: AuthEngine;
  penalty?: AuthPenalty;
  /** A login process's own ending of USER/PASS and AUTH: it authenticates elsewhere and answers with reply() or detach(). */
  /** `validClientCert`: the TLS client certificate verified (the auth request's `valid-client-cert`). */
  login?(a: { mech: string; authz: string; login: string; password: string; validClientCert: boolean }): Promise<void>;
  tlsAvailable: boolean;
  secured: boolean;
  /** The client is in login_trusted_networks: plaintext logins allowed as over TLS (login-common). */
  trusted?: boolean;
  rip: string;
  lip: string;
  startTls?(): Promise<Duplex>;
  slot?: ConnectionSlot;
}

type SaslState = { mech: 'PLAIN' | 'LOGIN'; got: string[] };

export class Pop3Session {
  private buf: Buffer = Buffer.alloc(0);
  private busy = false;
  private closed = false;
  private paused = false;
  private badCount = 0;
  private lastUser: string | null = null;
  private sasl: SaslState | null = null;
  private user: string | null = null;
  private drop: Maildrop | null = null;
  private tx: Pop3Transaction | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly progress = new LoginProgress();
  private readonly loginLog = new Logger('pop3-login');
  private log = this.loginLog;
  private inputBytes = 0;
  private outputBytes = 0;
  private loggedOut = false;
  /** Hops a proxied login may still take (a trusted proxy's XCLIENT TTL=…; 1 or less: a loop). */
  proxyTtl = LOGIN_PROXY_TTL;
  /** The client's port as a trusted proxy's XCLIENT PORT=… named it. */
  private forwardedRport?: number;

  constructor(private stream: Duplex, private readonly deps: Pop3Deps) {}

  /** A new connection: the greeting, the 3-minute login deadline. */
  start(): void {
    this.attach();
    this.timer = setTimeout(() => {
      if (this.user !== null || this.closed) return;
      this.progress.logDisconnect(this.loginLog, this.sasl ? 'Inactivity during authentication' : 'Inactivity', this.sasl !== null, this.conn());
      this.hangUp(this.sasl ? '-ERR Disconnected for inactivity during authentication.' : '-ERR Disconnected for inactivity.');
    }, DEADLINES.loginMs);
    this.timer.unref();
    // "[XCLIENT]" tells a trusted proxy it may forward the client without asking CAPA (pop3-login)
    const xclient = this.deps.trusted ? '[XCLIENT] ' : '';
    this.write(`+OK ${xclient}${this.deps.config.get('login_greeting') || 'Dovecot ready.'}\r\n`);
  }

  /** A mail process: a user a login process authenticated; "+OK Logged in." and the maildrop opened here. */
  async startLoggedIn(user: string, fields: Fields, password: string, session?: string): Promise<void> {
    this.attach();
    this.busy = true;
    try {
      await this.openMaildrop(user, fields, password, session);
    } finally {
      this.busy = false;
    }
    if (!this.closed) await this.pump();
  }

  private conn(): LoginConn { return { config: this.deps.config, service: 'pop3', rip: this.deps.rip, lip: this.deps.lip, tls: this.deps.secured, trusted: this.deps.trusted, clientCert: clientCertOf(this.stream) }; }

  /** This connection's login session id (session=<…>), passed to the mail process with the login. */
  get loginSession(): string { return this.progress.session(this.conn()); }

  /** A login process handed the session to mail process `mpid`: pop3-login's `Login:` line. */
  logHandedOff(user: string, mech: string, mpid: number): void { this.progress.logLogin(this.loginLog, this.conn(), user, mech, mpid); }

  private attach(): void {
    const stream = this.stream;
    stream.once('finish', () => setTimeout(() => stream.destroy(), HANGUP_GRACE_MS).unref());
    stream.on('data', guarded((e) => this.fault(e), (d: Buffer) => {
      this.inputBytes += d.length;
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      if (this.buf.length > INPUT_HIGH_WATER && this.busy && !this.paused) { this.paused = true; stream.pause(); }
      this.touch();
      return this.pump();
    }));
    stream.on('error', () => this.ended());
    stream.on('close', () => this.ended());
  }

  private ended(): void {
    if (this.timer) clearTimeout(this.timer);
    this.closed = true;
    this.deps.slot?.release();
    if (this.user === null) this.progress.logDisconnect(this.loginLog, 'Connection closed', this.sasl !== null, this.conn());
    if (this.tx && !this.loggedOut) {
      // a connection that ended without QUIT: its RETRs still mark \Seen, its DELEs are forgotten (RFC 1939 §6)
      const tx = this.tx;
      this.logout('Connection closed');
      void tx.commitSeenOnly().catch((e) => this.log.error(`updating \\Seen flags: ${faultText(e)}`));
    }
    void this.drop?.close();
  }

  private touch(): void {
    if (this.user === null || this.closed) return;
    if (this.timer) { this.timer.refresh(); return; }
    this.timer = setTimeout(() => {
      if (this.closed) return;
      this.logout('Inactivity - no input for 600 secs');
      this.hangUp('-ERR Disconnected for inactivity.');
    }, IDLE_MS);
    this.timer.unref();
  }

  /** pop3's "Disconnected: <reason> <pop3_logout_format>" line, once. */
  private logout(reason: string): void {
    if (this.loggedOut || !this.tx || this.user === null) return;
    this.loggedOut = true;
    this.log.info(`Disconnected: ${reason} ${logoutLine(this.deps.config, this.user, this.tx.stats, { input: this.inputBytes, output: this.outputBytes })}`);
  }

  private write(s: string | Buffer): void {
    if (this.closed) return;
    this.outputBytes += s.length;
    this.stream.write(s);
  }

  private drained(): Promise<void> {
    if (this.closed || !this.stream.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { this.stream.off('drain', done); this.stream.off('close', done); resolve(); };
      this.stream.on('drain', done);
      this.stream.on('close', done);
    });
  }

  /** Last words and close; the socket goes a moment later even if the client never reads. */
  private hangUp(text?: string): void {
    if (text) this.write(text + '\r\n');
    const stream = this.stream;
    this.closed = true;
    stream.end();
    setTimeout(() => stream.destroy(), HANGUP_GRACE_MS).unref();
  }

  /** The master dropped this unauthenticated connection (login service full). */
  evict(): void {
    if (this.closed || this.user !== null) return;
    this.progress.logDisconnect(this.loginLog, 'Connection queue full', this.sasl !== null, this.conn());
    this.hangUp('-ERR Connection queue full');
  }

  /** sealadm kick / shutdown: Dovecot's clients_destroy_all. */
  kick(): void {
    if (this.closed) return;
    if (this.user !== null) this.logout('Server shutting down.');
    this.hangUp(this.user !== null ? '-ERR [SYS/TEMP] Server shutting down.' : '-ERR Server shutting down.');
  }

  /** The session's fault boundary: logged, this connection ends, nothing else does. */
  private fault(e: unknown): void {
    if (e instanceof Pop3Disconnect) {
      this.log.error(e.logError);
      this.logout(e.reason);
      this.hangUp();
      return;
    }
    this.log.error(`Internal error: ${faultText(e)}`);
    if (this.closed) { this.stream.destroy(); return; }
    this.logout('Internal error');
    this.hangUp(`-ERR [SYS/TEMP] ${INTERNAL}`);
  }

  /** Run the complete lines, one command at a time. */
  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (!this.closed) {
        const limit = this.sasl ? LOGIN_MAX_AUTH_BUF : this.user === null ? LOGIN_MAX_INBUF : MAX_INBUF;
        const nl = this.buf.indexOf(0x0a);
        // pop3-login takes the command name (up to 8 bytes and its space) out of its buffer first
        const taken = this.user === null && !this.sasl ? commandNameBytes(this.buf) : 0;
        if ((nl < 0 ? this.buf.length : nl) - taken >= limit) { this.tooLong(); break; }
        if (nl < 0) break;
        const line = this.buf.subarray(0, nl > 0 && this.buf[nl - 1] === 0x0d ? nl - 1 : nl).toString('latin1');
        this.buf = this.buf.subarray(nl + 1);
        try {
          await this.line(line);
        } catch (e) {
          this.fault(e);
          break;
        }
      }
    } finally {
      this.busy = false;
      if (this.paused && !this.closed) { this.paused = false; this.stream.resume(); }
      quickAck(this.stream);
    }
  }

  private tooLong(): void {
    if (this.sasl) { this.progress.logDisconnect(this.loginLog, 'Authentication response too large', true, this.conn()); this.hangUp(); return; }
    if (this.user === null) {
      this.progress.logDisconnect(this.log, 'Input buffer full', false, this.conn());
      this.hangUp('-ERR Input buffer full, aborting');
      return;
    }
    this.logout('Input line too long');
    this.hangUp('-ERR Input line too long.');
  }

  private async line(line: string): Promise<void> {
    if (this.sasl) return this.saslResponse(line);
    if (this.tx) return this.transaction(line);
    return this.authorization(line);
  }

  // ---- TRANSACTION -------------------------------------------------------

  private async transaction(line: string): Promise<void> {
    const sp = line.indexOf(' ');
    const name = (sp < 0 ? line : line.slice(0, sp)).toUpperCase();
    if (name === '') { this.write('-ERR Unknown command.\r\n'); return this.bad(); }
    const r = await this.tx!.command(name, sp < 0 ? '' : line.slice(sp + 1));
    if (r === 'bad') return this.bad();
    this.badCount = 0;
    if (r === 'quit') { this.logout('Logged out'); this.hangUp(); }
  }

  private bad(): void {
    if (++this.badCount <= MAX_BAD_COMMANDS) return;
    this.write('-ERR Too many bad commands.\r\n');
    this.logout('Too many bad commands.');
    this.hangUp();
  }

  // ---- AUTHORIZATION (pop3-login) ----------------------------------------

  /** Dovecot's disable_plaintext_auth / ssl = required: plaintext only over TLS or on a secured (local) connection. */
  private plaintextAllowed(): boolean {
    const cfg = this.deps.config;
    const off = cfg.getBool('disable_plaintext_auth') || cfg.get('ssl') === 'required';
    if (!off || this.deps.secured || this.deps.trusted) return true;
    const rip = this.deps.rip;
    return rip === '' || rip === '::1' || rip.startsWith('127.') || rip === this.deps.lip;
  }

  private ssl_required(): boolean { return this.deps.config.get('ssl') === 'required'; }

  private capa(): string {
    let s = `+OK\r\n${POP3_CAPABILITY}`;
    if (this.deps.tlsAvailable && !this.deps.secured) s += 'STLS\r\n';
    const cfg = this.deps.config;
    if (!cfg.getBool('disable_plaintext_auth') || this.plaintextAllowed()) s += 'USER\r\n';
    const mechs = this.plaintextAllowed() ? plaintextMechanisms(cfg) : [];
    return s + `SASL${mechs.map((m) => ' ' + m).join('')}\r\n.\r\n`;
  }

  /** XCLIENT from a trusted proxy (src/util/xclient.ts); from anyone else pop3-login answers +OK and ignores it. */
  private xclient(params: string[]): void {
    if (!this.deps.trusted) { this.write('+OK You are not from trusted IP - ignoring\r\n'); return; }
    const u = parseXclient(params);
    if (!u) { this.write('-ERR Invalid parameters\r\n'); return; }
    if (u.rip !== undefined) this.deps.rip = u.rip;
    if (u.rport !== undefined) this.forwardedRport = u.rport;
    if (u.ttl !== undefined) this.proxyTtl = u.ttl;
    if (u.session !== undefined) this.progress.adoptSession(u.session);
    this.write('+OK Updated\r\n');
  }

  private async authorization(line: string): Promise<void> {
    // pop3-login reads at most 8 characters of command name (CLIENT_MAX_CMD_LEN)
    const sp = line.indexOf(' ');
    let name = (sp < 0 ? line : line.slice(0, sp));
    let args = sp < 0 ? '' : line.slice(sp + 1);
    if (name.length > 8) { args = name.slice(8) + (sp < 0 ? '' : ' ' + args); name = name.slice(0, 8); }
    name = name.toUpperCase();
    let ok = true;
    switch (name) {
      case 'CAPA': this.write(this.capa()); break;
      case 'USER':
        if (!this.checkPlaintext(false)) break;
        // the line was read as latin1: the name's bytes, as pop3-login passes them on, are UTF-8
        this.lastUser = Buffer.from(args, 'latin1').toString('utf8');
        this.write('+OK\r\n');
        break;
      case 'PASS': {
        const user = this.lastUser;
        if (user === null) {
          if (this.checkPlaintext(true)) this.write('-ERR No username given.\r\n');
          break;
        }
        this.lastUser = null;
        await this.authBegin('PLAIN', '', user, Buffer.from(args, 'latin1').toString('utf8'));
        break;
      }
      case 'AUTH': await this.auth(sp < 0 ? '' : line.slice(sp + 1)); break;
      case 'APOP': this.write('-ERR APOP not enabled.\r\n'); break;
      case 'STLS': await this.stls(); break;
      case 'XCLIENT': this.xclient(args.split(' ')); break;
      // Zimbra's patched nginx (pop3-login keeps it): XOIP <address>
      case 'XOIP': this.xclient([`ADDR=${args}`]); break;
      case 'QUIT':
        this.write('+OK Logging out\r\n');
        this.progress.logDisconnect(this.loginLog, 'Aborted login by logging out', false, this.conn());
        this.hangUp();
        return;
      default:
        this.write('-ERR Unknown command.\r\n');
        ok = false;
    }
    if (ok) { this.badCount = 0; return; }
    if (++this.badCount >= LOGIN_MAX_BAD_COMMANDS) {
      this.write('-ERR Too many invalid bad commands.\r\n');
      this.progress.logDisconnect(this.loginLog, 'Too many bad commands', false, this.conn());
      this.hangUp();
    }
  }

  /** client_check_plaintext_auth: false (after the refusal) when plaintext logins are not allowed here. */
  private checkPlaintext(passSent: boolean): boolean {
    if (this.deps.secured || (!this.deps.config.getBool('disable_plaintext_auth') && !this.ssl_required())) return true;
    if (this.plaintextAllowed()) return true;
    if (passSent) this.write('-ERR [AUTH] Plaintext authentication not allowed without SSL/TLS, but your client did it anyway. If anyone was listening, the password was exposed.\r\n');
    this.write('-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n');
    this.progress.attempt('PLAIN');
    return false;
  }

  private async stls(): Promise<void> {
    if (this.deps.secured) { this.write('-ERR TLS is already active.\r\n'); return; }
    if (!this.deps.tlsAvailable || !this.deps.startTls) { this.write('-ERR TLS support isn\'t enabled.\r\n'); return; }
    this.write('+OK Begin TLS negotiation now.\r\n');
    this.stream.removeAllListeners('data');
    // plaintext sent after STLS is never run inside TLS (RFC 2595 §4, CVE-2011-0411)
    this.buf = Buffer.alloc(0);
    try {
      this.stream = await this.deps.startTls();
    } catch (e) {
      this.closed = true;
      this.stream.destroy();
      this.progress.logDisconnect(this.loginLog, '', false, { ...this.conn(), tlsError: (e as Error).message });
      return;
    }
    this.deps.secured = true;
    this.attach();
  }

  /** AUTH [mech [initial-response]]; a bare AUTH lists the mechanisms (the old SASL probe Outlook uses). */
  private async auth(rest: string): Promise<void> {
    const sp = rest.indexOf(' ');
    const mech = (sp < 0 ? rest : rest.slice(0, sp)).toUpperCase();
    if (mech === '') {
      const mechs = this.plaintextAllowed() ? plaintextMechanisms(this.deps.config) : [];
      this.write(`+OK\r\n${mechs.map((m) => m + '\r\n').join('')}.\r\n`);
      return;
    }
    const ir = sp < 0 ? null : rest.slice(sp + 1);
    this.progress.attempt(mech);
    if ((mech !== 'PLAIN' && mech !== 'LOGIN') || !plaintextMechanisms(this.deps.config).includes(mech)) {
      this.write('-ERR [AUTH] Unsupported authentication mechanism.\r\n');
      return;
    }
    if (!this.plaintextAllowed()) { this.write('-ERR [AUTH] Plaintext authentication disabled.\r\n'); return; }
    if (ir !== null) return this.saslStep({ mech, got: [] }, ir === '=' ? '' : ir, true);
    this.sasl = { mech, got: [] };
    this.write(mech === 'PLAIN' ? '+ \r\n' : `+ ${LOGIN_CHALLENGES[0]}\r\n`);
  }

  private async saslResponse(line: string): Promise<void> {
    const st = this.sasl!;
    this.sasl = null;
    if (line === '*') { this.write('-ERR Authentication aborted by client.\r\n'); return; }
    return this.saslStep(st, line, false);
  }

  private async saslStep(st: SaslState, b64: string, initial: boolean): Promise<void> {
    if (!BASE64.test(b64) || b64.length % 4 === 1) {
      this.write(initial ? '-ERR [AUTH] Invalid base64 data in initial response\r\n' : '-ERR [AUTH] Invalid base64 in response\r\n');
      return;
    }
    const text = Buffer.from(b64, 'base64').toString('utf8');
    if (st.mech === 'PLAIN') {
      const parts = text.split('\0');
      if (parts.length !== 3 || !parts[1]) { this.write('-ERR [AUTH] Authentication failed.\r\n'); return; }
      return this.authBegin('PLAIN', parts[0], parts[1], parts[2]);
    }
    if (st.got.length === 0) {
      this.sasl = { mech: 'LOGIN', got: [text] };
      this.write(`+ ${LOGIN_CHALLENGES[1]}\r\n`);
      return;
    }
    return this.authBegin('LOGIN', '', st.got[0], text);
  }

  /** Where the passdb's fields send this login (auth/proxy-fields.ts). */
  route(a: { fields: Fields; rawFields?: Fields; nologin: boolean; reason?: string; user: string; masterUser?: string }, password: string): LoginRoute {
    return pop3Route(this.deps.config, a, password, { lip: this.deps.lip, lport: this.localPort });
  }

  /**
   * A login the passdb sends elsewhere: proxied to its backend
   * (pop3/login-proxy.ts) or refused with the referral's reason; never
   * served here.
   */
  async goElsewhere(route: Exclude<LoginRoute, { kind: 'local' }>, user: string, mech: string): Promise<void> {
    if (route.kind === 'proxy') await proxyPop3Login(this, route.route, { user, mech });
    else referPop3Login(this, route.referral, { user, mech });
  }

  // ---- what a proxied login (login-proxy.ts) needs of the connection ----
  get config(): DovecotConfig { return this.deps.config; }
  get proxyLogger(): Logger { return this.loginLog; }
  loginConnInfo(): LoginConn { return this.conn(); }
  get isClosed(): boolean { return this.closed; }
  get remoteIp(): string { return this.deps.rip; }
  get remotePort(): number { return this.forwardedRport ?? (this.stream as Socket).remotePort ?? 0; }
  get localIp(): string { return this.deps.lip; }
  get localPort(): number { return (this.stream as Socket).localPort ?? 0; }
  get bytesOut(): number { return this.outputBytes; }
  /** The passdb accepted `user`, but the login went elsewhere (`proxyAuth`: the backend refused it). */
  succeededElsewhere(user: string, proxyAuth = false): void { this.progress.succeeded(user, proxyAuth); }
  silenceLoginLog(): void { this.progress.silence(); }
  releaseSlot(): void { this.deps.slot?.release(); }

  /** The credentials are complete: authenticate here, or in the login process's way. */
  private async authBegin(mech: string, authz: string, login: string, password: string): Promise<void> {
    this.progress.attempt(mech);
    const validClientCert = clientCertOf(this.stream) === 'valid';
    if (this.deps.login) return this.deps.login({ mech, authz, login, password, validClientCert });
    const auth = this.deps.auth;
    if (!auth) throw new Error('no auth engine');
    const info = { service: 'pop3', rip: this.deps.rip, lip: this.deps.lip, mech, secured: this.deps.secured, session: this.loginSession, validClientCert };
    const wait = this.deps.penalty?.delayBefore(this.deps.rip) ?? 0;
    if (wait) await sleep(wait);
    const out = await auth.authenticate(login, password, { ...info, loginUser: authz && authz !== login ? authz : undefined });
    if (out.clientCertRefused) { this.authFailed('', mech, false, out.reason); return; } // refused before the name was looked at: user=<>
    // a proxied login needs no userdb and no mail here: the backend has them
    const route = out.result === 'ok' ? this.route(out, password) : { kind: 'local' as const };
    if (route.kind !== 'local') {
      if (route.kind === 'proxy') this.deps.penalty?.succeeded(this.deps.rip);
      else { this.deps.penalty?.failed(this.deps.rip); await sleep(failureDelayMs(this.deps.config.getTime('auth_failure_delay'), out.nodelay)); }
      return this.goElsewhere(route, out.user, mech);
    }
    if (out.result !== 'ok' || out.nologin) {
      if (out.result !== 'tempfail') this.deps.penalty?.failed(this.deps.rip);
      await sleep(failureDelayMs(this.deps.config.getTime('auth_failure_delay'), out.nodelay));
      this.authFailed(login, mech, out.result === 'tempfail', out.reason);
      return;
    }
    this.deps.penalty?.succeeded(this.deps.rip);
    const u = await auth.lookupUser(out.user, info, out.userdbFields, true);
    if (u.result !== 'ok') { this.write(`-ERR [SYS/TEMP] ${INTERNAL}\r\n`); return; }
    if (!await this.admit(u.user, mech)) return;
    this.progress.logLogin(this.loginLog, this.conn(), u.user, mech, process.pid);
    await this.openMaildrop(u.user, u.fields, password, this.loginSession);
  }

  /** A failed authentication as pop3-login answers it. */
  authFailed(login: string, mech: string, temp: boolean, reason?: string): void {
    this.progress.failed(login, temp);
    if (temp) { this.write('-ERR [SYS/TEMP] Temporary authentication failure.\r\n'); return; }
    const text = reason ?? 'Authentication failed.';
    this.write(text.startsWith('[') ? `-ERR ${text}\r\n` : `-ERR [AUTH] ${text}\r\n`);
  }

  /**
   * The master's verdict on the counts after a successful authentication
   * (login-common's anvil check: `-ERR [IN-USE] Maximum number of
   * connections from user+IP exceeded …`, as dovecot-pop3d
   * 2.3.19 answers); false when refused (closing).
   */
  async admit(user: string, mech: string): Promise<boolean> {
    const verdict = this.deps.slot ? await this.deps.slot.admit(user) : 'ok';
    if (verdict === 'ok') return true;
    if (verdict === 'userip') {
      const text = userIpText(maxUserIpConnections(this.deps.config, 'pop3', { rip: this.deps.rip, lip: this.deps.lip }));
      this.progress.logRefused(this.loginLog, this.conn(), text, user, mech);
      this.hangUp(`-ERR [IN-USE] ${text}`);
    } else {
      this.loginLog.error(`master(pop3): destination service { process_limit } reached (rip=${this.deps.rip})`);
      this.progress.logRefused(this.loginLog, this.conn(), 'Internal login failure', user, mech);
      this.hangUp('-ERR [SYS/TEMP] Internal login failure. Refer to server log for more information.');
    }
    return false;
  }

  /** pop3's client_init_session: "+OK Logged in." (after the session lock when pop3_lock_session), then INBOX. */
  private async openMaildrop(user: string, fields: Fields, password: string, session?: string): Promise<void> {
    this.user = user;
    this.log = Logger.forUser('pop3', user, session);
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    this.touch();
    const r: Pop3OpenResult = await openPop3User(this.deps.config, user, fields, password, () => {
      // without pop3_lock_session the reply comes before the (possibly slow) INBOX scan, as in Dovecot
      this.write('+OK Logged in.\r\n');
    });
    if (this.closed) { await r.drop?.close(); return; }
    if (!r.drop) {
      this.log.error(r.error);
      this.hangUp(r.reply);
      return;
    }
    this.drop = r.drop;
    this.tx = new Pop3Transaction(r.drop, { write: (b) => this.write(b), drained: () => this.drained() }, this.deps.config.getBool('pop3_enable_last', { protocol: 'pop3' }));
  }

  /** A login process's answer to a login it ended (deps.login). */
  reply(text: string): void { this.write(text); }

  /**
   * A login process gives the connection away after authentication: no
   * more reading, no timers; `input` is what the client pipelined after
   * its PASS/AUTH, for the mail process.
   */
  detach(): { stream: Duplex; input: Buffer } {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    stopReading(this.stream);
    const input = this.buf;
    this.buf = Buffer.alloc(0);
    return { stream: this.stream, input };
  }

  /** Logged in and the INBOX open (tests, the login process's bookkeeping). */
  get loggedIn(): boolean { return this.tx !== null; }
}

/** What pop3-login's client_read_cmd_name consumes of a line: the name (at most 8 bytes) and one space after it. */
function commandNameBytes(buf: Buffer): number {
  let i = 0;
  while (i < buf.length && i < 8 && buf[i] !== 0x20 && buf[i] !== 0x0a && buf[i] !== 0) i++;
  return buf[i] === 0x20 ? i + 1 : i;
}

function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
}
