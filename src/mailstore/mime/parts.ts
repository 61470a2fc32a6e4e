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
  /**
   * Its Content-* fields count (Dovecot's MESSAGE_PART_FLAG_IS_MIME): always in a multipart; a
   * message (the root, or one embedded in message/rfc822) needs MIME-Version or Content-Type,
   * else BODYSTRUCTURE ignores its Content-Transfer-Encoding, -ID, -Disposition… (message-part-data.c).
   */
  isMime: boolean;
  children: MimePart[];
  /** The embedded message of a message/rfc822 part. */
  message?: MimePart;
  /** The header ended with its blank line (not at the end of the part). */
  headerClosed: boolean;
  /** Multipart: offset just past its closing delimiter line, when there is one. */
  closeLineEnd?: number;
  /** A multipart or message/rfc822 past the nesting or part caps: its content is body (Dovecot: application/octet-stream). */
  truncated?: boolean;
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
 * delimiter line of a nested multipart, or the header of an embedded
 * message (message/rfc822) that reaches the boundary. Dovecot's parser
 * (message-parser.c parse_next_header) reads that line break as the end of
 * the header's last line, or as its blank line, then finds the boundary and
 * gives the line break to the header's parent: the message/rfc822 part
 * (and every part holding it) extends to `next`, the embedded header does
 * not. The part's own MIME header leaves it to the boundary (a multipart's
 * body), so an embedded message that starts right at the boundary claims
 * nothing.
 */
function claimLineBreak(p: MimePart, e: number, next: number): boolean {
  let claimed = false;
  if (p.closeLineEnd !== undefined) claimed = p.closeLineEnd === next;
  else if (p.message) {
    const m = p.message;
    claimed = p.headerClosed && !m.headerClosed && m.headerEnd === e ? true : claimLineBreak(m, e, next);
  } else if (p.children.length) claimed = claimLineBreak(p.children[p.children.length - 1], e, next);
  if (claimed) p.bodyEnd = next;
  return claimed;
}

/**
 * Dovecot's message-parser caps (lib-mail/message-parser.h,
 * MESSAGE_PARSER_DEFAULT_MAX_NESTED_MIME_PARTS and …_TOTAL_MIME_PARTS): a
 * multipart or message/rfc822 part that would nest a hundredth level keeps
 * its content as body (BODYSTRUCTURE shows it as application/octet-stream),
 * and once a message has 10,000 parts no further boundary is recognised, so
 * the part being read and all that hold it run to the end of the message.
 * They bound the work a hostile message costs every FETCH.
 */
export const MAX_NESTED_MIME_PARTS = 100;
export const MAX_TOTAL_MIME_PARTS = 10_000;

interface ParseState {
  /** Parts so far, the message itself included. */
  total: number;
  /** The part cap stopped boundary recognition: open parts extend to `end`. */
  overflow: boolean;
  end: number;
  /** Child parses left for nestedOpen in this whole message (shared by the probes' own states). */
  probes: { left: number };
}

export function parseMime(buf: Buffer, start = 0, end = buf.length): MimePart {
  return parsePart(buf, start, end, false, false, 0, { total: 1, overflow: false, end, probes: { left: MAX_MESSAGE_PROBES } });
}

/**
 * 1 when the line at `pos` starts with `delim`, 2 when `--` follows it (a close delimiter), else 0.
 * Only the prefix counts, as in Dovecot's message-parser (boundary_find: "the full message line
 * doesn't have to match the boundary, only the beginning"): `--b  `, `--bx` and `--b--x` are all
 * boundary lines of `b` — unless a multipart open inside the current child has a boundary the
 * line starts with that is as long or longer (nestedClaims), as Dovecot picks the longest.
 */
function delimiterAt(buf: Buffer, pos: number, limit: number, delim: Buffer): number {
  if (pos + delim.length > limit || buf.compare(delim, 0, delim.length, pos, pos + delim.length) !== 0) return 0;
  const i = pos + delim.length;
  return i + 2 <= limit && buf[i] === 0x2d && buf[i + 1] === 0x2d ? 2 : 1;
}

