/**
 * From a userdb answer to the user's mail store, as Dovecot's mail-storage
 * service prepares a mail user: home (`home` field, else `mail_home`),
 * location (`mail` field, else `mail_location`) with %-variables expanded,
 * mail uid/gid (`uid`/`gid` fields, else `mail_uid`/`mail_gid`), special-use
 * flags, `auto` mailboxes and `autoexpunge` from the namespaces' `mailbox`
 * sections, and mail-crypt (the
 * caller unlocks it: login with the password, delivery with public keys).
 */
import { resolveGroup, resolveUser } from '../util/passwd.js';
import type { DovecotConfig } from '../config/settings.js';
import { expandVars } from '../config/vars.js';
import type { Fields } from '../auth/databases.js';
import type { UserCrypt, CryptUser } from '../crypt/user-crypt.js';
import { MailStore, type AutoMailbox } from './store.js';
import type { CompressionSettings } from './compression/settings.js';
import { parseTime } from '../config/values.js';
import type { NamespaceConfig } from '../config/settings.js';
import type { NamespaceOptions } from './namespaces.js';

export interface MailUser {
  username: string;
  home?: string;
  mailLocation: string;
  uid?: string;
  gid?: string;
  fields: Fields;
  /** The private namespaces, `location` expanded (empty: Dovecot's default one). */
  namespaces?: NamespaceOptions[];
}

/** The private namespaces Sealmail serves (type = shared/public are refused or warned about at start). */
export function privateNamespaces(config: DovecotConfig, protocol: string): NamespaceConfig[] {
  return config.namespaces({ protocol }).filter((ns) => (ns.settings.type || 'private') === 'private' && ns.settings.disabled !== 'yes');
}

const yes = (v: string | undefined) => v === 'yes';

export function resolveMailUser(config: DovecotConfig, username: string, fields: Fields, protocol: string): MailUser {
  const get = (k: string) => fields.find(([f]) => f === k)?.[1];
  const at = username.indexOf('@');
  const base = { user: username, u: username, n: at < 0 ? username : username.slice(0, at), d: at < 0 ? '' : username.slice(at + 1) };
  const homeRaw = get('home') ?? (config.get('mail_home', { protocol }) || undefined);
  const home = homeRaw ? expandVars(homeRaw, base) : undefined;
  const vars = { ...base, home, h: home };
  const loc = get('mail') ?? config.get('mail_location', { protocol });
  const namespaces = privateNamespaces(config, protocol).map((ns): NamespaceOptions => ({
    name: ns.name, prefix: expandVars(ns.settings.prefix ?? '', vars), separator: ns.settings.separator ?? '',
    inbox: yes(ns.settings.inbox), hidden: yes(ns.settings.hidden), subscriptions: yes(ns.settings.subscriptions),
    list: ns.settings.list === 'no' || ns.settings.list === 'children' ? ns.settings.list : 'yes',
    location: ns.settings.location ? expandVars(ns.settings.location, vars) : '', order: Number(ns.settings.order || 0),
  }));
  return {
    username, home, mailLocation: expandVars(loc ?? '', vars), namespaces,
    uid: get('uid') ?? (config.get('mail_uid', { protocol }) || undefined),
    gid: get('gid') ?? (config.get('mail_gid', { protocol }) || undefined),
    fields,
  };
}

/** A user or group name (mail_uid = vmail) as its number: resolved once per process, not per login or delivery. */
const namedIds = new Map<string, number | null>();
function idOfName(kind: 'uid' | 'gid', name: string): number | null {
  const key = `${kind}:${name}`;
  if (!namedIds.has(key)) namedIds.set(key, (kind === 'uid' ? resolveUser(name)?.uid : resolveGroup(name)) ?? null);
  return namedIds.get(key)!;
}

/**
 * Dovecot's first_valid_uid/last_valid_uid and first_valid_gid/last_valid_gid:
 * mail access for a user whose uid or gid lies outside is refused, so a userdb
 * mistake cannot have mail stored as a system account. Returns Dovecot's
 * error text (for the log) or null when access is allowed.
 */
