/**
 * Byte classes and the tokenizer for one text segment of an IMAP command
 * (RFC 3501 §9 / RFC 9051 §9 grammar, with Dovecot 2.3's leniencies and its
 * exact error texts from imap-parser.c, checked against the real server):
 * atoms may contain `]`, `%`, `*`, `\` and `[`...`]` sections with spaces;
 * no separator is required after `)` or a closing `"`; 8-bit is allowed in
 * quoted strings but not atoms. A segment is the text from the line start
 * (or the end of a literal) up to LF; literals are handled by the reader.
 */

/** An argument as the wire carries it; the command layer interprets atoms. */
export type ImapArg =
  | { type: 'atom'; value: string }
  /** The atom NIL in any case, as sent: NIL where a command takes nstring, else the atom/astring "NIL" (RFC 3501 §4.5). */
  | { type: 'nil'; value: string }
  | { type: 'string'; value: Buffer }
  | { type: 'literal'; value: Buffer | null; size: number; literal8: boolean; streamed: boolean }
  | { type: 'list'; items: ImapArg[] };

export class WireSyntaxError extends Error {
  /**
   * `offset` is the byte position within the whole command (tag = 0).
   * `continueFirst`: Dovecot sends `+ OK` before this error (junk after `{n}`).
   */
  constructor(readonly reason: string, readonly offset: number, readonly continueFirst = false) { super(reason); }
}

const SP = 0x20, DQUOTE = 0x22, BSLASH = 0x5c, LPAREN = 0x28, RPAREN = 0x29, LBRACE = 0x7b, RBRACE = 0x7d;
const LBRACKET = 0x5b, RBRACKET = 0x5d, TILDE = 0x7e, CR = 0x0d, PLUS = 0x2b;

/** Characters that end an atom (argument position); anything else invalid is an error. */
function atomChar(c: number): boolean {
  return c > 0x20 && c < 0x7f && c !== LPAREN && c !== RPAREN && c !== LBRACE && c !== DQUOTE;
}

/** Dovecot's tag: no CTL/8-bit/SP and none of `(){%*"\]+`; DEL passes (as in 2.3). */
export function tagChar(c: number): boolean {
  return c > 0x20 && c < 0x80 && !'(){%*"\\]+'.includes(String.fromCharCode(c));
}

/** RFC 3501 ATOM-CHAR: command names are plain atoms. */
export function strictAtomChar(c: number): boolean {
  return c > 0x20 && c < 0x7f && !'(){%*"\\]'.includes(String.fromCharCode(c));
}

/** A literal header found at the end of a segment. */
export interface LiteralHeader { size: number; sync: boolean; literal8: boolean }

/**
 * Tokenizer state that survives across segments (an open list may contain
 * literals). `stack[0]` is the top-level argument list.
 */
export class ArgTokenizer {
  readonly stack: ImapArg[][] = [[]];
  constructor(private readonly maxDepth: number) {}

  get depth(): number { return this.stack.length - 1; }
  get top(): ImapArg[] { return this.stack[0]; }

  push(arg: ImapArg): void { this.stack[this.stack.length - 1].push(arg); }

  /**
   * Tokenize `seg[start..end)` (end excludes CRLF / LF). `base` is the
   * command offset of seg[0]. Returns a literal header if the segment ends
   * with one; throws WireSyntaxError with Dovecot's text otherwise.
   */
  feed(seg: Buffer, start: number, end: number, base: number): LiteralHeader | null {
    let i = start;
    while (i < end) {
      const c = seg[i];
      if (c === SP) { i++; continue; }
      if (c === LPAREN) {
        if (this.depth >= this.maxDepth) throw new WireSyntaxError('List too deep', base + i);
        const items: ImapArg[] = [];
        this.push({ type: 'list', items });
        this.stack.push(items);
        i++;
        continue;
      }
      if (c === RPAREN) {
        if (this.depth === 0) throw new WireSyntaxError("Unexpected ')'", base + i);
        this.stack.pop();
        i++;
        continue;
      }
      if (c === DQUOTE) { i = this.quoted(seg, i + 1, end, base); continue; }
      if (c === LBRACE || (c === TILDE && seg[i + 1] === LBRACE)) return this.literalHeader(seg, i, end, base);
      if (c === CR) throw new WireSyntaxError('CR sent without LF', base + i);
      i = this.atom(seg, i, end, base);
    }
    if (this.depth > 0) throw new WireSyntaxError("Missing ')'", base + end);
    return null;
  }

