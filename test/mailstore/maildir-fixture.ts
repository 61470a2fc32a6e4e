/**
 * Materialises a Dovecot Maildir fixture case (test/fixtures/dovecot-maildir)
 * into a temp dir: git keeps neither empty dirs nor mtimes, so the case's
 * manifest.json restores both (INTERNALDATE is the mtime).
 */
import { chmodSync, cpSync, mkdirSync, readFileSync, readdirSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { fixturesDir } from '../helpers/paths.js';

export const maildirFixtures = join(fixturesDir, 'dovecot-maildir');

export interface FixtureView {
  imap_user: string;
  list_extended: { name: string; flags: string[] }[];
  list_plain: { name: string; flags: string[] }[];
  lsub: string[];
  mailboxes: {
    name: string; uidvalidity: number; uidnext: number; messages: number; unseen: number; flags_response: string;
    msgs: { uid: number; flags: string[]; keywords: string[]; rfc822_size: number; internaldate: string }[];
  }[];
}

export function fixtureViews(): Record<string, FixtureView> {
  return JSON.parse(readFileSync(join(maildirFixtures, 'views.json'), 'utf8'));
}

function fixModes(p: string): void {
  const st = statSync(p);
  chmodSync(p, st.isDirectory() ? 0o700 : 0o600);
  if (st.isDirectory()) for (const e of readdirSync(p)) fixModes(join(p, e));
}

/** Copy case `name` into `dest` (dest/Maildir …); returns dest. */
export function materialiseCase(name: string, dest: string): string {
  const src = join(maildirFixtures, name);
  const manifest = JSON.parse(readFileSync(join(src, 'manifest.json'), 'utf8')) as { dirs: string[]; mtimes: Record<string, number> };
  cpSync(join(src, 'Maildir'), join(dest, 'Maildir'), { recursive: true });
  for (const d of manifest.dirs) mkdirSync(join(dest, d), { recursive: true });
  fixModes(join(dest, 'Maildir'));
  for (const [f, t] of Object.entries(manifest.mtimes)) utimesSync(join(dest, f), t, t);
  return dest;
}

/** ISPmail's special-use folders (15-mailboxes.conf), as the fixture's Dovecot had them. */
export const ISPMAIL_SPECIAL_USE: Record<string, string> = {
  Drafts: '\\Drafts', Junk: '\\Junk', Trash: '\\Trash', Sent: '\\Sent', 'Sent Messages': '\\Sent',
};

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
export function imapDate(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}-${MONTHS[d.getUTCMonth()]}-${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}
