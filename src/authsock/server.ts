/**
 * Dovecot's auth client protocol (auth-client-protocol, spec
 * ispmail-integration.md §2) as Postfix speaks it for `smtpd_sasl_type =
 * dovecot`: the VERSION/MECH/SPID/CUID/COOKIE/DONE handshake, AUTH with
 * PLAIN and LOGIN (SASL initial response in `resp=`), CONT, OK/FAIL with
 * Dovecot's fields, failures answered after auth_failure_delay, and the
 * connection dropped on protocol errors exactly where Dovecot drops it
 * (unknown mechanism, missing service, duplicate id, wrong major version).
 */
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { AuthEngine } from '../auth/engine.js';
import type { Fields } from '../auth/databases.js';
import { AuthPenalty, failureDelayMs } from '../auth/penalty.js';
import { plaintextMechanisms } from '../auth/mechanisms.js';
import type { DovecotConfig } from '../config/settings.js';
import type { Logger } from '../log/logger.js';
import { faultText, guarded } from '../util/fault.js';
import { proxyReplyFields, referralFields } from '../auth/proxy-fields.js';

let cuidCounter = 0;
/** Dovecot's AUTH_CLIENT_MAX_LINE_LENGTH: a longer line is a protocol error (disconnect). */
const MAX_LINE = 8192;
const unescape = (v: string) => v.replace(/\x01(.)/g, (_m, c: string) => (c === 't' ? '\t' : c === 'n' ? '\n' : c === '1' ? '\x01' : c));
const escape = (v: string) => v.replace(/[\x01\t\n]/g, (c) => (c === '\t' ? '\x01t' : c === '\n' ? '\x01n' : '\x011'));

interface Pending { mech: 'PLAIN' | 'LOGIN'; step: number; user?: string; info: Record<string, string> }

export class AuthClientSession {
  private buf = '';
  private pending = new Map<string, Pending>();
  private handshakeDone = false;
  private minor = 0;
  private cpid = false;
  private closed = false;

  private readonly cuid = ++cuidCounter;

  /**
   * `onLogin`: told each successful login's passdb-given userdb fields
   * (userdb_*), by this connection's CUID and the request id, for the userdb
   * lookup that follows it (as Dovecot's auth master REQUEST finds the
   * finished request by them).
   */
  constructor(private readonly sock: Duplex, private readonly config: DovecotConfig, private readonly engine: AuthEngine,
    private readonly penalty: AuthPenalty, private readonly log: Logger, private readonly onLogin?: (cuid: number, id: string, userdbFields: Fields) => void) {
    const mechs = plaintextMechanisms(config);
    const lines = ['VERSION\t1\t2', ...mechs.map((m) => `MECH\t${m}\tplaintext`), `SPID\t${process.pid}`, `CUID\t${this.cuid}`, `COOKIE\t${randomBytes(16).toString('hex')}`, 'DONE'];
    sock.write(lines.join('\n') + '\n');
    sock.setEncoding?.('utf8');
    sock.on('data', guarded((e) => this.fault(e), (d: string | Buffer) => this.onData(d.toString())));
    sock.on('close', () => { this.closed = true; });
    sock.on('error', () => { this.closed = true; });
  }

  private mechs(): Set<string> {
    return new Set(this.config.get('auth_mechanisms').toUpperCase().split(/\s+/).filter(Boolean));
  }

  private drop(why: string): void {
    this.log.error(`BUG: Authentication client sent ${why}: disconnecting`);
    this.closed = true;
    this.sock.destroy();
  }

  /** The connection's fault boundary: an exception ends this client connection (Postfix reconnects), never the process. */
  private fault(e: unknown): void {
    this.log.error(`auth client: Internal error: ${faultText(e)}`);
    this.closed = true;
    this.sock.destroy();
  }

  private send(line: string): void { if (!this.closed) this.sock.write(line + '\n'); }