export function mailAccessRefusal(config: DovecotConfig, user: MailUser, protocol: string): string | null {
  const fromUserdb = (k: string) => user.fields.some(([f]) => f === k);
  const check = (kind: 'uid' | 'gid', spec: string | undefined): string | null => {
    if (!spec) return null;
    const id = /^\d+$/.test(spec) ? Number(spec) : idOfName(kind, spec);
    if (id === undefined || id === null) return null;
    const first = Number(config.get(`first_valid_${kind}`, { protocol }) || 0);
    const last = Number(config.get(`last_valid_${kind}`, { protocol }) || 0);
    if (id >= first && (last === 0 || id <= last)) return null;
    const K = kind.toUpperCase();
    return `Mail access for users with ${K} ${id} not permitted (see first_valid_${kind} in config file, ${kind} from ${fromUserdb(kind) ? 'userdb lookup' : `mail_${kind} setting`}).`;
  };
  return check('uid', user.uid) ?? check('gid', user.gid);
}

/** A `mailbox` section's name as clients see it: the namespace's prefix before it (mailbox_settings_find), INBOX as INBOX. */
function mailboxVname(ns: NamespaceConfig, name: string): string {
  if (ns.settings.inbox === 'yes' && name.toUpperCase() === 'INBOX') return 'INBOX';
  return (ns.settings.prefix ?? '') + name;
}

/** Mailbox name → special-use flag from `namespace … { mailbox NAME { special_use = … } }`. */
export function specialUseMap(config: DovecotConfig, protocol: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const ns of privateNamespaces(config, protocol)) {
    for (const mb of ns.mailboxes) { const su = mb.settings.special_use; if (su) out[mailboxVname(ns, mb.name)] = su.split(/\s+/)[0]; }
  }
  return out;
}

/** What the inbox namespace's `mailbox` sections configure: special-use flags, `auto` mailboxes, `autoexpunge`. */
export interface MailboxConfig {
  specialUse?: Record<string, string>;
  autoMailboxes?: AutoMailbox[];
  autoexpunge?: { name: string; ms: number }[];
  /** `mail_temp_scan_interval` (ms): how often opening a Maildir cleans its tmp/ (0: never). */
  tempScanIntervalMs?: number;
}

/** `mailbox` sections of every namespace, in configuration order (Dovecot's order for listing auto mailboxes). */
export function mailboxConfig(config: DovecotConfig, protocol: string): MailboxConfig {
  const out: Required<MailboxConfig> = { specialUse: specialUseMap(config, protocol), autoMailboxes: [], autoexpunge: [], tempScanIntervalMs: config.getTime('mail_temp_scan_interval', { protocol }) };
  for (const ns of privateNamespaces(config, protocol)) {
    for (const mb of ns.mailboxes) {
      const name = mailboxVname(ns, mb.name);
      const auto = mb.settings.auto;
      if (auto === 'create' || auto === 'subscribe') out.autoMailboxes.push({ name, auto });
      const ms = parseTime(mb.settings.autoexpunge ?? '0', false);
      if (typeof ms === 'number' && ms > 0) out.autoexpunge.push({ name, ms });
    }
  }
  return out;
}

export function openUserStore(user: MailUser, crypt?: UserCrypt, mailboxes: MailboxConfig = {}, compression?: CompressionSettings): MailStore {
  return new MailStore({ mailLocation: user.mailLocation, namespaces: user.namespaces, home: user.home, codec: crypt?.codec, cipher: crypt?.cipher, compression, ...mailboxes });
}

/** What the crypt layer needs to know about the user; mailbox GUIDs come from the store. */
export function cryptUserFor(user: MailUser, store: MailStore, protocol: string, mailPlugins?: string[]): CryptUser {
  return {
    username: user.username, mailRoot: store.loc.root, home: user.home, fields: user.fields, protocol, mailPlugins,
    mailboxGuid: (name) => store.mailboxGuid(name),
  };
}
