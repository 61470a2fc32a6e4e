/**
 * The parts of a message a Sieve script looks at: header fields (unfolded,
 * RFC 2047 encoded words decoded, as Pigeonhole's header test sees them),
 * addresses in address headers (RFC 5322 mailbox lists, groups, comments),
 * the body text and the size (RFC 5228 section 5.9: octets as delivered).
 */

export interface ParsedMessage {
  raw: Buffer;
  size: number;
  headers: Array<{ name: string; value: string }>;   // name lower-cased, value unfolded + decoded
  rawHeaders: Array<{ name: string; value: string }>; // value unfolded, not decoded
  bodyStart: number;
  /** Bytes of the header block in `raw` (its fields with their line ends, without the empty line). */
  headerLength: number;
  /** RFC 5293: the header fields as editheader left them (undefined while unedited); headers/rawHeaders follow them. */
  fields?: import('./editheader.js').HeaderField[];
  /** The whole message when `raw` is only its start (a big LMTP delivery, read from its spool when a test needs the body). */
  whole?: () => Promise<Buffer>;
}

/** A message given by its start (holding the whole header), its size and a way to read all of it. */
export interface MessageSource { head: Buffer; size: number; load: () => Promise<Buffer> }

function headerEnd(raw: Buffer): number {
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x0a && (raw[i + 1] === 0x0a || (raw[i + 1] === 0x0d && raw[i + 2] === 0x0a))) return i + 1;
    if (i === 0 && (raw[0] === 0x0a || (raw[0] === 0x0d && raw[1] === 0x0a))) return 0;
  }
  return raw.length;
}

export function trimBlanks(v: string): string {
  let a = 0, b = v.length;
  while (a < b && (v[a] === ' ' || v[a] === '\t')) a++;
  while (b > a && (v[b - 1] === ' ' || v[b - 1] === '\t')) b--;
  return v.slice(a, b);
}

export function parseMessage(raw: Buffer | MessageSource): ParsedMessage {
  if (!Buffer.isBuffer(raw)) {
    const src = raw;
    let loaded: Promise<Buffer> | null = null;
    return { ...parseMessage(src.head), size: src.size, whole: () => (loaded ??= src.load()) };
  }
  const end = headerEnd(raw);
  const text = raw.subarray(0, end).toString('latin1');
  const lines = text.split(/\r?\n/);
  const rawHeaders: Array<{ name: string; value: string }> = [];
  for (const l of lines) {
    if (/^[ \t]/.test(l) && rawHeaders.length) { rawHeaders[rawHeaders.length - 1].value += l; continue; }
    const c = l.indexOf(':');
    if (c <= 0) continue;
    rawHeaders.push({ name: l.slice(0, c).trim().toLowerCase(), value: l.slice(c + 1) });
  }
  // trimmed by hand: /[ \t]+$/ costs quadratic time on a sender's long run of blanks
  for (const h of rawHeaders) h.value = trimBlanks(utf8(h.value));
  const headers = rawHeaders.map((h) => ({ name: h.name, value: decodeWords(h.value) }));
  let bodyStart = end;
  if (raw[bodyStart] === 0x0d) bodyStart++;
  if (raw[bodyStart] === 0x0a) bodyStart++;
  return { raw, size: raw.length, headers, rawHeaders, bodyStart, headerLength: end };
}

/** Header bytes are usually ASCII; 8-bit ones are taken as UTF-8 when valid. */
export function utf8(latin1: string): string {
  const b = Buffer.from(latin1, 'latin1');
  try { return new TextDecoder('utf-8', { fatal: true }).decode(b); } catch { return latin1; }
}

function decodeCharset(bytes: Buffer, charset: string): string {
  try { return new TextDecoder(charset.toLowerCase()).decode(bytes); } catch { return bytes.toString('latin1'); }
}

/** RFC 2047: =?charset?B|Q?text?=, whitespace between adjacent encoded words dropped. */
export function decodeWords(v: string): string {
  if (!v.includes('=?')) return v;
  return v.replace(/(=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=)(\s+(?==\?[^?\s]+\?[BbQq]\?[^?\s]*\?=))?/g, (_m, w: string) => {
    const m = /^=\?([^?*]+)(?:\*[^?]*)?\?([BbQq])\?([^?]*)\?=$/.exec(w)!;
    const bytes = m[2].toUpperCase() === 'B'
      ? Buffer.from(m[3], 'base64')
      : Buffer.from(m[3].replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (_x, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
    return decodeCharset(bytes, m[1]);
  });
}

/**
 * Addresses in a header value: "Name <a@b>", bare a@b, groups "g: a@b, c@d;",
 * (comments) removed. Returns addr-specs; unparsable items come back verbatim.
 */
export function parseAddresses(value: string): string[] {
  let s = '';
  let depth = 0, inQuote = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (inQuote) { if (c === '\\') { s += c + (value[++i] ?? ''); continue; } if (c === '"') inQuote = false; s += c; continue; }
    if (c === '"') { inQuote = true; s += c; continue; }
    if (c === '(') { depth++; continue; }
    if (c === ')' && depth) { depth--; continue; }
    if (!depth) s += c;
  }
  const out: string[] = [];
  const items: string[] = [];
  let cur = ''; inQuote = false; let angle = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '"' && s[i - 1] !== '\\') inQuote = !inQuote;
    if (!inQuote && c === '<') angle = true;
    if (!inQuote && c === '>') angle = false;
    if (!inQuote && !angle && (c === ',' || c === ';')) { items.push(cur); cur = ''; continue; }
    if (!inQuote && !angle && c === ':' && !/@/.test(cur)) { cur = ''; continue; } // group name
    cur += c;
  }
  items.push(cur);
  for (const it of items) {
    const t = it.trim();
    if (!t) continue;
    // the first <...> (what /<([^>]*)>/ finds), by index: that regex is quadratic on a run of '<'
    const lt = t.indexOf('<');
    const gt = lt < 0 ? -1 : t.indexOf('>', lt);
    let spec = (gt >= 0 ? t.slice(lt + 1, gt) : t).trim();
    spec = spec.replace(/^@[^:]*:/, ''); // obsolete source route
    out.push(spec);
  }
  return out;
}

export interface AddressParts { all: string; localpart: string; domain: string }

export function splitAddress(addr: string): AddressParts {
  const at = addr.lastIndexOf('@');
  if (at < 0) return { all: addr, localpart: addr, domain: '' };
  let local = addr.slice(0, at);
  if (local.startsWith('"') && local.endsWith('"')) local = local.slice(1, -1).replace(/\\(.)/g, '$1');
  return { all: `${local}@${addr.slice(at + 1)}`, localpart: local, domain: addr.slice(at + 1) };
}
