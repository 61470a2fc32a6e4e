/**
 * The folder tree of one Maildir root in Dovecot's two layouts:
 * Maildir++ (`.<name>` directories with '.' between levels, INBOX = root)
 * and LAYOUT=fs (nested directories, no leading dot). Maps IMAP names
 * (mUTF-7, levels joined by the namespace's separator `loc.sep`; the
 * namespace prefix is already off) to directories and back, with `:UTF-8` storing raw
 * UTF-8 on disk. Listing derives the tree from directories only (spec §6):
 * missing Maildir++ parents are \NonExistent, fs directories without cur/
 * are \Noselect.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { MailStoreError } from '../errors.js';
import type { MaildirLocation } from './location.js';
import { mutf7ToUtf8, utf8ToMutf7, Mutf7Error } from '../api/mailbox-utf7.js';
import { verifyMailboxName } from '../mailbox-name.js';

export interface FolderEntry {
  /** IMAP name (mUTF-7, `loc.sep` separated, without the namespace prefix). */
  name: string;
  /** Exists as a mailbox (selectable). */
  exists: boolean;
  /** A directory exists but cannot hold mail (fs layout without cur/). */
  noselect: boolean;
  hasChildren: boolean;
}

/**
 * Validate an IMAP mailbox name and split it into levels (mUTF-7): first
 * the encoding (control characters and 8-bit bytes are not mUTF-7), then
 * Dovecot's mailbox_verify_name rules (mailbox-name.ts).
 */
export function splitImapName(loc: MaildirLocation, name: string): string[] {
  if (name.toUpperCase() === 'INBOX') return ['INBOX'];
  try { mutf7ToUtf8(name); } catch (e) {
    if (e instanceof Mutf7Error) throw new MailStoreError('BADENCODING', `mailbox name "${name}" is not valid mUTF-7`);
    throw e;
  }
  verifyMailboxName(name, loc.sep, loc.storageSep);
  return name.split(loc.sep);
}

export function isInbox(name: string): boolean {
  return name.toUpperCase() === 'INBOX';
}

/** Level as stored on disk (mUTF-7, or UTF-8 with :UTF-8). */
function levelToDisk(loc: MaildirLocation, level: string): string {
  return loc.utf8 ? mutf7ToUtf8(level) : level;
}
function levelFromDisk(loc: MaildirLocation, level: string): string | null {
  if (loc.utf8) return utf8ToMutf7(level);
  try { mutf7ToUtf8(level); return level; } catch { return null; }
}

/** Storage levels of a folder (what subscriptions store). */
export function storageLevels(loc: MaildirLocation, name: string): string[] {
  if (isInbox(name)) return ['INBOX'];
  if (name === '') return [];
  return splitImapName(loc, name).map((l) => levelToDisk(loc, l));
}
export function imapNameFromStorage(loc: MaildirLocation, levels: string[]): string | null {
  if (levels.length === 1 && levels[0].toUpperCase() === 'INBOX') return 'INBOX';
  const out: string[] = [];
  for (const l of levels) { const v = levelFromDisk(loc, l); if (v === null) return null; out.push(v); }
  return out.join(loc.sep);
}

/** Directory of a folder ('': the root of a namespace with a prefix, a mailbox of its own once it has cur/). */
export function folderDir(loc: MaildirLocation, name: string): string {
  if (isInbox(name)) return loc.inbox;
  if (name === '') return loc.root;
  const levels = splitImapName(loc, name).map((l) => levelToDisk(loc, l));
  if (loc.layout === 'fs') {
    if (levels.some((l) => l === 'cur' || l === 'new' || l === 'tmp')) throw new MailStoreError('INVALIDNAME', 'Contains reserved name');
    return join(loc.root, ...levels);
  }
  if (levels.some((l) => l.includes('.'))) throw new MailStoreError('INVALIDNAME', `mailbox name "${name}" is not allowed`);
  return join(loc.root, '.' + levels.join('.'));
}

async function isDir(p: string): Promise<boolean> {
  try { return (await fsp.stat(p)).isDirectory(); } catch { return false; }
}

/** Subdirectories in the directory's own order (opendir, not readdir: libuv sorts readdir's names, Dovecot lists in readdir(3) order). */
async function readdirDirs(p: string): Promise<string[]> {
  const ents: import('node:fs').Dirent[] = [];
  try { for await (const e of await fsp.opendir(p)) ents.push(e); } catch { return []; }
  const out: string[] = [];
  for (const e of ents) {
    if (e.isDirectory()) out.push(e.name);
    else if (e.isSymbolicLink() && await isDir(join(p, e.name))) out.push(e.name);
  }
  return out;
}

/** When a directory came to be: birth time, then inode number (directories made within one clock tick). */
async function bornKey(p: string): Promise<[bigint, bigint]> {
  try {
    const st = await fsp.stat(p, { bigint: true });
    return [st.birthtimeNs || st.ctimeNs, st.ino];
  } catch { return [0n, 0n]; }
}

