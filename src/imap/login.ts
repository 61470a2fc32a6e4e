/**
 * IMAP login as Dovecot's imap-login + auth + mail process do it: passdb
 * check (with auth_failure_delay and the per-IP penalty), userdb lookup
 * (prefetched userdb_* fields first), then the mail user opened by
 * src/mailuser with mail-crypt unlocked once with the login password (a
 * staged password change is finished there, since the passdb just accepted
 * this password; a key the password does not open lets the user in with an
 * ALERT, as Dovecot lets them in, and reading encrypted mail fails). A user
 * whose mail uid is not this process's uid is refused with a clear reason:
 * one Sealmail process serves one mail uid (ISPmail's vmail).
 */
import { AuthEngine, type RequestInfo } from '../auth/engine.js';
import { AuthPenalty, failureDelayMs } from '../auth/penalty.js';
import type { DovecotConfig } from '../config/settings.js';
import type { Fields } from '../auth/databases.js';
import { CryptError } from '../crypt/keys.js';
import { Logger } from '../log/logger.js';
import type { MailStore } from '../mailstore/store.js';
import type { UserMetadata } from '../mailstore/metadata.js';
import type { UserQuota } from '../quota/quota.js';
import type { ImapSieveHook } from '../sieve/imapsieve.js';
import { MailAccessRefused, openMailUser } from '../mailuser/open-mail-user.js';
import { loginRoute, type LoginRoute } from '../auth/proxy-fields.js';
import type { AuthOutcome } from '../auth/engine.js';

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

/** What a pre-login session needs of its login service: the login, and the imap-login log. */
export type ImapLogin = Pick<LoginService, 'login' | 'log'>;

export class LoginService {
  readonly engine: AuthEngine;
  readonly penalty = new AuthPenalty();

  constructor(readonly config: DovecotConfig, readonly log = new Logger('imap-login')) {
    this.engine = new AuthEngine(config, 'imap');
  }

  async login(login: string, password: string, info: RequestInfo): Promise<LoginResult> {
    const wait = this.penalty.delayBefore(info.rip);
    if (wait) await sleep(wait);
    const a = await this.engine.authenticate(login, password, { ...info, service: 'imap' });
    if (a.result === 'tempfail') return { ok: false, code: 'UNAVAILABLE', text: 'Temporary authentication failure.' };
    if (a.clientCertRefused) return clientCertRefusal(a.reason ?? '');
    const route = a.result === 'ok' ? imapRoute(this.config, a, password, info) : { kind: 'local' as const };
    if (route.kind === 'referral') await sleep(failureDelayMs(this.config.getTime('auth_failure_delay'), a.nodelay));
    // a proxied login needs no userdb and no mail here: the backend has them
    if (route.kind !== 'local') { if (route.kind === 'proxy') this.penalty.succeeded(info.rip); else this.penalty.failed(info.rip); return { ok: false, route, user: a.user }; }
    if (a.result !== 'ok' || a.nologin) {
      this.penalty.failed(info.rip);
      await sleep(failureDelayMs(this.config.getTime('auth_failure_delay'), a.nodelay));
      return { ok: false, code: a.nologin && a.result === 'ok' ? undefined : 'AUTHENTICATIONFAILED', text: a.reason ?? 'Authentication failed.' };
    }
    this.penalty.succeeded(info.rip);
    const u = await this.engine.lookupUser(a.user, { ...info, service: 'imap' }, a.userdbFields, true);
    if (u.result !== 'ok') return { ok: false, code: 'UNAVAILABLE', text: u.result === 'tempfail' ? 'Temporary user lookup failure.' : 'User doesn\'t exist.' };
    const myUid = process.geteuid?.();
    return openImapUser(this.config, a.user, u.fields, password, ({ uid }) => {
      if (uid && /^\d+$/.test(uid) && myUid !== undefined && myUid !== 0 && Number(uid) !== myUid) throw new WrongUid(uid, myUid);
    });
  }

  async close(): Promise<void> { await this.engine.close(); }
}

/** Where the passdb's fields send an IMAP login (auth/proxy-fields.ts), on this connection. */
export function imapRoute(config: DovecotConfig, a: Pick<AuthOutcome, 'fields' | 'rawFields' | 'nologin' | 'reason' | 'user' | 'masterUser'>, password: string, info: RequestInfo): LoginRoute {
  // the values as the passdb gave them: `starttls=any-cert` keeps its value (the engine's `fields` keep only a flag's name)
  return loginRoute(a.rawFields ?? a.fields, a.nologin, a.reason, {
    user: a.user, password, masterUser: a.masterUser, lip: info.lip ?? '', lport: info.lport ?? 0,
    selfIps: config.get('auth_proxy_self').split(/\s+/).filter(Boolean), defaultPort: 143, defaultSslPort: 993,
  });
}

/**
 * The imap process's half of a login: the user opened by the mail-user
 * service (src/mailuser) with mail-crypt unlocked by the login password
 * (Dovecot passes it to the mail process with the login request), quota,
 * metadata and IMAPSieve hooks; first_valid_uid/last_valid_uid refuse mail
 * access there. `beforeOpen` may refuse the user's uid first (a process
 * that serves one mail uid).
 */
export async function openImapUser(config: DovecotConfig, username: string, fields: Fields, password: string, beforeOpen?: (user: { uid?: string }) => void): Promise<LoginResult> {
  const ulog = Logger.forUser('imap', username);
  try {
    const mu = await openMailUser(config, { user: username, fields, protocol: 'imap', crypt: { kind: 'login', password }, beforeOpen });
    return {
      ok: true, user: username, store: mu.store, quota: mu.quota, mailPlugins: mu.mailPlugins, metadata: mu.metadata, imapSieve: mu.imapSieve,
      ...(mu.cryptLocked !== undefined ? { alert: CRYPT_LOCKED_ALERT } : {}),
    };
  } catch (e) {
    if (e instanceof MailAccessRefused) { ulog.error(e.message); return { ok: false, initFailed: true }; }
    if (e instanceof WrongUid) {
      ulog.error(`Mail access refused: the userdb gives uid ${e.uid}, this Sealmail process runs as uid ${e.myUid} (run one instance per mail uid)`);
      return { ok: false, code: 'UNAVAILABLE', text: 'Internal error occurred. Refer to server log for more information.' };
    }
    if (!(e instanceof CryptError)) throw e;
    ulog.error(`mail-crypt: ${e.message}`);
    return { ok: false, code: 'UNAVAILABLE', text: 'Internal error occurred. Refer to server log for more information.' };
  }
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

/** `* OK [ALERT]` after a login whose password no longer opens the mail-crypt key (changed without re-keying). */
export const CRYPT_LOCKED_ALERT = 'Your mail key is still locked with an earlier password: encrypted mail cannot be read until it is re-keyed (ask your administrator)';

/** The userdb's uid is not this process's: one Sealmail process serves one mail uid. */
class WrongUid extends Error {
  constructor(readonly uid: string, readonly myUid: number) { super('wrong mail uid'); }
}

function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
}
