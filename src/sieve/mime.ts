/**
 * The MIME parts a Sieve script sees through RFC 5703 (`foreverypart`,
 * `:mime` on header/address/exists, `extracttext`), as Pigeonhole 0.5
 * builds them (sieve-message.c): every part of the message in depth-first
 * order, the message itself first and the embedded message of a
 * message/rfc822 part as that part's child; each with its own header
 * fields and, for `extracttext`, its text (transfer encoding undone, charset
 * converted, HTML reduced to text as Dovecot's mail-html2text does; empty for
 * a part with children). The structure comes from src/mailstore/mime.
 */
import { parseMime, type MimePart } from '../mailstore/mime/parts.js';
import { decodeTransfer, decodeCharset } from '../mailstore/mime/decode.js';
import { parseContentType, parseDisposition } from '../mailstore/mime/rfc822-tokens.js';
import { parseMessage } from './message.js';

export interface SievePart {
  /** Lower-cased names, values unfolded with encoded words decoded (as the header test sees them). */
  headers: Array<{ name: string; value: string }>;
  parent: number;
  /** Index of the next sibling, -1 when there is none (Dovecot's message_part->next). */
  next: number;
  hasChildren: boolean;
  /** What `extracttext` assigns (before :first). */
  text: () => string;
}

/** All parts in Pigeonhole's order (the message is index 0). */
export function sieveParts(raw: Buffer): SievePart[] {
  const out: SievePart[] = [];
  const walk = (p: MimePart, parent: number): number => {
    const idx = out.length;
    const kids = p.message ? [p.message] : p.children;
    let text: string | null = null;
    const part: SievePart = {
      headers: parseMessage(raw.subarray(p.headerStart, p.headerEnd)).headers,
      parent, next: -1, hasChildren: kids.length > 0,
      text: () => (text ??= kids.length ? '' : partText(raw, p)),
    };
    out.push(part);
    let prev = -1;
    for (const k of kids) {
      const ki = walk(k, idx);
      if (prev >= 0) out[prev].next = ki;
      prev = ki;
    }
    return idx;
  };
  walk(parseMime(raw), -1);
  return out;
}

/**
 * The parts an iteration rooted at `root` visits, as Pigeonhole's
 * sieve_message_part_iter: from `start` on in document order until the
 * root's next sibling or its parent comes up. (Pigeonhole stops only there,
 * so after the subtree of a last child it runs on into its ancestors' later
 * siblings; kept, so scripts see the same parts.)
 */
export function iterParts(parts: SievePart[], root: number, start: number): number[] {
  const out: number[] = [];
  const r = parts[root];
  for (let i = start; i < parts.length; i++) {
    if (i === r.next || i === r.parent) break;
    out.push(i);
  }
  return out;
}

/** The children a nested foreverypart walks (sieve_message_part_iter_children): none for a leaf. */
export function childParts(parts: SievePart[], current: number): number[] {
  if (!parts[current].hasChildren || current + 1 >= parts.length) return [];
  return iterParts(parts, current, current + 1);
}

export type MimeOption = 'type' | 'subtype' | 'contenttype' | 'param';

/**
 * tag-mime.c content_header_parse: the piece of a Content-Type or
 * Content-Disposition value that :type/:subtype/:contenttype/:param select;
 * any other header gives one empty string, so does an unparsable value.
 */
export function mimeOptionValues(name: string, value: string, opt: MimeOption, params: string[]): string[] {
  const n = name.toLowerCase();
  if (n !== 'content-type' && n !== 'content-disposition') return [''];
  const isCt = n === 'content-type';
  const parsed = isCt ? parseContentType(value) : parseDisposition(value);
  if (!parsed) return [''];
  const token = isCt ? `${(parsed as { type: string }).type}/${(parsed as { subtype: string }).subtype}` : (parsed as { value: string }).value;
  if (opt === 'param') {
    const found: string[] = [];
    for (const [k, v] of parsed.params) {
      for (const want of params) {
        if (k.toLowerCase() === want.toLowerCase()) { found.push(v); break; }
        if (k.length === want.length + 1 && k.endsWith('*') && k.slice(0, -1).toLowerCase() === want.toLowerCase()) {
          // RFC 2231 charset'language'%XX: the %-escapes undone, the charset not converted (as Pigeonhole)
          const q1 = v.indexOf("'");
          const q2 = q1 < 0 ? -1 : v.indexOf("'", q1 + 1);
          const dec = q2 < 0 ? null : percentDecode(v.slice(q2 + 1));
          if (dec === null) return found.length ? found : [''];
          found.push(dec);
          break;
        }
      }
    }
    return found.length ? found : [''];
  }
  const slash = token.indexOf('/');
  if (opt === 'type') return [slash < 0 ? token : token.slice(0, slash)];
  if (opt === 'subtype') return [slash < 0 ? '' : token.slice(slash + 1)];
  return [token];
}

function percentDecode(s: string): string | null {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] !== '%') { bytes.push(...Buffer.from(s[i], 'latin1')); continue; }
    const h = s.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(h)) return null;
    bytes.push(parseInt(h, 16));
    i += 2;
  }
  return Buffer.from(bytes).toString('utf8');
}

