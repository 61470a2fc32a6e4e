/**
 * Maildir++ quota file `maildirsize` (quota = maildir backend): first line
 * the limits (`<n>S,<n>C`), then `<bytes> <count>` lines appended per
 * change, physical (S=) sizes. Dovecot recalculates it when missing or
 * > 5120 bytes; we only append, or read the sums.
 */
import { constants, promises as fsp } from 'node:fs';
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

/** The file's text and sums (null when missing). */
export async function readMaildirsizeFile(path: string): Promise<{ text: string; usage: QuotaUsage } | null> {
  try {
    const text = await fsp.readFile(path, 'utf8');
    return { text, usage: parseMaildirsize(text) ?? { bytes: 0, count: 0 } };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw ioError('reading maildirsize', path, e);
  }
}

/** Recalculated file: limits line and one sum line, replaced atomically (Dovecot's dotlock + rename). */
export async function writeMaildirsize(path: string, limits: string, bytes: number, count: number): Promise<void> {
  const tmp = `${path}.lock`;
  try {
    await fsp.writeFile(tmp, `${limits}\n${bytes} ${count}\n`, { mode: 0o600, flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return; // someone else is recalculating it right now
    throw ioError('writing maildirsize', path, e);
  }
  try {
    await fsp.rename(tmp, path);
  } catch (e) {
    await fsp.unlink(tmp).catch(() => undefined);
    throw ioError('writing maildirsize', path, e);
  }
}

export async function readMaildirsize(path: string): Promise<QuotaUsage | null> {
  try { return parseMaildirsize(await fsp.readFile(path, 'utf8')); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw ioError('reading maildirsize', path, e);
  }
}

/**
 * Append change lines (`<bytes> <count>` each, one per transaction as Dovecot
 * writes them) if the file exists: a missing file means Dovecot will recount.
 * O_APPEND without O_CREAT, in one write(), so lines of concurrent writers
 * (other folders of the user, other processes) never overwrite each other.
 */
export async function appendMaildirsize(path: string, changes: [bytes: number, count: number][]): Promise<void> {
  const text = changes.filter(([b, c]) => b !== 0 || c !== 0).map(([b, c]) => `${b} ${c}\n`).join('');
  if (!text) return;
  try {
    const fh = await fsp.open(path, constants.O_WRONLY | constants.O_APPEND).catch((e) => { if (e.code === 'ENOENT') return null; throw e; });
    if (!fh) return;
    try { await fh.write(text); } finally { await fh.close(); }
  } catch (e) {
    throw ioError('updating maildirsize', path, e);
  }
}
