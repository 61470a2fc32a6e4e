/**
 * Dovecot's `file:` dict as mail_attribute_dict uses it
 * (`file:%h/Maildir/dovecot-attributes`, mail-crypt-format.md §2.1): records
 * of two lines (key, value), \x01-escaping of NUL/0x01/TAB/CR/LF, arbitrary
 * record order, every change a whole-file rewrite. Writers take Dovecot's
 * dotlock — `<file>.lock` created O_EXCL, the new content written into it,
 * then renamed over the file — so Sealmail and Dovecot can share one
 * Maildir during a migration. Permissions follow the old file (or 0600).
 */
import { promises as fsp, constants as fsc } from 'node:fs';
import { hostname } from 'node:os';
import { CryptError } from './keys.js';
import { expandVars } from '../config/vars.js';

const ESC: Record<string, string> = { '0': '\0', '1': '\x01', t: '\t', r: '\r', n: '\n' };

export function unescapeDict(s: string): string {
  return s.replace(/\x01(.)/gs, (m, c: string) => ESC[c] ?? m);
}

export function escapeDict(s: string): string {
  return s.replace(/[\0\x01\t\r\n]/g, (c) => '\x01' + ({ '\0': '0', '\x01': '1', '\t': 't', '\r': 'r', '\n': 'n' } as Record<string, string>)[c]);
}

export function parseDict(text: string, path: string): Map<string, string> {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  if (lines.length % 2 !== 0) throw new CryptError(`${path}: corrupt attribute dict (odd number of lines: a key without a value)`);
  const m = new Map<string, string>();
  for (let i = 0; i < lines.length; i += 2) m.set(unescapeDict(lines[i]), unescapeDict(lines[i + 1]));
  return m;
}

export function serialiseDict(m: Map<string, string>): string {
  let out = '';
  for (const [k, v] of m) out += `${escapeDict(k)}\n${escapeDict(v)}\n`;
  return out;
}

/**
 * The file behind `mail_attribute_dict = file:PATH[:lock=…]` for one user
 * (%u %n %d %h expanded); null when the setting is empty or names another
 * dict driver, which Sealmail does not implement.
 */
export function attributeDictFile(setting: string, user: { username: string; home?: string }): string | null {
  if (!setting.startsWith('file:')) return null;
  const at = user.username.indexOf('@');
  const vars = { u: user.username, user: user.username, n: at < 0 ? user.username : user.username.slice(0, at), d: at < 0 ? '' : user.username.slice(at + 1), h: user.home ?? '', home: user.home ?? '' };
  return expandVars(setting.slice(5).replace(/:lock=\w+$/, ''), vars);
}

const STALE_MS = 60_000;
const GIVE_UP_MS = 120_000;

