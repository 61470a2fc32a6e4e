/**
 * pop3-login's side of a proxied login (Dovecot 2.3.19 pop3-login/
 * pop3-proxy.c, login-common/client-common-auth.c): the passdb said `proxy`,
 * so the session is logged in on the backend instead of here. After the
 * backend's `+OK` banner: `STLS` first (`starttls`); `XCLIENT ADDR=… PORT=…
 * SESSION=… TTL=…` when the banner says `[XCLIENT]` (a backend that trusts
 * this proxy, login_trusted_networks) and the route is not
 * `proxy_not_trusted`; then `USER`/`PASS`, or `AUTH PLAIN` (authzid
 * destuser, authcid the master user) for a master-user login. The backend's
 * `+OK` goes to the client and from then on the bytes are relayed
 * (util/login-proxy.ts). Failures as pop3-login answers them: `-ERR
 * [SYS/TEMP] Account is temporarily unavailable.` (backend down, invalid
 * input, timeout), `-ERR Account is temporarily unavailable.` (the
 * backend's configuration, a loop), the backend's own `-ERR …` line, or
 * `-ERR Authentication failed.` for a reply that is no `-ERR`. A `nologin`
 * + `host` passdb reply (a referral, which POP3 cannot express) is `-ERR
 * <reason>` (default "Try this server instead.").
 */
import { lookup } from 'node:dns/promises';
import type { DovecotConfig } from '../config/settings.js';
import { loginRoute, type LoginRoute, type ProxyRoute, type Referral } from '../auth/proxy-fields.js';
import type { Fields } from '../auth/databases.js';
import { loginLogLine } from '../config/login-log.js';
import { LOGIN_PROXY_FAILURE_MSG, ProxyFailure, failurePrefix, proxyStartRefusal, relay, runProxyLogin, sanitizeLine, type BackendConnection, type ProxyFailureType } from '../util/login-proxy.js';
import type { Pop3Session } from './session.js';

const AUTH_FAILED_MSG = 'Authentication failed.';

interface Who { user: string; mech: string }

/** Where the passdb's fields send a POP3 login (auth/proxy-fields.ts): pop3 110, pop3s 995. */
export function pop3Route(config: DovecotConfig, a: { fields: Fields; rawFields?: Fields; nologin: boolean; reason?: string; user: string; masterUser?: string }, password: string, here: { lip: string; lport: number }): LoginRoute {
  return loginRoute(a.rawFields ?? a.fields, a.nologin, a.reason, {
    user: a.user, password, masterUser: a.masterUser, lip: here.lip, lport: here.lport,
    selfIps: config.get('auth_proxy_self').split(/\s+/).filter(Boolean), defaultPort: 110, defaultSslPort: 995,
  });
}

/** The proxy's log lines: login_log_format around `proxy(user,ip:port): …`. */
function proxyLog(s: Pop3Session, who: Who, route: ProxyRoute, level: 'info' | 'error', msg: string): void {
  const prefix = route.ip ? `proxy(${who.user},${route.ip}:${route.port}): ` : `proxy(${who.user}): `;
  const line = loginLogLine(s.loginConnInfo(), prefix + msg, { user: who.user, mech: who.mech, session: s.loginSession });
  s.proxyLogger[level](line);
}

/** The login refused with a referral: POP3 has no way to say where, only `-ERR <reason>`. */
export function referPop3Login(s: Pop3Session, r: Referral, who: Who): void {
  s.succeededElsewhere(who.user);
  s.reply(`-ERR ${r.reason ?? 'Try this server instead.'}\r\n`);
}

/** pop3_proxy_send_failure_reply. */
function failureReply(s: Pop3Session, type: ProxyFailureType, reason: string): void {
  switch (type) {
    case 'auth': return; // answered as the backend's line came
    case 'auth-tempfail': s.reply(`-ERR ${reason}\r\n`); return; // "[SYS/TEMP]" is in the reason
    case 'remote-config': case 'internal-config': s.reply(`-ERR ${LOGIN_PROXY_FAILURE_MSG}\r\n`); return;
    default: s.reply(`-ERR [SYS/TEMP] ${LOGIN_PROXY_FAILURE_MSG}\r\n`);
  }
}

type State = 'banner' | 'starttls' | 'xclient' | 'login1' | 'login2';

/**
 * Log the session in on the route's backend and, when it says +OK, relay
 * the connection there. Every failure is answered to the client here.
 */