/** A leaf's body as text: transfer encoding undone, text/* converted from its charset, HTML reduced to text. */
function partText(raw: Buffer, p: MimePart): string {
  const cte = p.headers.find(([k]) => k.toLowerCase() === 'content-transfer-encoding')?.[1];
  const body = decodeTransfer(raw.subarray(p.bodyStart, p.bodyEnd), cte);
  const ct = p.contentType;
  const charset = ct.params.find(([k]) => k.toLowerCase() === 'charset')?.[1];
  const text = (ct.type === 'text' ? decodeCharset(body, charset) : body.toString('utf8')).replace(/\0/g, ' ');
  const html = (ct.type === 'text' && ct.subtype === 'html') || (ct.type === 'application' && ct.subtype === 'xhtml+xml');
  return html && text ? html2text(text) : text;
}

/** The named character references mail-html2text knows that mail commonly uses (numeric ones all). */
const ENTITIES: Record<string, number> = {
  amp: 0x26, lt: 0x3c, gt: 0x3e, quot: 0x22, apos: 0x27, nbsp: 0xa0, copy: 0xa9, reg: 0xae, trade: 0x2122,
  euro: 0x20ac, pound: 0xa3, yen: 0xa5, cent: 0xa2, sect: 0xa7, deg: 0xb0, middot: 0xb7, hellip: 0x2026,
  ndash: 0x2013, mdash: 0x2014, lsquo: 0x2018, rsquo: 0x2019, ldquo: 0x201c, rdquo: 0x201d, bull: 0x2022,
  laquo: 0xab, raquo: 0xbb, times: 0xd7, divide: 0xf7, auml: 0xe4, ouml: 0xf6, uuml: 0xfc, Auml: 0xc4,
  Ouml: 0xd6, Uuml: 0xdc, szlig: 0xdf, eacute: 0xe9, egrave: 0xe8, aacute: 0xe1, agrave: 0xe0, ccedil: 0xe7,
};

const isWs = (c: string) => c === ' ' || c === '\t' || c === '\r' || c === '\n';

/**
 * Dovecot's mail-html2text (lib-mail), without its quoting mode: tags
 * dropped (a space where one ended), comments, <script>, <style> dropped,
 * CDATA kept, character references decoded (an unknown one dropped, a
 * broken one left as text), <blockquote> content prefixed with "\n>".
 */
export function html2text(s: string): string {
  let out = '';
  const space = () => { if (out && !out.endsWith(' ') && !out.endsWith('\n')) out += ' '; };
  let quote = 0, newline = false;
  const n = s.length;
  const starts = (i: number, w: string) => s.slice(i, i + w.length).toLowerCase() === w;
  let i = 0;
  while (i < n) {
    const c = s[i];
    if (c === '&') {
      let j = i + 1;
      while (j < n && s[j] !== ';' && !isWs(s[j]) && j - i - 1 < 10) j++;
      if (j >= n) break; // an unterminated reference at the end is held back, as Dovecot's parser waits for more
      if (s[j] !== ';') { i++; continue; }
      const name = s.slice(i + 1, j);
      const cp = name[0] === '#' ? (name[1] === 'x' ? parseInt(name.slice(2), 16) : /^#[0-9]+$/.test(name) ? parseInt(name.slice(1), 10) : NaN) : ENTITIES[name];
      if (cp !== undefined && Number.isInteger(cp) && cp >= 0 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff)) out += String.fromCodePoint(cp);
      i = j + 1;
      continue;
    }
    if (c !== '<') { out += c; i++; continue; }
    const t = i + 1;
    if (starts(t, '!--')) {
      const e = s.indexOf('--', t + 3);
      let k = e < 0 ? n : e + 2;
      // after "--" only whitespace may come before '>'
      for (;;) {
        while (k < n && isWs(s[k])) k++;
        if (k >= n || s[k] === '>') { i = k + 1; break; }
        const e2 = s.indexOf('--', k);
        k = e2 < 0 ? n : e2 + 2;
      }
      continue;
    }
    const after = (w: string) => starts(t, w) && (isWs(s[t + w.length] ?? '') || s[t + w.length] === '>');
    if (after('script') || after('style')) {
      const close = after('script') ? '</script>' : '</style>';
      const e = s.toLowerCase().indexOf(close, t + (after('script') ? 7 : 6));
      if (e < 0) { i = n; break; }
      space();
      i = e + close.length;
      continue;
    }
    if (starts(t, '![cdata[')) {
      const e = s.indexOf(']]>', t + 8);
      out += s.slice(t + 9, e < 0 ? n : e);
      i = e < 0 ? n : e + 3;
      continue;
    }
    if (after('blockquote')) quote++;
    else if (quote > 0 && starts(t, '/blockquote>')) { quote--; newline = true; }
    // inside the tag: quoted attribute values (with backslash escapes) may hold '>'
    let k = t;
    let q: string | null = null;
    for (; k < n; k++) {
      const d = s[k];
      if (q) { if (d === '\\') k++; else if (d === q) q = null; continue; }
      if (d === '"' || d === "'") q = d;
      else if (d === '>') break;
    }
    if (k >= n) { i = n; break; }
    if (quote > 0) out += '\n>';
    else if (newline) out += '\n';
    newline = false;
    space();
    i = k + 1;
  }
  return out;
}
