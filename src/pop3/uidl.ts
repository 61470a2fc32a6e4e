/**
 * POP3 UIDLs as Dovecot's pop3 makes them (pop3-commands.c pop3_get_uid):
 * the UIDL the storage keeps for the message (dovecot-uidlist's `P`
 * extension field, written by Dovecot's pop3_save_uidl or a POP3 migration)
 * wins; else, with pop3_reuse_xuidl, the message's first X-UIDL header;
 * else pop3_uidl_format expanded with %u (UID), %v (UIDVALIDITY),
 * %f (Maildir file base name), %g (GUID: the base name on Maildir) and the
 * var-expand width and modifiers Dovecot allows there (`%08Xu%08Xv`: eight
 * lower-case hex digits each). %m (header MD5) is mbox-only in Dovecot's
 * Maildir: refused, as Dovecot refuses it ("not supported by storage?").
 */
import { headerValues } from '../mailstore/message-headers.js';

/** What a UIDL is made of, for one message. */
export interface UidlSource {
  uid: number;
  uidValidity: number;
  /** Maildir base name (Dovecot's storage id and, on Maildir, GUID). */
  base: string;
  /** The storage's own POP3 UIDL (uidlist `P`), when there is one. */
  stored?: string;
}

const KEYS: Record<string, 'u' | 'v' | 'm' | 'f' | 'g'> = { u: 'u', v: 'v', m: 'm', f: 'f', g: 'g', uid: 'u', uidvalidity: 'v', md5: 'm', filename: 'f', guid: 'g' };

export class UidlFormatError extends Error {}

/** The keys a format uses (Dovecot's parse_uidl_keymask): none is fatal in Dovecot ("Invalid pop3_uidl_format"). */
export function uidlKeys(format: string): Set<string> {
  const keys = new Set<string>();
  forEachVar(format, (key) => { if (KEYS[key]) keys.add(KEYS[key]); return ''; });
  return keys;
}

/**
 * Dovecot's var-expand syntax as pop3's settings use it: `%[0][width][mods]x`,
 * `%[…]{name}` and `%%`, each variable replaced by what `fn` gives.
 */
export function forEachVar(format: string, fn: (key: string, zero: boolean, width: number, mods: string) => string): string {
  let out = '';
  for (let i = 0; i < format.length; i++) {
    const c = format[i];
    if (c !== '%' || i + 1 >= format.length) { out += c; continue; }
    i++;
    if (format[i] === '%') { out += '%'; continue; }
    let zero = false;
    let width = 0;
    if (format[i] === '0') { zero = true; i++; }
    while (i < format.length && format[i] >= '0' && format[i] <= '9') width = width * 10 + Number(format[i++]);
    let mods = '';
    while (i < format.length && 'LUXR'.includes(format[i])) mods += format[i++];
    let key = format[i] ?? '';
    if (key === '{') {
      const end = format.indexOf('}', i);
      if (end < 0) { out += format.slice(i); break; }
      key = format.slice(i + 1, end);
      i = end;
    }
    out += fn(key, zero, width, mods);
  }
  return out;
}

/**
 * `format` with each variable's value from `lookup` (name as written: a
 * letter or a {long name}), Dovecot's modifiers X (decimal → lower-case
 * hex), L, U, R and the width (`%08…`: zero-padded; `%8…`: cut) applied.
 */
export function expandPercent(format: string, lookup: (name: string) => string): string {
  return forEachVar(format, (name, zero, width, mods) => {
    let v = lookup(name);
    for (const m of mods) {
      if (m === 'X') v = /^\d+$/.test(v) ? BigInt(v).toString(16) : v;
      else if (m === 'L') v = v.toLowerCase();
      else if (m === 'U') v = v.toUpperCase();
      else if (m === 'R') v = [...v].reverse().join('');
    }
    if (width && zero) return v.padStart(width, '0');
    return width ? v.slice(0, width) : v;
  });
}

/** pop3_uidl_format expanded for one message. Throws UidlFormatError for %m (not kept for Maildir). */
export function expandUidlFormat(format: string, src: UidlSource): string {
  return expandPercent(format, (name) => {
    const key = KEYS[name];
    if (key === 'm') throw new UidlFormatError('UIDL: Header MD5 not found (pop3_uidl_format=%m not supported by storage?)');
    return key === 'u' ? String(src.uid) : key === 'v' ? String(src.uidValidity) : key === 'f' || key === 'g' ? src.base : '';
  });
}

/** The first X-UIDL header's value, unfolded and trimmed (Dovecot's mail_get_first_header), or null. */
export function xUidl(head: Buffer): string | null {
  const v = headerValues(head, 'X-UIDL')[0];
  if (v === undefined) return null;
  const out = v.replace(/\n/g, '').trim();
  return out === '' ? null : out;
}

/** The message's UIDL: stored, else X-UIDL (`reuseXuidl`, `head` given), else the format. */
export function messageUidl(format: string, src: UidlSource, reuseXuidl: string | null): string {
  if (src.stored) return src.stored;
  if (reuseXuidl) return reuseXuidl;
  return expandUidlFormat(format, src);
}
