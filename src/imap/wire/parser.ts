/**
 * Incremental IMAP command reader: bytes in (split anywhere), events out.
 * Follows RFC 3501 §9 / RFC 9051 §9, RFC 7888 (LITERAL+) and RFC 3516
 * (literal8), and Dovecot 2.3's behaviour and BAD texts (imap-client.c /
 * imap-parser.c), which the tests check against the real server:
 *  - a bad tag answers `* BAD Error in IMAP tag: Invalid tag`, a bad name
 *    `tag BAD Error in IMAP command: Invalid command name`, and argument
 *    errors `tag BAD Error in IMAP command NAME: <reason>`; the rest of the
 *    line is skipped and reading continues with the next line;
 *  - `UID` joins the next word into the command name ("UID FETCH");
 *  - a buffered literal counts against imap_max_line_length; a too large one
 *    is `* BYE Literal size too large` and the connection ends;
 *  - a bare LF ends a line like CRLF.
 * Literals the caller wants streamed (APPEND) are never buffered: the reader
 * emits literal-start / literal-data chunks / literal-end, so memory stays
 * bounded by the line limit whatever the literal size.
 */
import { ArgTokenizer, WireSyntaxError, strictAtomChar, tagChar, type ImapArg, type LiteralHeader } from './lexer.js';

export type { ImapArg } from './lexer.js';

export interface LiteralInfo extends LiteralHeader {
  tag: string;
  /** Upper-cased command name ("APPEND", "UID FETCH"). */
  name: string;
  /** Arguments before this literal (top level). */
  args: readonly ImapArg[];
  /** Command byte offset of the literal's first data byte. */
  offset: number;
  /** How deep in parenthesised lists the literal is (0: a top-level argument). */
  depth: number;
  /** Its index in the innermost list (`args` index at depth 0): the items before it are complete, later ones may follow. */
  listIndex: number;
}

export type ReaderEvent =
  /** A complete command. */
  | { type: 'command'; tag: string; name: string; args: ImapArg[] }
  /** Send `+ OK` (a synchronising literal the reader buffers). */
  | { type: 'continue' }
  /**
   * Answer BAD. `where` says which Dovecot prefix applies (see badText);
   * `tag` is null for tag errors (answer with `*`).
   */
  | { type: 'error'; where: 'tag' | 'name' | 'args'; tag: string | null; name: string | null; reason: string; offset: number }
  /** Send `* BYE <text>` and close: the stream cannot be resynchronised. */
  | { type: 'bye'; text: string }
  /** A streamed literal begins; if `sync`, the caller answers `+ OK` (or calls rejectLiteral()). */
  | { type: 'literal-start'; info: LiteralInfo }
  | { type: 'literal-data'; chunk: Buffer }
  | { type: 'literal-end' }
  /** The peer ended the stream inside a streamed literal: drop what was written. */
  | { type: 'literal-aborted' }
  /** streamLiteral said 'reject': the command is dropped (data skipped if LITERAL+). */
  | { type: 'literal-rejected'; info: LiteralInfo };

export interface ReaderOptions {
  /** imap_max_line_length (Dovecot default 64k). */
  maxLineLength?: number;
  /** Deepest parenthesis nesting accepted. */
  maxListDepth?: number;
  /**
   * Stream this literal instead of buffering it (e.g. APPEND's message), or
   * 'reject' it at once (APPEND over APPENDLIMIT: the caller answers NO
   * [TOOBIG] on the literal-rejected event).
   */
  streamLiteral?: (info: LiteralInfo) => boolean | 'reject';
  /**
   * A larger bound than imap_max_line_length for one buffered literal of this
   * command (SETMETADATA values, which Dovecot streams into the dict).
   */
  bufferedLiteralLimit?: (name: string) => number;
  /** May this command use `~{n}` (RFC 3516)? Dovecot: APPEND only. */
  literal8Allowed?: (name: string) => boolean;
  /**
   * Commands whose arguments Dovecot never parses (NOOP answers OK to any
   * junk after it): the rest of the line is dropped unread, args = [].
   */
  argsIgnored?: (name: string) => boolean;
}

/** The exact BAD text Dovecot 2.3 uses, without the timing suffix. */
export function badText(ev: { where: 'tag' | 'name' | 'args'; name: string | null; reason: string }): string {
  if (ev.where === 'tag') return `Error in IMAP tag: ${ev.reason}`;
  if (ev.where === 'name' || ev.name === null) return `Error in IMAP command: ${ev.reason}`;
  return `Error in IMAP command ${ev.name}: ${ev.reason}`;
}

type State = 'line' | 'literal' | 'skip-line' | 'skip-bytes' | 'closed';

const LF = 0x0a, CR = 0x0d, SP = 0x20;

