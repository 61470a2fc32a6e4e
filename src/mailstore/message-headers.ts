/**
 * Small, byte-safe header helpers over a whole message Buffer: where the
 * header ends (RFC 5322 §2.1: the first empty line), raw header values as
 * Dovecot returns them (continuation lines kept, several fields of one name
 * in order), RFC 2047 encoded-word decoding for searching, and the Date:
 * field parsed as Dovecot's message-date parser does (RFC 5322 §3.3 with the
 * obsolete zone names). Used by `sealadm fetch`/search; the full MIME
 * parser for IMAP lives in src/mailstore/mime.
 */

/** Offset just past the header's terminating empty line (or the message length when there is none). */
export function headerEnd(msg: Buffer): number {
  if (msg.length && (msg[0] === 0x0a || (msg[0] === 0x0d && msg[1] === 0x0a))) return msg[0] === 0x0a ? 1 : 2;
  for (let i = msg.indexOf(0x0a); i >= 0 && i < msg.length; i = msg.indexOf(0x0a, i + 1)) {
    if (msg[i + 1] === 0x0a) return i + 2;
    if (msg[i + 1] === 0x0d && msg[i + 2] === 0x0a) return i + 3;
  }
  return msg.length;
}

/** Raw values (after "Name:" and the whitespace after it, folding kept, no final line end) of every field called `name`. */
export function headerValues(msg: Buffer, name: string): string[] {
  const head = msg.subarray(0, headerEnd(msg)).toString('latin1');
  const want = name.toLowerCase();
  const out: string[] = [];
  const lines = head.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    const colon = l.indexOf(':');
    if (colon <= 0 || /^[ \t]/.test(l)) continue;
    if (l.slice(0, colon).trimEnd().toLowerCase() !== want) continue;
    let v = l.slice(colon + 1).replace(/^[ \t]+/, '');
    while (i + 1 < lines.length && /^[ \t]/.test(lines[i + 1])) v += '\n' + lines[++i];
    out.push(v.replace(/\r$/, '').replace(/\r\n/g, '\n'));
  }
  // values back to the bytes they were (latin1 round-trips every byte)
  return out.map((v) => Buffer.from(v, 'latin1').toString('utf8'));
}

function decodeCharset(bytes: Buffer, charset: string): string {
  try { return new TextDecoder(charset.toLowerCase().replace(/\*.*$/, '')).decode(bytes); } catch { return bytes.toString('latin1'); }
}

/** RFC 2047 encoded words decoded (unknown charsets fall back to latin1); whitespace between adjacent words dropped. */
export function decodeWords(v: string): string {
  return v
    .replace(/(=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)\s+(?==\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)/g, '$1')
    .replace(/=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=/g, (_m, cs: string, enc: string, text: string) => {
      const bytes = enc.toUpperCase() === 'B'
        ? Buffer.from(text, 'base64')
        : Buffer.from(text.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (_x, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
      return decodeCharset(bytes, cs);
    });
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const ZONES: Record<string, number> = { UT: 0, GMT: 0, Z: 0, EST: -300, EDT: -240, CST: -360, CDT: -300, MST: -420, MDT: -360, PST: -480, PDT: -420 };

/** Date: as (UTC ms, zone offset in minutes), or null when unparseable (Dovecot then reports 0). */
export function parseMessageDate(v: string): { time: number; tz: number } | null {
  const m = /^\s*(?:[A-Za-z]{3},?\s*)?(\d{1,2})\s+([A-Za-z]{3})[a-z]*\s+(\d{2,4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([+-]\d{4}|[A-Za-z]{1,3})?/.exec(v.replace(/\([^)]*\)/g, ' '));
  if (!m) return null;
  const mon = MONTHS.indexOf(m[2].toLowerCase());
  if (mon < 0) return null;
  let year = Number(m[3]);
  if (m[3].length === 2) year += year < 70 ? 2000 : 1900;
  else if (m[3].length === 3) year += 1900;
  let tz = 0;
  if (m[7] && /^[+-]\d{4}$/.test(m[7])) {
    const n = Number(m[7].slice(1));
    tz = (m[7][0] === '-' ? -1 : 1) * (Math.floor(n / 100) * 60 + (n % 100));
  } else if (m[7]) tz = ZONES[m[7].toUpperCase()] ?? 0;
  const utc = Date.UTC(year, mon, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6] ?? 0)) - tz * 60_000;
  return Number.isNaN(utc) ? null : { time: utc, tz };
}
