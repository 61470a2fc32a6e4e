/**
 * IMAP login as Dovecot's imap-login + auth + mail process do it: passdb
 * check (with auth_failure_delay and the per-IP penalty), userdb lookup
 * (prefetched userdb_* fields first), the user's mail store, and mail-crypt
 * unlocked once with the login password (a staged password change is
 * finished here, since the passdb just accepted this password). A user
 * whose mail uid is not this process's uid is refused with a clear reason:
 * one Sealmail process serves one mail uid (ISPmail's vmail).
 */
import { AuthEngine, type RequestInfo } from '../auth/engine.js';
import { AuthPenalty, failureDelayMs } from '../auth/penalty.js';
import type { DovecotConfig } from '../config/settings.js';
import type { Fields } from '../auth/databases.js';
import { CryptError } from '../crypt/keys.js';
import { unlockUserCrypt } from '../crypt/user-crypt.js';
import { Logger } from '../log/logger.js';
import type { MailStore } from '../mailstore/store.js';
import { cryptUserFor, mailAccessRefusal, mailboxConfig, openUserStore, resolveMailUser } from '../mailstore/user-store.js';
import { UserQuota } from '../quota/quota.js';
import { openUserMetadata, type UserMetadata } from '../mailstore/metadata.js';
import { ImapSieve, type ImapSieveHook } from '../sieve/imapsieve.js';

export type LoginResult =
  | { ok: true; user: string; store: MailStore; quota: UserQuota | null; mailPlugins: string[]; metadata: UserMetadata | 'disabled' | 'no-dict'; imapSieve: ImapSieveHook | null }
  | { ok: false; code?: string; text: string }
  /** Authenticated, but the user's mail cannot be opened (Dovecot: "Logged in, but initialization failed." and BYE). */
  | { ok: false; initFailed: true }
  /** Authenticated in a login process: the session goes on in a mail process (server/login-process.ts). */
  | { ok: false; handOff: (tag: string) => Promise<void> };

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
    if (a.result !== 'ok' || a.nologin) {
      this.penalty.failed(info.rip);
      await sleep(failureDelayMs(this.config.getTime('auth_failure_delay'), a.nodelay));
      this.log.info(`Disconnected: Aborted login (auth failed, 1 attempts): user=<${login}>, method=${info.mech ?? 'PLAIN'}, rip=${info.rip ?? ''}, lip=${info.lip ?? ''}`);
      return { ok: false, code: a.nologin && a.result === 'ok' ? undefined : 'AUTHENTICATIONFAILED', text: a.reason ?? 'Authentication failed.' };
    }
    this.penalty.succeeded(info.rip);
    const u = await this.engine.lookupUser(a.user, { ...info, service: 'imap' }, a.userdbFields);
    if (u.result !== 'ok') return { ok: false, code: 'UNAVAILABLE', text: u.result === 'tempfail' ? 'Temporary user lookup failure.' : 'User doesn\'t exist.' };
    const user = resolveMailUser(this.config, a.user, u.fields, 'imap');
    const myUid = process.geteuid?.();
    if (user.uid && /^\d+$/.test(user.uid) && myUid !== undefined && myUid !== 0 && Number(user.uid) !== myUid && !mailAccessRefusal(this.config, user, 'imap')) {
      Logger.forUser('imap', a.user).error(`Mail access refused: the userdb gives uid ${user.uid}, this Sealmail process runs as uid ${myUid} (run one instance per mail uid)`);
      return { ok: false, code: 'UNAVAILABLE', text: 'Internal error occurred. Refer to server log for more information.' };
    }
    return openImapUser(this.config, a.user, u.fields, password);
  }

  async close(): Promise<void> { await this.engine.close(); }
}

/**
 * The imap process's half of a login: the user's mail store opened with the
 * userdb fields, mail-crypt unlocked with the login password (Dovecot passes
 * it to the mail process with the login request), quota, metadata and
 * IMAPSieve hooks. first_valid_uid/last_valid_uid refuse mail access here.
 */
export async function openImapUser(config: DovecotConfig, username: string, fields: Fields, password: string): Promise<LoginResult> {
  const user = resolveMailUser(config, username, fields, 'imap');
  const ulog = Logger.forUser('imap', username);
  const refused = mailAccessRefusal(config, user, 'imap');
  if (refused) { ulog.error(refused); return { ok: false, initFailed: true }; }
  const mailboxes = mailboxConfig(config, 'imap');
  const plain = openUserStore(user, undefined, mailboxes);
  try {
    const crypt = await unlockUserCrypt(config, cryptUserFor(user, plain, 'imap'), password, { promotePending: true });
    const store = openUserStore(user, crypt, mailboxes);
    await store.ensureRoot(); // Dovecot creates INBOX on first login
    const plugins = fields.find(([k]) => k === 'mail_plugins')?.[1] ?? config.get('mail_plugins', { protocol: 'imap' });
    const mailPlugins = splitPlugins(plugins);
    return {
      ok: true, user: username, store, quota: UserQuota.forUser(config, 'imap', username, fields, store), mailPlugins,
      metadata: openUserMetadata(config, user, store, 'imap'),
      imapSieve: ImapSieve.forUser(config, user, store, mailPlugins, ulog),
    };
  } catch (e) {
    if (!(e instanceof CryptError)) throw e;
    ulog.error(`mail-crypt: ${e.message}`);
    return { ok: false, code: 'UNAVAILABLE', text: 'Internal error occurred. Refer to server log for more information.' };
  }
}

export function splitPlugins(list: string): string[] {
  return list.split(/[\s,]+/).filter(Boolean);
}

function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
}