export class CommandReader {
  private readonly maxLine: number;
  private readonly maxDepth: number;
  private readonly streamLiteral: (info: LiteralInfo) => boolean | 'reject';
  private readonly literal8Allowed: (name: string) => boolean;
  private readonly argsIgnored: (name: string) => boolean;

  private state: State = 'line';
  /** Text of the current segment not yet ended by LF. */
  private pending: Buffer[] = [];
  private pendingLen = 0;
  /** Bytes of this command consumed before the current segment. */
  private cmdOffset = 0;
  /** Of those, streamed literal bytes: they do not count against the line limit. */
  private streamedBytes = 0;
  private tag: string | null = null;
  private name: string | null = null;
  private tok: ArgTokenizer | null = null;
  /** Remaining bytes of a literal (buffered or streamed) or of skipped data. */
  private remaining = 0;
  private literalParts: Buffer[] = [];
  private literalHdr: LiteralHeader | null = null;
  private streaming = false;
  private awaitingDecision = false;
  private readonly bufferedLiteralLimit: (name: string) => number;
  private uncounted = false;

  constructor(opts: ReaderOptions = {}) {
    this.maxLine = opts.maxLineLength ?? 65536;
    this.maxDepth = opts.maxListDepth ?? 100;
    this.streamLiteral = opts.streamLiteral ?? (() => false);
    this.literal8Allowed = opts.literal8Allowed ?? ((n) => n === 'APPEND');
    this.argsIgnored = opts.argsIgnored ?? (() => false);
    this.bufferedLiteralLimit = opts.bufferedLiteralLimit ?? (() => 0);
  }

  /** Is the reader in the middle of a command (for idle/logout decisions)? */
  get busy(): boolean { return (this.state !== 'line' && this.state !== 'closed') || this.pendingLen > 0 || this.tag !== null; }

  /**
   * Refuse the streamed literal just announced (e.g. APPEND over APPENDLIMIT,
   * answered NO [TOOBIG] by the caller). A synchronising literal was never
   * sent, so the reader starts over; a LITERAL+ one is skipped with the rest
   * of its line. Only valid while literal-start is the last event returned;
   * otherwise decide in streamLiteral.
   */
  /** literal-start was the last event and no byte came since: rejectLiteral() may still be called. */
  get decisionPending(): boolean { return this.awaitingDecision && this.literalHdr !== null; }

  rejectLiteral(): void {
    if (!this.awaitingDecision || !this.literalHdr) throw new Error('rejectLiteral() outside literal-start');
    this.awaitingDecision = false;
    const hdr = this.literalHdr;
    this.literalHdr = null;
    this.streaming = false;
    if (hdr.sync) { this.reset(); this.state = 'line'; }
    else { this.resetCommand(); this.remaining = hdr.size; this.state = 'skip-bytes'; }
  }

  /** Feed bytes; returns the events they complete, in order. */
  push(chunk: Buffer): ReaderEvent[] {
    const out: ReaderEvent[] = [];
    this.awaitingDecision = false;
    let i = 0;
    while (i < chunk.length && this.state !== 'closed') {
      switch (this.state) {
        case 'line': i = this.readLine(chunk, i, out); break;
        case 'literal': i = this.readLiteral(chunk, i, out); break;
        case 'skip-bytes': {
          const n = Math.min(this.remaining, chunk.length - i);
          this.remaining -= n;
          i += n;
          if (this.remaining === 0) this.state = 'skip-line';
          break;
        }
        case 'skip-line': {
          const lf = chunk.indexOf(LF, i);
          if (lf < 0) { i = chunk.length; break; }
          i = lf + 1;
          this.reset();
          this.state = 'line';
          break;
        }
      }
    }
    return out;
  }

  /** The peer closed the stream: whatever was half-read is dropped. */
  end(): ReaderEvent[] {
    const out: ReaderEvent[] = [];
    if (this.state === 'literal' && this.streaming) out.push({ type: 'literal-aborted' });
    this.reset();
    this.state = 'closed';
    return out;
  }

  /** Bytes of this command that count against imap_max_line_length. */
  private get lineBytes(): number { return this.cmdOffset - this.streamedBytes; }

  private reset(): void {
    this.pending = [];
    this.pendingLen = 0;
    this.resetCommand();
  }

  private resetCommand(): void {
    this.cmdOffset = 0;
    this.streamedBytes = 0;
    this.tag = null;
    this.name = null;
    this.tok = null;
    this.uncounted = false;
    this.literalParts = [];
    this.literalHdr = null;
    this.streaming = false;
  }

