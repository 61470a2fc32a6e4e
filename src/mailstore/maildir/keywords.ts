/**
 * `dovecot-keywords`: `<index> <name>` lines mapping file-name letters a..z
 * to IMAP keywords (maildir-keywords.c). Entries are only ever added; an
 * unknown letter gets `unknown-<n>`. Rewritten via `dovecot-keywords.lock`
 * + rename with a strictly growing mtime (Dovecot caches it by mtime), only
 * while the caller holds the uidlist lock.
 */
import { promises as fsp } from 'node:fs';
import { ioError } from '../errors.js';

export const MAX_KEYWORDS = 26;

export class KeywordMap {
  /** index → name */
  readonly names: (string | undefined)[] = new Array(MAX_KEYWORDS).fill(undefined);
  problems: string[] = [];
  dirty = false;

  static parse(text: string, path = 'dovecot-keywords'): KeywordMap {
    const k = new KeywordMap();
    text.split('\n').forEach((line, i) => {
      if (line === '') return;
      const m = /^(\d+) (.+)$/.exec(line);
      if (!m || Number(m[1]) >= MAX_KEYWORDS) { k.problems.push(`${path}:${i + 1}: line ignored`); return; }
      const idx = Number(m[1]);
      if (k.names[idx] !== undefined || k.indexOf(m[2]) >= 0) { k.problems.push(`${path}:${i + 1}: duplicate ignored`); return; }
      k.names[idx] = m[2];
    });
    return k;
  }

  /** A copy to change (allocate, unknown-N) without touching the original. */
  clone(): KeywordMap {
    const k = new KeywordMap();
    k.names.splice(0, MAX_KEYWORDS, ...this.names);
    k.problems = [...this.problems];
    k.dirty = this.dirty;
    return k;
  }

  indexOf(name: string): number {
    const n = name.toLowerCase();
    return this.names.findIndex((x) => x !== undefined && x.toLowerCase() === n);
  }

  /** Name for a letter index, creating `unknown-<n>` (Dovecot's rule) when missing. */
  nameFor(idx: number): string {
    let n = this.names[idx];
    if (n === undefined) {
      n = `unknown-${idx}`;
      while (this.indexOf(n) >= 0) n += '?';
      this.names[idx] = n;
      this.dirty = true;
    }
    return n;
  }

  /** Index for a keyword, allocating the next free letter; -1 when all 26 are used. */
  allocate(name: string): number {
    const i = this.indexOf(name);
    if (i >= 0) return i;
    const free = this.names.findIndex((x) => x === undefined);
    if (free < 0) return -1;
    this.names[free] = name;
    this.dirty = true;
    return free;
  }

  serialize(): string {
    return this.names.map((n, i) => (n === undefined ? '' : `${i} ${n}\n`)).join('');
  }
}

export async function readKeywords(path: string): Promise<KeywordMap> {
  try { return KeywordMap.parse(await fsp.readFile(path, 'utf8'), path); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new KeywordMap();
    throw ioError('reading keywords', path, e);
  }
}

/** Caller holds the uidlist lock. */
export async function writeKeywords(path: string, k: KeywordMap): Promise<void> {
  let oldMtime = 0;
  try { oldMtime = (await fsp.stat(path)).mtimeMs; } catch { /* new file */ }
  const lock = path + '.lock';
  try {
    const fh = await fsp.open(lock, 'wx', 0o600);
    try { await fh.writeFile(k.serialize()); await fh.sync(); } finally { await fh.close(); }
    const nowS = Math.max(Date.now() / 1000, Math.floor(oldMtime / 1000) + 1);
    await fsp.utimes(lock, nowS, nowS);
    await fsp.rename(lock, path);
    k.dirty = false;
  } catch (e) {
    await fsp.unlink(lock).catch(() => {});
    throw ioError('writing keywords', path, e);
  }
}
