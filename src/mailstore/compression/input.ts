/**
 * Input of the pure-TypeScript decompressors (bzip2, zstd, Dovecot's lz4):
 * the compressed bytes arrive in chunks; a decoder works in self-contained
 * units (a bzip2 block, a zstd block, an lz4 chunk) and, when a unit is not
 * all there yet, throws NeedMore and is retried from the unit's start once
 * more input came. Between units the driver yields to the event loop, so a
 * big message never holds it for more than one unit (≤ 128 KiB of zstd
 * output, one bzip2 block), and it counts the output against a limit so a
 * decompression bomb ends in a clear error instead of filling memory.
 */
import { setImmediate as nextTick } from 'node:timers/promises';

/** Thrown by a decoder when the current unit needs bytes that have not arrived. */
export class NeedMore extends Error {
  constructor() { super('need more input'); }
}

/** A corrupt or unsupported compressed stream. */
export class CorruptStream extends Error {}

/** The compressed bytes seen so far; `pos` is where the current unit starts. */
export class InputBuffer {
  buf = Buffer.alloc(0);
  pos = 0;
  ended = false;

  push(chunk: Buffer): void {
    // drop what earlier units consumed, keep the rest
    this.buf = this.pos ? Buffer.concat([this.buf.subarray(this.pos), chunk]) : Buffer.concat([this.buf, chunk]);
    this.pos = 0;
  }

  get available(): number { return this.buf.length - this.pos; }

  /** `n` bytes at `at`, or NeedMore / truncation when they are not there. */
  need(at: number, n: number, what: string): void {
    if (at + n <= this.buf.length) return;
    if (!this.ended) throw new NeedMore();
    throw new CorruptStream(`unexpected end of input (truncated ${what})`);
  }
}

/** A unit decoder: decodes the next unit starting at `input.pos` and advances it; null = stream complete. */
export interface UnitDecoder {
  /** Output of one unit (may be empty), or null when the stream ended properly. */
  next(input: InputBuffer): Buffer | null;
  /** Bytes the decoder wants buffered before it tries a unit whose size it cannot know in advance. */
  readonly minChunk?: number;
}

/** Runs a unit decoder over `src`, yielding output per unit; at most `limit` bytes of output. */
export async function* runUnits(dec: UnitDecoder, src: AsyncIterable<Buffer>, limit: number, name: string): AsyncIterable<Buffer> {
  const input = new InputBuffer();
  let total = 0;
  let done = false;
  const drain = function* (): Generator<Buffer> {
    for (;;) {
      if (done) return;
      if (!input.ended && dec.minChunk && input.available < dec.minChunk) return;
      const start = input.pos;
      let out: Buffer | null;
      try { out = dec.next(input); } catch (e) {
        if (e instanceof NeedMore) { input.pos = start; return; }
        throw e;
      }
      if (out === null) { done = true; return; }
      total += out.length;
      if (total > limit) throw new CorruptStream(`${name} output exceeds ${limit} bytes (decompression bomb?)`);
      if (out.length) yield out;
    }
  };
  for await (const chunk of src) {
    if (done) {
      if (chunk.length) throw new CorruptStream(`trailing data after the end of the ${name} stream`);
      continue;
    }
    input.push(chunk);
    for (const out of drain()) { yield out; await nextTick(); }
  }
  input.ended = true;
  for (const out of drain()) { yield out; await nextTick(); }
  if (!done) throw new CorruptStream(`unexpected end of input (truncated ${name} stream)`);
  if (input.available > 0) throw new CorruptStream(`trailing data after the end of the ${name} stream`);
}
