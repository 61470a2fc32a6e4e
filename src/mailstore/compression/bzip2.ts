/**
 * bzip2 decompression (the .bz2 format of bzip2 1.0, as documented in
 * Joe Tsai's "BZip2 format specification" and implemented by libbzip2,
 * which Dovecot's istream-bzlib.c uses): "BZh" + block size digit, then
 * blocks (48-bit magic 0x314159265359, block CRC, origPtr, symbol map,
 * 2–6 Huffman tables with selectors, MTF + RUNA/RUNB coded BWT output) and
 * an end-of-stream marker (0x177245385090 + combined CRC). Each block is
 * inverted (BWT), run-length decoded (4 equal bytes + a count) and checked
 * against its CRC. Concatenated streams are read as one, as bzip2 does.
 * One block per unit: at most 900 000 BWT bytes; the run-length stage is
 * bounded by the caller's output limit.
 */
import { CorruptStream, NeedMore, type InputBuffer, type UnitDecoder } from './input.js';

const BLOCK_MAGIC_HI = 0x314159;
const BLOCK_MAGIC_LO = 0x265359;
const EOS_MAGIC_HI = 0x177245;
const EOS_MAGIC_LO = 0x385090;
const MAX_GROUPS = 6;
const MAX_CODE_LEN = 20;
const GROUP_SIZE = 50;
/** libbzip2 ignores selectors beyond this many (BZ_MAX_SELECTORS). */
const MAX_SELECTORS = 18002;

const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    t[i] = c;
  }
  return t;
})();

/** MSB-first bit reader over the buffered input; NeedMore/truncation at its end. */
class BitReader {
  private byte: number;
  private acc = 0;
  private accBits = 0;
  constructor(readonly input: InputBuffer, startByte: number, startBit: number) {
    this.byte = startByte;
    if (startBit) this.bits(startBit);
  }
  /** Bit position in the input (for where the next unit starts). */
  get bit(): number { return this.byte * 8 - this.accBits; }
  bits(n: number): number {
    if (n > 24) { const hi = this.bits(n - 16); return hi * 0x10000 + this.bits(16); }
    while (this.accBits < n) {
      if (this.byte >= this.input.buf.length) {
        if (!this.input.ended) throw new NeedMore();
        throw new CorruptStream('unexpected end of input (truncated bz2 stream)');
      }
      this.acc = ((this.acc << 8) | this.input.buf[this.byte++]) & 0xffffffff;
      this.accBits += 8;
    }
    this.accBits -= n;
    return (this.acc >>> this.accBits) & ((1 << n) - 1);
  }
  bit1(): number { return this.bits(1); }
}

interface Huffman { limit: Int32Array; base: Int32Array; perm: Int32Array; minLen: number; maxLen: number }

function buildHuffman(lengths: Uint8Array, n: number): Huffman {
  let minLen = 32, maxLen = 0;
  for (let i = 0; i < n; i++) { minLen = Math.min(minLen, lengths[i]); maxLen = Math.max(maxLen, lengths[i]); }
  const perm = new Int32Array(n);
  let pp = 0;
  for (let len = minLen; len <= maxLen; len++) for (let s = 0; s < n; s++) if (lengths[s] === len) perm[pp++] = s;
  const count = new Int32Array(MAX_CODE_LEN + 2);
  for (let i = 0; i < n; i++) count[lengths[i]]++;
  const limit = new Int32Array(MAX_CODE_LEN + 2).fill(-1);
  const base = new Int32Array(MAX_CODE_LEN + 2);
  let code = 0, idx = 0;
  for (let len = minLen; len <= maxLen; len++) {
    base[len] = idx - code; // symbol index = code + base[len]
    code += count[len];
    idx += count[len];
    limit[len] = code - 1;
    code <<= 1;
  }
  return { limit, base, perm, minLen, maxLen };
}