  private readLine(chunk: Buffer, i: number, out: ReaderEvent[]): number {
    const lf = chunk.indexOf(LF, i);
    if (lf < 0) {
      this.pending.push(chunk.subarray(i));
      this.pendingLen += chunk.length - i;
      this.checkOverflow(out);
      return chunk.length;
    }
    const part = chunk.subarray(i, lf + 1);
    const seg = this.pendingLen === 0 ? part : Buffer.concat([...this.pending, part], this.pendingLen + part.length);
    this.pending = [];
    this.pendingLen = 0;
    if (this.lineBytes + seg.length - 1 > this.maxLine && this.tooLong(seg, seg.length - 1, out)) return lf + 1;
    this.segment(seg, out);
    return lf + 1;
  }

  /** Without an LF yet: is the line already beyond repair? */
  private checkOverflow(out: ReaderEvent[]): void {
    if (this.lineBytes + this.pendingLen <= this.maxLine) return;
    const seg = Buffer.concat(this.pending, this.pendingLen);
    this.pending = [seg];
    this.tooLong(seg, seg.length, out); // on error it resets and skips to the LF
  }

  /**
   * Dovecot's two overflow texts: a single token longer than its input
   * buffer is "Too long argument"; a line of many tokens past the limit is
   * "IMAP command line too large". Returns true if an error was emitted
   * (the caller then skips the rest of the line).
   */
  private tooLong(seg: Buffer, len: number, out: ReaderEvent[]): boolean {
    let tokStart = len;
    while (tokStart > 0 && seg[tokStart - 1] !== SP && seg[tokStart - 1] !== 0x28 && seg[tokStart - 1] !== 0x29) tokStart--;
    const consumed = this.lineBytes + tokStart;
    const tokenLen = len - tokStart;
    if (consumed <= this.maxLine && tokenLen <= this.maxLine) return false; // Dovecot would still be reading
    const reason = consumed > this.maxLine ? 'IMAP command line too large' : 'Too long argument';
    if (this.tag === null && this.cmdOffset === 0) {
      const sp = seg.indexOf(SP);
      if (sp < 0 || sp >= len || sp > this.maxLine) { out.push({ type: 'error', where: 'tag', tag: null, name: null, reason: 'Too long argument', offset: 0 }); return this.skipAfterError(seg, len); }
      const tag = seg.toString('latin1', 0, sp);
      if (!this.validTag(seg, 0, sp)) { out.push({ type: 'error', where: 'tag', tag: null, name: null, reason: 'Invalid tag', offset: 0 }); return this.skipAfterError(seg, len); }
      const rest = seg.indexOf(SP, sp + 1);
      if (rest < 0 || rest >= len || rest - sp - 1 > this.maxLine) { out.push({ type: 'error', where: 'name', tag, name: null, reason: 'Too long argument', offset: sp + 1 }); return this.skipAfterError(seg, len); }
      out.push({ type: 'error', where: 'args', tag, name: seg.toString('latin1', sp + 1, rest).toUpperCase(), reason, offset: this.maxLine });
      return this.skipAfterError(seg, len);
    }
    out.push({ type: 'error', where: 'args', tag: this.tag, name: this.name, reason, offset: this.maxLine });
    return this.skipAfterError(seg, len);
  }

  private skipAfterError(seg: Buffer, len: number): true {
    const ended = len < seg.length; // the LF was in this segment
    this.reset();
    this.state = ended ? 'line' : 'skip-line';
    return true;
  }

  private validTag(seg: Buffer, from: number, to: number): boolean {
    if (to <= from) return false;
    for (let k = from; k < to; k++) if (!tagChar(seg[k])) return false;
    return true;
  }

  /** A complete segment (ends with LF): tag/name if new, then arguments. */
  private segment(seg: Buffer, out: ReaderEvent[]): void {
    let end = seg.length - 1;
    if (end > 0 && seg[end - 1] === CR) end--;
    let i = 0;
    const base = this.cmdOffset;
    if (this.tok === null) {
      // tag
      const sp = seg.indexOf(SP);
      const tagEnd = sp < 0 || sp > end ? end : sp;
      if (!this.validTag(seg, 0, tagEnd)) {
        out.push({ type: 'error', where: 'tag', tag: null, name: null, reason: 'Invalid tag', offset: 0 });
        this.reset();
        return;
      }
      this.tag = seg.toString('latin1', 0, tagEnd);
      i = tagEnd + 1;
      let name = this.word(seg, i, end);
      if (name === null) return this.nameError(out, i);
      i += name.length;
      if (name.toUpperCase() === 'UID') {
        if (seg[i] !== SP) return this.nameError(out, i);
        const sub = this.word(seg, i + 1, end);
        if (sub === null) return this.nameError(out, i + 1);
        name = `${name} ${sub}`;
        i += 1 + sub.length;
      }
      this.name = name.toUpperCase();
      if (i < end && seg[i] !== SP) return this.nameError(out, i);
      if (this.argsIgnored(this.name)) {
        out.push({ type: 'command', tag: this.tag, name: this.name, args: [] });
        this.reset();
        return;
      }
      this.tok = new ArgTokenizer(this.maxDepth);
    }
    let hdr: LiteralHeader | null;
    try {
      hdr = this.tok.feed(seg, i, end, base);
    } catch (e) {
      if (!(e instanceof WireSyntaxError)) throw e;
      if (e.continueFirst) out.push({ type: 'continue' });
      out.push({ type: 'error', where: 'args', tag: this.tag, name: this.name, reason: e.reason, offset: e.offset });
      this.reset();
      return;
    }
    this.cmdOffset += seg.length;
    if (hdr === null) {
      out.push({ type: 'command', tag: this.tag!, name: this.name!, args: this.tok.top });
      this.reset();
      return;
    }
    this.startLiteral(hdr, seg.length - end, out);
  }

