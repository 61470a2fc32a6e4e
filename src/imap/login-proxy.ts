/**
 * imap-login's side of a proxied login (Dovecot 2.3.19 imap-login/
 * imap-proxy.c, login-common/client-common-auth.c): the passdb said
 * `proxy`, so the session is logged in on the backend instead of here.
 * Pipelined as Dovecot does it: after the backend's banner, `I ID (…)` with
 * the client's address, ports, session id and x-proxy-ttl (when the banner
 * announces ID and the route is not `proxy_not_trusted`), `S STARTTLS`
 * (`starttls`), `C CAPABILITY` (when the banner has none, or the client asked
 * for CAPABILITY itself), then `L LOGIN user pass`, or `L AUTHENTICATE
 * PLAIN` for a master-user login. The backend's `L OK` becomes the client's
 * tagged OK (with the capabilities), and from then on the bytes are relayed
 * both ways (util/login-proxy.ts). A failure gets Dovecot's replies: `NO
 * [UNAVAILABLE] Account is temporarily unavailable.` (backend down, invalid
 * input, timeout), `NO [SERVERBUG] …` (the backend's configuration, a
 * loop), the backend's own `NO [code]`, or `NO [AUTHENTICATIONFAILED]
 * Authentication failed.` in place of a failure text that could tell which
 * users exist; connect and protocol failures are retried as
 * login_proxy_max_reconnects allows. A `nologin` + `host` passdb reply is a
 * `NO [REFERRAL imap://…]` (RFC 2221).
 */
import { lookup } from 'node:dns/promises';
import type { ProxyRoute, Referral } from '../auth/proxy-fields.js';
import { loginLogLine } from '../config/login-log.js';
import { LOGIN_PROXY_FAILURE_MSG, ProxyFailure, failurePrefix, proxyStartRefusal, relay, runProxyLogin, sanitizeLine, type BackendConnection, type ProxyFailureType } from '../util/login-proxy.js';
import type { Session } from './session.js';

const AUTH_FAILED_MSG = 'Authentication failed.';

interface Who { user: string; mech: string }

/** The proxy's log lines: login_log_format around `proxy(user,ip:port): …`. */
function proxyLog(s: Session, who: Who, route: ProxyRoute, level: 'info' | 'error', msg: string): void {
  const prefix = route.ip ? `proxy(${who.user},${route.ip}:${route.port}): ` : `proxy(${who.user}): `;
  const line = loginLogLine(s.loginConn(), prefix + msg, { user: who.user, mech: who.mech, session: s.loginSession });
  s.opts.login.log[level](line);
}

