/**
 * The message preview (RFC 8970 PREVIEW, draft SNIPPET=FUZZY) exactly as
 * Dovecot 2.3 computes its `body.snippet` (lib-storage index-mail.c
 * index_mail_write_body_snippet, lib-mail message-snippet.c):
 *
 * - the part: the message itself when it is text/* or has no Content-Type;
 *   in a multipart/alternative the first text/plain (or Content-Type-less)
 *   child, else its last text/html child, else its last other text/* child;
 *   in any other multipart the first child (depth first) that yields one.
 *   message/rfc822 parts and attachments are never looked into.
 * - its body with the Content-Transfer-Encoding undone (the last such field
 *   counts; an unknown one gives no text; base64 up to the first character
 *   outside the alphabet), converted to UTF-8 from the charset of its first
 *   Content-Type (us-ascii and unknown charsets read as UTF-8; a run of
 *   undecodable bytes becomes one U+FFFD).
 * - text/html and application/xhtml+xml through mail-html2text
 *   (html2text.ts); other types not text/* give nothing.
 * - at most 200 characters (code points): blank runs (ASCII white space)
 *   folded into one space, none leading or trailing, NUL and byte-order
 *   marks dropped; lines starting with '>' (quoted text) skipped — their
 *   text is used, behind one '>', only when there is nothing else (199
 *   characters then).
 */
import { Html2Text } from './html2text.js';
import { decodeCharset, decodeQuotedPrintable } from './decode.js';
import { parseContentType, parseTransferEncoding } from './rfc822-tokens.js';
import type { MimePart } from './parts.js';

/** Dovecot's BODY_SNIPPET_MAX_CHARS. */
export const SNIPPET_MAX_CHARS = 200;

const headerOf = (p: MimePart, name: string) => p.headers.find(([k]) => k.toLowerCase() === name)?.[1];

/** index_mail_find_first_text_mime_part: the part the preview is made from, or null. */
function firstTextPart(p: MimePart): MimePart | null {
  const ct = p.contentType;
  if (!p.explicitType || ct.type === 'text') return p;
  if (ct.type !== 'multipart' || p.truncated) return null;
  if (ct.subtype === 'alternative') {
    let html: MimePart | null = null;
    let text: MimePart | null = null;
    for (const c of p.children) {
      if (c.explicitType && c.contentType.type !== 'text') continue;
      if (!c.explicitType || c.contentType.subtype === 'plain') return c;
      if (c.contentType.subtype === 'html') html = c;
      else text = c;
    }
    return html ?? text;
  }
  for (const c of p.children) {
    const t = firstTextPart(c);
    if (t) return t;
  }
  return null;
}

/** base64 as Dovecot's message-decoder reads it: blanks skipped, decoding stops at '=' or any other character. */
function decodeBase64Lenient(b: Buffer): Buffer {
  let i = 0;
  const keep: number[] = [];
  for (; i < b.length; i++) {
    const c = b[i];
    if (c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a) continue;
    const alpha = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2f;
    if (!alpha) break;
    keep.push(c);
  }
  return Buffer.from(Buffer.from(keep).toString('latin1'), 'base64');
}

const UTF8_NAMES = new Set(['us-ascii', 'ascii', 'utf-8', 'utf8']);

/** Body bytes to text as Dovecot's charset_to_utf8 does. */
function toText(b: Buffer, charset: string | undefined): string {
  const cs = charset?.toLowerCase();
  let s: string;
  if (cs === undefined || UTF8_NAMES.has(cs)) s = b.toString('utf8');
  else {
    let known = true;
    try { new TextDecoder(cs); } catch { known = false; }
    s = known || /^(windows-1252|cp1252|x-cp1252)$/.test(cs) ? decodeCharset(b, cs) : b.toString('utf8');
  }
  // iconv and Dovecot's UTF-8 validation write one U+FFFD for a run of bad bytes
  return s.replace(/\ufffd{2,}/g, '\ufffd');
}

/**
 * Bytes at the end of quoted-printable data that Dovecot's qp-decoder holds
 * back waiting for more ('=', '=' and one hex digit, '=' and blanks and a CR):
 * the message-decoder never calls qp_decoder_finish(), so they are lost.
 */
