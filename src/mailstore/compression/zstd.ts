/**
 * Zstandard decompression after RFC 8878 (what Dovecot's istream-zstd.c
 * reads through libzstd): frames (and skippable frames), raw/RLE/compressed
 * blocks, literals (raw, RLE, Huffman with 1 or 4 streams, treeless),
 * sequences with predefined/RLE/FSE/repeat tables and the three repeat
 * offsets. Limits: a window up to 2^27 bytes (libzstd's default
 * ZSTD_WINDOWLOG_LIMIT_DEFAULT; more is refused), no dictionaries (Dovecot
 * writes none). The optional content checksum (XXH64) is skipped, not
 * verified; corruption still shows as a bad block in nearly every case.
 * One block (≤ 128 KiB of output) per unit.
 */
import { CorruptStream, type InputBuffer, type UnitDecoder } from './input.js';

const MAGIC = 0xfd2fb528;
const MAX_WINDOW = 1 << 27;
const BLOCK_MAX = 128 * 1024;

const bad = (why: string): never => { throw new CorruptStream(`zstd: ${why}`); };

const highBit = (v: number) => 31 - Math.clz32(v);

/** Backward bit stream (RFC 8878 §4.1): read from the end, after the padding's 1 bit. */
class BackBits {
  /** Bits still to read (may go negative: reads past the start give zeros, checked by the caller). */
  left: number;
  constructor(private readonly b: Buffer, private readonly start: number, end: number) {
    if (end <= start) bad('empty bit stream');
    const last = b[end - 1];
    if (last === 0) bad('bit stream without end mark');
    this.left = (end - start - 1) * 8 + highBit(last);
  }
  read(n: number): number {
    if (n === 0) return 0;
    if (n > 24) { const hi = this.read(n - 24); return hi * 0x1000000 + this.read(24); }
    this.left -= n;
    const pos = this.left;
    if (pos >= 0) {
      // the common case: n ≤ 24 bits inside the stream, one 32-bit window (bytes past the end are masked off)
      const i = this.start + (pos >>> 3);
      const b = this.b;
      const w = (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> (pos & 7);
      return (w & ((1 << n) - 1)) >>> 0;
    }
    let v = 0;
    // bits [pos, pos + n) of the little-endian stream, zeros before its start
    for (let got = 0; got < n;) {
      const bitPos = pos + got;
      if (bitPos < 0) { const skip = Math.min(n - got, -bitPos); got += skip; continue; }
      const byte = this.b[this.start + (bitPos >>> 3)];
      const off = bitPos & 7;
      const take = Math.min(8 - off, n - got);
      v += ((byte >>> off) & ((1 << take) - 1)) * 2 ** got;
      got += take;
    }
    return v;
  }
}

/** Forward little-endian bit reader (FSE table descriptions). */
class FwdBits {
  bit = 0;
  constructor(private readonly b: Buffer, private readonly start: number, private readonly end: number) {}
  read(n: number): number {
    let v = 0;
    for (let got = 0; got < n;) {
      const byteIdx = this.start + (this.bit >>> 3);
      if (byteIdx >= this.end) bad('truncated FSE table description');
      const off = this.bit & 7;
      const take = Math.min(8 - off, n - got);
      v += ((this.b[byteIdx] >>> off) & ((1 << take) - 1)) * 2 ** got;
      got += take; this.bit += take;
    }
    return v;
  }
  get bytes(): number { return (this.bit + 7) >>> 3; }
}

interface Fse { log: number; sym: Uint8Array; nb: Uint8Array; base: Int32Array }

function buildFse(norm: Int16Array, nSym: number, log: number): Fse {
  const size = 1 << log;
  const sym = new Uint8Array(size), nb = new Uint8Array(size), base = new Int32Array(size);
  const next = new Int32Array(nSym);
  let high = size - 1;
  for (let s = 0; s < nSym; s++) {
    if (norm[s] === -1) { sym[high--] = s; next[s] = 1; } else next[s] = norm[s];
  }
  const step = (size >> 1) + (size >> 3) + 3;
  const mask = size - 1;
  let pos = 0;
  for (let s = 0; s < nSym; s++) {
    for (let i = 0; i < norm[s]; i++) {
      sym[pos] = s;
      do pos = (pos + step) & mask; while (pos > high);
    }
  }
  if (pos !== 0) bad('bad FSE distribution');
  for (let i = 0; i < size; i++) {
    const s = sym[i];
    const x = next[s]++;
    const bits = log - highBit(x);
    nb[i] = bits;
    base[i] = (x << bits) - size;
  }
  return { log, sym, nb, base };
}

/** An FSE table description (RFC 8878 §4.1.1); returns the table and the bytes it took. */
function readFseTable(b: Buffer, start: number, end: number, maxLog: number, maxSym: number): [Fse, number] {
  const r = new FwdBits(b, start, end);
  const log = r.read(4) + 5;
  if (log > maxLog) bad('FSE accuracy log too large');
  let remaining = (1 << log) + 1;
  let threshold = 1 << log;
  let bits = log + 1;
  const norm = new Int16Array(maxSym + 1);
  let s = 0;
  while (remaining > 1 && s <= maxSym) {
    const max = 2 * threshold - 1 - remaining;
    let v: number;
    const low = r.read(bits - 1);
    if (low < max) v = low;
    else {
      const hi = r.read(1);
      v = low + hi * threshold;
      if (v >= threshold) v -= max;
    }
    const count = v - 1;
    norm[s++] = count;
    remaining -= count < 0 ? -count : count;
    if (count === 0) {
      for (;;) {
        const rep = r.read(2);
        for (let i = 0; i < rep; i++) { if (s > maxSym) bad('FSE symbol out of range'); norm[s++] = 0; }
        if (rep !== 3) break;
      }
    }
    while (remaining < threshold) { bits--; threshold >>= 1; }
  }
  if (remaining !== 1 || s > maxSym + 1) bad('bad FSE table description');
  return [buildFse(norm, s, log), r.bytes];
}

function fseOf(dist: number[], log: number): Fse {
  return buildFse(Int16Array.from(dist), dist.length, log);
}

const LL_DEFAULT = fseOf([4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1, -1, -1, -1, -1], 6);
const ML_DEFAULT = fseOf([1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1], 6);
const OF_DEFAULT = fseOf([1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1], 5);

const LL_BASE = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 20, 22, 24, 28, 32, 40, 48, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536];
const LL_BITS = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
const ML_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 37, 39, 41, 43, 47, 51, 59, 67, 83, 99, 131, 259, 515, 1027, 2051, 4099, 8195, 16387, 32771, 65539];
const ML_BITS = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