/**
 * Every folder of the root in Dovecot's LIST order, with parents filled in.
 * Dovecot lists from its mailbox list index, a tree whose nodes are
 * prepended as they are added: siblings come newest first (a parent
 * without a mailbox is as old as its oldest child), each child right after
 * its parent, INBOX last. Sealmail keeps no list index; the directories'
 * birth times give the same order (ties: newer readdir entries first).
 */
export async function listFolders(loc: MaildirLocation): Promise<FolderEntry[]> {
  const found = new Map<string, { exists: boolean; noselect: boolean; born: [bigint, bigint] | null; seen: number }>();
  let seen = 0;
  if (loc.layout === 'maildir++') {
    for (const d of await readdirDirs(loc.root)) {
      if (!d.startsWith('.') || d.startsWith('..') || d === '.') continue;
      const levels = d.slice(1).split('.');
      const name = imapNameFromStorage(loc, levels);
      // a level with the namespace's separator in it can't be named (Dovecot lists it, but no client could open it)
      if (name === null || name === 'INBOX' || levels.some((l) => l === '' || (loc.sep !== '.' && l.includes(loc.sep)))) continue;
      found.set(name, { exists: true, noselect: false, born: await bornKey(join(loc.root, d)), seen: seen++ });
    }
  } else {
    const walk = async (dir: string, prefix: string[]) => {
      for (const d of await readdirDirs(dir)) {
        // a leading dot is an ordinary character of an fs layout name (Dovecot lists .hidden)
        if (d === 'cur' || d === 'new' || d === 'tmp') continue;
        const lvl = levelFromDisk(loc, d);
        if (lvl === null || lvl.includes(loc.sep)) continue;
        const levels = [...prefix, lvl];
        const name = levels.join(loc.sep);
        if (name.toUpperCase() === 'INBOX') continue;
        const sel = await isDir(join(dir, d, 'cur'));
        found.set(name, { exists: sel, noselect: !sel, born: await bornKey(join(dir, d)), seen: seen++ });
        await walk(join(dir, d), levels);
      }
    };
    await walk(loc.root, []);
  }
  const children = new Map<string, string[]>([['', []]]);
  const place = (name: string): void => {
    if (children.has(name)) return;
    const i = name.lastIndexOf(loc.sep);
    const parent = i < 0 ? '' : name.slice(0, i);
    if (parent && !found.has(parent)) found.set(parent, { exists: false, noselect: false, born: null, seen: -1 });
    place(parent);
    children.get(parent)!.push(name);
    children.set(name, []);
  };
  for (const name of [...found.keys()]) place(name);
  // a node is as old as the oldest of itself and its descendants
  const age = new Map<string, { born: [bigint, bigint]; seen: number }>();
  const ageOf = (name: string): { born: [bigint, bigint]; seen: number } => {
    let a = age.get(name);
    if (a) return a;
    const f = found.get(name)!;
    a = f.born ? { born: f.born, seen: f.seen } : { born: [BigInt(2) ** 64n, 0n], seen: -1 };
    for (const c of children.get(name)!) {
      const b = ageOf(c);
      if (b.born[0] < a.born[0] || (b.born[0] === a.born[0] && b.born[1] < a.born[1])) a = b;
    }
    age.set(name, a);
    return a;
  };
  const newestFirst = (x: string, y: string): number => {
    const a = ageOf(x);
    const b = ageOf(y);
    if (a.born[0] !== b.born[0]) return a.born[0] > b.born[0] ? -1 : 1;
    if (a.born[1] !== b.born[1]) return a.born[1] > b.born[1] ? -1 : 1;
    return b.seen - a.seen;
  };
  const out: FolderEntry[] = [];
  const visit = (name: string): void => {
    for (const c of [...children.get(name)!].sort(newestFirst)) {
      if (c === 'INBOX') continue;
      const f = found.get(c)!;
      out.push({ name: c, exists: f.exists, noselect: f.noselect, hasChildren: children.get(c)!.length > 0 });
      visit(c);
    }
  };
  visit('');
  // INBOX.child makes a parent node INBOX: that is INBOX itself, listed once, last, after its children (Dovecot)
  if (children.has('INBOX')) visit('INBOX');
  out.push({ name: 'INBOX', exists: true, noselect: false, hasChildren: (children.get('INBOX')?.length ?? 0) > 0 });
  return out;
}

export async function folderExists(loc: MaildirLocation, name: string): Promise<boolean> {
  const dir = folderDir(loc, name);
  if (isInbox(name)) return true;
  if (name === '') return isDir(join(dir, 'cur'));
  return loc.layout === 'fs' ? isDir(join(dir, 'cur')) : isDir(dir);
}