export async function proxyPop3Login(s: Pop3Session, route: ProxyRoute, who: Who): Promise<void> {
  if (route.host && !route.ip && !route.badHostip) {
    // a host name without hostip: Dovecot's auth resolves it; here the login process does
    try {
      route = { ...route, ip: (await lookup(route.host)).address };
    } catch (e) {
      proxyLog(s, who, route, 'error', `DNS lookup for ${route.host} failed: ${(e as Error).message}`);
      s.succeededElsewhere(who.user);
      failureReply(s, 'internal', '');
      return;
    }
  }
  const refused = proxyStartRefusal(route, { lip: s.localIp, lport: s.localPort, user: who.user, ttl: s.proxyTtl });
  if (refused) {
    // proxy_check_start's refusals are logged as they are; the TTL check is login_proxy_failed's, with its prefix
    proxyLog(s, who, refused.type === 'internal' ? { ...route, ip: null } : route, 'error', (refused.type === 'internal' ? '' : failurePrefix(refused.type)) + refused.reason);
    s.succeededElsewhere(who.user);
    if (refused.type === 'internal') s.silenceLoginLog(); // as Dovecot: the error is the connection's last line
    failureReply(s, refused.type, refused.reason);
    return;
  }
  const r = route;
  await runProxyLogin<{ v: State; toString(): string }>({
    route: r, user: who.user, config: s.config,
    log: (level, msg) => proxyLog(s, who, r, level, msg),
    isClosed: () => s.isClosed,
    newState: () => ({ v: 'banner' as State, toString() { return this.v; } }),
    dialogue: (b, st) => dialogue(s, r, who, b, st),
    failed: async (type, reason) => {
      s.succeededElsewhere(who.user, type === 'auth' || type === 'auth-tempfail');
      failureReply(s, type, reason);
    },
    proxying: async (ok, b) => {
      s.reply(ok);
      const bytesOut = s.bytesOut;
      const { stream, input } = s.detach();
      relay(stream, input, b, b.takeRest(), {
        sentToBackend: b.bytesWritten, sentToClient: bytesOut,
        maxDisconnectDelaySecs: s.config.getTime('login_proxy_max_disconnect_delay') / 1000,
        log: (line) => proxyLog(s, who, r, 'info', line),
        done: () => s.releaseSlot(),
      });
    },
  });
}

/** pop3_proxy_parse_line: the client's `+OK` line (with CRLF), null when the backend refused (answered); throws ProxyFailure. */
async function dialogue(s: Pop3Session, route: ProxyRoute, who: Who, b: BackendConnection, state: { v: State }): Promise<string | null> {
  const useSasl = route.master !== undefined;
  let xclient = false;
  /** proxy_send_login: XCLIENT (a backend that offered it), then USER or AUTH PLAIN with its initial response. */
  const sendLogin = () => {
    let out = '';
    if (xclient && !route.notTrusted) {
      out += `XCLIENT ADDR=${s.remoteIp} PORT=${s.remotePort} SESSION=${s.loginSession} TTL=${s.proxyTtl - 1}\r\n`;
      state.v = 'xclient';
    } else state.v = useSasl ? 'login2' : 'login1';
    if (!useSasl) out += `USER ${route.destuser}\r\n`;
    else out += `AUTH PLAIN ${Buffer.from(`${route.destuser}\0${route.master}\0${route.password}`).toString('base64')}\r\n`;
    b.write(out);
  };
  for (;;) {
    const line = await b.readLine();
    if (line === null) {
      throw new ProxyFailure('connect', `Disconnected by server: ${b.disconnectReason} (state=${state.v}, duration=${Math.floor((Date.now() - b.started) / 1000)}s)`);
    }
    switch (state.v) {
      case 'banner':
        if (!line.startsWith('+OK')) throw new ProxyFailure('protocol', `Invalid banner: ${sanitizeLine(line)}`);
        xclient = line.slice(3).startsWith(' [XCLIENT]');
        if (route.starttls) { b.write('STLS\r\n'); state.v = 'starttls'; } else { sendLogin(); }
        continue;
      case 'starttls':
        if (!line.startsWith('+OK')) throw new ProxyFailure('remote', `STLS failed: ${sanitizeLine(line)}`);
        await b.startTls();
        sendLogin();
        continue;
      case 'xclient':
        if (!line.startsWith('+OK')) throw new ProxyFailure('remote', `XCLIENT failed: ${sanitizeLine(line)}`);
        state.v = useSasl ? 'login2' : 'login1';
        continue;
      case 'login1':
        if (!line.startsWith('+OK')) break;
        b.write(`PASS ${route.password}\r\n`);
        state.v = 'login2';
        continue;
      case 'login2':
        if (line.startsWith('+ ') && useSasl) {
          // PLAIN sent everything in its initial response: a further challenge is the backend's mistake
          throw new ProxyFailure('protocol', 'Invalid authentication data: Server didn\'t finish authentication');
        }
        if (!line.startsWith('+OK')) break;
        return `${line}\r\n`;
    }
    // the login failed: the backend's -ERR goes to the client as it is (a non-Dovecot backend's text could tell which users exist)
    if (!line.startsWith('-ERR ')) {
      s.reply(`-ERR ${AUTH_FAILED_MSG}\r\n`);
      throw new ProxyFailure('auth', line);
    }
    if (line.startsWith('-ERR [SYS/TEMP]')) throw new ProxyFailure('auth-tempfail', line.slice(5));
    s.reply(`${line}\r\n`);
    throw new ProxyFailure('auth', line.slice(5));
  }
}