/** imap_append_string for the LOGIN arguments: a quoted string (CR, LF and NUL never reach here). */
function quoted(v: string): string {
  return `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** Dovecot's uri_append_user_data for a referral's user (";" and ":" escaped too, lowercase hex). */
function uriUser(v: string): string {
  let out = '';
  for (const b of Buffer.from(v, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-._~!$&'()*+,=]/.test(c) ? c : `%${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** `NO [REFERRAL imap://user;AUTH=mech@host[:port]/] reason` (imap-login client_auth_result). */
export async function referImapLogin(s: Session, tag: string, r: Referral, who: Who): Promise<void> {
  const url = `imap://${uriUser(r.destuser)};AUTH=${uriUser(who.mech)}@${r.host}${r.port !== 143 ? `:${r.port}` : ''}/`;
  s.authSucceededElsewhere(who.user);
  await s.send({ kind: 'tagged', tag, status: 'NO', code: { name: 'REFERRAL', args: url }, text: r.reason ?? 'Try this server instead.' });
}

/** imap_proxy_get_state: what was sent and not yet answered / what came last. */
class ProxyState {
  sent = new Set<string>();
  rcvd = 'none';
  toString(): string {
    const order = ['id', 'starttls', 'capability', 'authenticate', 'auth-continue', 'login'];
    return `${order.filter((n) => this.sent.has(n)).join('+')}/${this.rcvd}`;
  }
}

/**
 * Log the session in on the route's backend and, when it says OK, relay
 * the connection there. Every failure is answered to the client here.
 */
export async function proxyImapLogin(s: Session, tag: string, route: ProxyRoute, who: Who): Promise<void> {
  const config = s.config;
  if (route.host && !route.ip && !route.badHostip) {
    // a host name without hostip: Dovecot's auth resolves it (auth_request_proxy_host_lookup); here the login process does
    try {
      route = { ...route, ip: (await lookup(route.host)).address };
    } catch (e) {
      proxyLog(s, who, route, 'error', `DNS lookup for ${route.host} failed: ${(e as Error).message}`);
      s.authSucceededElsewhere(who.user);
      await failureReply(s, tag, 'internal', '');
      return;
    }
  }
  const refused = proxyStartRefusal(route, { lip: s.opts.lip, lport: s.ports.lport, user: who.user, ttl: s.proxyTtl });
  // errors found before connecting never log the ip:port prefix Dovecot adds only once connecting
  if (refused) {
    // proxy_check_start's refusals are logged as they are; the TTL check is login_proxy_failed's, with its prefix
    proxyLog(s, who, refused.type === 'internal' ? { ...route, ip: null } : route, 'error', (refused.type === 'internal' ? '' : failurePrefix(refused.type)) + refused.reason);
    s.authSucceededElsewhere(who.user);
    if (refused.type === 'internal') s.silenceLoginLog(); // as Dovecot: the error is the connection's last line
    await failureReply(s, tag, refused.type, refused.reason);
    return;
  }
  const r = route;
  await runProxyLogin({
    route: r, user: who.user, config,
    log: (level, msg) => proxyLog(s, who, r, level, msg),
    isClosed: () => s.isClosed,
    newState: () => new ProxyState(),
    dialogue: (b, state, started) => dialogue(s, tag, r, who, b, state, started),
    failed: async (type, reason) => {
      s.authSucceededElsewhere(who.user, type === 'auth' || type === 'auth-tempfail');
      await failureReply(s, tag, type, reason);
    },
    proxying: async (ok, b) => {
      await s.writeRaw(ok);
      const { stream, input } = s.detach();
      relay(stream, input, b, b.takeRest(), {
        // Dovecot's in=/out= count the whole connection: what went to the backend, what went to the client
        sentToBackend: b.bytesWritten, sentToClient: s.bytesOut,
        maxDisconnectDelaySecs: config.getTime('login_proxy_max_disconnect_delay') / 1000,
        log: (line) => proxyLog(s, who, r, 'info', line),
        done: () => s.opts.slot?.release(),
      });
    },
  });
}

/** imap_proxy_send_failure_reply. */
async function failureReply(s: Session, tag: string, type: ProxyFailureType, reason: string): Promise<void> {
  switch (type) {
    case 'auth': return; // answered as the backend's line came
    case 'auth-tempfail': await s.writeRaw(`${tag} NO ${reason}\r\n`); return;
    case 'remote-config': case 'internal-config':
      await s.send({ kind: 'tagged', tag, status: 'NO', code: { name: 'SERVERBUG' }, text: LOGIN_PROXY_FAILURE_MSG }); return;
    default:
      await s.send({ kind: 'tagged', tag, status: 'NO', code: { name: 'UNAVAILABLE' }, text: LOGIN_PROXY_FAILURE_MSG });
  }
}

const capsOf = (text: string) => text.split(' ').filter(Boolean);
const hasCap = (caps: string[] | null, c: string) => !!caps && caps.some((x) => x.toUpperCase() === c);

/**
 * The pre-login dialogue with the backend. Returns the client's tagged OK
 * line (with CRLF), or null when the backend refused the login (the client
 * has its answer); throws ProxyFailure otherwise.
 */
async function dialogue(s: Session, tag: string, route: ProxyRoute, who: Who, b: BackendConnection, state: ProxyState, started: number): Promise<string | null> {
  let capability: string | null = null;
  let saslIr = false;
  let loginDisabled = false;
  let capabilitySent = false;
  const ignoresCapCode = s.capabilityAskedBeforeLogin;
  const usePlain = route.master !== undefined || /[\r\n\0]/.test(route.destuser + route.password);

  const writeStartTls = (out: string[]): boolean => {
    if (!route.starttls) return false;
    if (capability !== null && !hasCap(capsOf(capability), 'STARTTLS')) throw new ProxyFailure('remote-config', 'STARTTLS not supported');
    out.push('S STARTTLS\r\n');
    state.sent.add('starttls');
    return true;
  };
  /** proxy_write_login; false: waiting for C OK first (proxy_nopipelining). */
  const writeLogin = (out: string[]): void => {
    if (!capabilitySent && (capability === null || ignoresCapCode)) {
      capabilitySent = true;
      state.sent.add('capability');
      out.push('C CAPABILITY\r\n');
      if (route.nopipelining) return;
    }
    if (!usePlain) {
      if (loginDisabled && !route.ssl) throw new ProxyFailure('remote-config', 'LOGINDISABLED advertised, but SSL/TLS not enabled');
      out.push(`L LOGIN ${quoted(route.destuser)} ${quoted(route.password)}\r\n`);
      state.sent.add('login');
      return;
    }
    const ir = Buffer.from(`${route.destuser}\0${route.master ?? route.destuser}\0${route.password}`).toString('base64');
    out.push(`L AUTHENTICATE PLAIN${saslIr ? ` ${ir}` : ''}\r\n`);
    state.sent.add('authenticate');
  };
  const plainResponse = Buffer.from(`${route.destuser}\0${route.master ?? route.destuser}\0${route.password}`).toString('base64');

  let seenBanner = false;
  for (;;) {
    const line = await b.readLine();
    if (line === null) {
      const secs = Math.floor((Date.now() - started) / 1000);
      throw new ProxyFailure('connect', `Disconnected by server: ${b.disconnectReason} (state=${state}, duration=${secs}s)`);
    }
    const out: string[] = [];
    if (!seenBanner) {
      seenBanner = true;
      state.rcvd = 'banner';
      if (!line.startsWith('* OK ')) throw new ProxyFailure('protocol', `Invalid banner: ${sanitizeLine(line)}`);
      if (line.slice(5).startsWith('[CAPABILITY ')) {
        const end = line.indexOf(']', 17);
        capability = line.slice(17, end < 0 ? undefined : end);
        const caps = capsOf(capability);
        saslIr = hasCap(caps, 'SASL-IR');
        loginDisabled = hasCap(caps, 'LOGINDISABLED');
        if (hasCap(caps, 'ID') && !route.notTrusted) {
          state.sent.add('id');
          out.push(idCommand(s));
          if (route.nopipelining) { b.write(out.join('')); continue; }
        }
      }
      if (!writeStartTls(out)) writeLogin(out);
      b.write(out.join(''));
      continue;
    }
    if (line.startsWith('+')) {
      if (!state.sent.has('authenticate')) continue; // a literal's continuation: ignored
      state.sent.delete('authenticate');
      state.rcvd = 'auth-continue';
      if (line !== '+' && line !== '+ ' && !/^\+ [A-Za-z0-9+/]*={0,2}$/.test(line)) throw new ProxyFailure('protocol', 'Invalid base64 data in AUTHENTICATE response');
      state.sent.add('auth-continue');
      b.write(`${plainResponse}\r\n`);
      continue;
    }
    if (line.startsWith('S ')) {
      state.sent.delete('starttls');
      state.rcvd = 'starttls';
      if (!line.startsWith('S OK ')) throw new ProxyFailure('remote', `STARTTLS failed: ${sanitizeLine(line.slice(5))}`);
      await b.startTls();
      writeLogin(out);
      b.write(out.join(''));
      continue;
    }
    if (line.startsWith('L OK ')) {
      state.sent.delete('login');
      state.rcvd = 'login';
      return loginReply(tag, capability, ignoresCapCode, line.slice(5));
    }
    if (line.startsWith('L ')) {
      state.sent.delete('login');
      state.rcvd = 'login';
      const rest = line.slice(2);
      const logLine = rest.slice(0, 3).toUpperCase() === 'NO ' ? rest.slice(3) : rest;
      if (rest.startsWith('NO [AUTHENTICATIONFAILED]')) {
        await s.send({ kind: 'tagged', tag, status: 'NO', code: { name: 'AUTHENTICATIONFAILED' }, text: AUTH_FAILED_MSG });
      } else if (rest.startsWith('NO [')) {
        const code = rest.slice(4, rest.indexOf(']') < 0 ? undefined : rest.indexOf(']'));
        if (code.toUpperCase() === 'UNAVAILABLE') throw new ProxyFailure('auth-tempfail', logLine);
        await s.writeRaw(`${tag} ${rest}\r\n`);
      } else {
        // no resp-code: hidden, as it could tell which users exist (the log has it)
        await s.send({ kind: 'tagged', tag, status: 'NO', code: { name: 'AUTHENTICATIONFAILED' }, text: AUTH_FAILED_MSG });
      }
      if (s.config.get('auth_verbose') === 'yes') {
        proxyLog(s, who, route, 'info', `Login failed${route.destuser !== who.user ? ` as user ${route.destuser}` : ''}${route.master ? ` (master ${route.master})` : ''}: ${logLine}`);
      }
      s.authSucceededElsewhere(who.user, true);
      return null;
    }
    if (line.toUpperCase().startsWith('* CAPABILITY ')) { capability = line.slice(13); continue; }
    if (line.startsWith('C ')) {
      state.sent.delete('capability');
      state.rcvd = 'capability';
      if (line.startsWith('C OK ') && !state.sent.has('authenticate') && !state.sent.has('login')) {
        writeLogin(out);
        b.write(out.join(''));
      }
      continue;
    }
    if (line.slice(0, 2).toUpperCase() === 'I ') {
      state.sent.delete('id');
      state.rcvd = 'id';
      if (route.nopipelining) {
        if (!writeStartTls(out)) writeLogin(out);
        b.write(out.join(''));
      }
      continue;
    }
    if (line.toUpperCase().startsWith('* ID ')) continue;
    if (line.startsWith('* BYE ')) continue; // not passed on: the client is not disconnected
    if (line.startsWith('* ')) { await s.writeRaw(`${line}\r\n`); continue; }
    proxyLog(s, who, route, 'error', `Unexpected input, ignoring: ${sanitizeLine(line)}`);
  }
}

/** client_send_login_reply: the backend's capabilities as the OK's code (or untagged, for a client that asked for them). */
function loginReply(tag: string, capability: string | null, ignoresCapCode: boolean, text: string): string {
  let caps = capability;
  const tagged = text.slice(0, 12).toUpperCase() === '[CAPABILITY ';
  if (tagged) { const end = text.indexOf(']'); caps = text.slice(12, end < 0 ? undefined : end); }
  let out = '';
  if (ignoresCapCode && caps !== null) out += `* CAPABILITY ${caps}\r\n`;
  out += `${tag} OK `;
  let line = text;
  if (!ignoresCapCode && !tagged && caps !== null) {
    out += `[CAPABILITY ${caps}] `;
    if (line.startsWith('[')) {
      const end = line.indexOf(']');
      line = end < 0 ? '' : line.slice(end + 1);
      if (line.startsWith(' ')) line = line.slice(1);
    }
  }
  return `${out}${line}\r\n`;
}

/** proxy_write_id: the client's addresses for the backend's log and penalty (a trusting backend applies them). */
function idCommand(s: Session): string {
  const { rport, lport } = s.ports;
  return `I ID ("x-session-id" "${s.loginSession}" "x-originating-ip" "${s.opts.rip}" "x-originating-port" "${rport}" "x-connected-ip" "${s.opts.lip}" "x-connected-port" "${lport}" "x-proxy-ttl" "${s.proxyTtl - 1}")\r\n`;
}

