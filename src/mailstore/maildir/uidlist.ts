/**
 * `dovecot-uidlist` (versions 3 and 1) as Dovecot 2.3 reads and writes it
 * (maildir-uidlist.c): header `3 V<uidvalidity> N<nextuid> G<guid> …`,
 * records `<uid>[ <X><ext>…] :<base name>`. The real next UID is
 * max(N, last UID + 1). Writers append whole lines or rewrite via
 * `dovecot-uidlist.tmp` + rename, always under `dovecot-uidlist.lock`.
 *
 * Unlike Dovecot, which deletes a corrupt uidlist and renumbers every
 * message, the parser salvages every well-formed record whose UID keeps the
 * sequence strictly increasing, and reports what it dropped.
 */
import { promises as fsp } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { ioError } from '../errors.js';
import { writeAtomic } from './dotlock.js';

export interface UidlistRecord {
  uid: number;
  base: string;
  /** Extensions by letter (G, S, W, P, O, …), kept verbatim. */
  ext: Map<string, string>;
}

export interface Uidlist {
  version: number;
  uidValidity: number;
  /** N from the header (may be stale). */
  headerNextUid: number;
  guid: string;
  /** Unknown header fields, kept verbatim in order. */
  extraHeader: string[];
  records: UidlistRecord[];
  /** Problems found while parsing; non-empty means the file needs a rewrite. */
  problems: string[];
  /** Highest UID seen in any line, even a dropped one: never reused. */
  highestSeenUid: number;
}

export const MAX_UID = 0xfffffffe;

export function nextUid(u: Uidlist): number {
  const last = u.records.length ? u.records[u.records.length - 1].uid : 0;
  return Math.max(u.headerNextUid, last + 1, u.highestSeenUid + 1, 1);
}

export function newGuid(): string {
  return randomBytes(16).toString('hex');
}

export function emptyUidlist(uidValidity: number, nextUidValue = 1, guid = newGuid()): Uidlist {
  return { version: 3, uidValidity, headerNextUid: nextUidValue, guid, extraHeader: [], records: [], problems: [], highestSeenUid: 0 };
}

function parseRecordLine(line: string, version: number): UidlistRecord | string {
  if (version === 1) {
    const m = /^(\d+) (.+)$/.exec(line);
    if (!m) return 'unparsable line';
    return { uid: Number(m[1]), base: m[2].split(':')[0], ext: new Map() };
  }
  const m = /^(\d+)((?: [A-Z][^ ]*)*) :(.+)$/.exec(line);
  if (!m) return 'unparsable line';
  const ext = new Map<string, string>();
  for (const e of m[2].split(' ').filter(Boolean)) ext.set(e[0], e.slice(1));
  return { uid: Number(m[1]), base: m[3], ext };
}

