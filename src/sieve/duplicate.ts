/**
 * Sieve duplicate (RFC 7352) tracking as Pigeonhole 0.5 keeps it: the id of
 * a check is MD5("sieve duplicate" + ("0" with :last, else "+") +
 * ("h-" + handle, or "default") + value) (ext-duplicate-common.c), stored in
 * Dovecot's duplicate database of the user, `~/.dovecot.lda-dupes`
 * (lib-storage/mail-duplicate.c): a 4-byte version 2 header, then records of
 * expiry stamp, id size and user size (32-bit, host order), id, user name.
 * Expired records are dropped when the file is rewritten. The file is
 * replaced under Dovecot's dotlock (`.dovecot.lda-dupes.lock`, created
 * exclusively, renamed over the file), so Dovecot's LDA/LMTP and Sealmail
 * can share it across the switch.
 */
import { promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';

export const DUPES_DB = '.dovecot.lda-dupes';
const VERSION = 2;
/** mail-duplicate.c DUPLICATE_BUFSIZE: ids and user names longer than this make the file invalid. */
const MAX_FIELD = 4096;
/** default_mail_duplicate_dotlock_set: timeout 20 s, stale after 10 s. */
const LOCK_TIMEOUT_MS = 20_000;
const LOCK_STALE_MS = 10_000;

/** ext-duplicate-common.c: EXT_DUPLICATE_DEFAULT_PERIOD / _MAX_PERIOD (seconds). */
export const DEFAULT_PERIOD = 12 * 60 * 60;
export const DEFAULT_MAX_PERIOD = 2 * 24 * 60 * 60;

export function duplicateId(handle: string | undefined, value: string, last: boolean): Buffer {
  const h = createHash('md5').update('sieve duplicate').update(last ? '0' : '+');
  h.update(handle !== undefined ? 'h-' + handle : 'default');
  return h.update(value, 'utf8').digest();
}

interface Rec { stamp: number; id: Buffer; user: string }

/** The live records (stamp not yet past); a damaged or unknown file reads as empty, as Dovecot then starts over. */
async function readDb(path: string, nowSec: number): Promise<Rec[]> {
  let b: Buffer;
  try { b = await fs.readFile(path); } catch { return []; }
  if (b.length < 4 || b.readUInt32LE(0) !== VERSION) return [];
  const out: Rec[] = [];
  for (let p = 4; p + 12 <= b.length;) {
    const stamp = b.readUInt32LE(p), idSize = b.readUInt32LE(p + 4), userSize = b.readUInt32LE(p + 8);
    if (!idSize || !userSize || idSize > MAX_FIELD || userSize > MAX_FIELD || p + 12 + idSize + userSize > b.length) return [];
    const id = b.subarray(p + 12, p + 12 + idSize);
    const user = b.subarray(p + 12 + idSize, p + 12 + idSize + userSize).toString('utf8');
    if (stamp >= nowSec) out.push({ stamp, id: Buffer.from(id), user });
    p += 12 + idSize + userSize;
  }
  return out;
}

/** mail_duplicate_check: is this id recorded for this user and not expired? */
export async function duplicateExists(home: string, user: string, id: Buffer, now = Date.now()): Promise<boolean> {
  return (await readDb(join(home, DUPES_DB), Math.floor(now / 1000))).some((r) => r.user === user && r.id.equals(id));
}

/** file_dotlock_open: create PATH.lock exclusively, taking over a lock older than the stale time. */
async function dotlock(lock: string): Promise<fs.FileHandle> {
  const deadline = Date.now() + LOCK_TIMEOUT_MS;
  for (let wait = 10; ; wait = Math.min(wait * 2, 500)) {
    try { return await fs.open(lock, 'wx', 0o600); } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    try { if (Date.now() - (await fs.stat(lock)).mtimeMs > LOCK_STALE_MS) await fs.unlink(lock); } catch { /* gone meanwhile */ }
    if (Date.now() > deadline) throw new Error(`Creating lock file for ${lock.slice(0, -5)} timed out in ${LOCK_TIMEOUT_MS / 1000} secs`);
    await new Promise((r) => setTimeout(r, wait));
  }
}

/**
 * mail_duplicate_mark + commit: add (or renew) the ids with their expiry
 * (seconds since the epoch) and rewrite the file without expired records.
 */
export async function markDuplicates(home: string, user: string, marks: { id: Buffer; expires: number }[], now = Date.now()): Promise<void> {
  if (!marks.length) return;
  const path = join(home, DUPES_DB);
  const lock = `${path}.lock`;
  const fh = await dotlock(lock);
  try {
    const recs = (await readDb(path, Math.floor(now / 1000))).filter((r) => !(r.user === user && marks.some((m) => m.id.equals(r.id))));
    for (const m of marks) recs.push({ stamp: m.expires, id: m.id, user });
    const parts: Buffer[] = [Buffer.alloc(4)];
    parts[0].writeUInt32LE(VERSION, 0);
    for (const r of recs) {
      const u = Buffer.from(r.user, 'utf8');
      const h = Buffer.alloc(12);
      h.writeUInt32LE(r.stamp >>> 0, 0); h.writeUInt32LE(r.id.length, 4); h.writeUInt32LE(u.length, 8);
      parts.push(h, r.id, u);
    }
    await fh.writeFile(Buffer.concat(parts));
    if (process.getuid?.() === 0) {
      const st = await fs.stat(home);
      await fh.chown(st.uid, st.gid);
    }
    await fh.close();
    await fs.rename(lock, path);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await fs.unlink(lock).catch(() => undefined);
    throw e;
  }
}

/**
 * mail_get_message_id: the first `<...>` of the Message-ID field that holds
 * an '@', blanks removed, with its brackets; undefined when there is none.
 */
export function messageIdValue(field: string | undefined): string | undefined {
  if (field === undefined) return undefined;
  for (let i = field.indexOf('<'); i >= 0; i = field.indexOf('<', i + 1)) {
    const end = field.indexOf('>', i + 1);
    if (end < 0) return undefined;
    const id = field.slice(i + 1, end).replace(/[ \t\r\n]/g, '');
    if (id.includes('@')) return `<${id}>`;
  }
  return undefined;
}
