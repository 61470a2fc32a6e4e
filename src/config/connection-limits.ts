/**
 * The connection limits and deadlines Dovecot 2.3.19 applies to IMAP and
 * ManageSieve, read from the configuration as Dovecot's master and login
 * processes compute them:
 *
 * - unauthenticated connections: `service imap-login` / `managesieve-login`
 *   `client_limit` × `process_limit` (0 = `default_client_limit` /
 *   `default_process_limit`; `client_limit` is capped by a non-zero
 *   `service_count`, so the default login service holds 1 × 100). When full
 *   the oldest unauthenticated connection is dropped (client_destroy_oldest).
 * - logged-in sessions: `service imap` / `managesieve`, the same product
 *   (Dovecot's imap: 1 × 1024; managesieve: 1 × default_process_limit).
 * - `mail_max_userip_connections` (default 10, `protocol imap {}` /
 *   `protocol sieve {}` filters apply) per user and remote IP, per protocol.
 * - the login deadline: 3 minutes from connect, whatever the client sends
 *   (MASTER_LOGIN_TIMEOUT_SECS, not a setting); the logged-in idle deadline
 *   (autologout): 30 minutes without input (CLIENT_IDLE_TIMEOUT_MSECS of
 *   imap and managesieve, not a setting either).
 *
 * Neither deadline is a Dovecot setting, so tests shorten them through two
 * environment variables read once when this module loads:
 * SEALMAIL_TEST_LOGIN_TIMEOUT_MS and SEALMAIL_TEST_IDLE_TIMEOUT_MS (for
 * tests only; never set them in production).
 */
import type { DovecotConfig } from './settings.js';
import type { Logger } from '../log/logger.js';
import { loginLogLine, newLoginSessionId, type LoginConn } from './login-log.js';
import { PLUGIN_SERVICE_DEFAULTS, SERVICE_DEFAULTS } from './known-settings.js';

/** Dovecot's MASTER_LOGIN_TIMEOUT_SECS: an unauthenticated connection's whole life. */
const LOGIN_TIMEOUT_MS = 3 * 60_000;
/** imap's and managesieve's CLIENT_IDLE_TIMEOUT_MSECS (RFC 3501 §5.4: at least 30 minutes). */
const IDLE_TIMEOUT_MS = 30 * 60_000;