/** A dict file's identity: any rewrite (Dovecot's and ours go through a rename) changes the inode, and mtime and size too. */
const stampOf = (st: { ino: bigint; size: bigint; mtimeNs: bigint; ctimeNs: bigint }) => `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;

/**
 * The last content read of each dict file, by path, with the stamp it was
 * read at: a delivery asks for the user's and folder's public keys of the
 * same file again and again, and a stat is cheaper than a read and a parse.
 * Bounded: the oldest entries go first.
 */
const sharedReads = new Map<string, { stamp: string; dict: ReadonlyMap<string, string> }>();
const SHARED_READS_MAX = 1000;

export class AttributeDict {
  constructor(readonly path: string) {}

  /**
   * The whole dict as read() gives it, from the last read of this file when
   * the file is still the one read then (same inode, size, mtime and ctime
   * to the nanosecond): a key generated or re-encrypted since (sealadm or
   * doveadm `mailbox cryptokey generate -f`, `password`) is a rewrite, and
   * is read. Read-only: never edit the map it returns.
   */
  async readShared(): Promise<ReadonlyMap<string, string>> {
    let st;
    try { st = await fsp.stat(this.path, { bigint: true }); } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') { sharedReads.delete(this.path); return new Map(); }
      throw new CryptError(`${this.path}: ${(e as Error).message}`);
    }
    const stamp = stampOf(st);
    const hit = sharedReads.get(this.path);
    if (hit?.stamp === stamp) return hit.dict;
    const dict = await this.read();
    // the file may have changed between the stat and the read: kept only when the stamp still holds after it
    const after = await fsp.stat(this.path, { bigint: true }).catch(() => null);
    if (after && stampOf(after) === stamp) {
      sharedReads.delete(this.path);
      sharedReads.set(this.path, { stamp, dict });
      if (sharedReads.size > SHARED_READS_MAX) sharedReads.delete(sharedReads.keys().next().value!);
    }
    return dict;
  }

  /** The whole dict; a missing file is an empty dict. */
  async read(): Promise<Map<string, string>> {
    let text: string;
    try { text = await fsp.readFile(this.path, 'utf8'); } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw new CryptError(`${this.path}: ${(e as Error).message}`);
    }
    return parseDict(text, this.path);
  }

  async get(key: string): Promise<string | undefined> { return (await this.read()).get(key); }

  /**
   * One transaction: `fn` edits the current content under the dotlock; the
   * result replaces the file atomically. Nothing is written when `fn`
   * throws, so a failed operation (wrong password …) never touches keys.
   */
  async update(fn: (m: Map<string, string>) => void | Promise<void>): Promise<void> {
    const lock = `${this.path}.lock`;
    const mode = await fsp.stat(this.path).then((s) => s.mode & 0o777, () => 0o600);
    const fh = await this.takeLock(lock, mode);
    let renamed = false;
    try {
      const m = await this.read();
      await fn(m);
      await fh.writeFile(serialiseDict(m));
      await fh.sync();
      await fh.close();
      await fsp.rename(lock, this.path);
      renamed = true;
    } finally {
      if (!renamed) {
        await fh.close().catch(() => undefined);
        await fsp.unlink(lock).catch(() => undefined);
      }
    }
  }

  private async takeLock(lock: string, mode: number): Promise<fsp.FileHandle> {
    const start = Date.now();
    for (let delay = 5; ; delay = Math.min(delay * 2, 200)) {
      try {
        return await fsp.open(lock, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, mode);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new CryptError(`${lock}: ${(e as Error).message}`);
      }
      const st = await fsp.stat(lock).catch(() => null);
      if (st && Date.now() - st.mtimeMs > STALE_MS) {
        await fsp.unlink(lock).catch(() => undefined); // Dovecot's stale-lock rule
        continue;
      }
      if (Date.now() - start > GIVE_UP_MS) throw new CryptError(`${lock}: timeout waiting for the lock held by another process (${hostname()})`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

export const ATTR_PVT = 'vendor/vendor.dovecot/pvt/';
/** Attribute names under a mailbox GUID (spec §2.2). */
export const attrKeys = {
  userActive: (inbox: string) => `shared/${inbox}/${ATTR_PVT}server/${ATTR_PVT}crypt/active`,
  userPub: (inbox: string, id: string) => `shared/${inbox}/${ATTR_PVT}server/${ATTR_PVT}crypt/pubkeys/${id}`,
  userPriv: (inbox: string, id: string) => `priv/${inbox}/${ATTR_PVT}server/${ATTR_PVT}crypt/privkeys/${id}`,
  userPrivPrefix: (inbox: string) => `priv/${inbox}/${ATTR_PVT}server/${ATTR_PVT}crypt/privkeys/`,
  userPubPrefix: (inbox: string) => `shared/${inbox}/${ATTR_PVT}server/${ATTR_PVT}crypt/pubkeys/`,
  /** Sealmail: the user keys re-encrypted with a new password, valid until the SQL hash changed (crash-safe password change). */
  userPending: (inbox: string, id: string) => `priv/${inbox}/${ATTR_PVT}server/vendor/vendor.sealmail/crypt/pending-privkeys/${id}`,
  userPendingPrefix: (inbox: string) => `priv/${inbox}/${ATTR_PVT}server/vendor/vendor.sealmail/crypt/pending-privkeys/`,
  /** Sealmail: when a folder key was made (or first seen), epoch ms, for key rotation; under Dovecot's hidden pvt/ */
  boxKeyCreated: (box: string, id: string) => `shared/${box}/${ATTR_PVT}sealmail/crypt/created/${id}`,
  /** Sealmail: the user keys encrypted under the recovery code (opt-in). */
  userRecovery: (inbox: string, id: string) => `priv/${inbox}/${ATTR_PVT}server/vendor/vendor.sealmail/crypt/recovery-privkeys/${id}`,
  userRecoveryPrefix: (inbox: string) => `priv/${inbox}/${ATTR_PVT}server/vendor/vendor.sealmail/crypt/recovery-privkeys/`,
  boxActive: (box: string) => `shared/${box}/${ATTR_PVT}crypt/active`,
  boxPub: (box: string, id: string) => `shared/${box}/${ATTR_PVT}crypt/pubkeys/${id}`,
  boxPriv: (box: string, id: string) => `priv/${box}/${ATTR_PVT}crypt/privkeys/${id}`,
  boxPrivPrefix: (box: string) => `priv/${box}/${ATTR_PVT}crypt/privkeys/`,
};