function qpPendingTail(b: Buffer): number {
  let i = b.length;
  if (i && b[i - 1] === 0x0d) i--;
  while (i && (b[i - 1] === 0x20 || b[i - 1] === 0x09)) i--;
  if (i && b[i - 1] === 0x3d) return b.length - i + 1;
  const hex = (c: number) => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
  const n = b.length;
  if (n >= 2 && b[n - 2] === 0x3d && hex(b[n - 1])) return 2;
  return 0;
}

/** The decoded text of the part, or null when Dovecot reads none (unknown encoding, not text). */
function partText(buf: Buffer, p: MimePart): { text: string; html: boolean } | null {
  const rawCt = headerOf(p, 'content-type');
  const ct = rawCt === undefined ? null : parseContentType(rawCt);
  let html = false;
  if (rawCt !== undefined) {
    // a Content-Type that does not parse leaves the decoder a type that is not text/*
    if (!ct) return null;
    const type = `${ct.type}/${ct.subtype}`.toLowerCase();
    html = type === 'text/html' || type === 'application/xhtml+xml';
    if (!html && ct.type.toLowerCase() !== 'text') return null;
  }
  // the last Content-Transfer-Encoding field counts (message-decoder.c)
  const ctes = p.headers.filter(([k]) => k.toLowerCase() === 'content-transfer-encoding');
  const cte = ctes.length ? (parseTransferEncoding(ctes[ctes.length - 1][1].replace(/;.*$/s, ''))?.toLowerCase() ?? 'unknown') : '7bit';
  let body = buf.subarray(p.bodyStart, p.bodyEnd);
  if (cte === 'base64') body = decodeBase64Lenient(body);
  else if (cte === 'quoted-printable') body = decodeQuotedPrintable(body.subarray(0, body.length - qpPendingTail(body)));
  else if (!['7bit', '8bit', 'binary'].includes(cte)) return null;
  const charset = ct?.params.find(([k]) => k.toLowerCase() === 'charset')?.[1];
  return { text: toText(body, charset), html };
}

/** C isspace() in the C locale. */
const isSpace = (c: number) => c === 0x20 || (c >= 0x09 && c <= 0x0d);

/** The preview text of a message (no version byte), '' when there is none. */
export function messageSnippet(buf: Buffer, root: MimePart, max = SNIPPET_MAX_CHARS): string {
  const part = firstTextPart(root);
  if (!part) return '';
  const got = partText(buf, part);
  if (!got) return '';
  const text = got.html ? new Html2Text().convert(got.text) : got.text;
  const main = { s: '', left: max };
  const quoted = { s: '', left: max - 1 };
  let state = 'newline' as 'newline' | 'normal' | 'quoted';
  let addWs = false;
  let target = main;
  const cps = [...text];
  // snippet_add_content for one character
  const add = (ch: string): void => {
    const c = ch.codePointAt(0)!;
    if (c === 0xfeff || c === 0) return;
    if (isSpace(c)) {
      if (target.s.length) addWs = true;
      if (c === 0x0a) state = 'newline';
      return;
    }
    if (target.left === 0) return;
    target.left--;
    if (addWs) {
      if (target.left === 0) return; // no trailing blank
      target.s += ' ';
      addWs = false;
      target.left--;
    }
    target.s += ch;
  };
  for (let i = 0; i < cps.length; i++) {
    if (state === 'newline') {
      if (cps[i] === '>') { state = 'quoted'; target = quoted; i++; } else { state = 'normal'; target = main; }
    }
    if (i < cps.length) add(cps[i]);
    // enough unquoted text: the rest is not read (quoted text only stands in when there is none)
    if (main.left === 0) break;
  }
  // snippet_copy: leading blanks dropped (the blank flag is shared with the quoted text)
  const trim = (t: string) => t.replace(/^[ \t\n\v\f\r]+/, '');
  if (main.s) return trim(main.s);
  return quoted.s ? `>${trim(quoted.s)}` : '';
}
