/**
 * Opening a mail user, the one place where Dovecot's
 * mail_storage_service_next() work happens for every protocol: from a
 * userdb answer (user, fields) to the user's home and mail location, the
 * first_valid_uid…last_valid_uid check, mail_plugins settled once
 * (src/config/mail-plugins.ts: userdb field first, else the protocol's
 * setting), mail-crypt (login: unlocked with the password; delivery: public
 * keys only; admin: the configured password, else public keys), the store
 * reopened with that crypt context, and the plugins' hooks: quota (`quota`),
 * IMAP METADATA and IMAPSieve (`imap_sieve`) for IMAP, Sieve at delivery
 * (`sieve`) for LMTP. IMAP and POP3 login, LMTP delivery and its RCPT quota check,
 * `sealadm` and the quota-status policy service all come through here, so a
 * per-user mail_plugins means the same thing to each of them.
 */
import { unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Fields } from '../auth/databases.js';
import { resolveMailPlugins } from '../config/mail-plugins.js';
import type { DovecotConfig } from '../config/settings.js';
import { identityCodec } from '../crypt/codec.js';
import { CryptError } from '../crypt/keys.js';
import { deliveryCrypt, unlockUserCrypt, type CryptUser, type UserCrypt } from '../crypt/user-crypt.js';
import { Logger } from '../log/logger.js';
import { resolveZlib } from '../mailstore/compression/settings.js';
import { openUserMetadata, type UserMetadata } from '../mailstore/metadata.js';
import type { MailStore } from '../mailstore/store.js';
import { cryptUserFor, mailAccessRefusal, mailboxConfig, openUserStore, resolveMailUser, type MailUser } from '../mailstore/user-store.js';
import { UserQuota } from '../quota/quota.js';
import { ImapSieve, type ImapSieveHook } from '../sieve/imapsieve.js';

/** The services that open mail users (Dovecot's service names, used as the `protocol` filter of the configuration). */
export type MailUserProtocol = 'imap' | 'pop3' | 'lmtp' | 'doveadm' | 'quota-status';

/**
 * How mail-crypt is opened: `login` with the password the passdb just
 * accepted (a staged password change is finished; a key it does not open
 * leaves the session locked, see lockedOnFailure); `delivery` with public
 * keys only (the user is offline); `admin` (sealadm) with the configured
 * mail_crypt_private_password, and when that does not open the keys,
 * listing and saving still work and reading an encrypted body fails with
 * the reason; `none` for a quota look only (nothing is read or written).
 */
export type CryptMode = { kind: 'login'; password: string } | { kind: 'delivery' } | { kind: 'admin' } | { kind: 'none' };

export interface MailUserLookup {
  /** The user name as the userdb returned it. */
  user: string;
  /** The userdb's fields (userdb_ prefix removed). */
  fields: Fields;
  protocol: MailUserProtocol;
  crypt: CryptMode;
  /** Called once the user is resolved and permitted, before any file is touched (a process-level refusal throws). */
  beforeOpen?: (user: MailUser) => void;
}

/** Refused before any mail is touched (uid/gid outside the valid range): Dovecot's text, for the log. */
export class MailAccessRefused extends Error {}

export interface OpenedMailUser {
  user: MailUser;
  protocol: MailUserProtocol;
  /** mail_plugins as settled for this user; every plugin decision below was made from this list. */
  mailPlugins: string[];
  /** The store without mail-crypt (key management, listing). */
  plainStore: MailStore;
  /** The store every message goes through (mail-crypt applied when enabled). */
  store: MailStore;
  /** What crypt needs to know about the user (sealadm's key commands). */
  cryptUser: CryptUser;
  crypt: UserCrypt | null;
  quota: UserQuota | null;
  /** IMAP METADATA (imap only; 'disabled' elsewhere). */
  metadata: UserMetadata | 'disabled' | 'no-dict';
  /** IMAPSieve (imap with `imap_sieve` only). */
  imapSieve: ImapSieveHook | null;
  /** Sieve runs at delivery (lmtp with `sieve` and a home). */
  sieveAtDelivery: boolean;
  log: Logger;
  /**
   * `login` only: why the login password did not open the user's mail-crypt
   * key (the hash was changed without re-keying). The session goes on with
   * the public keys: listing and delivery work, reading encrypted mail fails.
   */
  cryptLocked?: string;
}

/**
 * The protocol whose settings give the mail location: quota-status reads
 * the mail of the users it answers for where LMTP delivers it (it has no
 * `protocol` block of its own).
 */
function settingsProtocol(p: MailUserProtocol): string {
  return p === 'quota-status' ? 'lmtp' : p;
}

/**
 * Opens the user's mail. Throws MailAccessRefused (uid/gid not permitted);
 * a login password that does not open the mail-crypt keys sets `cryptLocked`.
 */
