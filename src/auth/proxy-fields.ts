/**
 * What a passdb reply says about where a login goes, as Dovecot 2.3's auth
 * (auth-request.c auth_request_proxy_finish: `proxy_maybe` becomes `proxy`
 * unless `host` is this machine, i.e. the connection's local IP or one of
 * auth_proxy_self, and `port`, when given, is the connection's port) and its
 * login processes (client-common-auth.c client_auth_parse_args and
 * client_auth_handle_reply) read it: `proxy` + `host`/`hostip`/`port`/
 * `destuser`/`pass`/`master`/`ssl`/`starttls`/`proxy_timeout`/
 * `proxy_nopipelining`/`proxy_not_trusted` route the session to a backend;
 * `nologin` + `host` (without `proxy`) is a referral. The password passed to
 * the backend is the client's own unless the passdb names one (`pass`):
 * Sealmail's proxy never opens a mail-crypt key.
 */
import { isIP } from 'node:net';
import type { Fields } from './databases.js';

/** Where and how a proxied login reaches its backend. `host` empty: the passdb named none (refused at start). */
export interface ProxyRoute {
  host: string;
  /** The address connected to: `hostip`, else `host` when it is an IP (null: neither, refused at start). */
  ip: string | null;
  /** `hostip` was given and is no IP. */
  badHostip?: string;
  port: number;
  destuser: string;
  password: string;
  /** `master`: log in to the backend as this master user for `destuser` (SASL PLAIN). */
  master?: string;
  ssl: boolean;
  starttls: boolean;
  anyCert: boolean;
  /** 0: login_proxy_timeout. */
  timeoutMs: number;
  nopipelining: boolean;
  notTrusted: boolean;
  /** `port` did not parse (Dovecot: "Auth service returned invalid port number"). */
  badPort?: string;
}

export interface Referral { host: string; port: number; destuser: string; reason?: string }

export type LoginRoute = { kind: 'local' } | { kind: 'proxy'; route: ProxyRoute } | { kind: 'referral'; referral: Referral };

export interface RouteContext {
  /** the login's final user name and the password the client gave */
  user: string;
  password: string;
  /** a master user logged in as `user` (forwarded as `master` unless the passdb set one) */
  masterUser?: string;
  /** the connection's local address and port (proxy_maybe's "is this me") */
  lip: string;
  lport: number;
  /** auth_proxy_self: more addresses that are this machine */
  selfIps: string[];
  /** the protocol's default ports (imap 143 / imaps 993 …) */
  defaultPort: number;
  defaultSslPort: number;
}

const get = (f: Fields, k: string): string | undefined => f.find(([n]) => n === k)?.[1];
const has = (f: Fields, k: string): boolean => f.some(([n]) => n === k);
const plainIp = (ip: string) => ip.replace(/^::ffff:/, '');

/** Dovecot's settings_get_time_msecs for proxy_timeout: a plain number is seconds. */
function timeoutMs(v: string | undefined): number {
  if (v === undefined || v === '') return 0;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const m = /^(\d+)\s*(ms|msecs?|s|secs?|seconds?|m|mins?|minutes?)$/i.exec(v.trim());
  if (!m) return 0;
  const n = Number(m[1]);
  const unit = m[2].toLowerCase();
  return unit.startsWith('ms') ? n : unit.startsWith('m') ? n * 60_000 : n * 1000;
}

/**
 * The route for a login the passdb accepted (`nologin` false) or refused
 * with `nologin` (referral when it names a `host`). `fields`: the passdb's
 * client-visible fields.
 */
export function loginRoute(fields: Fields, nologin: boolean, reason: string | undefined, ctx: RouteContext): LoginRoute {
  const proxy = has(fields, 'proxy');
  const maybe = has(fields, 'proxy_maybe');
  const host = get(fields, 'host');
  const portText = get(fields, 'port');
  const port = portText !== undefined && /^\d+$/.test(portText) && Number(portText) > 0 && Number(portText) < 65536 ? Number(portText) : 0;
  const destuser = get(fields, 'destuser') || ctx.user;
  if (!nologin && (proxy || maybe)) {
    const hostip = get(fields, 'hostip');
    const ip = hostip && isIP(hostip) ? hostip : host && isIP(host) ? host : null;
    if (maybe && !proxy && ip && host) {
      const self = plainIp(ip) === plainIp(ctx.lip) || ctx.selfIps.some((s) => plainIp(s) === plainIp(ip));
      // auth_request_proxy_is_self: the port, when given, must be this connection's too; destuser is not compared
      if (self && (portText === undefined || port === ctx.lport)) return { kind: 'local' };
    }
    const ssl = has(fields, 'ssl') || has(fields, 'starttls');
    const starttls = has(fields, 'starttls');
    const sslValue = get(fields, 'starttls') ?? get(fields, 'ssl');
    return {
      kind: 'proxy',
      route: {
        host: host ?? '', ip, ...(hostip && !isIP(hostip) ? { badHostip: hostip } : {}),
        port: port || (ssl && !starttls ? ctx.defaultSslPort : ctx.defaultPort),
        ...(portText !== undefined && !port ? { badPort: portText } : {}),
        destuser, password: get(fields, 'pass') ?? ctx.password,
        ...(get(fields, 'master') || ctx.masterUser ? { master: get(fields, 'master') || ctx.masterUser } : {}),
        ssl, starttls, anyCert: sslValue === 'any-cert', timeoutMs: timeoutMs(get(fields, 'proxy_timeout')),
        nopipelining: has(fields, 'proxy_nopipelining'), notTrusted: has(fields, 'proxy_not_trusted'),
      },
    };
  }
  // client_auth_handle_reply: a `host` without `proxy` on a nologin reply is a referral
  if (nologin && host) return { kind: 'referral', referral: { host, port: port || ctx.defaultPort, destuser, reason } };
  return { kind: 'local' };
}

/**
 * The proxy fields of an auth OK reply (auth-request-handler.c): the
 * passdb's fields with `proxy_maybe` resolved (to `proxy`, or every proxy
 * field dropped when the host is this machine), the client's password as
 * `pass` and a master user's name as `master` unless the passdb set them.
 * Empty when the login is not proxied.
 */
export function proxyReplyFields(fields: Fields, ctx: RouteContext): Fields {
  if (!has(fields, 'proxy') && !has(fields, 'proxy_maybe')) return [];
  if (loginRoute(fields, false, undefined, ctx).kind !== 'proxy') return [];
  const out: Fields = [['proxy', '']];
  for (const [k, v] of fields) if (k !== 'proxy' && k !== 'proxy_maybe') out.push([k, v]);
  if (!has(fields, 'pass')) out.push(['pass', ctx.password]);
  if (ctx.masterUser && !get(fields, 'master')) out.push(['master', ctx.masterUser]);
  return out;
}

/** A nologin FAIL's referral fields (`host`, `port`, `destuser`), when the passdb named a host. */
export function referralFields(fields: Fields, nologin: boolean): Fields {
  if (!nologin || !get(fields, 'host') || has(fields, 'proxy')) return [];
  return [['nologin', ''], ...fields.filter(([k]) => k === 'host' || k === 'port' || k === 'destuser')];
}