function rleFse(symbol: number): Fse {
  return { log: 0, sym: Uint8Array.of(symbol), nb: Uint8Array.of(0), base: Int32Array.of(0) };
}

interface Huf { log: number; sym: Uint8Array; nb: Uint8Array }

/** Huffman decoding table from weights (RFC 8878 §4.2.1); the last weight is implied. */
function buildHuf(weights: Uint8Array, n: number): Huf {
  let sum = 0;
  for (let i = 0; i < n; i++) { if (weights[i] > 11) bad('Huffman weight too large'); if (weights[i]) sum += 1 << (weights[i] - 1); }
  if (sum === 0) bad('empty Huffman table');
  const log = highBit(sum) + 1;
  if (log > 11) bad('Huffman table too deep');
  const rest = (1 << log) - sum;
  if (rest & (rest - 1)) bad('bad Huffman weights');
  const all = new Uint8Array(n + 1);
  all.set(weights.subarray(0, n));
  all[n] = highBit(rest) + 1;
  const rankStart = new Int32Array(log + 2);
  const rankCount = new Int32Array(log + 2);
  for (let s = 0; s <= n; s++) rankCount[all[s]]++;
  for (let w = 1, next = 0; w <= log; w++) { rankStart[w] = next; next += rankCount[w] << (w - 1); }
  const size = 1 << log;
  const sym = new Uint8Array(size), nb = new Uint8Array(size);
  for (let s = 0; s <= n; s++) {
    const w = all[s];
    if (!w) continue;
    const len = 1 << (w - 1);
    const at = rankStart[w];
    sym.fill(s, at, at + len);
    nb.fill(log + 1 - w, at, at + len);
    rankStart[w] += len;
  }
  return { log, sym, nb };
}