  /** A command name: an RFC 3501 atom of at least one character. */
  private word(seg: Buffer, i: number, end: number): string | null {
    let k = i;
    while (k < end && seg[k] !== SP) {
      if (!strictAtomChar(seg[k])) return null;
      k++;
    }
    return k > i ? seg.toString('latin1', i, k) : null;
  }

  private nameError(out: ReaderEvent[], offset: number): void {
    out.push({ type: 'error', where: 'name', tag: this.tag, name: null, reason: 'Invalid command name', offset });
    this.reset();
  }

  private startLiteral(hdr: LiteralHeader, termLen: number, out: ReaderEvent[]): void {
    const tok = this.tok!;
    const offset = this.cmdOffset;
    if (hdr.literal8 && !this.literal8Allowed(this.name!)) {
      out.push({ type: 'error', where: 'args', tag: this.tag, name: this.name, reason: 'literal8 not allowed here', offset: offset - 1 });
      this.reset();
      return;
    }
    // a copy: the caller handles literal-start after the reader has read on (MULTIAPPEND's next arguments)
    const info: LiteralInfo = {
      ...hdr, tag: this.tag!, name: this.name!, args: tok.top.slice(), offset,
      depth: tok.depth, listIndex: tok.stack[tok.stack.length - 1].length,
    };
    this.literalHdr = hdr;
    this.remaining = hdr.size;
    this.literalParts = [];
    const decision = this.streamLiteral(info);
    if (decision === 'reject') {
      out.push({ type: 'literal-rejected', info });
      this.awaitingDecision = true;
      this.rejectLiteral();
      return;
    }
    if (decision) {
      this.streaming = true;
      this.state = 'literal';
      this.awaitingDecision = true;
      out.push({ type: 'literal-start', info });
      if (hdr.size === 0) { this.awaitingDecision = false; this.finishLiteral(out); }
      return;
    }
    // Dovecot counts the line up to the `}` (not its CRLF) plus the literal
    if (this.lineBytes - termLen + hdr.size > this.maxLine) {
      if (hdr.size > this.bufferedLiteralLimit(this.name ?? '')) {
        out.push({ type: 'bye', text: 'Literal size too large' });
        this.reset();
        this.state = 'closed';
        return;
      }
      this.uncounted = true; // allowed beyond the line limit: it does not count against the rest of the line
    }
    this.streaming = false;
    this.state = 'literal';
    if (hdr.sync) out.push({ type: 'continue' });
    if (hdr.size === 0) this.finishLiteral(out);
  }

  private readLiteral(chunk: Buffer, i: number, out: ReaderEvent[]): number {
    const n = Math.min(this.remaining, chunk.length - i);
    const part = chunk.subarray(i, i + n);
    this.remaining -= n;
    if (this.streaming) out.push({ type: 'literal-data', chunk: part });
    else this.literalParts.push(part);
    if (this.remaining === 0) this.finishLiteral(out);
    return i + n;
  }

  private finishLiteral(out: ReaderEvent[]): void {
    const hdr = this.literalHdr!;
    if (this.streaming) {
      out.push({ type: 'literal-end' });
      this.tok!.push({ type: 'literal', value: null, size: hdr.size, literal8: hdr.literal8, streamed: true });
    } else {
      // copy: the chunks belong to the caller's socket buffers
      this.tok!.push({ type: 'literal', value: Buffer.concat(this.literalParts, hdr.size), size: hdr.size, literal8: hdr.literal8, streamed: false });
    }
    this.cmdOffset += hdr.size;
    if (this.streaming || this.uncounted) this.streamedBytes += hdr.size;
    this.uncounted = false;
    this.literalParts = [];
    this.literalHdr = null;
    this.streaming = false;
    this.state = 'line';
  }
}
