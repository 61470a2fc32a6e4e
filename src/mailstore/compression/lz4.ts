/**
 * Dovecot's lz4 files (lib-compression/iostream-lz4.h, istream-lz4.c,
 * ostream-lz4.c) — NOT the LZ4 frame format: a 16-byte magic
 * "Dovecot-LZ4\r\x2a\x9b\xc5", the 4-byte big-endian max uncompressed chunk
 * size (Dovecot writes 65536, and refuses more than 1 MiB), then chunks of
 * [4-byte big-endian compressed length][one LZ4 block]. Every block is
 * compressed on its own (LZ4_compress_default, no dictionary across chunks).
 * The block format is LZ4's (lz4_Block_format.md): sequences of a token
 * (literal length high nibble, match length − 4 low nibble, 15 = more length
 * bytes), literals, a 2-byte little-endian offset; the last sequence has
 * literals only, the last 5 bytes are literals and the last match starts at
 * least 12 bytes before the end.
 */
import { DOVECOT_LZ4_MAGIC } from './formats.js';
import { CorruptStream, type InputBuffer, type UnitDecoder } from './input.js';

/** Dovecot's OSTREAM_LZ4_CHUNK_SIZE: what it writes, and what we write. */
export const LZ4_CHUNK = 64 * 1024;
/** Dovecot's ISTREAM_LZ4_CHUNK_SIZE: larger chunks (or a larger header value) are refused. */
const MAX_CHUNK = 1024 * 1024;
const HEADER_LEN = DOVECOT_LZ4_MAGIC.length + 4;

/** One LZ4 block into at most `max` bytes; throws on any out-of-bounds reference. */
export function lz4DecodeBlock(src: Buffer, max: number): Buffer {
  const out = Buffer.allocUnsafe(max);
  let ip = 0;
  let op = 0;
  const bad = (why: string): never => { throw new CorruptStream(`corrupted lz4 chunk: ${why}`); };
  while (ip < src.length) {
    const token = src[ip++];
    let lit = token >> 4;
    if (lit === 15) {
      let b: number;
      do { if (ip >= src.length) bad('literal length runs past the chunk'); b = src[ip++]; lit += b; } while (b === 255);
    }
    if (ip + lit > src.length) bad('literals run past the chunk');
    if (op + lit > max) bad('output exceeds the chunk size');
    src.copy(out, op, ip, ip + lit);
    ip += lit; op += lit;
    if (ip === src.length) break; // the last sequence: literals only
    if (ip + 2 > src.length) bad('truncated match offset');
    const offset = src[ip] | (src[ip + 1] << 8);
    ip += 2;
    if (offset === 0 || offset > op) bad('match offset outside the output');
    let len = token & 15;
    if (len === 15) {
      let b: number;
      do { if (ip >= src.length) bad('match length runs past the chunk'); b = src[ip++]; len += b; } while (b === 255);
    }
    len += 4;
    if (op + len > max) bad('output exceeds the chunk size');
    // byte by byte: a match may overlap its own output (offset < length)
    let from = op - offset;
    if (offset >= len) { out.copy(out, op, from, from + len); op += len; }
    else for (let i = 0; i < len; i++) out[op++] = out[from++];
  }
  return out.subarray(0, op);
}

/** Dovecot's lz4 stream as units: the header, then one chunk per unit. */
export class Lz4Decoder implements UnitDecoder {
  private maxChunk = 0;