function testHook(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name}: not a positive number of milliseconds: ${v}`);
  return n;
}

export const DEADLINES = {
  loginMs: testHook('SEALMAIL_TEST_LOGIN_TIMEOUT_MS', LOGIN_TIMEOUT_MS),
  idleMs: testHook('SEALMAIL_TEST_IDLE_TIMEOUT_MS', IDLE_TIMEOUT_MS),
} as const;

export interface ServiceLimit {
  service: string;
  /** client_limit × process_limit as the master enforces it. */
  cap: number;
  /** The master's warning when the cap is hit (service_log_drop_warning's wording). */
  warning: string;
}

function uint(v: string | undefined, what: string): number {
  const n = Number(v ?? '0');
  if (!Number.isInteger(n) || n < 0) throw new Error(`${what}: invalid number ${v}`);
  return n;
}

/** A service's connection capacity, as src/master/service.c computes it. */
export function serviceLimit(config: DovecotConfig, service: string): ServiceLimit {
  // Pigeonhole's services have their built-in defaults in known-settings.ts, also when the config has no section
  const set = config.services().find((s) => s.name === service)?.settings ?? { ...SERVICE_DEFAULTS, ...PLUGIN_SERVICE_DEFAULTS[service] };
  const num = (k: string) => uint(set[k], `service(${service}): ${k}`);
  const serviceCount = num('service_count');
  let client = num('client_limit') || uint(config.get('default_client_limit'), 'default_client_limit');
  if (serviceCount > 0 && client > serviceCount) client = serviceCount;
  const process = num('process_limit') || uint(config.get('default_process_limit'), 'default_process_limit');
  const [name, limit] = process > 1 ? ['process_limit', process] : serviceCount === 1 ? ['client_limit/service_count', 1] : ['client_limit', client];
  return { service, cap: client * process, warning: `service(${service}): ${name} (${limit}) reached, client connections are being dropped` };
}

/** The two ends of a connection, for `local` / `remote` filters. */
export interface ConnectionAddresses { rip: string; lip: string }

/**
 * mail_max_userip_connections for a protocol ("imap", "sieve") and a
 * connection (the login process reads its settings per connection, so
 * `remote` / `local` filters apply); 0 = no limit.
 */
export function maxUserIpConnections(config: DovecotConfig, protocol: string, conn?: ConnectionAddresses): number {
  const ctx = { protocol, remoteIp: conn?.rip || undefined, localIp: conn?.lip || undefined };
  return uint(config.get('mail_max_userip_connections', ctx), 'mail_max_userip_connections');
}

/** Everything the master needs to admit connections of one protocol. */
export interface ProtocolLimits {
  protocol: string;
  login: ServiceLimit;
  sessions: ServiceLimit;
  userip: (conn: ConnectionAddresses) => number;
}

export function protocolLimits(config: DovecotConfig, protocol: 'imap' | 'sieve' | 'pop3'): ProtocolLimits {
  const [login, mail] = protocol === 'imap' ? ['imap-login', 'imap'] : protocol === 'pop3' ? ['pop3-login', 'pop3'] : ['managesieve-login', 'managesieve'];
  return { protocol, login: serviceLimit(config, login), sessions: serviceLimit(config, mail), userip: (conn) => maxUserIpConnections(config, protocol, conn) };
}

/**
 * What the master answers a login that authenticated: `ok` (the session is
 * counted), `userip` (mail_max_userip_connections reached), `full` (the
 * logged-in service's client_limit × process_limit reached).
 */
export type Admission = 'ok' | 'userip' | 'full';

/** One connection's place in the master's count (see src/server/connection-table.ts). */
export interface ConnectionSlot {
  /** After a successful authentication: may this user's session start? Counted when `ok`. */
  admit(user: string): Promise<Admission>;
  /** The connection ended (idempotent). */
  release(): void;
}

/** Dovecot's reply text for a refused `userip` login (login-common/sasl-server.c). */
export function userIpText(max: number): string {
  return `Maximum number of connections from user+IP exceeded (mail_max_userip_connections=${max})`;
}

/**
 * What a login process remembers of a connection for its log lines
 * (login-common's client_get_extra_disconnect_reason and login_log_format,
 * config/login-log.ts): its age, its authentication attempts, the last
 * user and mechanism tried, its session id. The line that ends a connection
 * that never logged in is logged once, when it ends, not per attempt.
 */
export class LoginProgress {
  private readonly created = Date.now();
  private attempts = 0;
  private started = 0;
  private mech = '';
  private user: string | undefined;
  private done = false;
  private id = '';

  /** Dovecot's session=<…> for this connection (made on first use); handed to the mail process with the login. */
  /** A trusted proxy named the session (XCLIENT SESSION=…): its id is this connection's. */
  adoptSession(id: string): void { this.id = id; }

  session(conn: Pick<LoginConn, 'rip' | 'rport'>): string {
    if (!this.id) this.id = newLoginSessionId(conn.rip, conn.rport);
    return this.id;
  }

  /** A LOGIN / AUTHENTICATE began. */
  attempt(mech: string): void {
    if (this.attempts++ === 0) this.started = Date.now();
    this.mech = mech;
  }

  private temp = false;

  /** The passdb refused `user` (the user the failure line names); `temp`: a temporary failure. */
  failed(user: string, temp = false): void { this.user = user; this.temp = temp; }

  private successes = 0;
  private proxyAuthFailed = false;

  /**
   * The passdb accepted `user` but the login went no further here (a proxy
   * that failed, a referral: auth_successes); `proxyAuth`: the proxy's
   * backend refused the login (proxy_auth_failed).
   */
  succeeded(user: string, proxyAuth = false): void { this.user = user; this.successes++; if (proxyAuth) this.proxyAuthFailed = true; }

  /** The connection ends without a disconnect line (a proxied login refused before connecting: Dovecot logs only the error). */
  silence(): void { this.done = true; }

  /** Whether the connection's last line (login or disconnect) was logged. */
  get ended(): boolean { return this.done; }

  /** `Login: user=<…>, method=…, rip=…, lip=…, mpid=…, TLS, session=<…>`; nothing more is logged for this connection. */
  logLogin(log: Logger, conn: LoginConn, user: string, mech: string, mpid: number): void {
    this.done = true;
    log.info(loginLogLine(conn, 'Login', { user, mech, mpid, session: this.session(conn) }));
  }

  /** A login the passdb accepted but that goes no further (mail_max_userip_connections, a full service): its last line. */
  logRefused(log: Logger, conn: LoginConn, reason: string, user: string, mech: string): void {
    this.done = true;
    log.info(this.line(conn, `Disconnected: ${reason}`, user, mech));
  }

  /** `msg` with this connection's elements, as the login process logs anything about it (a refused login). */
  line(conn: LoginConn, msg: string, user?: string, mech?: string): string {
    return loginLogLine(conn, msg, { user: user ?? this.user, mech: mech ?? this.mech, session: this.session(conn) });
  }

  /**
   * `Disconnected: <reason> (<why>): user=<…>, method=…, rip=…, lip=…[, TLS], session=<…>`;
   * `inSasl`: waiting for the client's SASL response; no reason: `Disconnected (<why>): …`
   * (a failed TLS handshake). Nothing once the connection's last line was logged.
   */
  logDisconnect(log: Logger, reason: string, inSasl: boolean, conn: LoginConn): void {
    if (this.done) return;
    this.done = true;
    const now = Date.now();
    const secs = (t: number) => Math.floor((now - t) / 1000);
    // auth_ssl_require_client_cert names the certificate first (client_get_extra_disconnect_reason)
    const requireCert = conn.config.getBool('auth_ssl_require_client_cert');
    const why = requireCert && conn.clientCert === 'invalid' ? '(client sent an invalid cert)'
      : requireCert && conn.clientCert === 'none' ? "(client didn't send a cert)"
      : this.attempts === 0 ? `(no auth attempts in ${secs(this.created)} secs)`
      : requireCert && conn.clientCert === undefined ? "(cert required, client didn't start TLS)"
      : inSasl && this.attempts === 1 ? `(client didn't finish SASL auth, waited ${secs(this.started)} secs)`
      : this.proxyAuthFailed ? '(proxy dest auth failed)'
      : this.successes > 0 ? `(internal failure, ${this.successes} successful auths)`
      : this.temp ? '(auth service reported temporary failure)'
      : `(auth failed, ${this.attempts} attempts in ${secs(this.started)} secs)`;
    log.info(this.line(conn, reason ? `Disconnected: ${reason} ${why}` : `Disconnected ${why}`));
  }
}
