/**
 * The one place IMAP responses become bytes (RFC 3501 §7, §9 `response`).
 * Handlers build typed values; this module decides atom vs quoted vs
 * literal the way Dovecot 2.3's imap-quote.c does: a string with CR, LF, NUL
 * or 8-bit bytes goes out as a `{n}` literal, otherwise quoted with `"` and
 * `\` escaped; an astring that is a plain atom (and not "NIL") goes bare.
 * Message bodies are Buffers or async chunk sources written straight to the
 * sink, never joined into one string.
 */

export type ChunkSource = AsyncIterable<Buffer> | Iterable<Buffer>;

export type ImapValue =
  | { type: 'atom'; value: string }
  | { type: 'number'; value: number | bigint }
  | { type: 'nil' }
  /** Quoted or literal, whichever the content needs. */
  | { type: 'string'; value: Buffer | string }
  /** Bare atom when possible (mailbox names, flags in some positions). */
  | { type: 'astring'; value: Buffer | string }
  /** NIL for null. */
  | { type: 'nstring'; value: Buffer | string | null }
  /** Always a literal; `~{n}` when literal8 (RFC 3516). `size` must match the chunks. */
  | { type: 'literal'; size: number; body: Buffer | ChunkSource; literal8?: boolean }
  /** `tight`: no space between the items (Dovecot's address lists and multipart bodies: `(a)(b)`). */
  | { type: 'list'; items: ImapValue[]; tight?: boolean }
  /** Pre-formed protocol text the caller vouches for (e.g. `BODY[HEADER]`). */
  | { type: 'raw'; value: string };

export type Status = 'OK' | 'NO' | 'BAD' | 'PREAUTH' | 'BYE';

export interface ResponseCode { name: string; args?: ImapValue[] | string }

export type Response =
  | { kind: 'tagged'; tag: string; status: 'OK' | 'NO' | 'BAD'; code?: ResponseCode; text: string }
  | { kind: 'status'; status: Status; code?: ResponseCode; text: string }
  /** `* <values...>`, e.g. `* 3 EXISTS`, `* 1 FETCH (...)`. */
  | { kind: 'data'; values: ImapValue[] }
  | { kind: 'continue'; text: string };

/** A piece of output: bytes, or a body streamed from its source. */
export type EncodedPart = Buffer | { size: number; source: ChunkSource };

export const atom = (value: string): ImapValue => ({ type: 'atom', value });
export const num = (value: number | bigint): ImapValue => ({ type: 'number', value });
export const str = (value: Buffer | string): ImapValue => ({ type: 'string', value });
export const astr = (value: Buffer | string): ImapValue => ({ type: 'astring', value });
export const nstr = (value: Buffer | string | null): ImapValue => ({ type: 'nstring', value });
export const list = (items: ImapValue[]): ImapValue => ({ type: 'list', items });
export const NIL: ImapValue = { type: 'nil' };

/** Does Dovecot send this as a literal rather than a quoted string? */
export function needsLiteral(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (c >= 0x80 || c === 0x0d || c === 0x0a || c === 0) return true;
  }
  return false;
}

/** RFC 3501 ATOM-CHAR run (astring may also hold `]`). */
function isAstringAtom(b: Buffer): boolean {
  if (b.length === 0) return false;
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (c <= 0x20 || c >= 0x7f || c === 0x28 || c === 0x29 || c === 0x7b || c === 0x25 || c === 0x2a || c === 0x22 || c === 0x5c) return false;
  }
  return !(b.length === 3 && b.toString('latin1').toUpperCase() === 'NIL');
}

const toBuf = (v: Buffer | string): Buffer => (typeof v === 'string' ? Buffer.from(v, 'utf8') : v);

class Builder {
  readonly parts: EncodedPart[] = [];
  private text: Buffer[] = [];

  bytes(b: Buffer): void { this.text.push(b); }
  ascii(s: string): void { this.text.push(Buffer.from(s, 'latin1')); }

  stream(size: number, source: ChunkSource): void {
    this.flush();
    this.parts.push({ size, source });
  }

