/**
 * FETCH data items as IMAP values (RFC 3501 §7.4.2, RFC 9051 §7.5.2):
 * ENVELOPE and BODY/BODYSTRUCTURE from the MIME part tree, INTERNALDATE, and
 * BODY[section] byte ranges (HEADER, TEXT, MIME, HEADER.FIELDS[.NOT], part
 * numbers) over the CRLF form of the message. Strings keep the raw header
 * bytes (encoded words are not decoded), as Dovecot sends them.
 */
import { countLines, type MimePart } from '../mailstore/mime/parts.js';
import { binaryOf, type BinaryResult } from '../mailstore/mime/binary.js';
import { parseAddressList, parseDisposition, parseLanguages, parseTransferEncoding, type Address } from '../mailstore/mime/rfc822-tokens.js';
import { list, NIL, num, str, type ImapValue } from './wire/encoder.js';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** "dd-Mon-yyyy hh:mm:ss +zzzz" in the server's time zone. */
export function internalDate(d: Date): string {
  const off = -d.getTimezoneOffset();
  const z = `${off < 0 ? '-' : '+'}${pad(Math.floor(Math.abs(off) / 60))}${pad(Math.abs(off) % 60)}`;
  return `${pad(d.getDate())}-${MONTHS[d.getMonth()]}-${d.getFullYear()} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${z}`;
}

/**
 * A string as Dovecot's imap_append_nstring writes it: quoted, or a literal
 * when it holds CR, LF or 8-bit bytes or more than four characters to escape.
 * `s` is a latin1 string (one char per header byte).
 */
function dstr(s: string | null): ImapValue {
  if (s === null) return NIL;
  const b = Buffer.from(s, 'latin1');
  let escapes = 0;
  for (const c of b) if (c === 0x22 || c === 0x5c) escapes++;
  if (escapes > 4) return { type: 'literal', size: b.length, body: b };
  return str(b);
}

/** Dovecot's imap_append_nstring_nolf: line breaks dropped (a space put where a line did not start with one). */
function dstrNolf(s: string | null): ImapValue {
  if (s === null || !/[\r\n]/.test(s)) return dstr(s);
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c !== '\r' && c !== '\n') { out += c; continue; }
    const n = s[i + 1];
    if (n !== undefined && n !== ' ' && n !== '\t' && n !== '\r' && n !== '\n') out += ' ';
  }
  return dstr(out);
}

/**
 * ENVELOPE's subject and address names as Dovecot's imap_append_string_for_humans writes it:
 * runs of whitespace and line breaks become one space, none at the ends, NUL
 * becomes 0x80; a literal whenever anything changed or a quote, backslash or
 * 8-bit byte is in it, else quoted as it is.
 */
