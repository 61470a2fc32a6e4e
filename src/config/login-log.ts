/**
 * The log lines of Dovecot 2.3.19's login processes (imap-login, pop3-login,
 * managesieve-login), as login-common/client-common.c makes them:
 *
 *   Login: user=<u>, method=PLAIN, rip=…, lip=…, mpid=…, TLS, session=<…>
 *   Disconnected: Aborted login by logging out (auth failed, 2 attempts in 5 secs): user=<u>, method=PLAIN, rip=…, lip=…, secured, session=<…>
 *
 * client_get_log_str: each space-separated element of
 * `login_log_format_elements` is expanded; one whose %variables all came out
 * empty is left out (unless it names the user, %u or %n, which is kept even
 * empty: `user=<>`); the rest are joined with ", " into %s of
 * `login_log_format`, whose %$ is the message. %c is "TLS" on a TLS
 * connection, "secured" on one Dovecot trusts anyway (login_trusted_networks,
 * or from the server's own address), else empty. The session id is
 * client_get_session_id's: 48 bits of the microsecond clock, the client's
 * port, its address, base64 (16 characters for IPv4).
 */
import type { ClientCert } from '../util/tls-client-cert.js';
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import type { DovecotConfig } from './settings.js';
import { expandVars, type VarTable } from './vars.js';

export type LoginService = 'imap' | 'pop3' | 'sieve';

/** What a login process knows of a connection for its log lines. */
export interface LoginConn {
  config: DovecotConfig;
  service: LoginService;
  rip: string;
  lip: string;
  /** TLS (imaps, STARTTLS, or a proxy's TLS it was told of). */
  tls: boolean;
  /** login_trusted_networks. */
  trusted?: boolean;
  /** The TLS handshake failed with this error (%c: `TLS handshaking: <error>`). */
  tlsError?: string;
  /** The TLS client certificate (util/tls-client-cert.ts); undefined when TLS is not this process's. */
  clientCert?: ClientCert;
  rport?: number;
  lport?: number;
}

/** login_binary->protocol: what %s is in the login processes. */
const PROTOCOL: Record<LoginService, string> = { imap: 'imap', pop3: 'pop3', sieve: 'sieve' };

/** The login process's session id for a connection (client_get_session_id). */
export function newLoginSessionId(rip: string, rport = randomBytes(2).readUInt16LE(0)): string {
  const buf = Buffer.alloc(8);
  const now = BigInt(Date.now()) * 1000n + BigInt(Math.floor((performance.now() % 1) * 1000));
  for (let i = 0; i < 6; i++) buf[i] = Number((now >> BigInt(8 * i)) & 0xffn);
  buf.writeUInt16LE(rport & 0xffff, 6);
  return Buffer.concat([buf, ipBytes(rip)]).toString('base64').replace(/=+$/, '');
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  if (isIP(ip) === 6) {
    const [head, tail = ''] = ip.split('::');
    const h = head ? head.split(':') : [];
    const tl = tail ? tail.split(':') : [];
    const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - tl.length).fill('0'), ...tl] : h;
    const out = Buffer.alloc(16);
    groups.slice(0, 8).forEach((g, i) => out.writeUInt16BE(parseInt(g, 16) & 0xffff, i * 2));
    return out;
  }
  return Buffer.alloc(4);
}

/** The variables of login-common's get_var_expand_table that Sealmail knows. */
function loginVars(c: LoginConn, user: string | undefined, mech: string, mpid: number, session: string): VarTable {
  const secured = c.tlsError !== undefined ? `TLS handshaking: ${c.tlsError}` : c.tls ? 'TLS' : c.trusted || c.rip === c.lip ? 'secured' : '';
  return {
    user: user ?? '', service: PROTOCOL[c.service], home: '', lip: c.lip, rip: c.rip, pid: String(process.pid),
    mech, lport: c.lport === undefined ? '' : String(c.lport), rport: c.rport === undefined ? '' : String(c.rport),
    secured, ssl_security: '', mail_pid: mpid ? String(mpid) : '', session,
    real_lip: c.lip, real_rip: c.rip, real_lport: c.lport === undefined ? '' : String(c.lport), real_rport: c.rport === undefined ? '' : String(c.rport),
    orig_user: user ?? '', auth_user: user ?? '', listener: '', local_name: '',
    local_ip: c.lip, remote_ip: c.rip, local_port: c.lport === undefined ? '' : String(c.lport), remote_port: c.rport === undefined ? '' : String(c.rport),
    mechanism: mech, original_user: user ?? '',
  };
}

/** Every variable empty: an element expanding to the same as with this table had only empty variables. */
function emptyVars(vars: VarTable): VarTable {
  return Object.fromEntries(Object.keys(vars).map((k) => [k, '']));
}

/** %u or %n (also as %{user}/%{username}) in an element: kept even when empty. */
const namesUser = (e: string) => /%[-0-9.]*[A-Z]*(?:[un]|\{(?:user|username)\})/.test(e);

/** `msg` as the login process logs it for this connection: login_log_format with its elements. */
export function loginLogLine(c: LoginConn, msg: string, who: { user?: string; mech?: string; mpid?: number; session: string }): string {
  const protocol = c.service;
  const elements = c.config.get('login_log_format_elements', { protocol, localIp: c.lip, remoteIp: c.rip });
  const vars = loginVars(c, who.user, who.mech ?? '', who.mpid ?? 0, who.session);
  const empty = emptyVars(vars);
  const parts: string[] = [];
  for (const e of elements.split(' ').filter(Boolean)) {
    const v = expandVars(e, vars);
    if (!namesUser(e) && v === expandVars(e, empty)) continue;
    parts.push(v);
  }
  const format = c.config.get('login_log_format', { protocol, localIp: c.lip, remoteIp: c.rip });
  return expandPercentMsg(format, parts.join(', '), msg);
}

/** login_log_format knows only %s (the elements) and %$ (the message); %% is a percent sign. */
function expandPercentMsg(format: string, s: string, msg: string): string {
  return format.replace(/%([s$%])/g, (_m, k: string) => (k === 's' ? s : k === '$' ? msg : '%'));
}
