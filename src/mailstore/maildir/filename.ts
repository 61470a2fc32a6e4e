/**
 * Maildir file names as Dovecot 2.3 writes and reads them:
 * `<sec>.M<usec>P<pid>.<host>,S=<size>,W=<vsize>[:2,<flags>]`. The base name
 * (before the last ':') is a message's identity; flags and keyword letters
 * follow `:2,` sorted by ASCII, unknown letters (P, …) and a second
 * `,`-section are preserved.
 */
import { hostname } from 'node:os';

import { SYSTEM_FLAGS, type SystemFlag } from '../api/flags.js';

const FLAG_LETTER: Record<SystemFlag, string> = { '\\Draft': 'D', '\\Flagged': 'F', '\\Answered': 'R', '\\Seen': 'S', '\\Deleted': 'T' };
const LETTER_FLAG: Record<string, SystemFlag> = { D: '\\Draft', F: '\\Flagged', R: '\\Answered', S: '\\Seen', T: '\\Deleted' };

export interface ParsedName {
  base: string;
  /** Raw info after ':' (e.g. "2,FSa"), or null when the name has none. */
  info: string | null;
  flags: Set<SystemFlag>;
  /** Keyword indexes 0..25 from lowercase letters. */
  keywordIdx: number[];
  /** Letters that are neither system flags nor keywords (P, digits…), kept on rewrite. */
  otherLetters: string;
  /** Any second ,-section after the flags, kept verbatim. */
  extra: string;
  size?: number;
  vsize?: number;
}

export function baseName(file: string): string {
  const i = file.indexOf(':');
  return i < 0 ? file : file.slice(0, i);
}

export function parseName(file: string): ParsedName {
  const colon = file.lastIndexOf(':');
  const base = colon < 0 ? file : file.slice(0, file.indexOf(':'));
  const info = colon < 0 ? null : file.slice(colon + 1);
  const out: ParsedName = { base, info, flags: new Set(), keywordIdx: [], otherLetters: '', extra: '' };
  if (info !== null && info.startsWith('2,')) {
    let letters = info.slice(2);
    const c = letters.indexOf(',');
    if (c >= 0) { out.extra = letters.slice(c); letters = letters.slice(0, c); }
    for (const ch of letters) {
      if (LETTER_FLAG[ch]) out.flags.add(LETTER_FLAG[ch]);
      else if (ch >= 'a' && ch <= 'z') out.keywordIdx.push(ch.charCodeAt(0) - 97);
      else out.otherLetters += ch;
    }
  }
  for (const field of base.split(',').slice(1)) {
    const m = /^([SW])=(\d+)$/.exec(field);
    if (m) { if (m[1] === 'S') out.size = Number(m[2]); else out.vsize = Number(m[2]); }
  }
  return out;
}

/** The `:2,…` suffix for flags + keyword indexes, letters in ASCII order like Dovecot. */
export function infoSuffix(flags: Iterable<SystemFlag>, keywordIdx: Iterable<number>, otherLetters = '', extra = ''): string {
  const letters: string[] = [...otherLetters];
  for (const f of flags) letters.push(FLAG_LETTER[f]);
  for (const k of keywordIdx) letters.push(String.fromCharCode(97 + k));
  const uniq = [...new Set(letters)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return ':2,' + uniq.join('') + extra;
}

export function flagFromName(name: string): SystemFlag | undefined {
  const n = name.toLowerCase();
  return SYSTEM_FLAGS.find((f) => f.toLowerCase() === n);
}

let lastSec = 0;
let lastUsec = 0;
let host: string | undefined;
/** Host part as Dovecot writes it (no escaping; '/' and ':' would break names); read once per process, as Dovecot's my_hostname (a uname() per file name and lock otherwise). */
export function localHost(): string {
  host ??= hostname().replace(/[/:]/g, '_') || 'localhost';
  return host;
}

/** A new unique base name `<sec>.M<usec>P<pid>.<host>,S=…,W=…` (strictly increasing within this process). */
export function newBaseName(size: number, vsize: number, now = Date.now()): string {
  let sec = Math.floor(now / 1000);
  let usec = (now % 1000) * 1000 + Math.floor(Math.random() * 1000);
  if (sec < lastSec || (sec === lastSec && usec <= lastUsec)) {
    sec = lastSec; usec = lastUsec + 1;
    if (usec >= 1_000_000) { sec++; usec = 0; }
  }
  lastSec = sec; lastUsec = usec;
  return `${sec}.M${usec}P${process.pid}.${localHost()},S=${size},W=${vsize}`;
}

/**
 * Dovecot's order for files that get UIDs in the same sync (spec §2.4):
 * leading seconds numerically, then `.M<usec>` numerically when both have it,
 * else bytewise on the base names.
 */
export function compareBaseNames(a: string, b: string): number {
  const sa = /^(\d+)/.exec(a);
  const sb = /^(\d+)/.exec(b);
  if (sa && sb && sa[1] !== sb[1]) {
    const na = BigInt(sa[1]); const nb = BigInt(sb[1]);
    if (na !== nb) return na < nb ? -1 : 1;
  }
  if (sa && sb) {
    const ua = /^\d+\.M(\d+)/.exec(a);
    const ub = /^\d+\.M(\d+)/.exec(b);
    if (ua && ub) {
      const na = Number(ua[1]); const nb = Number(ub[1]);
      if (na !== nb) return na - nb;
    }
  }
  const ba = Buffer.from(a); const bb = Buffer.from(b);
  return Buffer.compare(ba, bb);
}
