/**
 * Maildir++ quota file `maildirsize` (quota = maildir backend): first line
 * the limits (`<n>S,<n>C`), then `<bytes> <count>` lines appended per
 * change, physical (S=) sizes. Dovecot recalculates it when missing or
 * > 5120 bytes; we only append, or read the sums.
 */
import { promises as fsp } from 'node:fs';
import { ioError } from '../errors.js';

export interface QuotaUsage { limitBytes?: number; limitCount?: number; bytes: number; count: number }

export function parseMaildirsize(text: string): QuotaUsage | null {
  const lines = text.split('\n');
  const head = lines.shift();
  if (head === undefined) return null;
  const u: QuotaUsage = { bytes: 0, count: 0 };
  for (const part of head.split(',')) {
    const m = /^(\d+)([SC])$/.exec(part.trim());
    if (m) { if (m[2] === 'S') u.limitBytes = Number(m[1]); else u.limitCount = Number(m[1]); }
  }
  for (const l of lines) {
    const m = /^\s*(-?\d+)\s+(-?\d+)\s*$/.exec(l);
    if (m) { u.bytes += Number(m[1]); u.count += Number(m[2]); }
  }
  return u;
}

export async function readMaildirsize(path: string): Promise<QuotaUsage | null> {
  try { return parseMaildirsize(await fsp.readFile(path, 'utf8')); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw ioError('reading maildirsize', path, e);
  }
}

/** Append one change line if the file exists (a missing file means Dovecot will recount). */
export async function appendMaildirsize(path: string, bytes: number, count: number): Promise<void> {
  if (bytes === 0 && count === 0) return;
  try {
    const fh = await fsp.open(path, 'r+').catch((e) => { if (e.code === 'ENOENT') return null; throw e; });
    if (!fh) return;
    try {
      const st = await fh.stat();
      await fh.write(`${bytes} ${count}\n`, st.size);
    } finally { await fh.close(); }
  } catch (e) {
    throw ioError('updating maildirsize', path, e);
  }
}
