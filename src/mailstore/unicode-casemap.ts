/**
 * i;unicode-casemap (RFC 5051 §2) as Dovecot 2.3 computes it, the comparison
 * form of SEARCH (both the key and the message text), SORT and THREAD, and
 * why Dovecot announces I18NLEVEL=1 (RFC 5255 §4.3): every character becomes
 * its simple titlecase mapping and then one level of its canonical or
 * compatibility decomposition (so "é" is "E" + U+0301, "ß" stays, final
 * and medial sigma are both "Σ", fullwidth "Ａ" is "A", "ǆ" is "ǅ");
 * Hangul syllables are split into their jamo. The mappings come from the
 * tables Dovecot was built with (unicode-casemap-table.ts), not from Node's
 * newer Unicode data or its fully recursive NFKD.
 */
import { CASEMAP_TABLE } from './unicode-casemap-table.js';

let table: Map<number, string> | null = null;

function load(): Map<number, string> {
  const m = new Map<number, string>();
  let cp = 0;
  for (const e of CASEMAP_TABLE.split(';')) {
    const colon = e.indexOf(':');
    cp += parseInt(e.slice(0, colon), 16);
    m.set(cp, String.fromCodePoint(...e.slice(colon + 1).split(' ').map((h) => parseInt(h, 16))));
  }
  return m;
}

const HANGUL_FIRST = 0xac00;
const HANGUL_LAST = 0xd7a3;

/** A string in its i;unicode-casemap form (Dovecot's). */
export function casemap(s: string): string {
  // ASCII: only a-z change (the common case: one scan and the engine's upper-casing)
  if (/^[\x00-\x7f]*$/.test(s)) return s.toUpperCase();
  table ??= load();
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c >= 0x61 && c <= 0x7a) { out += String.fromCharCode(c - 0x20); continue; }
    if (c < 0x80) { out += ch; continue; }
    if (c >= HANGUL_FIRST && c <= HANGUL_LAST) {
      const i = c - HANGUL_FIRST;
      const t = i % 28;
      out += String.fromCharCode(0x1100 + Math.floor(i / 588), 0x1161 + Math.floor((i % 588) / 28));
      if (t) out += String.fromCharCode(0x11a7 + t);
      continue;
    }
    out += table.get(c) ?? ch;
  }
  return out;
}
