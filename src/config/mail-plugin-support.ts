/**
 * Every mail plugin Dovecot 2.3.19 and Pigeonhole 0.5.19 ship (the Debian
 * packages' /usr/lib/dovecot/modules, plus fts_lucene/fts_solr from their own
 * packages), and what Sealmail does when `mail_plugins` names one:
 * - supported: Sealmail does what the plugin does;
 * - warns: one warning at start naming file:line and what the admin loses;
 * - refuses: the plugin changes what happens to mail in a way Sealmail cannot
 *   honour (mail would be lost or unreadable), so the server does not start.
 * A name Dovecot does not know makes Dovecot's mail processes fail at every
 * login (`Plugin 'x' not found from directory …`); Sealmail warns at start.
 * dovecot-compat.md's plugin table is generated from this list.
 */

export type PluginStatus = 'supported' | 'warns' | 'refuses';

export interface PluginSupport {
  status: PluginStatus;
  /** supported: how; warns/refuses: what the admin loses or would lose. */
  note: string;
}

export const MAIL_PLUGINS: Record<string, PluginSupport> = {
  mail_crypt: { status: 'supported', note: 'per-user and per-folder keys, Dovecot\'s file format (see the mail-crypt section)' },
  quota: { status: 'supported', note: 'Maildir++ and count quota, rules, grace, warnings (see the quota section)' },
  imap_quota: { status: 'supported', note: 'GETQUOTA/GETQUOTAROOT' },
  sieve: { status: 'supported', note: 'Sieve at LMTP delivery (see the Sieve section for the extensions)' },
  imap_sieve: { status: 'supported', note: 'IMAPSieve rules from plugin settings' },
  imap_zlib: { status: 'supported', note: 'COMPRESS=DEFLATE' },
  notify: { status: 'supported', note: 'nothing to do on its own: it only feeds mail_log, push_notification and replication' },
  zlib: { status: 'supported', note: 'reads gz, bz2, lz4 (Dovecot\'s framing), zstd and xz; saves gz and lz4 (`zlib_save = bz2|zstd` saves gz, with a warning at start); see the Maildir section' },
  lazy_expunge: { status: 'refuses', note: 'expunged mail would be deleted for good instead of kept in the lazy_expunge mailbox' },
  acl: { status: 'warns', note: 'ACL files are not read: every mailbox is fully writable by its owner, and nothing is shared' },
  imap_acl: { status: 'warns', note: 'no ACL/MYRIGHTS/LISTRIGHTS commands (RFC 4314)' },
  mail_crypt_acl: { status: 'warns', note: 'no keys for mailboxes shared through ACLs' },
  fts: { status: 'warns', note: 'no full-text index: SEARCH BODY/TEXT reads every message (same results, slower on big mailboxes)' },
  fts_lucene: { status: 'warns', note: 'no Lucene index: SEARCH BODY/TEXT reads every message' },
  fts_solr: { status: 'warns', note: 'no Solr index or fuzzy search: SEARCH BODY/TEXT reads every message' },
  fts_squat: { status: 'warns', note: 'no Squat index: SEARCH BODY/TEXT reads every message' },
  trash: { status: 'warns', note: 'over quota, a delivery is refused instead of making room by deleting the oldest mail in Trash' },
  last_login: { status: 'warns', note: 'the last-login dict is not updated' },
  mail_log: { status: 'warns', note: 'no mail_log lines (copy, delete, expunge, flag changes …)' },
  push_notification: { status: 'warns', note: 'no push notifications (OX, Lua drivers)' },
  push_notification_lua: { status: 'warns', note: 'no Lua push notifications' },
  notify_status: { status: 'warns', note: 'the mailbox status dict is not updated' },
  replication: { status: 'warns', note: 'changes are not pushed to the dsync replica (it catches up only at its next full sync)' },
  quota_clone: { status: 'warns', note: 'quota usage is not copied to the dict' },
  virtual: { status: 'warns', note: 'no virtual mailboxes' },
  welcome: { status: 'warns', note: 'the welcome script does not run at a user\'s first login' },
  charset_alias: { status: 'warns', note: 'charset aliases are not applied when searching or converting' },
  listescape: { status: 'warns', note: 'mailbox names are not escaped: folders Dovecot created with escapes show their escaped names' },
  mailbox_alias: { status: 'warns', note: 'mailbox aliases do not resolve' },
  pop3_migration: { status: 'warns', note: 'POP3 UIDLs are not taken from the remote server' },
  apparmor: { status: 'warns', note: 'no AppArmor hat change per user' },
  mail_lua: { status: 'warns', note: 'Lua mail hooks do not run' },
  old_stats: { status: 'warns', note: 'no old-stats counters' },
  imap_old_stats: { status: 'warns', note: 'no old-stats counters for IMAP' },
  imap_filter_sieve: { status: 'warns', note: 'no FILTER=SIEVE command' },
};

/** How Sealmail treats one plugin name (an unknown name warns). */
export function pluginSupport(name: string): PluginSupport {
  return MAIL_PLUGINS[name] ?? { status: 'warns', note: 'Dovecot 2.3 ships no such plugin (Dovecot itself fails every login with "Plugin not found"); Sealmail ignores it' };
}

/** The plugin table of dovecot-compat.md. */
export function compatPluginTable(): string {
  const rows = Object.keys(MAIL_PLUGINS).sort().map((k) => {
    const p = MAIL_PLUGINS[k];
    const status = p.status === 'warns' ? 'not supported (warns at start)' : p.status === 'refuses' ? 'refused (does not start)' : 'supported';
    return `| \`${k}\` | ${status} | ${p.note} |`;
  });
  return ['| plugin | Sealmail | what it does / what is lost |', '|---|---|---|', ...rows].join('\n') + '\n';
}
