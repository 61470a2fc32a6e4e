/**
 * A message as POP3 sends it in RETR and TOP (RFC 1939 §3, byte for byte
 * what Dovecot's pop3 fetch_callback writes): bare LF becomes CRLF, a line
 * starting with "." gets a second one, the text always ends with CRLF (the
 * terminating "." line is the caller's). For TOP the header and the first
 * `bodyLines` body lines are sent; the header ends at the first empty line
 * (CR or LF right after a LF, or at the very start). Streaming, state kept
 * across chunks; the message is never held whole.
 */
const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

export class Pop3MessageEncoder {
  /** The last byte written (-1: nothing yet). */
  private prev = -1;
  private inBody = false;
  /** Body lines still to send, the empty separator line included; null = all (RETR). */
  private remaining: number | null;
  done = false;

  constructor(bodyLines: number | null) {
    this.remaining = bodyLines === null ? null : bodyLines + 1;
  }

  /** The encoded form of `chunk` (stops once TOP has its lines: `done`). */
  push(chunk: Buffer): Buffer {
    if (this.done) return Buffer.alloc(0);
    const out = Buffer.allocUnsafe(chunk.length * 2 + 2);
    let n = 0;
    let start = 0;
    // copy runs of ordinary bytes at once; stop at LF, CR and a dot after LF
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i];
      const prev = i > start ? chunk[i - 1] : this.prev;
      if (c !== LF && c !== CR && !(c === DOT && prev === LF)) continue;
      n += chunk.copy(out, n, start, i);
      if (i > start) this.prev = chunk[i - 1];
      start = i + 1;
      if (!this.inBody && (c === CR || c === LF) && (this.prev === -1 || this.prev === LF)) this.inBody = true;
      if (c === LF) {
        if (this.prev !== CR) out[n++] = CR;
        out[n++] = LF;
        this.prev = LF;
        if (this.inBody && this.remaining !== null && --this.remaining === 0) { this.done = true; break; }
      } else if (c === DOT) {
        out[n++] = DOT;
        out[n++] = DOT;
        this.prev = DOT;
      } else {
        out[n++] = CR;
        this.prev = CR;
      }
    }
    if (!this.done && start < chunk.length) {
      n += chunk.copy(out, n, start);
      this.prev = chunk[chunk.length - 1];
    }
    return out.subarray(0, n);
  }

  /** What ends the text: CRLF when the message did not end with a line end. */
  end(): Buffer {
    return this.prev === LF ? Buffer.alloc(0) : Buffer.from('\r\n');
  }
}
