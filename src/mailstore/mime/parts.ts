/**
 * The MIME structure of a message (RFC 2045/2046/2822) as byte ranges over
 * one Buffer: each part's header and body, its parsed Content-Type and
 * other MIME fields, multipart children split on their boundary, and the
 * embedded message of a message/rfc822 part — what IMAP's BODY[section],
 * BODYSTRUCTURE and ENVELOPE are built from. Lenient like Dovecot with
 * broken input: a missing boundary makes the rest one part, a missing blank
 * line makes everything header.
 */
import { parseContentType, parseDisposition } from './rfc822-tokens.js';

/** `type`/`subtype` lower-cased for decisions; `rawType`/`rawSubtype` and parameter names as written (BODYSTRUCTURE echoes them). */
export interface ContentType { type: string; subtype: string; rawType: string; rawSubtype: string; params: [string, string][] }

export interface MimePart {
  headerStart: number;
  /** End of the header including the blank line. */
  headerEnd: number;
  bodyStart: number;
  bodyEnd: number;
  headers: [string, string][];
  contentType: ContentType;
  /** Explicit Content-Type present (a default one is text/plain, or message/rfc822 in digests). */
  explicitType: boolean;
  children: MimePart[];
  /** The embedded message of a message/rfc822 part. */
  message?: MimePart;
  /** The header ended with its blank line (not at the end of the part). */
  headerClosed: boolean;
  /** Multipart: offset just past its closing delimiter line, when there is one. */
  closeLineEnd?: number;
}

function lineEnd(buf: Buffer, from: number): number {
  const i = buf.indexOf(0x0a, from);
  return i < 0 ? buf.length : i + 1;
}

/** Header fields between start and end, continuation lines unfolded only by the caller. */
function parseHeader(buf: Buffer, start: number, limit: number): { fields: [string, string][]; end: number; closed: boolean } {
  const fields: [string, string][] = [];
  let pos = start;
  while (pos < limit) {
    const e = Math.min(lineEnd(buf, pos), limit);
    const line = buf.subarray(pos, e).toString('latin1');
    if (line === '\n' || line === '\r\n') return { fields, end: e, closed: true };
    if (/^[ \t]/.test(line) && fields.length) {
      fields[fields.length - 1][1] += line.replace(/\r?\n$/, '\n');
    } else {
      const colon = line.indexOf(':');
      if (colon > 0) fields.push([line.slice(0, colon).trim(), line.slice(colon + 1).replace(/^[ \t]*/, '').replace(/\r?\n$/, '\n')]);
    }
    pos = e;
  }
  return { fields, end: limit, closed: false };
}

/** A header value without line breaks (continuations joined as Dovecot does for matching). */
export function unfold(v: string): string {
  return v.replace(/\r?\n$/, '').replace(/\r?\n([ \t])/g, '$1');
}

export function getHeader(p: MimePart, name: string): string | undefined {
  const n = name.toLowerCase();
  const f = p.headers.find(([k]) => k.toLowerCase() === n);
  return f ? unfold(f[1]) : undefined;
}

/** `value; a=b; c="d"` as Dovecot parses Content-Disposition (first token, RFC 2231 parameters). */
export function parseParams(v: string): { value: string; params: [string, string][] } {
  return parseDisposition(v) ?? { value: '', params: [] };
}

function contentType(headers: [string, string][], parentDigest: boolean): { ct: ContentType; explicit: boolean } {
  // the first Content-Type counts, as in Dovecot
  const raw = headers.find(([k]) => k.toLowerCase() === 'content-type')?.[1];
  if (raw !== undefined) {
    const t = parseContentType(raw);
    if (t) return { ct: { type: t.type.toLowerCase(), subtype: t.subtype.toLowerCase(), rawType: t.type, rawSubtype: t.subtype, params: t.params }, explicit: true };
  }
  return { ct: parentDigest ? { type: 'message', subtype: 'rfc822', rawType: 'message', rawSubtype: 'rfc822', params: [] } : { type: 'text', subtype: 'plain', rawType: 'text', rawSubtype: 'plain', params: [] }, explicit: false };
}

/** Offset just past the line holding `pos`, or `limit`. */
function lineEndWithin(buf: Buffer, pos: number, limit: number): number {
  return Math.min(lineEnd(buf, pos), limit);
}

