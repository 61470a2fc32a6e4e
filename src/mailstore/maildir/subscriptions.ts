/**
 * The namespace's `subscriptions` file (Dovecot subscription-file.c):
 * `V\t2\n\n` then one storage name per line with hierarchy levels joined by
 * TAB (`\x01t`,`\x01r`,`\x01n`,`\x011` escapes inside a level); without the
 * header it is version 1 (real separator), and stays version 1 on write.
 * Updated via `subscriptions.lock` + rename. Entries for missing folders are
 * kept, as Dovecot does.
 */
import { promises as fsp } from 'node:fs';
import { ioError } from '../errors.js';

export interface Subscriptions {
  version: 1 | 2;
  /** Storage-form names with levels as an array. */
  names: string[][];
}

function unescapeLevel(s: string): string {
  return s.replace(/\x01([trn1])/g, (_m, c: string) => ({ t: '\t', r: '\r', n: '\n', '1': '\x01' }[c] as string));
}
function escapeLevel(s: string): string {
  return s.replace(/[\x01\t\r\n]/g, (c) => ({ '\x01': '\x011', '\t': '\x01t', '\r': '\x01r', '\n': '\x01n' }[c] as string));
}

export function parseSubscriptions(text: string, sep: string): Subscriptions {
  const lines = text.split('\n');
  let version: 1 | 2 = 1;
  if (lines[0] === 'V\t2') { version = 2; lines.splice(0, 2); }
  const names: string[][] = [];
  const seen = new Set<string>();
  for (const raw of lines) {
    const line = raw.replace(/\r$/, '');
    if (line === '') continue;
    const levels = version === 2 ? line.split('\t').map(unescapeLevel) : line.split(sep);
    if (levels.some((l) => l === '')) continue; // garbage: skip, never fatal
    const key = levels.join('\t');
    if (seen.has(key)) continue;
    seen.add(key);
    names.push(levels);
  }
  return { version, names };
}

export function serializeSubscriptions(s: Subscriptions, sep: string): string {
  if (s.version === 1) return s.names.map((l) => l.join(sep) + '\n').join('');
  return 'V\t2\n\n' + s.names.map((l) => l.map(escapeLevel).join('\t') + '\n').join('');
}

export async function readSubscriptions(path: string, sep: string): Promise<Subscriptions> {
  try { return parseSubscriptions(await fsp.readFile(path, 'utf8'), sep); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { version: 2, names: [] };
    throw ioError('reading subscriptions', path, e);
  }
}

/** Read-modify-write under `subscriptions.lock` (the lock file is also the temp file). */
export async function updateSubscriptions(path: string, sep: string, fn: (s: Subscriptions) => void): Promise<void> {
  const lock = path + '.lock';
  const deadline = Date.now() + 30_000;
  let fh;
  for (;;) {
    try { fh = await fsp.open(lock, 'wx', 0o600); break; } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError('locking subscriptions', lock, e);
      const st = await fsp.stat(lock).catch(() => null);
      if (st && Date.now() - st.mtimeMs > 120_000) { await fsp.unlink(lock).catch(() => {}); continue; }
      if (Date.now() > deadline) throw ioError('locking subscriptions', lock, Object.assign(new Error('lock held too long'), { code: 'ETIMEDOUT' }));
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  try {
    const s = await readSubscriptions(path, sep);
    fn(s);
    await fh.writeFile(serializeSubscriptions(s, sep));
    await fh.sync();
    await fh.close();
    await fsp.rename(lock, path);
  } catch (e) {
    await fh.close().catch(() => {});
    await fsp.unlink(lock).catch(() => {});
    throw ioError('writing subscriptions', path, e);
  }
}