  private onData(d: string): void {
    this.buf += d;
    let i;
    while (!this.closed) {
      i = this.buf.indexOf('\n');
      if ((i < 0 ? this.buf.length : i) > MAX_LINE) { this.drop(`a line over ${MAX_LINE} bytes`); return; }
      if (i < 0) break;
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 1);
      this.line(line).catch((e) => this.fault(e));
    }
  }

  private async line(line: string): Promise<void> {
    const f = line.split('\t');
    switch (f[0]) {
      case 'VERSION':
        if (f[1] !== '1') this.drop(`an unsupported protocol version ${f[1]}`);
        this.handshakeDone = true;
        this.minor = Number(f[2] ?? 0);
        return;
      case 'CPID':
        if (this.cpid) { this.drop('CPID twice'); return; }
        this.cpid = true;
        return;
      case 'AUTH': {
        const [, id, mechRaw, ...params] = f;
        const mech = (mechRaw ?? '').toUpperCase();
        if (!this.cpid) { this.drop('AUTH before CPID'); return; }
        if (!id || this.pending.has(id)) { this.drop('a duplicate or missing request id'); return; }
        if (!this.mechs().has(mech) || (mech !== 'PLAIN' && mech !== 'LOGIN')) { this.drop(`an unsupported authentication mechanism ${mechRaw}`); return; }
        const info: Record<string, string> = {};
        let resp: string | undefined;
        for (const p of params) {
          const eq = p.indexOf('=');
          const k = eq < 0 ? p : p.slice(0, eq);
          const v = eq < 0 ? '' : unescape(p.slice(eq + 1));
          if (k === 'resp') resp = v; else info[k] = v;
        }
        if (!info.service) { this.drop('an AUTH without service'); return; }
        const p: Pending = { mech: mech as 'PLAIN' | 'LOGIN', step: 0, info };
        this.pending.set(id, p);
        // protocol minor < 2: an empty resp= means no initial response and "=" an empty one; from 1.2 on resp= is the (empty) response
        if (resp !== undefined && (resp !== '' || this.minor >= 2)) await this.step(id, p, resp === '=' ? '' : resp, 'initial');
        else if (mech === 'PLAIN') this.send(`CONT\t${id}\t`);
        else this.send(`CONT\t${id}\t${Buffer.from('Username:').toString('base64')}`);
        return;
      }
      case 'CONT': {
        const p = this.pending.get(f[1]);
        // Dovecot answers a continuation of a request it no longer has as a timed-out one
        if (!p) { this.send(`FAIL\t${f[1]}\treason=Authentication request timed out`); return; }
        await this.step(f[1], p, f[2] ?? '', 'continued');
        return;
      }
      case 'CANCEL': this.pending.delete(f[1]); return;
      default:
        this.drop(this.handshakeDone ? `an unknown command ${f[0]}` : 'garbage before VERSION');
    }
  }

  private async step(id: string, p: Pending, b64: string, which: 'initial' | 'continued'): Promise<void> {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) {
      this.pending.delete(id);
      this.send(`FAIL\t${id}\tcode=invalid_base64\treason=Invalid base64 data in ${which} response`);
      return;
    }
    const data = Buffer.from(b64, 'base64').toString('utf8');
    if (p.mech === 'LOGIN' && p.step === 0) {
      p.user = data; p.step = 1;
      this.send(`CONT\t${id}\t${Buffer.from('Password:').toString('base64')}`);
      return;
    }
    let user: string;
    let password: string;
    let loginUser: string | undefined;
    if (p.mech === 'LOGIN') { user = p.user ?? ''; password = data; } else {
      const parts = data.split('\0');
      if (parts.length !== 3) { this.pending.delete(id); await this.fail(id, '', p.info); return; }
      const [authz, authc, pw] = parts;
      // an empty authcid: Dovecot's FAIL names the empty user and original user
      if (!authc) { this.pending.delete(id); await this.fail(id, '', p.info, false, undefined, '\tuser=\toriginal_user='); return; }
      user = authc; password = pw;
      // an authzid other than the authcid: a master user login (the engine refuses it without master passdbs)
      if (authz && authz !== authc) loginUser = authz;
    }
    this.pending.delete(id);
    const rip = p.info.rip;
    const wait = this.penalty.delayBefore(rip);
    if (wait && !('no-penalty' in p.info)) await new Promise((r) => setTimeout(r, wait));
    const a = await this.engine.authenticate(user, password, { service: p.info.service, rip, lip: p.info.lip, secured: 'secured' in p.info, mech: p.mech, loginUser, session: p.info.session, validClientCert: 'valid-client-cert' in p.info });
    // auth_ssl_require_client_cert: Dovecot's FAIL carries only the reason, at once (auth_request_handler_auth_fail)
    if (a.clientCertRefused) { this.send(`FAIL\t${id}\treason=${escape(a.reason ?? '')}`); return; }
    // a master login names the master as original_user and auth_user, as Dovecot's auth does
    const master = a.masterUser !== undefined ? `\toriginal_user=${escape(a.masterUser)}\tauth_user=${escape(a.masterUser)}` : undefined;
    if (a.result === 'ok' && !a.nologin) {
      this.penalty.succeeded(rip);
      this.onLogin?.(this.cuid, id, a.userdbFields);
      const extra = master ?? (a.user !== user ? `\t\toriginal_user=${escape(user)}` : '');
      // a proxied login: where to, and the password for the backend (the login process proxies, auth-request-handler.c)
      const proxy = proxyReplyFields(a.rawFields ?? a.fields, {
        user: a.user, password, masterUser: a.masterUser, lip: p.info.lip ?? '', lport: Number(p.info.lport) || 0,
        selfIps: this.config.get('auth_proxy_self').split(/\s+/).filter(Boolean), defaultPort: 0, defaultSslPort: 0,
      });
      this.send(`OK\t${id}\tuser=${escape(a.user)}${extra}${replyFields(proxy)}`);
      return;
    }
    if (a.result === 'tempfail') { this.send(`FAIL\t${id}\tuser=${escape(a.user)}\ttemp`); return; }
    this.penalty.failed(rip);
    // the master's password was right, the user is not in the passdbs (pass = yes): an authorization failure
    const referral = a.result === 'ok' ? replyFields(referralFields(a.rawFields ?? a.fields, a.nologin)) : '';
    await this.fail(id, a.user, p.info, a.nodelay, a.reason, master ? `\tuser=${escape(a.user)}\tcode=authz_fail${master}` : referral ? `\tuser=${escape(a.user)}${referral}` : undefined);
  }

  private async fail(id: string, user: string, _info: Record<string, string>, nodelay = false, reason?: string, fields?: string): Promise<void> {
    const delay = failureDelayMs(this.config.getTime('auth_failure_delay'), nodelay);
    if (delay) await new Promise((r) => setTimeout(r, delay));
    this.send(`FAIL\t${id}${fields ?? (user ? `\tuser=${escape(user)}` : '')}${reason ? `\treason=${escape(reason)}` : ''}`);
  }
}

/** Extra fields of an OK/FAIL line: `key=value`, a flag as its bare name. */
function replyFields(fields: Fields): string {
  return fields.map(([k, v]) => `\t${k}${v === '' && k !== 'pass' ? '' : `=${escape(v)}`}`).join('');
}
