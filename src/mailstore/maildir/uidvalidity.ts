/**
 * The per-root UIDVALIDITY allocator (mailbox-uidvalidity.c):
 * `dovecot-uidvalidity` holds the last value as 8 lowercase hex digits and an
 * empty 0444 token `dovecot-uidvalidity.<hex>` names the same value; the next
 * value is claimed by rename()ing the token, which is atomic between
 * processes (Dovecot's and ours).
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { ioError } from '../errors.js';
import { writeAtomic } from './dotlock.js';

const hex = (n: number) => (n >>> 0).toString(16).padStart(8, '0');

async function tokens(dir: string): Promise<number[]> {
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => /^dovecot-uidvalidity\.[0-9a-f]{8}$/.test(n)).map((n) => parseInt(n.slice(20), 16));
}

let lastSeed = 0;
/** mailbox_uidvalidity_next_fallback: the clock, but never the same value twice in one process. */
function freshSeed(): number {
  const now = Math.floor(Date.now() / 1000);
  lastSeed = lastSeed < now ? now : lastSeed + 1;
  return lastSeed;
}

export async function nextUidValidity(dir: string): Promise<number> {
  const file = join(dir, 'dovecot-uidvalidity');
  let cur = NaN;
  try {
    const t = (await fsp.readFile(file, 'utf8')).trim();
    if (/^[0-9a-f]{1,8}$/.test(t)) cur = parseInt(t, 16);
  } catch { /* missing → scan tokens */ }
  if (!cur) {
    const ts = (await tokens(dir)).sort((a, b) => a - b);
    if (ts.length) {
      cur = ts[ts.length - 1];
      for (const t of ts.slice(0, -1)) await fsp.unlink(join(dir, `dovecot-uidvalidity.${hex(t)}`)).catch(() => {});
    } else {
      // fresh root: seed from the clock, minus one so the first handed out is "now" (or one more than
      // the last fresh root's of this process within the same second, as Dovecot's fallback counter)
      cur = freshSeed() - 1;
      try { await fsp.writeFile(join(dir, `dovecot-uidvalidity.${hex(cur)}`), '', { mode: 0o444, flag: 'wx' }); } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError('creating UIDVALIDITY token', dir, e);
      }
    }
  }
  for (let attempt = 0; attempt < 10; attempt++) {
    const next = ((cur + 1) >>> 0) || 1;
    try {
      await fsp.rename(join(dir, `dovecot-uidvalidity.${hex(cur)}`), join(dir, `dovecot-uidvalidity.${hex(next)}`));
      // the hex file is only a hint (the token is authoritative): unique temp name, last writer wins
      await writeAtomic(file, hex(next), `${file}.tmp.${process.pid}.${Math.random().toString(36).slice(2)}`, 0o600);
      return next;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError('allocating UIDVALIDITY', dir, e);
      // someone else took `cur`: find the current token and retry
      const ts = await tokens(dir);
      cur = ts.length ? Math.max(...ts) : cur + 1;
      if (!ts.length) await fsp.writeFile(join(dir, `dovecot-uidvalidity.${hex(cur)}`), '', { mode: 0o444 }).catch(() => {});
    }
  }
  throw ioError('allocating UIDVALIDITY', dir, new Error('token kept vanishing (10 attempts)'));
}