/** A Huffman tree description; returns the table and the bytes it took. */
function readHufTable(b: Buffer, p: number, end: number): [Huf, number] {
  if (p >= end) bad('truncated Huffman tree');
  const hdr = b[p];
  const weights = new Uint8Array(256);
  let n = 0;
  if (hdr >= 128) {
    n = hdr - 127;
    const bytes = (n + 1) >> 1;
    if (p + 1 + bytes > end) bad('truncated Huffman weights');
    for (let i = 0; i < n; i++) weights[i] = i & 1 ? b[p + 1 + (i >> 1)] & 15 : b[p + 1 + (i >> 1)] >> 4;
    return [buildHuf(weights, n), 1 + bytes];
  }
  const csize = hdr;
  if (p + 1 + csize > end) bad('truncated Huffman weights');
  const [fse, used] = readFseTable(b, p + 1, p + 1 + csize, 6, 255);
  const r = new BackBits(b, p + 1 + used, p + 1 + csize);
  let s1 = r.read(fse.log), s2 = r.read(fse.log);
  for (;;) {
    if (n >= 255) bad('too many Huffman weights');
    weights[n++] = fse.sym[s1];
    s1 = fse.base[s1] + r.read(fse.nb[s1]);
    if (r.left < 0) { weights[n++] = fse.sym[s2]; break; }
    if (n >= 255) bad('too many Huffman weights');
    weights[n++] = fse.sym[s2];
    s2 = fse.base[s2] + r.read(fse.nb[s2]);
    if (r.left < 0) { weights[n++] = fse.sym[s1]; break; }
  }
  return [buildHuf(weights, n), 1 + csize];
}

function hufStream(h: Huf, b: Buffer, start: number, end: number, out: Uint8Array, op: number, count: number): void {
  const r = new BackBits(b, start, end);
  for (let i = 0; i < count; i++) {
    // peek `log` bits, consume only the code's length
    const v = r.read(h.log);
    const bits = h.nb[v];
    out[op + i] = h.sym[v];
    r.left += h.log - bits;
  }
  if (r.left !== 0) bad('Huffman stream not fully consumed (corrupt literals)');
}

/** State of one frame being decoded. */
interface Frame {
  window: number;
  single: boolean;
  checksum: boolean;
  contentSize: number | null;
  produced: number;
  hist: Uint8Array;
  histLen: number;
  reps: [number, number, number];
  huf: Huf | null;
  ll: Fse | null; of: Fse | null; ml: Fse | null;
  last: boolean;
}

export class ZstdDecoder implements UnitDecoder {
  private frame: Frame | null = null;