  private quoted(seg: Buffer, i: number, end: number, base: number): number {
    let runStart = i;
    const parts: Buffer[] = [];
    for (; i < end; i++) {
      const c = seg[i];
      if (c === DQUOTE) {
        parts.push(seg.subarray(runStart, i));
        this.push({ type: 'string', value: Buffer.concat(parts) });
        return i + 1;
      }
      if (c === 0) throw new WireSyntaxError('NULs not allowed in strings', base + i);
      if (c === CR) break; // Dovecot: a string never spans CR/LF
      if (c === BSLASH && i + 1 < end) {
        parts.push(seg.subarray(runStart, i));
        parts.push(seg.subarray(i + 1, i + 2));
        i++;
        runStart = i + 1;
      }
    }
    throw new WireSyntaxError(`Missing '"'`, base + i);
  }

  private atom(seg: Buffer, i: number, end: number, base: number): number {
    const from = i;
    let bracket = 0;
    for (; i < end; i++) {
      const c = seg[i];
      if (bracket > 0) {
        // inside BODY[...]: spaces and parenthesised header lists are part of the atom
        if (c === RBRACKET) bracket--;
        else if (c === LBRACKET) bracket++;
        else if (c >= 0x80) throw new WireSyntaxError('8bit data in atom', base + i);
        else if (c < 0x20 || c === 0x7f || c === LBRACE || c === DQUOTE) throw new WireSyntaxError('Invalid characters in atom', base + i);
        continue;
      }
      if (c === SP || c === RPAREN) break;
      if (c === LBRACKET) { bracket++; continue; }
      if (c === CR) throw new WireSyntaxError('CR sent without LF', base + i);
      if (c >= 0x80) throw new WireSyntaxError('8bit data in atom', base + i);
      if (!atomChar(c)) throw new WireSyntaxError('Invalid characters in atom', base + i);
    }
    if (bracket > 0) {
      // no closing `]` on this line: Dovecot reads `a[b` as a plain atom
      for (i = from; i < end && seg[i] !== SP && seg[i] !== RPAREN; i++) {
        if (seg[i] >= 0x80) throw new WireSyntaxError('8bit data in atom', base + i);
        if (!atomChar(seg[i])) throw new WireSyntaxError('Invalid characters in atom', base + i);
      }
    }
    const text = seg.toString('latin1', from, i);
    this.push(text.length === 3 && text.toUpperCase() === 'NIL' ? { type: 'nil', value: text } : { type: 'atom', value: text });
    return i;
  }

  private literalHeader(seg: Buffer, i: number, end: number, base: number): LiteralHeader {
    const literal8 = seg[i] === TILDE;
    if (literal8) i++;
    i++; // '{'
    let size = 0; // Dovecot reads "{}" as a zero-length literal
    while (i < end && seg[i] >= 0x30 && seg[i] <= 0x39) {
      size = size * 10 + (seg[i] - 0x30);
      if (size > Number.MAX_SAFE_INTEGER / 10) throw new WireSyntaxError('Invalid literal size', base + i);
      i++;
    }
    let sync = true;
    if (seg[i] === PLUS && i < end) { sync = false; i++; }
    if (i >= end || seg[i] !== RBRACE) throw new WireSyntaxError('Invalid literal size', base + i);
    i++;
    if (i !== end) throw new WireSyntaxError('Missing LF after literal size', base + i, sync);
    return { size, sync, literal8 };
  }
}