/**
 * Does the line break before the boundary at `next` belong to this part?
 * In Dovecot it does when something inside consumed it first: the closing
 * delimiter line of a nested multipart, or the blank line ending a header
 * that reaches the boundary (an empty body). Then the part, and the message
 * it holds, extend to `next`.
 */
function claimLineBreak(buf: Buffer, p: MimePart, e: number, next: number, embedded = false): boolean {
  let claimed = false;
  if (p.closeLineEnd !== undefined) claimed = p.closeLineEnd === next;
  // (a part's own MIME header leaves that blank line to the boundary; an embedded message's header takes it)
  else if (embedded && !p.headerClosed && p.headerEnd === e && (e === p.headerStart || buf[e - 1] === 0x0a)) {
    p.headerEnd = p.bodyStart = next;
    p.headerClosed = true;
    claimed = true;
  } else if (p.message) claimed = claimLineBreak(buf, p.message, e, next, true);
  if (claimed) p.bodyEnd = next;
  return claimed;
}

export function parseMime(buf: Buffer, start = 0, end = buf.length, parentDigest = false, depth = 0): MimePart {
  const h = parseHeader(buf, start, end);
  const { ct, explicit } = contentType(h.fields, parentDigest);
  const part: MimePart = { headerStart: start, headerEnd: h.end, bodyStart: h.end, bodyEnd: end, headerClosed: h.closed, headers: h.fields, contentType: ct, explicitType: explicit, children: [] };
  if (depth > 50) return part;
  if (ct.type === 'multipart') {
    const boundary = ct.params.find(([k]) => k.toLowerCase() === 'boundary')?.[1];
    if (!boundary) return part;
    const delim = `--${boundary}`;
    const starts: number[] = [];
    let closeAt = -1;
    for (let pos = h.end; pos < end; pos = lineEnd(buf, pos)) {
      if (buf[pos] !== 0x2d || buf[pos + 1] !== 0x2d) continue;
      const line = buf.subarray(pos, lineEndWithin(buf, pos, end)).toString('latin1').replace(/\r?\n$/, '').replace(/[ \t]+$/, '');
      if (line === delim + '--') { closeAt = pos; break; }
      if (line === delim) starts.push(pos);
    }
    if (closeAt >= 0) part.closeLineEnd = lineEnd(buf, closeAt);
    for (let i = 0; i < starts.length; i++) {
      const s = lineEndWithin(buf, starts[i], end);
      const next = i + 1 < starts.length ? starts[i + 1] : closeAt;
      let e = next >= 0 ? next : end;
      // the line break before a boundary belongs to the boundary
      if (next >= 0 && e > s && buf[e - 1] === 0x0a) e -= buf[e - 2] === 0x0d ? 2 : 1;
      const child = parseMime(buf, s, Math.max(s, e), ct.subtype === 'digest', depth + 1);
      if (next >= 0 && e < next) claimLineBreak(buf, child, e, next);
      part.children.push(child);
    }
  } else if (ct.type === 'message' && ct.subtype === 'rfc822') {
    part.message = parseMime(buf, h.end, end, false, depth + 1);
  }
  return part;
}

/** Number of lines (LF) in a range, as IMAP's body-fld-lines counts them. */
export function countLines(buf: Buffer, start: number, end: number): number {
  let n = 0;
  for (let i = buf.indexOf(0x0a, start); i >= 0 && i < end; i = buf.indexOf(0x0a, i + 1)) n++;
  return n;
}

/**
 * LF → CRLF (bare LFs only), as IMAP sends stored Maildir messages.
 * `prevCR`: the chunk before this one ended in CR (streaming).
 */
export function toCrlf(b: Buffer, prevCR = false): Buffer {
  const bare = (i: number) => (i === 0 ? !prevCR : b[i - 1] !== 0x0d);
  let extra = 0;
  for (let i = b.indexOf(0x0a); i >= 0; i = b.indexOf(0x0a, i + 1)) if (bare(i)) extra++;
  if (!extra) return b;
  const out = Buffer.allocUnsafe(b.length + extra);
  let o = 0;
  let last = 0;
  for (let i = b.indexOf(0x0a); i >= 0; i = b.indexOf(0x0a, i + 1)) {
    if (!bare(i)) continue;
    o += b.copy(out, o, last, i);
    out[o++] = 0x0d;
    last = i;
  }
  b.copy(out, o, last);
  return out;
}
