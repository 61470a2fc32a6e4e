/**
 * The message bytes of LMTP's DATA and BDAT, decoded as they arrive (no
 * line is ever gathered whole, so a client's endless line costs no memory),
 * with the results Dovecot 2.3's lib-smtp gives (checked by
 * test/lmtp/lmtp-diff.test.ts on the stored messages):
 * DATA (RFC 5321 4.5.2, lib/istream-dot.c): lines end at LF, a line that is
 * just "." (CRLF or bare LF) ends the message, a leading "." is removed;
 * BDAT (RFC 3030): the chunks' bytes as they are.
 * Both are stored with LF line ends: CRLF becomes LF, a bare CR stays, also
 * where CR and LF arrive in different reads or different BDAT chunks.
 */

const LF = Buffer.from('\n');
const CR = Buffer.from('\r');

/** DATA's dot-stream. */
export class DotDecoder {
  /** Inside a line (its start, where "." matters, is behind us). */
  private midLine = false;

  /**
   * Decodes what `input` holds, handing message bytes to `out`. Returns how
   * many input bytes were used (the caller keeps the rest: at most a
   * line-start "." or ".\r", or a CR whose LF may follow) and whether the
   * end line was seen (`used` is then just past it).
   */
  decode(input: Buffer, out: (b: Buffer) => void): { used: number; end: boolean } {
    let pos = 0;
    while (pos < input.length) {
      if (!this.midLine) {
        if (input[pos] === 0x2e) {
          const b1 = input[pos + 1];
          if (b1 === undefined) return { used: pos, end: false };
          if (b1 === 0x0a) return { used: pos + 2, end: true };
          if (b1 === 0x0d) {
            const b2 = input[pos + 2];
            if (b2 === undefined) return { used: pos, end: false };
            if (b2 === 0x0a) return { used: pos + 3, end: true };
          }
          pos++; // dot-unstuffing
        }
        this.midLine = true;
      }
      const lf = input.indexOf(0x0a, pos);
      if (lf < 0) {
        // part of a line: all of it but a CR that may be the start of CRLF
        const stop = input[input.length - 1] === 0x0d ? input.length - 1 : input.length;
        if (stop > pos) out(input.subarray(pos, stop));
        return { used: Math.max(stop, pos), end: false };
      }
      if (lf > pos && input[lf - 1] === 0x0d) {
        if (lf - 1 > pos) out(input.subarray(pos, lf - 1));
        out(LF);
      } else out(input.subarray(pos, lf + 1));
      pos = lf + 1;
      this.midLine = false;
    }
    return { used: pos, end: false };
  }
}

/** BDAT's chunks: CRLF → LF across chunk boundaries. */
export class CrlfDecoder {
  private heldCr = false;

  push(input: Buffer, out: (b: Buffer) => void): void {
    let pos = 0;
    if (this.heldCr) {
      this.heldCr = false;
      if (input[0] === 0x0a) { out(LF); pos = 1; } else out(CR);
    }
    for (;;) {
      const lf = input.indexOf(0x0a, pos);
      if (lf < 0) break;
      if (lf > pos && input[lf - 1] === 0x0d) {
        if (lf - 1 > pos) out(input.subarray(pos, lf - 1));
        out(LF);
      } else out(input.subarray(pos, lf + 1));
      pos = lf + 1;
    }
    let stop = input.length;
    if (stop > pos && input[stop - 1] === 0x0d) { this.heldCr = true; stop--; }
    if (stop > pos) out(input.subarray(pos, stop));
  }

  /** The last chunk is in: a CR held back is message data after all. */
  end(out: (b: Buffer) => void): void {
    if (this.heldCr) { this.heldCr = false; out(CR); }
  }
}
