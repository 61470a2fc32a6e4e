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
import { MailAccessRefused, openMailUser } from '../mailuser/open-mail-user.js';
import { clientCertRefusal, imapRoute, type LoginResult } from './login-result.js';

export { clientCertRefusal, imapRoute, type LoginResult } from './login-result.js';

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

/** `* OK [ALERT]` after a login whose password no longer opens the mail-crypt key (changed without re-keying). */
export const CRYPT_LOCKED_ALERT = 'Your mail key is still locked with an earlier password: encrypted mail cannot be read until it is re-keyed (ask your administrator)';

/** The userdb's uid is not this process's: one Sealmail process serves one mail uid. */
class WrongUid extends Error {
  constructor(readonly uid: string, readonly myUid: number) { super('wrong mail uid'); }
}

function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
}