  flush(): void {
    if (this.text.length > 0) this.parts.push(Buffer.concat(this.text));
    this.text = [];
  }

  value(v: ImapValue): void {
    switch (v.type) {
      case 'atom': case 'raw': this.ascii(v.value); return;
      case 'number': this.ascii(String(v.value)); return;
      case 'nil': this.ascii('NIL'); return;
      case 'nstring': if (v.value === null) { this.ascii('NIL'); return; } this.string(toBuf(v.value)); return;
      case 'astring': {
        const b = toBuf(v.value);
        if (isAstringAtom(b)) this.bytes(b);
        else this.string(b);
        return;
      }
      case 'string': this.string(toBuf(v.value)); return;
      case 'literal':
        this.ascii(`${v.literal8 ? '~' : ''}{${v.size}}\r\n`);
        if (Buffer.isBuffer(v.body)) {
          if (v.body.length !== v.size) throw new RangeError(`literal size ${v.size} != body ${v.body.length}`);
          this.flush();
          this.parts.push(v.body);
        } else this.stream(v.size, v.body);
        return;
      case 'list':
        this.ascii('(');
        v.items.forEach((item, i) => { if (i > 0 && !(v.tight && item.type === 'list' && v.items[i - 1].type === 'list')) this.ascii(' '); this.value(item); });
        this.ascii(')');
        return;
    }
  }

  string(b: Buffer): void {
    if (needsLiteral(b)) {
      this.ascii(`{${b.length}}\r\n`);
      this.flush();
      this.parts.push(b);
      return;
    }
    const out = Buffer.allocUnsafe(b.length * 2 + 2);
    let o = 0;
    out[o++] = 0x22;
    for (let i = 0; i < b.length; i++) {
      const c = b[i];
      if (c === 0x22 || c === 0x5c) out[o++] = 0x5c;
      out[o++] = c;
    }
    out[o++] = 0x22;
    this.bytes(out.subarray(0, o));
  }

  code(c: ResponseCode | undefined): void {
    if (!c) return;
    this.ascii(`[${c.name}`);
    if (typeof c.args === 'string') this.ascii(` ${c.args}`);
    else if (c.args) for (const a of c.args) { this.ascii(' '); this.value(a); }
    this.ascii('] ');
  }
}

/** Encode one response into parts (bytes and streamed bodies), ending in CRLF. */
export function encodeResponse(r: Response): EncodedPart[] {
  const b = new Builder();
  switch (r.kind) {
    case 'tagged': b.ascii(`${r.tag} ${r.status} `); b.code(r.code); b.bytes(Buffer.from(r.text, 'utf8')); break;
    case 'status': b.ascii(`* ${r.status} `); b.code(r.code); b.bytes(Buffer.from(r.text, 'utf8')); break;
    case 'continue': b.ascii(`+ ${r.text}`); break;
    case 'data':
      b.ascii('*');
      for (const v of r.values) { b.ascii(' '); b.value(v); }
      break;
  }
  b.ascii('\r\n');
  b.flush();
  return b.parts;
}

/** Where encoded bytes go (a socket wrapper that honours backpressure). */
export type Sink = (chunk: Buffer) => void | Promise<void>;

/** Write a response, streaming literal bodies chunk by chunk and checking their size. */
export async function writeResponse(sink: Sink, r: Response): Promise<void> {
  for (const part of encodeResponse(r)) {
    if (Buffer.isBuffer(part)) { await sink(part); continue; }
    let sent = 0;
    for await (const chunk of part.source) {
      sent += chunk.length;
      if (sent > part.size) throw new RangeError(`literal body longer than announced ${part.size}`);
      await sink(chunk);
    }
    if (sent !== part.size) throw new RangeError(`literal body ${sent} bytes, announced ${part.size}`);
  }
}

/** Encode a response without streamed parts to one Buffer (tests, small replies). */
export function responseBytes(r: Response): Buffer {
  const parts = encodeResponse(r);
  if (parts.some((p) => !Buffer.isBuffer(p))) throw new TypeError('response has streamed parts; use writeResponse');
  return Buffer.concat(parts as Buffer[]);
}
