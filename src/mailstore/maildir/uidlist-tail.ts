/**
 * A folder's dovecot-uidlist kept in memory between reads: only the bytes
 * appended since the last look are read and parsed, as Dovecot re-reads its
 * uidlist from the last read offset (maildir-uidlist.c). A delivery or a
 * session's sync on a 100k-message folder therefore no longer parses 5 MB
 * on the event loop (150–300 ms per batch measured on this machine). Appends
 * by other processes (IMAP workers, Dovecot, doveadm) are picked up as they
 * come; a rewrite renames a new file in (another inode or birth time), and
 * that, a shrunk file, or anything irregular in the appended part, means a
 * full read. A damaged or missing uidlist is the caller's full-sync case.
 */
import { promises as fsp, type BigIntStats } from 'node:fs';
import { ioError } from '../errors.js';
import { nextUid, parseUidlist, type Uidlist, type UidlistRecord } from './uidlist.js';

/**
 * The uidlist as read at one moment. Never changed once handed out (a newer
 * read is a new object): callers may keep it, and copy before editing.
 */
export interface UidlistSnapshot {
  /** inode, birth, mtime and size of the file this was read from ('-' = missing); null: read it again next time. */
  readonly key: string | null;
  /** null: missing, or no usable header. */
  readonly uidlist: Uidlist | null;
  /**
   * Records by base name. Shared with the snapshots read after this one (appends only add to
   * it, a full read makes a new map), so look up through recordOf(), which hides the newer ones.
   */
  readonly byBase: ReadonlyMap<string, UidlistRecord>;
  /** The highest UID of this snapshot's records. */
  readonly lastUid: number;
  /** Bytes consumed (whole lines only). */
  readonly offset: number;
  readonly ino: bigint;
  readonly birth: bigint;
  /** The header line, to parse appended record lines in its version. */
  readonly header: string;
}

/** What a delivery needs from the uidlist. */
export interface UidlistView {
  readonly uidValidity: number;
  /** The UID the next new record gets. */
  readonly nextUid: number;
  uidOf(base: string): number | undefined;
}

const MISSING: UidlistSnapshot = { key: '-', uidlist: null, byBase: new Map(), lastUid: 0, offset: 0, ino: 0n, birth: 0n, header: '' };

/** The stat fields that change whenever a writer appends or renames a new file in (also a directory's listing key). */
export function fileKey(st: BigIntStats): string {
  return `${st.ino}:${st.birthtimeNs}:${st.mtimeNs}:${st.size}`;
}

/** The record of `base` in snapshot `s`. */
export function recordOf(s: UidlistSnapshot, base: string): UidlistRecord | undefined {
  const r = s.byBase.get(base);
  return r && r.uid <= s.lastUid ? r : undefined;
}

/** Appended record lines (ending in '\n') on top of `prev`; null when they are not a clean continuation. */
function withAppended(prev: UidlistSnapshot, text: string): { uidlist: Uidlist; lastUid: number } | null {
  const base = prev.uidlist!;
  const u = parseUidlist(`${prev.header}\n${text}`);
  if (!u || u.problems.length) return null;
  let last = prev.lastUid;
  for (const r of u.records) {
    if (r.uid <= last || recordOf(prev, r.base)) return null;
    last = r.uid;
  }
  const byBase = prev.byBase as Map<string, UidlistRecord>;
  for (const r of u.records) byBase.set(r.base, r);
  return {
    uidlist: { ...base, records: base.records.concat(u.records), highestSeenUid: Math.max(base.highestSeenUid, u.highestSeenUid), headerNextUid: Math.max(base.headerNextUid, u.headerNextUid) },
    lastUid: last,
  };
}

/**
 * The uidlist now, read incrementally from `prev` when the file is the same
 * one grown by appends, else in full. A file with problems (torn last line,
 * UIDs out of order) comes back with them and a null key, so the caller
 * repairs it under the lock and the next call reads it again.
 */
export async function readUidlistFrom(path: string, prev: UidlistSnapshot | null): Promise<UidlistSnapshot> {
  let fh: fsp.FileHandle;
  try { fh = await fsp.open(path, 'r'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return MISSING;
    throw ioError('reading uidlist', path, e);
  }
  try {
    const st = await fh.stat({ bigint: true });
    const key = fileKey(st);
    if (prev && prev.key === key) return prev;
    // without a birth time an inode number alone could be a recycled one: always read in full then
    if (prev?.uidlist && prev.key !== null && !prev.uidlist.problems.length && st.birthtimeNs > 0n
      && prev.ino === st.ino && prev.birth === st.birthtimeNs && Number(st.size) >= prev.offset) {
      const buf = Buffer.alloc(Number(st.size) - prev.offset);
      const { bytesRead } = await fh.read(buf, 0, buf.length, prev.offset);
      const text = buf.subarray(0, bytesRead).toString('utf8');
      const merged = bytesRead !== buf.length || !(text === '' || text.endsWith('\n')) ? null
        : text === '' ? { uidlist: prev.uidlist, lastUid: prev.lastUid } : withAppended(prev, text);
      if (merged) return { ...prev, key, uidlist: merged.uidlist, lastUid: merged.lastUid, offset: prev.offset + bytesRead };
    }
    const whole = await fh.readFile();
    const text = whole.toString('utf8');
    const u = parseUidlist(text, path);
    const ok = u !== null && u.problems.length === 0;
    return {
      key: ok ? key : null, uidlist: u, byBase: new Map(u?.records.map((r) => [r.base, r]) ?? []), lastUid: u?.records.at(-1)?.uid ?? 0, offset: whole.length,
      ino: st.ino, birth: st.birthtimeNs, header: text.slice(0, Math.max(0, text.indexOf('\n'))),
    };
  } catch (e) {
    throw ioError('reading uidlist', path, e);
  } finally { await fh.close(); }
}

/** Folders that receive mail are few at a time; the rest are read in full when they next do. */
const MAX_CACHED = 128;
const cache = new Map<string, UidlistSnapshot>();

function view(s: UidlistSnapshot): UidlistView {
  const u = s.uidlist!;
  return { uidValidity: u.uidValidity, nextUid: nextUid(u), uidOf: (b) => recordOf(s, b)?.uid };
}

/**
 * The uidlist as of now (call with its lock held): incrementally when this
 * process has seen the same file before, else in full. null when the file
 * is missing or has problems (the caller's full sync repairs it).
 */
export async function readUidlistTail(path: string): Promise<UidlistView | null> {
  let s: UidlistSnapshot;
  try { s = await readUidlistFrom(path, cache.get(path) ?? null); } catch (e) { cache.delete(path); throw e; }
  cache.delete(path);
  if (!s.uidlist || s.key === null) return null;
  cache.set(path, s);
  if (cache.size > MAX_CACHED) cache.delete(cache.keys().next().value!);
  return view(s);
}
