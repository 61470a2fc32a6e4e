/**
 * RFC 5293 editheader as Pigeonhole 0.5.19 does it (plugins/editheader,
 * util/edit-mail.c, util/rfc2822.c): which fields a script may add or
 * delete (Received and Auto-Submitted are never deleted, X-Sieve-Redirected-From
 * never touched, Subject always allowed, then sieve_editheader_protected /
 * _forbid_add / _forbid_delete), the value size limit
 * (sieve_editheader_max_header_size, 2048 bytes, at least 1024), the added
 * field's name capitalised as rfc2822_header_field_name_sanitize does, its
 * value encoded as Dovecot's message_header_encode (RFC 2047 Q or B words,
 * utf-8) and folded as rfc2822_header_append (at whitespace before column
 * 80, continuation lines start with one TAB).
 * Only the header block is edited: HeaderFields holds its fields as raw
 * text; the body is never copied here.
 */
import { decodeWords, trimBlanks, utf8 } from './message.js';

/** One field of the header block: its lower-case name, its bytes (latin1, with line ends) and its unfolded UTF-8 value. */
export interface HeaderField { name: string; raw: string; value: string }

export interface EditheaderConfig { forbidAdd: Set<string>; forbidDelete: Set<string>; maxHeaderSize: number }

export const DEFAULT_MAX_HEADER_SIZE = 2048;
const MINIMUM_MAX_HEADER_SIZE = 1024;

/** sieve_setting_get_size_value: digits and an optional B/K/M/G unit; undefined when unset or invalid. */
function sizeValue(v: string | undefined): number | undefined {
  const m = /^(\d+)([bkmgBKMG]?)/.exec(v ?? '');
  if (!m) return undefined;
  const mul: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
  return Number(m[1]) * mul[m[2].toLowerCase()];
}

/** ext_editheader_load: the settings' header lists (invalid names ignored) and the size limit. */
export function editheaderConfig(settings: Record<string, string> = {}): EditheaderConfig {
  const names = (k: string) => (settings[k] ?? '').split(/[ \t]+/).filter((n) => n && fieldNameValid(n)).map((n) => n.toLowerCase());
  const prot = names('sieve_editheader_protected');
  const max = sizeValue(settings.sieve_editheader_max_header_size);
  return {
    forbidAdd: new Set([...prot, ...names('sieve_editheader_forbid_add')]),
    forbidDelete: new Set([...prot, ...names('sieve_editheader_forbid_delete')]),
    maxHeaderSize: max !== undefined && max >= MINIMUM_MAX_HEADER_SIZE ? max : DEFAULT_MAX_HEADER_SIZE,
  };
}

export function allowAdd(cfg: EditheaderConfig, name: string): boolean {
  const n = name.toLowerCase();
  if (n === 'subject') return true;
  if (n === 'x-sieve-redirected-from') return false;
  return !cfg.forbidAdd.has(n);
}

export function allowDelete(cfg: EditheaderConfig, name: string): boolean {
  const n = name.toLowerCase();
  if (n === 'received' || n === 'auto-submitted' || n === 'x-sieve-redirected-from') return false;
  if (n === 'subject') return true;
  return !cfg.forbidDelete.has(n);
}

/** rfc2822_header_field_name_verify: no byte below 33, no ':', nothing 8-bit (a signed char); empty is valid. */
export function fieldNameValid(name: string): boolean {
  for (const b of Buffer.from(name, 'utf8')) if (b < 33 || b === 0x3a || b >= 0x80) return false;
  return true;
}

/** rfc2822_header_field_name_sanitize: lower case, upper case at the start and after each '-'. */
export function sanitizeFieldName(name: string): string {
  return name.toLowerCase().replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase());
}