  next(input: InputBuffer): Buffer | null {
    const b = input.buf;
    const p = input.pos;
    if (!this.frame) {
      if (input.available === 0 && input.ended) return null;
      input.need(p, 4, 'zstd frame');
      const magic = b.readUInt32LE(p);
      if ((magic & 0xfffffff0) === 0x184d2a50) {
        input.need(p, 8, 'skippable frame');
        const len = b.readUInt32LE(p + 4);
        input.need(p + 8, len, 'skippable frame');
        input.pos = p + 8 + len;
        return Buffer.alloc(0);
      }
      if (magic !== MAGIC) bad('unknown frame magic');
      this.frame = this.header(input);
      return Buffer.alloc(0);
    }
    const f = this.frame;
    if (f.last) {
      if (f.checksum) { input.need(p, 4, 'zstd checksum'); input.pos = p + 4; }
      if (f.contentSize !== null && f.produced !== f.contentSize) bad('frame content size mismatch');
      this.frame = null;
      return Buffer.alloc(0);
    }
    input.need(p, 3, 'zstd block header');
    const bh = b[p] | (b[p + 1] << 8) | (b[p + 2] << 16);
    const last = (bh & 1) === 1;
    const type = (bh >> 1) & 3;
    const size = bh >>> 3;
    const blockMax = Math.min(f.window, BLOCK_MAX);
    const start = p + 3;
    let out: Buffer;
    if (type === 0) {
      if (size > blockMax) bad('raw block too large');
      input.need(start, size, 'zstd block');
      out = this.emit(f, b.subarray(start, start + size));
      input.pos = start + size;
    } else if (type === 1) {
      if (size > blockMax) bad('RLE block too large');
      input.need(start, 1, 'zstd block');
      out = this.emit(f, new Uint8Array(size).fill(b[start]));
      input.pos = start + 1;
    } else if (type === 2) {
      if (size > blockMax) bad('compressed block too large');
      input.need(start, size, 'zstd block');
      out = this.compressed(f, b, start, start + size, blockMax);
      input.pos = start + size;
    } else return bad('reserved block type');
    f.last = last;
    return out;
  }

  private header(input: InputBuffer): Frame {
    const b = input.buf;
    let p = input.pos + 4;
    input.need(p, 1, 'zstd frame header');
    const fhd = b[p++];
    const fcsFlag = fhd >> 6;
    const single = ((fhd >> 5) & 1) === 1;
    if (fhd & 8) bad('reserved frame header bit set');
    const checksum = ((fhd >> 2) & 1) === 1;
    const dictLen = [0, 1, 2, 4][fhd & 3];
    const fcsLen = fcsFlag === 0 ? (single ? 1 : 0) : [0, 2, 4, 8][fcsFlag];
    input.need(p, (single ? 0 : 1) + dictLen + fcsLen, 'zstd frame header');
    let window = 0;
    if (!single) {
      const wd = b[p++];
      const log = 10 + (wd >> 3);
      const baseW = 2 ** log;
      window = baseW + (baseW / 8) * (wd & 7);
    }
    let dict = 0;
    for (let i = 0; i < dictLen; i++) dict += b[p + i] * 2 ** (8 * i);
    p += dictLen;
    if (dict !== 0) bad('frames with a dictionary are not supported');
    let fcs: number | null = null;
    if (fcsLen) {
      fcs = 0;
      for (let i = 0; i < fcsLen; i++) fcs += b[p + i] * 2 ** (8 * i);
      if (fcsLen === 2) fcs += 256;
      p += fcsLen;
    }
    if (single) window = fcs ?? 0;
    else if (fcs !== null) window = Math.min(window, Math.max(fcs, 1));
    if (window > MAX_WINDOW) bad(`frame requires too much memory (window ${window} > ${MAX_WINDOW})`);
    input.pos = p;
    return {
      window, single, checksum, contentSize: fcs, produced: 0,
      hist: new Uint8Array(Math.min(window + BLOCK_MAX, 1 << 20)), histLen: 0,
      reps: [1, 4, 8], huf: null, ll: null, of: null, ml: null, last: false,
    };
  }

  /** Room for `n` more bytes in the history, keeping the last `window` bytes. */
  private room(f: Frame, n: number): void {
    if (f.histLen + n <= f.hist.length) return;
    const keep = Math.min(f.histLen, f.window);
    if (keep + n <= f.hist.length && f.histLen - keep >= f.hist.length >> 2) {
      f.hist.copyWithin(0, f.histLen - keep, f.histLen);
      f.histLen = keep;
      return;
    }
    const grown = new Uint8Array(Math.max(f.hist.length * 2, keep + n));
    grown.set(f.hist.subarray(f.histLen - keep, f.histLen));
    f.hist = grown;
    f.histLen = keep;
  }

  private emit(f: Frame, data: Uint8Array): Buffer {
    this.room(f, data.length);
    f.hist.set(data, f.histLen);
    f.histLen += data.length;
    f.produced += data.length;
    if (f.contentSize !== null && f.produced > f.contentSize) bad('more data than the frame content size');
    return Buffer.from(data);
  }