/** The parts still open when boundary recognition stopped run to the end of the message, as in Dovecot's streaming parser. */
function extendOpen(p: MimePart, end: number): void {
  p.bodyEnd = end;
  if (!p.headerClosed) p.headerEnd = p.bodyStart = end;
  if (p.message) extendOpen(p.message, end);
  else if (p.children.length && p.closeLineEnd === undefined) extendOpen(p.children[p.children.length - 1], end);
}

function parsePart(buf: Buffer, start: number, end: number, inMultipart: boolean, parentDigest: boolean, depth: number, st: ParseState): MimePart {
  const h = parseHeader(buf, start, end);
  const { ct, explicit } = contentType(h.fields, parentDigest);
  const isMime = inMultipart || h.fields.some(([k]) => /^(mime-version|content-type)$/i.test(k));
  const part: MimePart = { headerStart: start, headerEnd: h.end, bodyStart: h.end, bodyEnd: end, headerClosed: h.closed, headers: h.fields, contentType: ct, explicitType: explicit, isMime, children: [] };
  const rfc822 = ct.type === 'message' && ct.subtype === 'rfc822';
  if (ct.type !== 'multipart' && !rfc822) return part;
  // Dovecot's parse_too_many_nested_mime_parts: the root is level 0
  if (depth + 1 >= MAX_NESTED_MIME_PARTS || (rfc822 && st.total >= MAX_TOTAL_MIME_PARTS)) { part.truncated = true; return part; }
  if (rfc822) {
    st.total++;
    part.message = parsePart(buf, h.end, end, false, false, depth + 1, st);
    if (st.overflow) part.bodyEnd = st.end;
    return part;
  }
  const boundary = ct.params.find(([k]) => k.toLowerCase() === 'boundary')?.[1];
  if (!boundary) return part;
  const delim = Buffer.from(`--${boundary}`, 'latin1');
  const digest = ct.subtype === 'digest';
  let s = -1; // the current child's delimiter line, -1 in the preamble
  let probes = 0;
  // only a boundary parameter inside can extend or repeat this one: without the text elsewhere, no look
  const mayNest = boundaryElsewhere(buf, h.end, end, delim);
  let inner: Buffer[] = []; // delimiters open inside the current child when last looked
  for (let pos = h.end; pos < end; pos = lineEnd(buf, pos)) {
    if (buf[pos] !== 0x2d || buf[pos + 1] !== 0x2d) continue;
    const kind = delimiterAt(buf, pos, end, delim);
    if (!kind) continue;
    // a line that goes on past the delimiter may be the boundary of a multipart open inside the current child
    if (s >= 0 && mayNest && lineGoesOn(buf, pos + delim.length, end)) {
      // one found open before claims it without parsing again (a multipart opened since needs a new look)
      if (claimedBy(buf, pos, end, delim, inner)) continue;
      if (probes < MAX_BOUNDARY_PROBES && st.probes.left > 0) {
        probes++;
        st.probes.left--;
        inner = nestedOpen(buf, s, pos, end, digest, depth, st);
        if (claimedBy(buf, pos, end, delim, inner)) continue;
      }
    }
    // the child before this boundary is read first: its parts count before the boundary is looked at
    if (s >= 0 && addChild(buf, part, s, pos, digest, depth, st)) return part;
    if (st.total >= MAX_TOTAL_MIME_PARTS) {
      // Dovecot stops recognising boundaries: what is open runs to the end of the message
      st.overflow = true;
      extendOpen(part, st.end);
      return part;
    }
    if (kind === 2) { part.closeLineEnd = lineEnd(buf, pos); return part; }
    st.total++;
    s = pos;
    inner = [];
  }
  if (s >= 0) addChild(buf, part, s, -1, digest, depth, st);
  return part;
}

/**
 * Lines of a multipart checked against the boundaries open inside its current child (each
 * check parses that child so far): a bound on the work a message full of such lines costs.
 * Past it a line that starts with the boundary is the multipart's, as before.
 */
const MAX_BOUNDARY_PROBES = 16;
/** The same for a whole message: nested probes each parse again what is inside them. */
const MAX_MESSAGE_PROBES = 64;

/**
 * Does the boundary text occur in [from, end) other than right after the `--` that starts a
 * line? Only then can a multipart inside declare a boundary that extends or repeats it.
 * (A boundary parameter split into RFC 2231 sections escapes this look.)
 */