function dstrHumans(s: string | null): ImapValue {
  if (s === null) return NIL;
  if (!/[\0\r\n\t"\\\x80-\xff]|  |^ | $/.test(s)) return str(Buffer.from(s, 'latin1'));
  const out = s.replace(/\0/g, '\x80').replace(/[ \t\r\n]+/g, ' ').replace(/^ | $/g, '');
  if (!out) return str('');
  const b = Buffer.from(out, 'latin1');
  return { type: 'literal', size: b.length, body: b };
}

/** Raw value of a field without the final line break (folding kept): the first or the last of that name. */
function rawHeader(p: MimePart, name: string, which: 'first' | 'last'): string | null {
  const n = name.toLowerCase();
  const all = p.headers.filter(([k]) => k.toLowerCase() === n);
  const f = which === 'first' ? all[0] : all[all.length - 1];
  return f ? f[1].replace(/\r?\n$/, '') : null;
}

function addrList(p: MimePart, name: string, fallback?: string): ImapValue {
  // every field of that name contributes (Dovecot appends them)
  const n = name.toLowerCase();
  let a: Address[] = [];
  for (const [k, v] of p.headers) if (k.toLowerCase() === n) a.push(...parseAddressList(v.replace(/\r?\n$/, '')));
  if (!a.length && fallback) return addrList(p, fallback);
  if (!a.length) return NIL;
  return { type: 'list', tight: true, items: a.map((x) => list([dstrHumans(x.name), dstrNolf(x.route), dstrNolf(x.mailbox), dstrNolf(x.domain)])) };
}

/** ENVELOPE (RFC 3501 §7.4.2) of a message as Dovecot builds it: the last Date/Subject/… field counts. */
export function envelope(p: MimePart): ImapValue {
  const h = (n: string) => dstrNolf(rawHeader(p, n, 'last'));
  return list([h('date'), dstrHumans(rawHeader(p, 'subject', 'last')), addrList(p, 'from'), addrList(p, 'sender', 'from'), addrList(p, 'reply-to', 'from'),
    addrList(p, 'to'), addrList(p, 'cc'), addrList(p, 'bcc'), h('in-reply-to'), h('message-id')]);
}

function paramList(params: [string, string][]): ImapValue {
  return params.length ? list(params.flatMap(([k, v]) => [dstr(k), dstr(v)])) : NIL;
}

/** A Content-* field BODYSTRUCTURE reads: none of a message that is not MIME (see MimePart.isMime). */
function contentField(p: MimePart, name: string): string | null {
  return p.isMime ? rawHeader(p, name, 'first') : null;
}

function disposition(p: MimePart): ImapValue {
  const d = contentField(p, 'content-disposition');
  const parsed = d === null ? null : parseDisposition(d);
  if (!parsed) return NIL;
  return list([dstr(parsed.value), paramList(parsed.params)]);
}

function language(p: MimePart): ImapValue {
  const l = contentField(p, 'content-language');
  const items = l === null ? [] : parseLanguages(l);
  return items.length ? list(items.map(dstr)) : NIL;
}

/** A multipart without parts is written as one empty text/plain part, as Dovecot does. */
const EMPTY_PART = (extended: boolean): ImapValue => ({ type: 'raw', value: `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0${extended ? ' NIL NIL NIL NIL' : ''})` });

/** BODY (extended = false) or BODYSTRUCTURE (extended = true) of a part, over the CRLF message. */
export function bodyStructure(buf: Buffer, p: MimePart, extended: boolean): ImapValue {
  const ct = p.contentType;
  const first = (n: string) => dstrNolf(contentField(p, n));
  if (ct.type === 'multipart' && !p.truncated) {
    const kids = p.children.length ? p.children.map((c) => bodyStructure(buf, c, extended)) : [EMPTY_PART(extended)];
    const items: ImapValue[] = [...kids, dstr(ct.rawSubtype)];
    if (extended) items.push(paramList(ct.params), disposition(p), language(p), first('content-location'));
    return { type: 'list', items, tight: true };
  }
  const rfc822 = ct.type === 'message' && ct.subtype === 'rfc822' && !!p.message;
  const text = !rfc822 && !p.truncated && ct.type === 'text';
  let params = ct.params;
  if (text && !params.some(([k]) => k.toLowerCase() === 'charset')) params = [...params, ['charset', 'us-ascii']];
  const encRaw = contentField(p, 'content-transfer-encoding');
  const enc = encRaw === null ? null : parseTransferEncoding(encRaw);
  const size = p.bodyEnd - p.bodyStart;
  // past the MIME caps Dovecot writes the container as application/octet-stream (imap-bodystructure.c part_is_truncated)
  const items: ImapValue[] = rfc822 ? [str('message'), str('rfc822')] : p.truncated ? [str('application'), str('octet-stream')] : [dstr(ct.rawType), dstr(ct.rawSubtype)];
  items.push(paramList(params), first('content-id'), first('content-description'), enc === null ? str('7bit') : dstr(enc), num(size));
  if (rfc822) {
    items.push(envelope(p.message!), bodyStructure(buf, p.message!, extended), num(countLines(buf, p.bodyStart, p.bodyEnd)));
  } else if (text) {
    items.push(num(countLines(buf, p.bodyStart, p.bodyEnd)));
  }
  if (extended) items.push(first('content-md5'), disposition(p), language(p), first('content-location'));
  return list(items);
}

/** The part a numeric section path names ("1.2"), or null. */
function partAt(root: MimePart, path: number[]): MimePart | null {
  let p: MimePart = root;
  // Dovecot's imap_msgpart_find: a number picks a child of a multipart, or must be 1 on a single part (which only
  // a message/rfc822 may follow with more numbers, those then counting inside the embedded message)
  for (const [i, n] of path.entries()) {
    const more = i < path.length - 1;
    if (p.contentType.type === 'multipart' && !p.truncated) {
      const c = p.children[n - 1];
      if (!c) return null;
      p = c;
    } else if (n !== 1 || (more && !p.message)) return null;
    if (more && p.message) p = p.message;
  }
  return p;
}

/**
 * Bytes of BODY[section] (section text without the brackets), or null when
 * the section does not exist (an empty string is sent then, as Dovecot does).
 */
export function sectionBytes(buf: Buffer, root: MimePart, section: string): Buffer | null {
  const m = /^((?:\d+\.)*\d+)?\.?(HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME)?\s*(?:\((.*)\))?$/i.exec(section.trim());
  if (!m) return null;
  const path = m[1] ? m[1].split('.').map(Number) : [];
  const what = (m[2] ?? '').toUpperCase();
  let p: MimePart | null = root;
  if (path.length) p = partAt(root, path);
  if (!p) return null;
  // HEADER/TEXT of a message/rfc822 part refer to the embedded message
  const msg = path.length && (what === 'HEADER' || what === 'TEXT' || what.startsWith('HEADER.')) ? (p.message ?? null) : p;
  switch (what) {
    case '': return path.length ? buf.subarray(p.bodyStart, p.bodyEnd) : buf;
    case 'MIME': return path.length ? buf.subarray(p.headerStart, p.headerEnd) : null;
    case 'TEXT': return msg ? buf.subarray(msg.bodyStart, msg.bodyEnd) : null;
    case 'HEADER': return msg ? buf.subarray(msg.headerStart, msg.headerEnd) : null;
    default: {
      if (!msg) return null;
      const names = new Set((m[3] ?? '').split(/\s+/).filter(Boolean).map((n) => n.replace(/^"|"$/g, '').toLowerCase()));
      const not = what === 'HEADER.FIELDS.NOT';
      const lines: Buffer[] = [];
      let pos = msg.headerStart;
      // a continuation line before any field counts as a field of its own (Dovecot keeps it under .NOT)
      let keep = not;
      let blank = false;
      let lastKeptOpen = false;
      let lastOpen = false;
      while (pos < msg.headerEnd) {
        const e = Math.min(buf.indexOf(0x0a, pos) < 0 ? msg.headerEnd : buf.indexOf(0x0a, pos) + 1, msg.headerEnd);
        const line = buf.subarray(pos, e);
        const text = line.toString('latin1');
        if (text === '\r\n' || text === '\n') { blank = true; break; }
        if (!/^[ \t]/.test(text)) {
          const colon = text.indexOf(':');
          const name = (colon >= 0 ? text.slice(0, colon) : text.replace(/\r?\n$/, '')).trim().toLowerCase();
          keep = names.has(name) !== not;
        }
        const open = line[line.length - 1] !== 0x0a;
        lastOpen = open;
        if (keep) {
          lines.push(open ? Buffer.concat([line, Buffer.from('\r\n')]) : line);
          lastKeptOpen = open;
        }
        pos = e;
      }
      // the blank line ends the result, as in Dovecot, unless the header stops in the middle of a line it left out
      if (blank || !lastOpen || lastKeptOpen) lines.push(Buffer.from('\r\n'));
      return Buffer.concat(lines);
    }
  }
}

/**
 * BINARY[section] data (RFC 3516) for the sections Dovecot decodes — the
 * whole message, TEXT and part bodies — or null for the others (HEADER,
 * MIME, HEADER.FIELDS), which are sent as BODY[] sends them. A part that
 * does not exist is empty. Throws UnknownCteError.
 */
export function binarySection(buf: Buffer, root: MimePart, section: string): BinaryResult | null {
  const m = /^((?:\d+\.)*\d+)?\.?(TEXT)?$/i.exec(section.trim());
  if (!m) return null;
  const path = m[1] ? m[1].split('.').map(Number) : [];
  const p = path.length ? partAt(root, path) : root;
  if (!p) return { data: Buffer.alloc(0), binary: false };
  if (m[2]) {
    const msg = path.length ? p.message : root;
    return msg ? binaryOf(buf, msg, false) : { data: Buffer.alloc(0), binary: false };
  }
  return binaryOf(buf, p, !path.length);
}

/** The section spec as the reply names it: HEADER.FIELDS lists upper-cased, as Dovecot echoes them. */
export function sectionName(section: string): string {
  return section.replace(/\(([^)]*)\)/, (_m, inner: string) => `(${inner.trim().split(/\s+/).filter(Boolean).map((x) => x.toUpperCase()).join(' ')})`).toUpperCase();
}

