/**
 * FETCH data items as IMAP values (RFC 3501 §7.4.2, RFC 9051 §7.5.2):
 * ENVELOPE and BODY/BODYSTRUCTURE from the MIME part tree, INTERNALDATE, and
 * BODY[section] byte ranges (HEADER, TEXT, MIME, HEADER.FIELDS[.NOT], part
 * numbers) over the CRLF form of the message. Strings keep the raw header
 * bytes (encoded words are not decoded), as Dovecot sends them.
 */
import { getHeader, parseParams, countLines, type MimePart } from '../mailstore/mime/parts.js';
import { list, NIL, nstr, num, str, type ImapValue } from './wire/encoder.js';
import { parseAddresses } from '../mailstore/addresses.js';

export { parseAddresses };

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** "dd-Mon-yyyy hh:mm:ss +zzzz" in the server's time zone. */
export function internalDate(d: Date): string {
  const off = -d.getTimezoneOffset();
  const z = `${off < 0 ? '-' : '+'}${pad(Math.floor(Math.abs(off) / 60))}${pad(Math.abs(off) % 60)}`;
  return `${pad(d.getDate())}-${MONTHS[d.getMonth()]}-${d.getFullYear()} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${z}`;
}

function addrList(p: MimePart, name: string, fallback?: string): ImapValue {
  const v = getHeader(p, name) ?? (fallback ? getHeader(p, fallback) : undefined);
  if (v === undefined) return NIL;
  const a = parseAddresses(v);
  if (!a.length) return NIL;
  return { type: 'list', tight: true, items: a.map((x) => list([nstr(x.name), NIL, nstr(x.mailbox), nstr(x.host)])) };
}

export function envelope(p: MimePart): ImapValue {
  const h = (n: string) => nstr(getHeader(p, n) ?? null);
  return list([h('date'), h('subject'), addrList(p, 'from'), addrList(p, 'sender', 'from'), addrList(p, 'reply-to', 'from'),
    addrList(p, 'to'), addrList(p, 'cc'), addrList(p, 'bcc'), h('in-reply-to'), h('message-id')]);
}

function paramList(params: [string, string][]): ImapValue {
  return params.length ? list(params.flatMap(([k, v]) => [str(k), str(v)])) : NIL;
}

function disposition(p: MimePart): ImapValue {
  const d = getHeader(p, 'content-disposition');
  if (!d) return NIL;
  const { value, params } = parseParams(d);
  return list([str(value.toLowerCase()), paramList(params)]);
}

function language(p: MimePart): ImapValue {
  const l = getHeader(p, 'content-language');
  if (!l) return NIL;
  const items = l.split(',').map((x) => x.trim()).filter(Boolean);
  return items.length === 1 ? str(items[0]) : list(items.map(str));
}

/** BODY (extended = false) or BODYSTRUCTURE (extended = true) of a part, over the CRLF message. */
export function bodyStructure(buf: Buffer, p: MimePart, extended: boolean): ImapValue {
  const ct = p.contentType;
  if (ct.type === 'multipart') {
    const kids = p.children.length ? p.children.map((c) => bodyStructure(buf, c, extended)) : [bodyStructure(buf, { ...p, contentType: { type: 'text', subtype: 'plain', params: [['charset', 'us-ascii']] }, children: [] }, extended)];
    const items: ImapValue[] = [...kids, str(ct.subtype)];
    if (extended) items.push(paramList(ct.params), disposition(p), language(p), nstr(getHeader(p, 'content-location') ?? null));
    return { type: 'list', items, tight: true };
  }
  const params = p.explicitType ? ct.params : [['charset', 'us-ascii'] as [string, string]];
  const enc = getHeader(p, 'content-transfer-encoding');
  const size = p.bodyEnd - p.bodyStart;
  const items: ImapValue[] = [str(ct.type), str(ct.subtype), paramList(params), nstr(getHeader(p, 'content-id') ?? null),
    nstr(getHeader(p, 'content-description') ?? null), str(enc ? enc.trim().toLowerCase() : '7bit'), num(size)];
  if (ct.type === 'message' && ct.subtype === 'rfc822' && p.message) {
    items.push(envelope(p.message), bodyStructure(buf, p.message, extended), num(countLines(buf, p.bodyStart, p.bodyEnd)));
  } else if (ct.type === 'text') {
    items.push(num(countLines(buf, p.bodyStart, p.bodyEnd)));
  }
  if (extended) items.push(nstr(getHeader(p, 'content-md5') ?? null), disposition(p), language(p), nstr(getHeader(p, 'content-location') ?? null));
  return list(items);
}

/** The part a numeric section path names ("1.2"), or null. */
function partAt(root: MimePart, path: number[]): MimePart | null {
  let p: MimePart = root;
  for (const n of path) {
    const container = p.contentType.type === 'message' && p.message ? p.message : p;
    if (container.contentType.type === 'multipart') {
      const c = container.children[n - 1];
      if (!c) return null;
      p = c;
    } else {
      if (n !== 1) return null;
      p = container === p ? p : container;
    }
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
      let keep = false;
      while (pos < msg.headerEnd) {
        const e = Math.min(buf.indexOf(0x0a, pos) < 0 ? msg.headerEnd : buf.indexOf(0x0a, pos) + 1, msg.headerEnd);
        const line = buf.subarray(pos, e);
        const text = line.toString('latin1');
        if (text === '\r\n' || text === '\n') break;
        if (!/^[ \t]/.test(text)) {
          const colon = text.indexOf(':');
          const name = colon > 0 ? text.slice(0, colon).trim().toLowerCase() : '';
          keep = names.has(name) !== not;
        }
        if (keep) lines.push(line);
        pos = e;
      }
      lines.push(Buffer.from('\r\n'));
      return Buffer.concat(lines);
    }
  }
}

/** The section spec as the reply names it: HEADER.FIELDS lists upper-cased, as Dovecot echoes them. */
export function sectionName(section: string): string {
  return section.replace(/\(([^)]*)\)/, (_m, inner: string) => `(${inner.trim().split(/\s+/).filter(Boolean).map((x) => x.toUpperCase()).join(' ')})`).toUpperCase();
}

