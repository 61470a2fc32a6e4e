/**
 * From a userdb answer to the user's mail store, as Dovecot's mail-storage
 * service prepares a mail user: home (`home` field, else `mail_home`),
 * location (`mail` field, else `mail_location`) with %-variables expanded,
 * mail uid/gid (`uid`/`gid` fields, else `mail_uid`/`mail_gid`), special-use
 * flags, `auto` mailboxes and `autoexpunge` from the namespaces' `mailbox`
 * sections, and mail-crypt (the
 * caller unlocks it: login with the password, delivery with public keys).
 */
import type { DovecotConfig } from '../config/settings.js';
import { expandVars } from '../config/vars.js';
import type { Fields } from '../auth/databases.js';
import type { UserCrypt, CryptUser } from '../crypt/user-crypt.js';
import { MailStore, type AutoMailbox } from './store.js';
import { parseTime } from '../config/values.js';

export interface MailUser {
  username: string;
  home?: string;
  mailLocation: string;
  uid?: string;
  gid?: string;
  fields: Fields;
}

export function resolveMailUser(config: DovecotConfig, username: string, fields: Fields, protocol: string): MailUser {
  const get = (k: string) => fields.find(([f]) => f === k)?.[1];
  const at = username.indexOf('@');
  const base = { user: username, u: username, n: at < 0 ? username : username.slice(0, at), d: at < 0 ? '' : username.slice(at + 1) };
  const homeRaw = get('home') ?? (config.get('mail_home', { protocol }) || undefined);
  const home = homeRaw ? expandVars(homeRaw, base) : undefined;
  const vars = { ...base, home, h: home };
  const loc = get('mail') ?? config.get('mail_location', { protocol });
  return {
    username, home, mailLocation: expandVars(loc ?? '', vars),
    uid: get('uid') ?? (config.get('mail_uid', { protocol }) || undefined),
    gid: get('gid') ?? (config.get('mail_gid', { protocol }) || undefined),
    fields,
  };
}

/** IMAP name → special-use flag from `namespace … { mailbox NAME { special_use = … } }`. */
export function specialUseMap(config: DovecotConfig, protocol: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const ns of config.namespaces({ protocol })) {
    for (const mb of ns.mailboxes) { const su = mb.settings.special_use; if (su) out[mb.name] = su.split(/\s+/)[0]; }
  }
  return out;
}

/** What the inbox namespace's `mailbox` sections configure: special-use flags, `auto` mailboxes, `autoexpunge`. */
export interface MailboxConfig {
  specialUse?: Record<string, string>;
  autoMailboxes?: AutoMailbox[];
  autoexpunge?: { name: string; ms: number }[];
}

/** `mailbox` sections of every namespace, in configuration order (Dovecot's order for listing auto mailboxes). */
export function mailboxConfig(config: DovecotConfig, protocol: string): MailboxConfig {
  const out: Required<MailboxConfig> = { specialUse: specialUseMap(config, protocol), autoMailboxes: [], autoexpunge: [] };
  for (const ns of config.namespaces({ protocol })) {
    for (const mb of ns.mailboxes) {
      const auto = mb.settings.auto;
      if (auto === 'create' || auto === 'subscribe') out.autoMailboxes.push({ name: mb.name, auto });
      const ms = parseTime(mb.settings.autoexpunge ?? '0', false);
      if (typeof ms === 'number' && ms > 0) out.autoexpunge.push({ name: mb.name, ms });
    }
  }
  return out;
}

export function openUserStore(user: MailUser, crypt?: UserCrypt, mailboxes: MailboxConfig = {}): MailStore {
  return new MailStore({ mailLocation: user.mailLocation, home: user.home, codec: crypt?.codec, cipher: crypt?.cipher, ...mailboxes });
}

/** What the crypt layer needs to know about the user; mailbox GUIDs come from the store. */
export function cryptUserFor(user: MailUser, store: MailStore, protocol: string): CryptUser {
  return {
    username: user.username, mailRoot: store.loc.root, home: user.home, fields: user.fields, protocol,
    mailboxGuid: (name) => store.mailboxGuid(name),
  };
}
