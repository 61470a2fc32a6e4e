/**
 * The MIME structure of a message (RFC 2045/2046/2822) as byte ranges over
 * one Buffer: each part's header and body, its parsed Content-Type and
 * other MIME fields, multipart children split on their boundary, and the
 * embedded message of a message/rfc822 part — what IMAP's BODY[section],
 * BODYSTRUCTURE and ENVELOPE are built from. Lenient like Dovecot with
 * broken input: a missing boundary makes the rest one part, a missing blank
 * line makes everything header.
 */

export interface ContentType { type: string; subtype: string; params: [string, string][] }

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
}

function lineEnd(buf: Buffer, from: number): number {
  const i = buf.indexOf(0x0a, from);
  return i < 0 ? buf.length : i + 1;
}

/** Header fields between start and end, continuation lines unfolded only by the caller. */
function parseHeader(buf: Buffer, start: number, limit: number): { fields: [string, string][]; end: number } {
  const fields: [string, string][] = [];
  let pos = start;
  while (pos < limit) {
    const e = Math.min(lineEnd(buf, pos), limit);
    const line = buf.subarray(pos, e).toString('latin1');
    if (line === '\n' || line === '\r\n') return { fields, end: e };
    if (/^[ \t]/.test(line) && fields.length) {
      fields[fields.length - 1][1] += line.replace(/\r?\n$/, '\n');
    } else {
      const colon = line.indexOf(':');
      if (colon > 0) fields.push([line.slice(0, colon).trim(), line.slice(colon + 1).replace(/^[ \t]*/, '').replace(/\r?\n$/, '\n')]);
    }
    pos = e;
  }
  return { fields, end: limit };
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

/** `type/subtype; a=b; c="d"` with RFC 2231 continuations joined. */
export function parseParams(v: string): { value: string; params: [string, string][] } {
  const parts: string[] = [];
  let cur = '';
  let q = false;
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (c === '"') q = !q;
    if (c === '\\' && q && i + 1 < v.length) { cur += c + v[++i]; continue; }
    if (c === ';' && !q) { parts.push(cur); cur = ''; continue; }
    cur += c;
  }
  parts.push(cur);
  const value = parts.shift()!.trim().replace(/\([^)]*\)/g, '').trim();
  const params: [string, string][] = [];
  for (const p of parts) {
    const eq = p.indexOf('=');
    if (eq <= 0) continue;
    const k = p.slice(0, eq).trim().toLowerCase();
    let val = p.slice(eq + 1).trim();
    if (val.startsWith('"')) val = val.slice(1, val.endsWith('"') ? -1 : undefined).replace(/\\(.)/g, '$1');
    params.push([k, val]);
  }
  return { value, params };
}

function contentType(headers: [string, string][], parentDigest: boolean): { ct: ContentType; explicit: boolean } {
  const raw = headers.find(([k]) => k.toLowerCase() === 'content-type')?.[1];
  if (raw !== undefined) {
    const { value, params } = parseParams(unfold(raw));
    const slash = value.indexOf('/');
    if (slash > 0 && value.slice(slash + 1)) return { ct: { type: value.slice(0, slash).toLowerCase(), subtype: value.slice(slash + 1).toLowerCase(), params }, explicit: true };
  }
  return { ct: parentDigest ? { type: 'message', subtype: 'rfc822', params: [] } : { type: 'text', subtype: 'plain', params: [['charset', 'us-ascii']] }, explicit: false };
}

export function parseMime(buf: Buffer, start = 0, end = buf.length, parentDigest = false, depth = 0): MimePart {
  const h = parseHeader(buf, start, end);
  const { ct, explicit } = contentType(h.fields, parentDigest);
  const part: MimePart = { headerStart: start, headerEnd: h.end, bodyStart: h.end, bodyEnd: end, headers: h.fields, contentType: ct, explicitType: explicit, children: [] };
  if (depth > 50) return part;
  if (ct.type === 'multipart') {
    const boundary = ct.params.find(([k]) => k === 'boundary')?.[1];
    if (!boundary) return part;
    const delim = `--${boundary}`;
    const starts: number[] = [];
    let closeAt = -1;
    for (let pos = h.end; pos < end; pos = lineEnd(buf, pos)) {
      if (buf[pos] !== 0x2d || buf[pos + 1] !== 0x2d) continue;
      const line = buf.subarray(pos, Math.min(lineEnd(buf, pos), end)).toString('latin1').replace(/\r?\n$/, '').replace(/[ \t]+$/, '');
      if (line === delim + '--') { closeAt = pos; break; }
      if (line === delim) starts.push(pos);
    }
    for (let i = 0; i < starts.length; i++) {
      const s = lineEnd(buf, starts[i]);
      let e = i + 1 < starts.length ? starts[i + 1] : closeAt >= 0 ? closeAt : end;
      // the line break before a boundary belongs to the boundary
      if (e > s && buf[e - 1] === 0x0a) e -= buf[e - 2] === 0x0d ? 2 : 1;
      part.children.push(parseMime(buf, s, Math.max(s, e), ct.subtype === 'digest', depth + 1));
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
