/**
 * Fast STATUS for big folders, Dovecot's way: a folder whose new/, cur/,
 * uidlist and keywords file have the same mtimes (ns) and sizes as when its
 * counters were last computed cannot have changed, so STATUS answers from a
 * small per-folder file (`sealmail.status`) without listing 100k files.
 * Counters are no message data (numbers and keyword names only) and the file
 * is rebuildable at any time. Like Dovecot's maildir sync, a stamp younger
 * than two seconds is never trusted: a change within the same clock tick as
 * our scan would otherwise go unseen.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { writeAtomic } from './maildir/dotlock.js';
import { MODSEQ_FILE } from './maildir/modseq.js';
import type { MailboxStatus } from './store.js';

export const STATUS_FILE = 'sealmail.status';
const TRUST_AFTER_MS = 2000;

/** The STATUS counters as the store computes them (type-only import: no cycle at run time). */
export type CachedStatus = MailboxStatus;

/** The change stamp of a folder, or null when it is too fresh to trust. */
export async function folderStamp(dir: string, controlDir: string, withRecent = true): Promise<string | null> {
  const parts: string[] = [];
  let newest = 0n;
  const paths = [join(dir, 'new'), join(dir, 'cur'), join(controlDir, 'dovecot-uidlist'), join(controlDir, 'dovecot-keywords')];
  // the \Recent marker and the MODSEQ file only matter for the cached STATUS counters, not for a folder's message list
  if (withRecent) paths.push(join(controlDir, 'sealmail.recent'), join(controlDir, MODSEQ_FILE));
  const modseqFile = join(controlDir, MODSEQ_FILE);
  for (const p of paths) {
    try {
      const st = await fsp.stat(p, { bigint: true });
      parts.push(`${st.ino}:${st.mtimeNs}:${st.size}`);
      // sealmail.modseq changes only by growing or being replaced (size/inode show it): its mtime needs no settling time
      if (st.mtimeNs > newest && p !== modseqFile) newest = st.mtimeNs;
    } catch {
      parts.push('-');
    }
  }
  if (Number(newest / 1_000_000n) > Date.now() - TRUST_AFTER_MS) return null;
  return parts.join(' ');
}

export async function readStatusCache(controlDir: string, stamp: string): Promise<CachedStatus | null> {
  try {
    const f = JSON.parse(await fsp.readFile(join(controlDir, STATUS_FILE), 'utf8')) as { stamp: string; status: CachedStatus };
    return f.stamp === stamp ? f.status : null;
  } catch {
    return null;
  }
}

/** Best effort: a read-only folder or a full disk only costs the next STATUS a rescan. */
export async function writeStatusCache(controlDir: string, stamp: string, status: CachedStatus): Promise<void> {
  const p = join(controlDir, STATUS_FILE);
  await writeAtomic(p, Buffer.from(JSON.stringify({ stamp, status })), `${p}.tmp.${process.pid}`).catch(() => undefined);
}
