/**
 * What an IMAP login comes to (LoginResult), and the two answers a login
 * process gives from the auth reply alone, without opening any mail: where
 * the passdb's proxy fields send the login (Dovecot's imap-login proxy and
 * referrals, auth/proxy-fields.ts) and imap-login's answer to an auth
 * failure with a reason. Apart from imap/login.ts so that a login process
 * (server/login-process.ts) loads no mail-user, store or Sieve code.
 */
import type { RequestInfo, AuthOutcome } from '../auth/engine.js';
import type { DovecotConfig } from '../config/settings.js';
import type { MailStore } from '../mailstore/store.js';
import type { UserMetadata } from '../mailstore/metadata.js';
import type { UserQuota } from '../quota/quota.js';
import type { ImapSieveHook } from '../sieve/imapsieve.js';
import { loginRoute, type LoginRoute } from '../auth/proxy-fields.js';

export type LoginResult =
  | { ok: true; user: string; store: MailStore; quota: UserQuota | null; mailPlugins: string[]; metadata: UserMetadata | 'disabled' | 'no-dict'; imapSieve: ImapSieveHook | null; alert?: string }
  /** `unnamed`: refused before the user was looked at (the failure line names no user, user=<>). */
  | { ok: false; code?: string; text: string; unnamed?: boolean }
  /** Authenticated, but the user's mail cannot be opened (Dovecot: "Logged in, but initialization failed." and BYE). */
  | { ok: false; initFailed: true }
  /** Authenticated in a login process: the session goes on in a mail process (server/login-process.ts). */
  | { ok: false; handOff: (tag: string) => Promise<void> }
  /** The passdb sends the login elsewhere: a backend to proxy to, or a referral (imap/login-proxy.ts). */
  | { ok: false; route: Exclude<LoginRoute, { kind: 'local' }>; user: string };

/** Where the passdb's fields send an IMAP login (auth/proxy-fields.ts), on this connection. */
export function imapRoute(config: DovecotConfig, a: Pick<AuthOutcome, 'fields' | 'rawFields' | 'nologin' | 'reason' | 'user' | 'masterUser'>, password: string, info: RequestInfo): LoginRoute {
  // the values as the passdb gave them: `starttls=any-cert` keeps its value (the engine's `fields` keep only a flag's name)
  return loginRoute(a.rawFields ?? a.fields, a.nologin, a.reason, {
    user: a.user, password, masterUser: a.masterUser, lip: info.lip ?? '', lport: info.lport ?? 0,
    selfIps: config.get('auth_proxy_self').split(/\s+/).filter(Boolean), defaultPort: 143, defaultSslPort: 993,
  });
}

/**
 * An auth failure with a reason as imap-login answers it
 * (CLIENT_AUTH_RESULT_AUTHFAILED_REASON): `NO [ALERT] <reason>`, or the
 * reason alone when it brings its own code (`[`…). Refused before any
 * passdb saw the name, so the connection's failure line names no user.
 */
export function clientCertRefusal(reason: string): LoginResult {
  return reason.startsWith('[') ? { ok: false, text: reason, unnamed: true } : { ok: false, code: 'ALERT', text: reason, unnamed: true };
}
