/**
 * The Dovecot-written mail-crypt fixtures (test/fixtures/dovecot-mailcrypt,
 * copied from the shared fixtures): a case copied into a temp home with the
 * empty cur/new/tmp directories git does not keep, plus a store and crypt
 * user for it.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fixturesDir } from '../helpers/paths.js';
import { MailStore } from '../../src/mailstore/store.js';
import type { CryptUser } from '../../src/crypt/user-crypt.js';

export const MC_DIR = join(fixturesDir, 'dovecot-mailcrypt');

export interface McMessage { mailbox: string; uid: number; file: string; plaintext: string; format: string }
export interface McCase { user: string; curve?: string; password_current?: string; password_initial?: string; messages: McMessage[] }
export const manifest = JSON.parse(readFileSync(join(MC_DIR, 'manifest.json'), 'utf8')) as { cases: Record<string, McCase> };

function fillMaildirDirs(dir: string): void {
  if (existsSync(join(dir, 'dovecot-uidlist')) || existsSync(join(dir, 'cur')) || existsSync(join(dir, 'new'))) {
    for (const d of ['cur', 'new', 'tmp']) mkdirSync(join(dir, d), { recursive: true });
  }
  for (const e of readdirSync(dir)) {
    if (e.startsWith('.') && statSync(join(dir, e)).isDirectory()) fillMaildirDirs(join(dir, e));
  }
}

/** Copy case `name` to `<home>/Maildir`; returns the home. */
export function materialiseMailcrypt(name: string, home: string): string {
  mkdirSync(home, { recursive: true });
  cpSync(join(MC_DIR, name, 'Maildir'), join(home, 'Maildir'), { recursive: true, preserveTimestamps: true });
  fillMaildirDirs(join(home, 'Maildir'));
  return home;
}

export function plaintext(rel: string): Buffer {
  return readFileSync(join(MC_DIR, rel));
}

export function cryptUser(store: MailStore, username: string, fields: [string, string][] = []): CryptUser {
  return {
    username, mailRoot: store.loc.root, home: store.opts.home, fields, protocol: 'imap',
    async mailboxGuid(name) {
      if (name.toUpperCase() === 'INBOX') await store.ensureRoot();
      const f = await store.open(name);
      await f.sync();
      return f.guid;
    },
  };
}
