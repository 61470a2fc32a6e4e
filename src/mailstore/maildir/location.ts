/**
 * Parses Dovecot's `mail_location` for the maildir driver
 * (`maildir:~/Maildir:LAYOUT=fs:UTF-8:INDEX=…:CONTROL=…:INBOX=…`), as
 * Dovecot 2.3's mailbox_list_settings_parse does. `%` variables are expanded
 * by the caller; `~/` is expanded here from the user's home.
 */
import { isAbsolute, join } from 'node:path';
import { MailStoreError } from '../errors.js';

export type MaildirLayout = 'maildir++' | 'fs';

export interface MaildirLocation {
  /** Mail root (INBOX of Maildir++ lives here unless INBOX= is given). */
  root: string;
  layout: MaildirLayout;
  /** Folder names on disk are raw UTF-8 instead of mUTF-7. */
  utf8: boolean;
  /** Directory for INBOX; defaults to root. */
  inbox: string;
  /** Where Dovecot's index files live (MEMORY → none); we never touch them. */
  index?: string;
  /** Where uidlist/keywords/subscriptions live; defaults to the folder dir. */
  control?: string;
  /** Hierarchy separator inside storage names (Maildir++ '.', fs '/'). */
  storageSep: string;
  /**
   * The namespace's separator, the one clients see (`namespace { separator }`;
   * unset: the layout's own, as Dovecot's mail_namespace_get_sep). Folder
   * names the store is given and gives back use it.
   */
  sep: string;
}

function expandHome(p: string, home: string | undefined, what: string): string {
  if (p === '~' || p.startsWith('~/')) {
    if (!home) throw new MailStoreError('IO', `mail_location: ${what} uses ~ but the user has no home directory`);
    return join(home, p.slice(1));
  }
  if (!isAbsolute(p)) {
    if (!home) throw new MailStoreError('IO', `mail_location: relative ${what} "${p}" needs a home directory`);
    return join(home, p);
  }
  return p;
}

/** `separator`: the namespace's, '' for the layout's own. */
export function parseMailLocation(location: string, home?: string, separator = ''): MaildirLocation {
  let rest = location.trim();
  const m = /^([a-z0-9]+):/.exec(rest);
  if (m) {
    if (m[1] !== 'maildir') throw new MailStoreError('NOTPOSSIBLE', `mail_location "${location}": only the maildir driver is supported, not ${m[1]}`);
    rest = rest.slice(m[0].length);
  } else if (rest === '') {
    throw new MailStoreError('IO', 'mail_location is empty (autodetection is not supported; set mail_location = maildir:~/Maildir)');
  }
  // "::" escapes a literal ':' in paths
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === ':') {
      if (rest[i + 1] === ':') { cur += ':'; i++; continue; }
      parts.push(cur); cur = '';
    } else cur += rest[i];
  }
  parts.push(cur);
  const rootRaw = parts.shift() ?? '';
  if (rootRaw === '') throw new MailStoreError('IO', `mail_location "${location}": missing the Maildir path`);
  const root = expandHome(rootRaw, home, 'path');
  const loc: MaildirLocation = { root, layout: 'maildir++', utf8: false, inbox: root, storageSep: '.', sep: '.' };
  for (const p of parts) {
    if (p === '') continue;
    const eq = p.indexOf('=');
    const key = (eq < 0 ? p : p.slice(0, eq)).toUpperCase();
    const val = eq < 0 ? '' : p.slice(eq + 1);
    switch (key) {
      case 'LAYOUT':
        if (val === 'fs') { loc.layout = 'fs'; loc.storageSep = '/'; }
        else if (val === 'maildir++') { loc.layout = 'maildir++'; loc.storageSep = '.'; }
        else throw new MailStoreError('NOTPOSSIBLE', `mail_location "${location}": unsupported LAYOUT=${val} (maildir++ or fs)`);
        break;
      case 'UTF-8': loc.utf8 = true; break;
      case 'INBOX': loc.inbox = expandHome(val, home, 'INBOX='); break;
      case 'INDEX': loc.index = val === 'MEMORY' ? 'MEMORY' : expandHome(val, home, 'INDEX='); break;
      case 'CONTROL': loc.control = expandHome(val, home, 'CONTROL='); break;
      // settings that do not change where we read/write messages
      case 'VOLATILEDIR': case 'DIRNAME': case 'FULLDIRNAME': case 'SUBSCRIPTIONS': case 'ALT': case 'NO-NOSELECT': case 'BROKENCHARS': case 'ITERINDEX': case 'LISTINDEX': case 'INDEXPVT': case 'UNLINK': case 'NOSELECT':
        break;
      default:
        throw new MailStoreError('NOTPOSSIBLE', `mail_location "${location}": unknown parameter ${key}`);
    }
  }
  loc.sep = separator || loc.storageSep;
  return loc;
}