/** Split a header block (latin1 text, line ends kept) into its fields; a line that is no field stays attached to the one before (or stands alone). */
export function splitFields(header: string): HeaderField[] {
  const out: HeaderField[] = [];
  let i = 0;
  while (i < header.length) {
    let end = header.indexOf('\n', i);
    end = end < 0 ? header.length : end + 1;
    const line = header.slice(i, end);
    if ((line[0] === ' ' || line[0] === '\t') && out.length) out[out.length - 1].raw += line;
    else out.push({ name: '', raw: line, value: '' });
    i = end;
  }
  for (const f of out) {
    const c = f.raw.indexOf(':');
    if (c <= 0) continue;
    f.name = f.raw.slice(0, c).trim().toLowerCase();
    f.value = trimBlanks(decodeWords(utf8(f.raw.slice(c + 1).replace(/\r?\n/g, ''))));
  }
  return out;
}


/** _header_value_unfold: line ends dropped, the whitespace after them kept as one space or TAB. */
function unfold(v: string): string {
  return v.replace(/\r?\n([ \t]?)/g, (_m, ws: string) => (ws === ' ' ? ' ' : ws ? '\t' : ''));
}

/** A new field as edit_mail_header_field_create writes it (LF line ends). */
export function newField(name: string, value: string): HeaderField {
  const sane = sanitizeFieldName(name);
  return { name: sane.toLowerCase(), raw: fold(sane, encodeValue(Buffer.from(value, 'utf8'))), value: unfold(value) };
}

const isLwsp = (c: number | undefined) => c === 0x20 || c === 0x09 || c === 0x0a;

/** message-header-encode.c's input_idx_need_encoding. */
function needEncoding(b: Buffer, i: number): boolean {
  const len = b.length;
  if (b[i] === 0x0d) {
    if (i + 1 === len || b[i + 1] !== 0x0a) return true;
    i++; // the LF is checked too
  }
  switch (b[i]) {
    case 0x0a:
      if (i + 1 === len) return true;
      return b[i + 1] !== 0x09 && b[i + 1] !== 0x20;
    case 0x09: return false;
    case 0x3d: return (i === 0 || isLwsp(b[i - 1])) && i + 2 <= len && b[i + 1] === 0x3f;
    default: return b[i] >= 0x80 || b[i] < 32;
  }
}

/** UTF-8 sequence length of the character starting at b[i] (the input is valid UTF-8: it came from a JS string). */
function charLen(b: Buffer, i: number): number {
  const c = b[i];
  return c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
}

const MAX_LINE = 76;
const WRAPPER = '=?utf-8?q??='.length;

function encodeQ(b: Buffer, firstLineLen: number): string {
  let out = '';
  let left = MAX_LINE - WRAPPER;
  if (firstLineLen >= MAX_LINE - WRAPPER - 3) { out += '\n\t'; left--; } else left -= firstLineLen;
  out += '=?utf-8?q?';
  for (let i = 0; i < b.length;) {
    const c = b[i];
    let n = 1, outLen = 1;
    if (c === 0x3d || c === 0x3f || c === 0x5f) outLen = 3;
    else if (c >= 0x80) { n = charLen(b, i); outLen = 3 * n; } else if (c !== 0x20 && (c < 0x20 || c > 0x7e)) outLen = 3;
    if (left < outLen) { out += '?=\n\t=?utf-8?q?'; left = MAX_LINE - WRAPPER - 1; }
    if (c === 0x20) out += '_';
    else if (outLen > 1) for (let k = 0; k < n; k++) out += '=' + b[i + k].toString(16).toUpperCase().padStart(2, '0');
    else out += String.fromCharCode(c);
    left -= outLen;
    i += n;
  }
  return out + '?=';
}

function encodeB(b: Buffer, firstLineLen: number): string {
  let out = '';
  let left = MAX_LINE - WRAPPER;
  if (firstLineLen >= MAX_LINE - WRAPPER - 3) { out += '\n\t'; left--; } else left -= firstLineLen;
  out += '=?utf-8?b?';
  let i = 0;
  for (;;) {
    const max = Math.min(Math.floor(left / 4) * 3, b.length - i);
    let n = 0;
    while (n < max && n + charLen(b, i + n) <= max) n += charLen(b, i + n);
    out += b.subarray(i, i + n).toString('base64');
    i += n;
    if (i >= b.length) break;
    out += '?=\n\t=?utf-8?b?';
    left = MAX_LINE - WRAPPER - 1;
  }
  return out + '?=';
}