function decodeSymbol(r: BitReader, h: Huffman): number {
  let len = h.minLen;
  let code = r.bits(len);
  for (;;) {
    if (code <= h.limit[len]) {
      const i = code + h.base[len];
      if (i < 0 || i >= h.perm.length) throw new CorruptStream('bz2: bad Huffman code');
      return h.perm[i];
    }
    if (++len > h.maxLen) throw new CorruptStream('bz2: bad Huffman code');
    code = code * 2 + r.bit1();
  }
}

export class Bzip2Decoder implements UnitDecoder {
  /** Compressed blocks can be near 1 MB: wait for that much (or the end) before trying one. */
  readonly minChunk = 1 << 20;
  private blockMax = 0;
  /** Bit position inside the first byte of input.pos where the next unit starts. */
  private bitOffset = 0;
  private streamCrc = 0;
  private between = false;

  next(input: InputBuffer): Buffer | null {
    if (this.blockMax === 0) {
      if (this.between) {
        if (input.available === 0) { if (input.ended) return null; throw new NeedMore(); }
      }
      input.need(input.pos, 4, 'bz2 header');
      const h = input.buf.subarray(input.pos, input.pos + 4);
      if (h[0] !== 0x42 || h[1] !== 0x5a || h[2] !== 0x68 || h[3] < 0x31 || h[3] > 0x39) {
        throw new CorruptStream(this.between ? 'trailing data after the end of the bz2 stream' : 'bz2: bad stream header');
      }
      this.blockMax = (h[3] - 0x30) * 100000;
      this.bitOffset = 0;
      this.streamCrc = 0;
      this.between = false;
      input.pos += 4;
      return Buffer.alloc(0);
    }
    const r = new BitReader(input, input.pos, this.bitOffset);
    const hi = r.bits(24), lo = r.bits(24);
    if (hi === EOS_MAGIC_HI && lo === EOS_MAGIC_LO) {
      const crc = r.bits(32);
      if ((crc | 0) !== (this.streamCrc | 0)) throw new CorruptStream('bz2: stream CRC mismatch');
      // the stream ends on a byte boundary
      input.pos = (r.bit + 7) >>> 3;
      this.blockMax = 0;
      this.between = true;
      return Buffer.alloc(0);
    }
    if (hi !== BLOCK_MAGIC_HI || lo !== BLOCK_MAGIC_LO) throw new CorruptStream('bz2: bad block magic');
    const out = this.block(r);
    input.pos = r.bit >>> 3;
    this.bitOffset = r.bit & 7;
    return out;
  }