function boundaryElsewhere(buf: Buffer, from: number, end: number, delim: Buffer): boolean {
  const b = delim.subarray(2);
  for (let i = buf.indexOf(b, from); i >= 0 && i + b.length <= end; i = buf.indexOf(b, i + 1)) {
    const lineStart = i - 2 === from || (i - 2 > from && buf[i - 3] === 0x0a);
    if (!(i - 2 >= from && buf[i - 2] === 0x2d && buf[i - 1] === 0x2d && lineStart)) return true;
  }
  return false;
}

/** Anything on the line after `at` but its line break. */
function lineGoesOn(buf: Buffer, at: number, end: number): boolean {
  return at < end && buf[at] !== 0x0a && !(buf[at] === 0x0d && buf[at + 1] === 0x0a);
}

/** `--boundary` of a multipart whose boundary is still open at its end (not closed by `--boundary--`). */
function openDelimiters(p: MimePart, out: Buffer[]): Buffer[] {
  if (p.message) return openDelimiters(p.message, out);
  if (p.contentType.type !== 'multipart' || p.truncated || p.closeLineEnd !== undefined) return out;
  const boundary = p.contentType.params.find(([k]) => k.toLowerCase() === 'boundary')?.[1];
  if (!boundary) return out;
  out.push(Buffer.from(`--${boundary}`, 'latin1'));
  const last = p.children[p.children.length - 1];
  return last ? openDelimiters(last, out) : out;
}

/**
 * The boundaries of the multiparts still open in the child whose delimiter
 * line is at `s` when its content reaches `pos` (the child parsed that far
 * on a copy of the part count), outermost first.
 */
function nestedOpen(buf: Buffer, s: number, pos: number, end: number, digest: boolean, depth: number, st: ParseState): Buffer[] {
  const cs = lineEndWithin(buf, s, end);
  let e = pos;
  if (e > cs && buf[e - 1] === 0x0a) e -= buf[e - 2] === 0x0d ? 2 : 1;
  const probe = { total: st.total, overflow: false, end: st.end, probes: st.probes };
  const child = parsePart(buf, cs, Math.max(cs, e), true, digest, depth + 1, probe);
  return probe.overflow ? [] : openDelimiters(child, []);
}

/**
 * Dovecot's message-parser (boundary_find) gives a boundary line to the
 * longest of all open boundaries it starts with, the innermost among equals:
 * is the line at `pos`, which starts with this multipart's `delim`, the
 * boundary of one of the multiparts `open` inside the current child (e.g.
 * `--abcd` inside a part of "abcd" nested in one of "abc", or the same
 * boundary nested)?
 */
function claimedBy(buf: Buffer, pos: number, end: number, delim: Buffer, open: Buffer[]): boolean {
  let best = -1;
  open.forEach((d, i) => {
    if (d.length >= delim.length && pos + d.length <= end && buf.compare(d, 0, d.length, pos, pos + d.length) === 0 && (best < 0 || d.length >= open[best].length)) best = i;
  });
  if (best < 0) return false;
  // as the child's parse will: its `--d--` closes d and what is inside it, a `--d` what is inside d
  const d = open[best];
  const closes = pos + d.length + 2 <= end && buf[pos + d.length] === 0x2d && buf[pos + d.length + 1] === 0x2d;
  open.length = closes ? best : best + 1;
  return true;
}

/**
 * The child whose delimiter line starts at `s`, up to the boundary at
 * `next` (-1: none, the end of the parent). True when the part cap was hit
 * inside it: then it and its parents run to the end of the message.
 */
function addChild(buf: Buffer, part: MimePart, s: number, next: number, digest: boolean, depth: number, st: ParseState): boolean {
  const end = part.bodyEnd;
  const cs = lineEndWithin(buf, s, end);
  let e = next >= 0 ? next : end;
  // the line break before a boundary belongs to the boundary
  if (next >= 0 && e > cs && buf[e - 1] === 0x0a) e -= buf[e - 2] === 0x0d ? 2 : 1;
  const child = parsePart(buf, cs, Math.max(cs, e), true, digest, depth + 1, st);
  part.children.push(child);
  if (st.overflow) { extendOpen(part, st.end); return true; }
  if (next >= 0 && e < next) claimLineBreak(child, e, next);
  return false;
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
