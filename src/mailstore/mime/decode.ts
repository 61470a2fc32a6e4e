/**
 * The text a SEARCH BODY/TEXT key looks in, as Dovecot 2.3's message-search
 * builds it (RFC 3501 §6.4.4 "in the body of the message"): every text/* and
 * message/* part (a part without Content-Type is text) with its
 * Content-Transfer-Encoding undone (base64, quoted-printable) and its charset
 * converted to Unicode; other parts (attachments) are not searched. TEXT
 * adds the headers of the message and of every part, encoded words decoded.
 */
import { decodeWords } from '../message-headers.js';
import { parseMime, type MimePart } from './parts.js';

/** Dovecot keeps at most this much whitespace of a run that turns out not to be trailing (qp-decoder.c QP_MAX_WHITESPACE_LEN). */
const QP_MAX_WHITESPACE = 76;

const hexVal = (c: number) => (c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x41 && c <= 0x46 ? c - 0x37 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1);
const isWs = (c: number) => c === 0x20 || c === 0x09;

/**
 * Quoted-printable (RFC 2045 §6.7) as Dovecot 2.3's qp-decoder.c decodes it:
 * `=XX` (lower-case hex too) decoded; soft line breaks (`=`, optional
 * blanks, [CR]LF) joined; trailing blanks of a line deleted (rule 3), at the
 * end of the data too; every line break written as CRLF; broken input kept
 * as it is (`=` not followed by two hex digits, `=` and blanks not followed
 * by a line break, a CR without LF). A blank run longer than 76 characters
 * followed by more text keeps only its first 77 characters, as Dovecot does.
 */
export function decodeQuotedPrintable(b: Buffer): Buffer {
  // at most one output byte per input byte, plus a CR for every bare LF
  const out = Buffer.allocUnsafe(b.length * 2);
  let o = 0;
  const put = (c: number) => { out[o++] = c; };
  const n = b.length;
  let i = 0;
  while (i < n) {
    const c = b[i];
    if (c === 0x0a) { put(0x0d); put(0x0a); i++; continue; }
    if (c === 0x0d) {
      if (b[i + 1] === 0x0a) { put(0x0d); put(0x0a); i += 2; } else { put(0x0d); i++; }
      continue;
    }
    if (isWs(c)) {
      let j = i;
      while (j < n && isWs(b[j])) j++;
      // trailing: before a line break or the end of the data
      if (j >= n || b[j] === 0x0a || (b[j] === 0x0d && b[j + 1] === 0x0a)) { i = j; continue; }
      const keep = Math.min(j - i, QP_MAX_WHITESPACE + 1);
      for (let k = 0; k < keep; k++) put(b[i + k]);
      i = j;
      continue;
    }
    if (c !== 0x3d) { put(c); i++; continue; }
    // '='
    const h = i + 1 < n ? hexVal(b[i + 1]) : -1;
    if (h >= 0) {
      const l = i + 2 < n ? hexVal(b[i + 2]) : -1;
      if (l >= 0) { put(h * 16 + l); i += 3; continue; }
      // '=' and one hex digit: kept, the next byte read as text
      put(0x3d); put(b[i + 1]); i += 2;
      continue;
    }
    let j = i + 1;
    while (j < n && isWs(b[j])) j++;
    if (j < n && b[j] === 0x0a) { i = j + 1; continue; } // soft line break
    if (j + 1 < n && b[j] === 0x0d && b[j + 1] === 0x0a) { i = j + 2; continue; }
    // not a soft line break: '=' and its blanks (and a lone CR) kept, the rest read as text
    put(0x3d);
    for (let k = i + 1; k < Math.min(j, i + 2 + QP_MAX_WHITESPACE); k++) put(b[k]);
    if (j < n && b[j] === 0x0d) { put(0x0d); j++; }
    i = j;
  }
  return out.subarray(0, o);
}

export function decodeTransfer(body: Buffer, encoding: string | undefined): Buffer {
  const e = (encoding ?? '').trim().toLowerCase();
  if (e === 'base64') return Buffer.from(body.toString('latin1').replace(/[^A-Za-z0-9+/]/g, ''), 'base64');
  if (e === 'quoted-printable') return decodeQuotedPrintable(body);
  return body;
}

/** windows-1252's 0x80–0x9F (Node decodes that label as ISO-8859-1; iconv, as Dovecot uses, does not). */
const CP1252_HIGH = '\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f' +
  '\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178';

/** Bytes in a charset as a JS string; an unknown charset is read as UTF-8. */
export function decodeCharset(b: Buffer, charset: string | undefined): string {
  const cs = charset?.trim().toLowerCase();
  if (cs === 'windows-1252' || cs === 'cp1252' || cs === 'x-cp1252') {
    let out = '';
    for (const c of b) out += c >= 0x80 && c <= 0x9f ? CP1252_HIGH[c - 0x80] : String.fromCharCode(c);
    return out;
  }
  if (charset) {
    try { return new TextDecoder(charset.trim().toLowerCase()).decode(b); } catch { /* unknown: as UTF-8 */ }
  }
  return b.toString('utf8');
}

function header(p: MimePart, name: string): string | undefined {
  const n = name.toLowerCase();
  return p.headers.find(([k]) => k.toLowerCase() === n)?.[1];
}

/** Search text of a message: decoded bodies of its text parts, headers too when `withHeaders`. */
export function searchText(msg: Buffer, withHeaders: boolean): string {
  const out: string[] = [];
  const walk = (p: MimePart): void => {
    if (withHeaders) out.push(decodeWords(msg.subarray(p.headerStart, p.headerEnd).toString('utf8').replace(/\r?\n[ \t]+/g, ' ')));
    const ct = p.contentType;
    if (ct.type === 'multipart') { for (const c of p.children) walk(c); return; }
    if (p.message) { walk(p.message); return; }
    if (ct.type !== 'text' && ct.type !== 'message') return;
    const charset = ct.params.find(([k]) => k.toLowerCase() === 'charset')?.[1];
    out.push(decodeCharset(decodeTransfer(msg.subarray(p.bodyStart, p.bodyEnd), header(p, 'content-transfer-encoding')), charset));
  };
  walk(parseMime(msg));
  return out.join('\n');
}
