/**
 * A message part with its Content-Transfer-Encoding undone, as IMAP BINARY
 * (RFC 3516) sends it and as Dovecot 2.3 builds it (index-mail-binary): a
 * base64 or quoted-printable leaf becomes its decoded bytes; a multipart or
 * message/rfc822 keeps its structure with every such leaf decoded and that
 * leaf's header rewritten (its Content-Transfer-Encoding fields dropped and
 * `Content-Transfer-Encoding: binary` put before the blank line); 7bit,
 * 8bit and binary data pass through. An unknown encoding is an error
 * (IMAP answers NO [UNKNOWN-CTE]). Works over the CRLF form of the message.
 */
import { decodeTransfer } from './decode.js';
import type { MimePart } from './parts.js';

export class UnknownCteError extends Error {}

export interface BinaryResult {
  data: Buffer;
  /** Something was decoded, or the data holds NUL: IMAP sends it as a literal8 (`~{n}`). */
  binary: boolean;
}

type Cte = 'none' | 'qp' | 'base64';

function partCte(p: MimePart): Cte {
  // the last Content-Transfer-Encoding field counts, as in Dovecot's binary converter
  let cte: Cte = 'none';
  for (const [k, v] of p.headers) {
    if (k.toLowerCase() !== 'content-transfer-encoding') continue;
    const t = v.trim().toLowerCase();
    if (t === '7bit' || t === '8bit' || t === 'binary') cte = 'none';
    else if (t === 'quoted-printable') cte = 'qp';
    else if (t === 'base64') cte = 'base64';
    else throw new UnknownCteError('Unknown Content-Transfer-Encoding');
  }
  return cte;
}

/**
 * The header without its Content-Transfer-Encoding fields, `Content-Transfer-Encoding: binary`
 * before the blank line. Dovecot's header filter reads the part's header from its start up to a
 * blank line without stopping at the part's end (index-mail-binary.c add_binary_part), so a
 * header that the part's boundary cut before its blank line still gets that blank line (or
 * whatever lines follow, up to one); the caller goes on after the part's own header.
 */
function rewrittenHeader(buf: Buffer, p: MimePart): Buffer {
  const out: Buffer[] = [];
  let skip = false;
  let blank: Buffer | null = null;
  for (let pos = p.headerStart; pos < buf.length;) {
    const nl = buf.indexOf(0x0a, pos);
    const e = nl < 0 ? buf.length : nl + 1;
    const line = buf.subarray(pos, e);
    const text = line.toString('latin1');
    if (text === '\r\n' || text === '\n') { blank = line; break; }
    if (!/^[ \t]/.test(text)) skip = /^content-transfer-encoding[ \t]*:/i.test(text);
    if (!skip) out.push(line);
    pos = e;
  }
  out.push(Buffer.from('Content-Transfer-Encoding: binary\r\n'));
  if (blank) out.push(blank);
  return Buffer.concat(out);
}

/**
 * BINARY of a part: `withHeader` for the whole message (BINARY[]), without
 * for a part's body (BINARY[n], BINARY[TEXT]).
 */
export function binaryOf(buf: Buffer, p: MimePart, withHeader: boolean): BinaryResult {
  const chunks: Buffer[] = [];
  let converted = false;
  let nul = false;
  const walk = (q: MimePart, hdr: boolean): void => {
    const cte = partCte(q);
    // Dovecot rewrites the header of every encoded part, a multipart or message/rfc822 too; it decodes leaves only
    if (hdr) {
      const h = cte !== 'none' ? rewrittenHeader(buf, q) : buf.subarray(q.headerStart, q.headerEnd);
      if (cte !== 'none') converted = true;
      if (h.includes(0)) nul = true;
      chunks.push(h);
    }
    // (the part may end past its embedded message: a line break the embedded header gave it)
    if (q.message) { walk(q.message, true); chunks.push(buf.subarray(q.message.bodyEnd, q.bodyEnd)); return; }
    if (q.contentType.type === 'multipart') {
      let at = q.bodyStart;
      for (const c of q.children) {
        chunks.push(buf.subarray(at, c.headerStart));
        walk(c, true);
        at = c.bodyEnd;
      }
      chunks.push(buf.subarray(at, q.bodyEnd));
      return;
    }
    const body = buf.subarray(q.bodyStart, q.bodyEnd);
    if (!body.length) return;
    if (cte === 'none') { if (body.includes(0)) nul = true; chunks.push(body); return; }
    converted = true;
    chunks.push(decodeTransfer(body, cte === 'qp' ? 'quoted-printable' : 'base64'));
  };
  walk(p, withHeader);
  return { data: Buffer.concat(chunks), binary: converted || nul };
}

/** Base64 in 76-character lines joined by CRLF, no line break after the last (Dovecot's binary converter). */
function base64Lines(b: Buffer): Buffer {
  const s = b.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < s.length; i += 76) lines.push(s.slice(i, i + 76));
  return Buffer.from(lines.join('\r\n'), 'latin1');
}

/**
 * A message APPENDed as a literal8, made storable as Dovecot 2.3's
 * istream-binary-converter does: every single part declared
 * `Content-Transfer-Encoding: binary` gets that field replaced by
 * `Content-Transfer-Encoding: base64` and its body base64-encoded (76
 * characters a line); header lines of the message are then written with
 * CRLF. Returns null when no part needs it (the message is stored as sent).
 */
export function encodeBinaryParts(buf: Buffer, root: MimePart): Buffer | null {
  const isBinary = (p: MimePart) => p.contentType.type !== 'multipart' && !p.message &&
    p.headers.some(([k, v]) => k.toLowerCase() === 'content-transfer-encoding' && /^binary\r?\n$/i.test(v));
  let any = false;
  const scan = (p: MimePart): void => { if (isBinary(p)) any = true; p.children.forEach(scan); if (p.message) scan(p.message); };
  scan(root);
  if (!any) return null;
  const out: Buffer[] = [];
  const header = (p: MimePart, convert: boolean): void => {
    for (let pos = p.headerStart; pos < p.headerEnd;) {
      const nl = buf.indexOf(0x0a, pos);
      const e = nl < 0 || nl >= p.headerEnd ? p.headerEnd : nl + 1;
      const line = buf.subarray(pos, e);
      const bare = line.toString('latin1').replace(/\r?\n$/, '');
      const open = line[line.length - 1] !== 0x0a;
      if (convert && /^content-transfer-encoding[ \t]*:[ \t]*binary$/i.test(bare)) out.push(Buffer.from('Content-Transfer-Encoding: base64\r\n'));
      else out.push(Buffer.from(bare, 'latin1'), open ? Buffer.alloc(0) : Buffer.from('\r\n'));
      pos = e;
    }
  };
  const walk = (p: MimePart): void => {
    const convert = isBinary(p);
    header(p, convert);
    if (p.message) { walk(p.message); out.push(buf.subarray(p.message.bodyEnd, p.bodyEnd)); return; }
    if (p.contentType.type === 'multipart') {
      let at = p.bodyStart;
      for (const c of p.children) {
        out.push(buf.subarray(at, c.headerStart));
        walk(c);
        at = c.bodyEnd;
      }
      out.push(buf.subarray(at, p.bodyEnd));
      return;
    }
    const body = buf.subarray(p.bodyStart, p.bodyEnd);
    out.push(convert ? base64Lines(body) : body);
  };
  walk(root);
  return Buffer.concat(out);
}