  private block(r: BitReader): Buffer {
    const wantCrc = r.bits(32) | 0;
    if (r.bit1()) throw new CorruptStream('bz2: randomised blocks are not supported');
    const origPtr = r.bits(24);
    // symbol map: 16 ranges of 16 byte values
    const used = r.bits(16);
    const seqToUnseq = new Uint8Array(256);
    let nInUse = 0;
    for (let i = 0; i < 16; i++) {
      if (used & (0x8000 >> i)) {
        const bits = r.bits(16);
        for (let j = 0; j < 16; j++) if (bits & (0x8000 >> j)) seqToUnseq[nInUse++] = i * 16 + j;
      }
    }
    if (nInUse === 0) throw new CorruptStream('bz2: no symbols in use');
    const alphaSize = nInUse + 2;
    const nGroups = r.bits(3);
    if (nGroups < 2 || nGroups > MAX_GROUPS) throw new CorruptStream('bz2: bad number of Huffman tables');
    const nSelectors = r.bits(15);
    if (nSelectors < 1) throw new CorruptStream('bz2: no selectors');
    const mtfGroups = [0, 1, 2, 3, 4, 5].slice(0, nGroups);
    const selectors = new Uint8Array(Math.min(nSelectors, MAX_SELECTORS));
    for (let i = 0; i < nSelectors; i++) {
      let j = 0;
      while (r.bit1()) if (++j >= nGroups) throw new CorruptStream('bz2: bad selector');
      const g = mtfGroups[j];
      mtfGroups.splice(j, 1);
      mtfGroups.unshift(g);
      if (i < MAX_SELECTORS) selectors[i] = g;
    }
    const tables: Huffman[] = [];
    for (let t = 0; t < nGroups; t++) {
      const lengths = new Uint8Array(alphaSize);
      let cur = r.bits(5);
      for (let s = 0; s < alphaSize; s++) {
        for (;;) {
          if (cur < 1 || cur > MAX_CODE_LEN) throw new CorruptStream('bz2: bad code length');
          if (!r.bit1()) break;
          cur += r.bit1() ? -1 : 1;
        }
        lengths[s] = cur;
      }
      tables.push(buildHuffman(lengths, alphaSize));
    }
    // MTF/RLE2 symbols → BWT output bytes (in tt's low 8 bits)
    const tt = new Int32Array(this.blockMax);
    const counts = new Int32Array(256);
    const mtf = new Uint8Array(256);
    for (let i = 0; i < 256; i++) mtf[i] = i;
    const EOB = alphaSize - 1;
    let n = 0;
    let group = 0, left = 0, sel = 0;
    let run = 0, runWeight = 1;
    const flushRun = () => {
      if (!run) return;
      const b = seqToUnseq[mtf[0]];
      if (n + run > this.blockMax) throw new CorruptStream('bz2: block longer than its stream header allows');
      counts[b] += run;
      tt.fill(b, n, n + run);
      n += run;
      run = 0; runWeight = 1;
    };
    for (;;) {
      if (left === 0) {
        if (sel >= selectors.length) throw new CorruptStream('bz2: ran out of selectors');
        group = selectors[sel++];
        left = GROUP_SIZE;
      }
      left--;
      const sym = decodeSymbol(r, tables[group]);
      if (sym <= 1) {
        // RUNA = 1·w, RUNB = 2·w, w doubling: bijective base-2 run length
        run += (sym + 1) * runWeight;
        runWeight *= 2;
        if (run > this.blockMax) throw new CorruptStream('bz2: run longer than the block');
        continue;
      }
      flushRun();
      if (sym === EOB) break;
      const idx = sym - 1;
      const v = mtf[idx];
      mtf.copyWithin(1, 0, idx);
      mtf[0] = v;
      const b = seqToUnseq[v];
      if (n >= this.blockMax) throw new CorruptStream('bz2: block longer than its stream header allows');
      counts[b]++;
      tt[n++] = b;
    }
    if (origPtr >= n) throw new CorruptStream('bz2: bad BWT origin pointer');
    // inverse BWT: tt[i] gets the index of the next byte in its high bits
    const cftab = new Int32Array(256);
    for (let i = 0, sum = 0; i < 256; i++) { cftab[i] = sum; sum += counts[i]; }
    for (let i = 0; i < n; i++) {
      const b = tt[i] & 0xff;
      tt[cftab[b]++] |= i << 8;
    }
    // walk it, undoing the initial run-length stage (4 equal bytes, then a repeat count)
    const parts: Buffer[] = [];
    let out = Buffer.allocUnsafe(Math.max(n, 4096));
    let op = 0;
    let crc = -1;
    let pos = tt[origPtr] >>> 8;
    let last = -1, same = 0;
    for (let i = 0; i < n; i++) {
      const e = tt[pos];
      const b = e & 0xff;
      pos = e >>> 8;
      // after 4 equal bytes the next one is a repeat count (0–255)
      const reps = same === 4 ? b : 1;
      const v = same === 4 ? last : b;
      if (same === 4) { same = 0; last = -1; } else if (b === last) same++; else { last = b; same = 1; }
      for (let k = 0; k < reps; k++) {
        if (op === out.length) { parts.push(out); out = Buffer.allocUnsafe(out.length); op = 0; }
        out[op++] = v;
        crc = (crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ v) & 0xff];
      }
    }
    crc = ~crc;
    if ((crc | 0) !== wantCrc) throw new CorruptStream('bz2: block CRC mismatch (corrupt data)');
    this.streamCrc = (((this.streamCrc << 1) | (this.streamCrc >>> 31)) ^ crc) | 0;
    parts.push(out.subarray(0, op));
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }
}
