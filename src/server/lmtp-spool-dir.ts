/**
 * Where the LMTP front processes of the root master mode spool a message
 * (src/lmtp/data-spool.ts). Dovecot's lmtp runs as root and makes its
 * iostream-temp file in `mail_temp_dir` whatever that directory's mode;
 * ours runs as `default_internal_user`. On a machine whose /tmp is not
 * world-writable (0755, as on some hardened and container images) the
 * spool file could not be made and every message over 128 kB would be
 * held whole in the LMTP process's memory (data-spool.ts falls back to
 * memory as iostream-temp does), one error line per message. So the master,
 * as root, checks at start whether the LMTP user may create files there; if
 * not, it makes `<mail_temp_dir>/sealmail-lmtp.<uid>` (0700, owned by that
 * user) and says so once in a warning; the files in it are unlinked as soon
 * as made, as in mail_temp_dir itself.
 */
import { chmodSync, chownSync, lstatSync, mkdirSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import type { DovecotConfig } from '../config/settings.js';
import type { Identity } from '../util/passwd.js';

/** May `as` (uid and primary gid: the LMTP process has no supplementary groups) create files in a directory of these stats? */
function canCreateIn(st: Stats, as: Identity): boolean {
  if (as.uid === 0) return true;
  const bits = st.uid === as.uid ? 0o300 : st.gid === as.gid ? 0o030 : 0o003;
  return (st.mode & bits) === bits;
}

/**
 * The directory the LMTP processes running as `as` spool in, when it is not
 * mail_temp_dir itself (undefined: mail_temp_dir, or nothing better could be
 * made, the reason in `warn`).
 */
export function lmtpSpoolDir(config: DovecotConfig, as: Identity, warn: (text: string) => void): string | undefined {
  const dir = config.get('mail_temp_dir', { protocol: 'lmtp' }) || '/tmp';
  let st: Stats;
  try { st = statSync(dir); } catch (e) {
    warn(`mail_temp_dir ${dir}: ${(e as Error).message}: LMTP holds messages in memory`);
    return undefined;
  }
  if (canCreateIn(st, as)) return undefined;
  const own = join(dir, `sealmail-lmtp.${as.uid}`);
  const held = `LMTP messages over 128 kB are held in the LMTP process's memory`;
  try {
    let sub: Stats | null = null;
    try { sub = lstatSync(own); } catch { /* not there yet */ }
    if (!sub) {
      mkdirSync(own, { mode: 0o700 });
      chownSync(own, as.uid, as.gid);
    } else if (!sub.isDirectory() || sub.uid !== as.uid) {
      // never one made by someone else, nor a symlink to somewhere else
      warn(`mail_temp_dir ${dir} is not writable by the lmtp service's user ${as.name}, and ${own} is not a directory of that user: ${held}`);
      return undefined;
    }
    chmodSync(own, 0o700);
  } catch (e) {
    warn(`mail_temp_dir ${dir} is not writable by the lmtp service's user ${as.name}, and ${own} could not be made (${(e as Error).message}): ${held}`);
    return undefined;
  }
  warn(`mail_temp_dir ${dir} is not writable by the lmtp service's user ${as.name}: LMTP spools messages in ${own} (made for it, mode 0700)`);
  return own;
}