  next(input: InputBuffer): Buffer | null {
    const b = input.buf;
    let p = input.pos;
    if (!this.maxChunk) {
      input.need(p, HEADER_LEN, 'lz4 header');
      if (!b.subarray(p, p + DOVECOT_LZ4_MAGIC.length).equals(DOVECOT_LZ4_MAGIC)) throw new CorruptStream('wrong magic in header (not lz4 file?)');
      const max = b.readUInt32BE(p + DOVECOT_LZ4_MAGIC.length);
      if (max > MAX_CHUNK || max === 0) throw new CorruptStream(`lz4 max chunk size too large (${max} > ${MAX_CHUNK})`);
      this.maxChunk = max;
      input.pos = p + HEADER_LEN;
      return Buffer.alloc(0);
    }
    if (p === b.length) {
      if (input.ended) return null;
      input.need(p, 4, 'lz4 chunk');
    }
    input.need(p, 4, 'lz4 chunk size');
    const size = b.readUInt32BE(p);
    if (size === 0 || size > MAX_CHUNK) throw new CorruptStream(`invalid lz4 chunk size: ${size}`);
    p += 4;
    input.need(p, size, 'lz4 chunk');
    const out = lz4DecodeBlock(b.subarray(p, p + size), this.maxChunk);
    input.pos = p + size;
    return out;
  }
}

const HASH_BITS = 14;
const MIN_MATCH = 4;
/** lz4_Block_format.md: the last match must start at least 12 bytes before the end of the block. */
const MF_LIMIT = 12;
/** … and the last 5 bytes are always literals. */
const LAST_LITERALS = 5;

function writeLength(out: number[], n: number): void {
  while (n >= 255) { out.push(255); n -= 255; }
  out.push(n);
}

function pushLiterals(out: number[], src: Buffer, from: number, to: number): void {
  for (let i = from; i < to; i++) out.push(src[i]);
}

/** One LZ4 block from `src` (greedy, one hash table probe per position: LZ4's fast mode in spirit). */
export function lz4EncodeBlock(src: Buffer): Buffer {
  const out: number[] = [];
  const n = src.length;
  const table = new Int32Array(1 << HASH_BITS).fill(-1);
  const hash = (i: number) => (Math.imul(src.readUInt32LE(i), 2654435761) >>> (32 - HASH_BITS));
  let anchor = 0;
  let i = 0;
  const matchEnd = n - MF_LIMIT;
  while (i < matchEnd) {
    const h = hash(i);
    const ref = table[h];
    table[h] = i;
    if (ref < 0 || i - ref > 0xffff || src.readUInt32LE(ref) !== src.readUInt32LE(i)) { i++; continue; }
    let len = MIN_MATCH;
    while (i + len < n - LAST_LITERALS && src[ref + len] === src[i + len]) len++;
    const lit = i - anchor;
    const ml = len - MIN_MATCH;
    out.push((Math.min(lit, 15) << 4) | Math.min(ml, 15));
    if (lit >= 15) writeLength(out, lit - 15);
    pushLiterals(out, src, anchor, i);
    const off = i - ref;
    out.push(off & 0xff, off >> 8);
    if (ml >= 15) writeLength(out, ml - 15);
    i += len;
    anchor = i;
  }
  const lit = n - anchor;
  out.push(Math.min(lit, 15) << 4);
  if (lit >= 15) writeLength(out, lit - 15);
  pushLiterals(out, src, anchor, n);
  return Buffer.from(out);
}

/** Plaintext in, Dovecot's lz4 stream out (header, then one block per 64 KiB of input). */
export async function* lz4Compress(src: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  const header = Buffer.alloc(HEADER_LEN);
  DOVECOT_LZ4_MAGIC.copy(header);
  header.writeUInt32BE(LZ4_CHUNK, DOVECOT_LZ4_MAGIC.length);
  yield header;
  let pending: Buffer = Buffer.alloc(0);
  const chunk = (data: Buffer): Buffer => {
    const block = lz4EncodeBlock(data);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(block.length);
    return Buffer.concat([len, block]);
  };
  for await (const c of src) {
    pending = pending.length ? Buffer.concat([pending, c]) : c;
    while (pending.length >= LZ4_CHUNK) {
      yield chunk(pending.subarray(0, LZ4_CHUNK));
      pending = pending.subarray(LZ4_CHUNK);
    }
  }
  if (pending.length) yield chunk(pending);
}