/** Parse uidlist text; never throws. `null` = no usable header (treat as missing). */
export function parseUidlist(text: string, path = 'dovecot-uidlist'): Uidlist | null {
  if (text.length === 0) return null;
  const lines = text.split('\n');
  const header = lines.shift() ?? '';
  let u: Uidlist;
  const h1 = /^1 (\d+) (\d+)$/.exec(header);
  if (h1) {
    u = emptyUidlist(Number(h1[1]), Number(h1[2]), '');
    u.version = 1;
  } else if (/^3( |$)/.test(header)) {
    u = emptyUidlist(0, 1, '');
    for (const f of header.split(' ').slice(1).filter(Boolean)) {
      const k = f[0]; const v = f.slice(1);
      if (k === 'V' && /^\d+$/.test(v) && Number(v) < 2 ** 32) u.uidValidity = Number(v);
      else if (k === 'N' && /^\d+$/.test(v) && Number(v) <= MAX_UID + 1) u.headerNextUid = Number(v);
      else if (k === 'G' && /^[0-9a-fA-F]{32}$/.test(v)) u.guid = v.toLowerCase();
      else if (/^[A-Z]/.test(k) && !'VNG'.includes(k)) u.extraHeader.push(f);
      else u.problems.push(`${path}: header field "${f}" ignored`);
    }
  } else {
    return null;
  }
  if (u.uidValidity <= 0) u.problems.push(`${path}: header has no valid UIDVALIDITY`);
  if (!u.guid && u.version === 3) u.problems.push(`${path}: header has no mailbox GUID`);
  if (u.version === 1) u.problems.push(`${path}: version 1, converted to 3 on next write`);
  const seen = new Set<string>();
  let last = 0;
  lines.forEach((line, i) => {
    const num = /^(\d+)/.exec(line);
    if (num && Number(num[1]) <= MAX_UID) u.highestSeenUid = Math.max(u.highestSeenUid, Number(num[1]));
    if (i === lines.length - 1) {
      // a last line without '\n' is a torn append: drop it (its file gets a new UID)
      if (line !== '') u.problems.push(`${path}:${i + 2}: incomplete last line ignored`);
      return;
    }
    if (line === '') { u.problems.push(`${path}:${i + 2}: empty line ignored`); return; }
    const r = parseRecordLine(line, u.version);
    if (typeof r === 'string') { u.problems.push(`${path}:${i + 2}: ${r}`); return; }
    if (r.uid <= last || r.uid > MAX_UID) { u.problems.push(`${path}:${i + 2}: UID ${r.uid} out of order, ignored`); return; }
    if (r.base.includes('/')) { u.problems.push(`${path}:${i + 2}: file name contains '/', ignored`); return; }
    if (seen.has(r.base)) { u.problems.push(`${path}:${i + 2}: duplicate file name, ignored`); return; }
    seen.add(r.base);
    last = r.uid;
    u.records.push(r);
  });
  return u;
}

export async function readUidlist(path: string): Promise<Uidlist | null> {
  let buf: Buffer;
  try { buf = await fsp.readFile(path); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw ioError('reading uidlist', path, e);
  }
  return parseUidlist(buf.toString('utf8'), path);
}

/**
 * Just the header (first line), parsed: UIDVALIDITY and GUID without
 * reading a big uidlist's records. null when missing or not a header.
 */
export async function readUidlistHeader(path: string): Promise<Uidlist | null> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(path, 'r');
    const buf = Buffer.alloc(4096);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const nl = buf.subarray(0, bytesRead).indexOf(0x0a);
    return nl < 0 ? null : parseUidlist(buf.subarray(0, nl + 1).toString('utf8'), path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw ioError('reading uidlist', path, e);
  } finally { await fh?.close(); }
}

function recordLine(r: UidlistRecord): string {
  let s = String(r.uid);
  for (const [k, v] of r.ext) s += ` ${k}${v}`;
  return `${s} :${r.base}\n`;
}

export function serializeUidlist(u: Uidlist): string {
  const head = [`3`, `V${u.uidValidity}`, `N${nextUid(u)}`, `G${u.guid || newGuid()}`, ...u.extraHeader].join(' ');
  return head + '\n' + u.records.map(recordLine).join('');
}

/** Full rewrite (caller holds the lock): temp file in the same dir + rename. */
export async function rewriteUidlist(path: string, u: Uidlist): Promise<void> {
  if (!u.guid) u.guid = newGuid();
  const text = serializeUidlist(u);
  // validate before replacing: a broken uidlist makes Dovecot renumber everything
  const check = parseUidlist(text, path);
  if (!check || check.problems.length) throw new Error(`internal error: refusing to write invalid uidlist ${path}: ${check?.problems.join('; ')}`);
  await writeAtomic(path, text, path + '.tmp');
  u.headerNextUid = nextUid(u);
  u.version = 3;
  u.problems = [];
}

/** Append complete lines (caller holds the lock). */
export async function appendUidlist(path: string, recs: UidlistRecord[]): Promise<void> {
  if (!recs.length) return;
  let fh;
  try {
    fh = await fsp.open(path, 'a');
    await fh.write(recs.map(recordLine).join(''));
    await fh.sync();
  } catch (e) {
    throw ioError('appending to uidlist', path, e);
  } finally { await fh?.close(); }
}
