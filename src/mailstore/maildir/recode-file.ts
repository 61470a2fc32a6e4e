/**
 * Rewrite one Maildir message file in place through a byte transform (used to
 * encrypt existing plaintext mail in Dovecot's mail-crypt format, or to
 * decrypt it), keeping everything Dovecot identifies and dates a message by:
 * the file name (base name = the uidlist key, so the UID; `S=`/`W=`, which
 * Dovecot writes as the plaintext's physical/virtual size for mail-crypt
 * files too; the `:2,` flags and keyword letters), the mtime (Dovecot's
 * INTERNALDATE for Maildir) and the mode.
 *
 * The swap is crash-safe and never loses or doubles a message, even when
 * another process (Dovecot or a Sealmail session) renames the file (a flag
 * change, new/ → cur/) or expunges it while we work:
 *   0. read its first bytes: already in the target form (a rerun) →
 *      nothing else is done;
 *   1. link the file to tmp/<hold>: our stable name for the original inode;
 *   2. write the new bytes to tmp/<new>, fsync, copy atime/mtime;
 *   3. check the original is still at its name (same inode) and still
 *      linked there; otherwise skip: `changed` or `vanished`;
 *   4. rename tmp/<new> over the name (atomic: readers see old or new);
 *   5. if the hold's link count shows the original inode is still linked
 *      somewhere else, it was renamed between 3 and 4: our copy is removed
 *      again (the renamed original stays) and the message reported `changed`;
 *   6. unlink the hold, fsync the directory.
 * A kill at any point leaves either the original or the rewritten file at
 * the name plus at most two tmp/ leftovers (removed on the next run by
 * `removeLeftovers`). Windows left (microseconds, between two system calls):
 * an expunge landing between steps 3 and 4 is undone by the rename (the
 * message reappears); in case 5, a sync by another process before our copy
 * is removed again sees two files with one base name (Dovecot gives one a
 * new UID). Without renameat2(RENAME_EXCHANGE), which Node does not offer,
 * these cannot be closed.
 */
import { constants, createReadStream, promises as fsp } from 'node:fs';
import { join } from 'node:path';

export type RecodeOutcome = 'done' | 'already' | 'vanished' | 'changed' | 'conflict';

export interface RecodeFile {
  /** The folder's Maildir directory (with new/, cur/, tmp/). */
  dir: string;
  sub: 'new' | 'cur';
  file: string;
  /** From the file's first bytes: rewrite it, or it is already in the target form. */
  classify(head: Buffer): 'recode' | 'already';
  transform(stored: AsyncIterable<Buffer>): AsyncIterable<Buffer>;
  /** Called after the new bytes are on disk and before the swap (tests make a concurrent change here). */
  beforeSwap?(path: string): void | Promise<void>;
}

const PREFIX = 'sealmail-recode.';
const HEAD = 64;
let serial = 0;

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException).code;

async function inode(path: string): Promise<{ ino: number; nlink: number } | null> {
  try { const s = await fsp.lstat(path); return { ino: s.ino, nlink: s.nlink }; } catch (e) { if (errno(e) === 'ENOENT') return null; throw e; }
}

async function fsyncDir(dir: string): Promise<void> {
  const h = await fsp.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try { await h.sync(); } finally { await h.close(); }
}

export async function recodeFile(r: RecodeFile): Promise<RecodeOutcome> {
  const path = join(r.dir, r.sub, r.file);
  const stem = join(r.dir, 'tmp', `${PREFIX}${process.pid}.${++serial}`);
  const hold = stem + '.hold';
  const out = stem + '.new';
  // classify first: files already in the target form (a rerun) cost one open, no link
  let st;
  let head: Buffer;
  try {
    const h = await fsp.open(path, 'r');
    try {
      st = await h.stat();
      const b = Buffer.alloc(HEAD);
      head = b.subarray(0, (await h.read(b, 0, HEAD, 0)).bytesRead);
    } finally { await h.close(); }
  } catch (e) {
    if (errno(e) === 'ENOENT') return 'vanished';
    throw e;
  }
  const kind = r.classify(head);
  if (kind !== 'recode') return kind;
  try {
    await fsp.link(path, hold);
  } catch (e) {
    if (errno(e) === 'ENOENT') return 'vanished';
    throw e;
  }
  let outWritten = false;
  try {
    // renamed or replaced between our read and the link: the next run sees its new name
    if ((await inode(hold))!.ino !== st.ino) return 'changed';
    const w = await fsp.open(out, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, st.mode & 0o7777);
    outWritten = true;
    try {
      await w.chmod(st.mode & 0o7777); // the umask must not narrow a shared folder's 0660
      for await (const chunk of r.transform(createReadStream(hold) as AsyncIterable<Buffer>)) await w.write(chunk);
      await w.sync();
    } finally { await w.close(); }
    // as seconds with the sub-second fraction (Date objects would cut it to milliseconds)
    await fsp.utimes(out, st.atimeMs / 1000, st.mtimeMs / 1000);
    const ours = (await inode(out))!.ino;

    await r.beforeSwap?.(path);
    const now = await inode(path);
    if (now === null || now.ino !== st.ino) {
      // renamed (flag change, new/ → cur/) or expunged since we linked it
      return (await inode(hold))!.nlink > 1 ? 'changed' : 'vanished';
    }
    await fsp.rename(out, path);
    outWritten = false;
    if ((await inode(hold))!.nlink > 1) {
      // renamed between the check and our rename: the original lives on under its new
      // name, so our copy at the old name would be a second file with the same base name
      const at = await inode(path);
      if (at && at.ino === ours) { await fsp.unlink(path); return 'changed'; }
      return 'conflict';
    }
    await fsyncDir(join(r.dir, r.sub));
    return 'done';
  } finally {
    if (outWritten) await fsp.unlink(out).catch(() => undefined);
    await fsp.unlink(hold).catch(() => undefined);
  }
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return errno(e) === 'EPERM'; }
}

/** Remove tmp/ files a killed earlier run left (its pid no longer runs); returns how many. */
export async function removeLeftovers(dir: string): Promise<number> {
  let n = 0;
  for (const name of await fsp.readdir(join(dir, 'tmp')).catch(() => [] as string[])) {
    if (!name.startsWith(PREFIX)) continue;
    const pid = Number(name.slice(PREFIX.length).split('.')[0]);
    if (pid === process.pid || (Number.isInteger(pid) && pid > 0 && alive(pid))) continue;
    await fsp.unlink(join(dir, 'tmp', name)).catch(() => undefined);
    n++;
  }
  return n;
}