  private compressed(f: Frame, b: Buffer, p: number, end: number, blockMax: number): Buffer {
    // literals section
    if (p >= end) bad('empty compressed block');
    const b0 = b[p];
    const ltype = b0 & 3;
    const sf = (b0 >> 2) & 3;
    let regen: number, csize = 0, streams = 1, hl: number;
    if (ltype <= 1) {
      if (sf === 0 || sf === 2) { regen = b0 >> 3; hl = 1; }
      else if (sf === 1) { regen = (b0 >> 4) + (b[p + 1] << 4); hl = 2; }
      else { regen = (b0 >> 4) + (b[p + 1] << 4) + (b[p + 2] << 12); hl = 3; }
    } else {
      streams = sf === 0 ? 1 : 4;
      if (sf <= 1) { const v = b0 | (b[p + 1] << 8) | (b[p + 2] << 16); regen = (v >> 4) & 0x3ff; csize = (v >> 14) & 0x3ff; hl = 3; }
      else if (sf === 2) { const v = (b0 | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0; regen = (v >>> 4) & 0x3fff; csize = (v >>> 18) & 0x3fff; hl = 4; }
      else { regen = (b0 >> 4) | (b[p + 1] << 4) | ((b[p + 2] & 0x3f) << 12); csize = (b[p + 2] >> 6) | (b[p + 3] << 2) | (b[p + 4] << 10); hl = 5; }
    }
    if (regen > blockMax) bad('literals larger than a block');
    p += hl;
    if (p > end) bad('truncated literals header');
    let lits: Uint8Array;
    if (ltype === 0) {
      if (p + regen > end) bad('truncated raw literals');
      lits = b.subarray(p, p + regen); p += regen;
    } else if (ltype === 1) {
      if (p >= end) bad('truncated RLE literals');
      lits = new Uint8Array(regen).fill(b[p]); p += 1;
    } else {
      if (p + csize > end) bad('truncated Huffman literals');
      const cend = p + csize;
      let q = p;
      if (ltype === 2) { const [h, used] = readHufTable(b, q, cend); f.huf = h; q += used; }
      else if (!f.huf) bad('treeless literals without a previous Huffman table');
      const h = f.huf!;
      lits = new Uint8Array(regen);
      if (streams === 1) hufStream(h, b, q, cend, lits, 0, regen);
      else {
        if (q + 6 > cend) bad('truncated jump table');
        const s1 = b.readUInt16LE(q), s2 = b.readUInt16LE(q + 2), s3 = b.readUInt16LE(q + 4);
        q += 6;
        const per = Math.ceil(regen / 4);
        if (per * 3 > regen) bad('bad 4-stream literal size');
        const bounds = [q, q + s1, q + s1 + s2, q + s1 + s2 + s3, cend];
        if (bounds[3] > cend) bad('bad jump table');
        for (let i = 0; i < 4; i++) hufStream(h, b, bounds[i], bounds[i + 1], lits, i * per, i < 3 ? per : regen - 3 * per);
      }
      p = cend;
    }
    // sequences section
    if (p >= end) bad('missing sequences section');
    let nSeq = b[p++];
    if (nSeq >= 128) {
      if (nSeq === 255) { if (p + 2 > end) bad('truncated sequences header'); nSeq = b[p] + (b[p + 1] << 8) + 0x7f00; p += 2; }
      else { if (p + 1 > end) bad('truncated sequences header'); nSeq = ((nSeq - 128) << 8) + b[p++]; }
    }
    const out = new Uint8Array(blockMax);
    let op = 0;
    let lp = 0;
    if (nSeq > 0) {
      if (p >= end) bad('truncated sequences header');
      const modes = b[p++];
      if (modes & 3) bad('reserved sequence modes bits set');
      const table = (mode: number, def: Fse, prev: Fse | null, maxLog: number, maxSym: number): Fse => {
        switch (mode) {
          case 0: return def;
          case 1: { if (p >= end) bad('truncated RLE table'); const t = rleFse(b[p++]); if (b[p - 1] > maxSym) bad('RLE symbol out of range'); return t; }
          case 2: { const [t, used] = readFseTable(b, p, end, maxLog, maxSym); p += used; return t; }
          default: if (!prev) bad('repeat table without a previous one'); return prev!;
        }
      };
      f.ll = table(modes >> 6, LL_DEFAULT, f.ll, 9, 35);
      f.of = table((modes >> 4) & 3, OF_DEFAULT, f.of, 8, 31);
      f.ml = table((modes >> 2) & 3, ML_DEFAULT, f.ml, 9, 52);
      const ll = f.ll, of = f.of, ml = f.ml;
      const r = new BackBits(b, p, end);
      let sLL = r.read(ll.log), sOF = r.read(of.log), sML = r.read(ml.log);
      const reps = f.reps;
      const histBase = f.histLen;
      for (let i = 0; i < nSeq; i++) {
        const ofCode = of.sym[sOF], mlCode = ml.sym[sML], llCode = ll.sym[sLL];
        if (ofCode > 31 || mlCode > 52 || llCode > 35) bad('sequence code out of range');
        let offVal = 2 ** ofCode + r.read(ofCode);
        const mLen = ML_BASE[mlCode] + r.read(ML_BITS[mlCode]);
        const lLen = LL_BASE[llCode] + r.read(LL_BITS[llCode]);
        let offset: number;
        if (offVal > 3) { offset = offVal - 3; reps[2] = reps[1]; reps[1] = reps[0]; reps[0] = offset; }
        else {
          const idx = lLen === 0 ? offVal : offVal - 1;
          if (idx === 0) offset = reps[0];
          else if (idx === 1) { offset = reps[1]; reps[1] = reps[0]; reps[0] = offset; }
          else if (idx === 2) { offset = reps[2]; reps[2] = reps[1]; reps[1] = reps[0]; reps[0] = offset; }
          else { offset = reps[0] - 1; if (offset === 0) bad('zero repeat offset'); reps[2] = reps[1]; reps[1] = reps[0]; reps[0] = offset; }
        }
        void offVal;
        if (i < nSeq - 1) {
          sLL = ll.base[sLL] + r.read(ll.nb[sLL]);
          sML = ml.base[sML] + r.read(ml.nb[sML]);
          sOF = of.base[sOF] + r.read(of.nb[sOF]);
        }
        // execute: literals, then the match (possibly reaching into earlier blocks)
        if (lp + lLen > lits.length) bad('sequence literals beyond the literals section');
        if (op + lLen + mLen > blockMax) bad('sequence output beyond the block size');
        // short runs byte by byte: a subarray per sequence costs more than the copy
        if (lLen > 32) { out.set(lits.subarray(lp, lp + lLen), op); op += lLen; lp += lLen; }
        else for (let k = 0; k < lLen; k++) out[op++] = lits[lp++];
        if (offset > histBase + op || offset > f.window) bad('match offset beyond the window');
        let k = 0;
        // part of the match in earlier blocks (the history)
        if (offset > op) {
          const from = histBase - (offset - op);
          const n = Math.min(mLen, offset - op);
          out.set(f.hist.subarray(from, from + n), op);
          op += n; k = n;
        }
        let src = op - offset;
        if (offset >= mLen - k && mLen - k > 32) { out.copyWithin(op, src, src + mLen - k); op += mLen - k; }
        else for (; k < mLen; k++) out[op++] = out[src++];
        offVal = 0;
      }
      if (r.left !== 0) bad('sequence bit stream not fully consumed (corrupt block)');
    } else if (p !== end) bad('data after an empty sequences section');
    if (op + (lits.length - lp) > blockMax) bad('block output beyond the block size');
    out.set(lits.subarray(lp), op);
    op += lits.length - lp;
    return this.emit(f, out.subarray(0, op));
  }
}
