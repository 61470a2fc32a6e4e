/**
 * Leftover tmp/ files removed as Dovecot 2.3 does when it opens a Maildir
 * (maildir-storage.c maildir_check_tmp, lib/unlink-old-files.c): at most
 * once per `mail_temp_scan_interval` (default 1 week, 0 disables) — tmp/'s
 * own atime records the last scan, and is set to now before scanning so
 * that two processes don't both scan — files (not directories) whose ctime
 * is older than 36 hours are unlinked. A tmp/ whose atime is more than 36
 * hours past its ctime was found empty and is left alone until something
 * is written into it.
 *
 * ctime, not mtime: a message being saved gets its INTERNALDATE as mtime
 * while still in tmp/ (folder.ts), so an mtime rule would delete an APPEND
 * in flight; ctime is when the file was last written here, and only the
 * kernel sets it.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';

/** MAILDIR_TMP_DELETE_SECS: how old (ctime) a tmp/ file must be to go. */
export const MAILDIR_TMP_DELETE_MS = 36 * 60 * 60 * 1000;
/** mail_temp_scan_interval's default. */
export const DEFAULT_TEMP_SCAN_INTERVAL_MS = 7 * 24 * 60 * 60 * 1000;

/**
 * Scan `maildir`/tmp if it is due; returns how many files were removed.
 * `now` is injectable for tests (ctime cannot be set from user space).
 */
export async function cleanTmpIfDue(maildir: string, intervalMs: number, now = Date.now()): Promise<number> {
  if (intervalMs <= 0) return 0;
  const tmp = join(maildir, 'tmp');
  let st;
  try { st = await fsp.stat(tmp); } catch { return 0; }
  // found empty at the last scan, nothing written since
  if (st.atimeMs > st.ctimeMs + MAILDIR_TMP_DELETE_MS) return 0;
  if (st.atimeMs >= now - intervalMs) return 0;
  return unlinkOldFiles(tmp, now - MAILDIR_TMP_DELETE_MS, now);
}

async function unlinkOldFiles(dir: string, minCtimeMs: number, now: number): Promise<number> {
  const t = new Date(now);
  // first: another process opening this mailbox meanwhile sees the scan as done
  await fsp.utimes(dir, t, t).catch(() => undefined);
  let names: string[];
  try { names = await fsp.readdir(dir); } catch { return 0; }
  let n = 0;
  for (const name of names) {
    const p = join(dir, name);
    try {
      const st = await fsp.stat(p);
      if (!st.isDirectory() && st.ctimeMs < minCtimeMs) { await fsp.unlink(p); n++; }
    } catch { /* gone meanwhile, or not ours to remove: Dovecot logs and goes on */ }
  }
  return n;
}