export async function openMailUser(config: DovecotConfig, lookup: MailUserLookup): Promise<OpenedMailUser> {
  const { protocol, fields } = lookup;
  const sp = settingsProtocol(protocol);
  const user = resolveMailUser(config, lookup.user, fields, sp);
  const refused = mailAccessRefusal(config, user, sp);
  if (refused) throw new MailAccessRefused(refused);
  lookup.beforeOpen?.(user);
  const mailPlugins = resolveMailPlugins(config, fields, protocol);
  const log = Logger.forUser(protocol, lookup.user);
  // the CLI and quota-status see the tree as it is; IMAP, POP3 and LMTP create `auto` mailboxes (Junk for fileinto…)
  const mailboxes = protocol === 'imap' || protocol === 'pop3' || protocol === 'lmtp' ? mailboxConfig(config, sp) : {};
  // the zlib plugin: its warnings for a userdb's own mail_plugins (the configured ones were said at start)
  const zlib = resolveZlib(lookup.user, mailPlugins, config.plugin({ protocol: sp }));
  if (fields.some(([k]) => k === 'mail_plugins')) for (const w of zlib.warnings) log.warn(w);
  const compression = zlib.settings ?? undefined;
  const plainStore = openUserStore(user, undefined, mailboxes, compression);
  const cryptUser = cryptUserFor(user, plainStore, protocol === 'quota-status' ? sp : protocol, mailPlugins);
  let cryptLocked: string | undefined;
  const crypt = await openCrypt(config, cryptUser, lookup.crypt, (why) => { cryptLocked = why; });
  if (cryptLocked !== undefined) await reportCryptLocked(log, cryptUser.mailRoot, cryptLocked);
  else if (lookup.crypt.kind === 'login' && crypt?.keystore) await unlink(join(cryptUser.mailRoot, CRYPT_LOCKED_MARK)).catch(() => undefined);
  const store = crypt && crypt.codec !== identityCodec ? openUserStore(user, crypt, mailboxes, compression) : plainStore;
  // Dovecot creates INBOX when a session or a delivery first opens the user (a quota look touches nothing)
  if ((protocol === 'imap' || protocol === 'pop3' || protocol === 'lmtp') && lookup.crypt.kind !== 'none') await store.ensureRoot();
  const quota = UserQuota.forUser(config, protocol, lookup.user, fields, store, mailPlugins);
  return {
    user, protocol, mailPlugins, plainStore, store, cryptUser, crypt, quota, log,
    metadata: protocol === 'imap' ? openUserMetadata(config, user, store, 'imap') : 'disabled',
    imapSieve: protocol === 'imap' ? ImapSieve.forUser(config, user, store, mailPlugins, log) : null,
    sieveAtDelivery: protocol === 'lmtp' && mailPlugins.includes('sieve') && !!user.home,
    ...(cryptLocked !== undefined ? { cryptLocked } : {}),
  };
}

async function openCrypt(config: DovecotConfig, cu: CryptUser, mode: CryptMode, locked: (why: string) => void): Promise<UserCrypt | null> {
  switch (mode.kind) {
    case 'none': return null;
    case 'login': return lockedOnFailure(config, cu, () => unlockUserCrypt(config, cu, mode.password, { promotePending: true }), locked);
    case 'delivery': return deliveryCrypt(config, cu);
    case 'admin': return lockedOnFailure(config, cu, () => unlockUserCrypt(config, cu), () => {});
  }
}

/**
 * Marks a user whose login password no longer opens the key, so the admin
 * log says so once (not at every login of a client that polls, nor once per
 * process); a login that opens the key again removes it. Dovecot's maildir
 * layout ignores plain files in the mail root.
 */
const CRYPT_LOCKED_MARK = 'sealmail.crypt-locked';

async function reportCryptLocked(log: Logger, mailRoot: string, why: string): Promise<void> {
  try {
    await writeFile(join(mailRoot, CRYPT_LOCKED_MARK), `${new Date().toISOString()} ${why}\n`, { flag: 'wx', mode: 0o600 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return; // said before
  }
  log.error(`mail-crypt: logged in, but the login password does not open the mail key (${why}): the password was changed without re-keying; encrypted mail stays unreadable until \`sealadm mailbox cryptokey password\` (old password) or \`sealadm password change --recovery\` re-keys it`);
}

/**
 * The keys did not open (sealadm without `-o plugin/mail_crypt_private_password`,
 * or a login whose password is no longer the key's: the SQL hash was changed
 * without re-keying). As Dovecot, the user still gets in: listing, counting
 * and saving (public keys) work, and reading an encrypted body fails with the
 * reason the key did not open, naming nothing else; nothing is rewritten.
 */
async function lockedOnFailure(config: DovecotConfig, cu: CryptUser, unlock: () => Promise<UserCrypt>, locked: (why: string) => void): Promise<UserCrypt> {
  try {
    return await unlock();
  } catch (e) {
    if (!(e instanceof CryptError)) throw e;
    const crypt = await deliveryCrypt(config, cu);
    const why = e.message;
    locked(why);
    const codec = crypt.codec;
    // reads fail with the reason the key did not open
    return { ...crypt, codec: { ...codec, locked: true, decrypt: (mb: string, st: AsyncIterable<Buffer>) => (async function* () {
      const it = st[Symbol.asyncIterator]();
      const first = await it.next();
      if (first.done) return;
      if (codec.isEncrypted(first.value)) throw new CryptError(why);
      yield* codec.decrypt(mb, (async function* () { yield first.value; for (;;) { const r = await it.next(); if (r.done) return; yield r.value; } })());
    })() } };
  }
}

/**
 * `doveadm import`'s source (mail_namespaces_init_location): the same user
 * with one namespace at another mail location, e.g. a backup Maildir, read
 * through the user's mail-crypt (a plain file reads as it is).
 */
export function openImportSource(opened: OpenedMailUser, location: string): MailStore {
  const user: MailUser = { ...opened.user, mailLocation: location, namespaces: [] };
  return opened.crypt && opened.crypt.codec !== identityCodec ? openUserStore(user, opened.crypt) : openUserStore(user);
}