/** message_header_encode_data: RFC 2047 words for the stretch that needs them, line by line. */
export function encodeValue(input: Buffer): string {
  let i = 0;
  while (i < input.length && !needEncoding(input, i)) i++;
  if (i === input.length) return input.toString('latin1');
  if (input[i] !== 0x0d && input[i] !== 0x0a) while (i > 0 && !isLwsp(input[i - 1])) i--;
  let out = input.subarray(0, i).toString('latin1');
  // (Dovecot's own arithmetic: the offset of the line's start when there is an earlier line)
  let j = i;
  while (j > 0 && input[j - 1] !== 0x0a) j--;
  const firstLineLen = j !== 0 ? j : i;
  let rest = input.subarray(i);
  let next: Buffer | null = null;
  const nl = rest.indexOf(0x0a);
  if (nl >= 0) {
    let cur = nl;
    if (cur > 0 && rest[cur - 1] === 0x0d) cur--;
    next = rest.subarray(cur);
    rest = rest.subarray(0, cur);
  }
  let last = 0, encChars = 0;
  for (let k = 0; k < rest.length; k++) if (needEncoding(rest, k)) { last = k + 1; encChars++; }
  while (last < rest.length && !isLwsp(rest[last])) last++;
  const base64Len = Math.floor((last + 2) / 3) * 4;
  const qLen = last + encChars * 3;
  if (last > 0) out += Math.floor(qLen * 2 / 3) <= base64Len ? encodeQ(rest.subarray(0, last), firstLineLen) : encodeB(rest.subarray(0, last), firstLineLen);
  out += rest.subarray(last).toString('latin1');
  if (next) {
    let k = 0;
    const cr = next[0] === 0x0d;
    if (cr) k++;
    if (++k === next.length) return out; // a trailing line end is dropped
    out += cr ? '\r\n' : '\n';
    if (next[k] === 0x20 || next[k] === 0x09) out += String.fromCharCode(next[k++]);
    else out += '\t';
    out += encodeValue(next.subarray(k));
  }
  return out;
}

/** rfc2822_header_append: "Name: body" folded at the last whitespace before column 80, existing line breaks kept as LF TAB. */
export function fold(name: string, body: string): string {
  const MAX = 80;
  let out = `${name}: `;
  let bp = 0, sp = 0, wp = -1, nlp = -1, lines = 0;
  let lineLen = name.length + 2;
  const len = body.length;
  const ws = (k: number) => body[k] === ' ' || body[k] === '\t';
  while (bp < len) {
    let wsFirst = true;
    while (bp < len && nlp < 0 && (wp < 0 || lineLen < MAX)) {
      const c = body[bp];
      if (c === ' ' || c === '\t') { if (wsFirst) wp = bp; wsFirst = false; } else if (c === '\r' || c === '\n') { nlp = wsFirst ? bp : wp; break; } else wsFirst = true;
      bp++; lineLen++;
    }
    if (bp >= len) break;
    if (nlp >= 0) {
      while (bp < len && (ws(bp) || body[bp] === '\r' || body[bp] === '\n')) bp++;
      out += body.slice(sp, nlp) + '\n';
      if (bp < len) out += '\t';
      sp = bp;
    } else {
      out += body.slice(sp, wp) + '\n';
      while (ws(wp)) wp++;
      out += '\t';
      sp = wp;
      if (sp > bp) bp = sp;
    }
    lines++;
    lineLen = bp - sp;
    wp = -1; nlp = -1;
  }
  if (bp !== sp || lines === 0) out += body.slice(sp, bp) + '\n';
  return out;
}

/** The header block the fields make, with the empty line that ends it. */
export function headerBytes(fields: HeaderField[]): Buffer {
  return Buffer.from(fields.map((f) => f.raw).join('') + '\n', 'latin1');
}
