/**
 * xz decompression (the .xz file format 1.0.4 and LZMA2, as Dovecot's
 * istream-lzma.c reads them through liblzma): stream header, blocks whose
 * only filter is LZMA2 (0x21; BCJ/delta filter chains are refused), block
 * padding and check, index, footer; concatenated streams and stream
 * padding. LZMA2 chunks are the units: uncompressed chunks, and LZMA chunks
 * (≤ 2 MiB of output each) decoded by the LZMA range decoder with state,
 * property and dictionary resets as the control byte says. Limits: a
 * dictionary up to 80 MiB (Dovecot's liblzma memory limit; more is refused). Not verified: the header
 * CRC32s and the block checks (CRC32/CRC64/SHA-256) are skipped; a corrupt
 * stream still fails on its LZMA2 structure in nearly every case.
 */
import { CorruptStream, type InputBuffer, type UnitDecoder } from './input.js';

const bad = (why: string): never => { throw new CorruptStream(`xz: ${why}`); };
const MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
/** Dovecot opens liblzma with LZMA_MEMORY_LIMIT (80 MiB, istream-lzma.c): a bigger dictionary fails there too. */
const MAX_DICT = 80 * 1024 * 1024;
const CHECK_SIZES = [0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64];

/** A variable-length integer (xz's VLI, ≤ 9 bytes) at `p`; [value, bytes]. */
function vli(b: Buffer, p: number, end: number): [number, number] {
  let v = 0;
  for (let i = 0; i < 9; i++) {
    if (p + i >= end) bad('truncated number');
    const c = b[p + i];
    v += (c & 0x7f) * 2 ** (7 * i);
    if (!(c & 0x80)) return [v, i + 1];
  }
  return bad('number too long');
}

/** The LZMA decoder state that lives across LZMA2 chunks (probabilities, state, reps, properties). */
class Lzma {
  lc = 0; lp = 0; pb = 0;
  state = 0;
  reps = [0, 0, 0, 0];
  probs = new Uint16Array(0);
  // range coder
  private b!: Buffer; private p = 0; private end = 0; private range = 0; private code = 0;

  setProps(d: number): void {
    if (d > 224) bad('bad LZMA properties');
    this.pb = Math.floor(d / 45); d %= 45;
    this.lp = Math.floor(d / 9); this.lc = d % 9;
    if (this.lc + this.lp > 4) bad('lc + lp > 4');
  }

  // probability table layout
  private static readonly IS_MATCH = 0;
  private static readonly IS_REP = 192;
  private static readonly IS_REP_G0 = 204;
  private static readonly IS_REP_G1 = 216;
  private static readonly IS_REP_G2 = 228;
  private static readonly IS_REP0_LONG = 240;
  private static readonly POS_SLOT = 432; // 4 × 64
  private static readonly SPEC_POS = 688; // 115
  private static readonly ALIGN = 803; // 16
  private static readonly LEN = 819; // 514: choice, choice2, low 16×8, mid 16×8, high 256
  private static readonly REP_LEN = 1333;
  private static readonly LITERAL = 1847;

  resetState(): void {
    this.state = 0;
    this.reps = [0, 0, 0, 0];
    this.probs = new Uint16Array(Lzma.LITERAL + 0x300 * (1 << (this.lc + this.lp))).fill(1024);
  }

  private bit(i: number): number {
    if (this.range < 0x1000000) {
      if (this.p >= this.end) bad('LZMA data runs past its chunk');
      this.range = (this.range * 256) >>> 0;
      this.code = ((this.code * 256) + this.b[this.p++]) >>> 0;
    }
    const pr = this.probs[i];
    const bound = (this.range >>> 11) * pr;
    if (this.code < bound) { this.range = bound; this.probs[i] = pr + ((2048 - pr) >>> 5); return 0; }
    this.range = (this.range - bound) >>> 0; this.code = (this.code - bound) >>> 0; this.probs[i] = pr - (pr >>> 5);
    return 1;
  }

  private direct(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) {
      if (this.range < 0x1000000) {
        if (this.p >= this.end) bad('LZMA data runs past its chunk');
        this.range = (this.range * 256) >>> 0;
        this.code = ((this.code * 256) + this.b[this.p++]) >>> 0;
      }
      this.range >>>= 1;
      const bit = this.code >= this.range ? 1 : 0;
      if (bit) this.code = (this.code - this.range) >>> 0;
      v = v * 2 + bit;
    }
    return v;
  }

  private tree(base: number, bits: number): number {
    let m = 1;
    for (let i = 0; i < bits; i++) m = (m << 1) | this.bit(base + m);
    return m - (1 << bits);
  }

  private reverse(base: number, bits: number): number {
    let m = 1, sym = 0;
    for (let i = 0; i < bits; i++) { const bit = this.bit(base + m); m = (m << 1) | bit; sym |= bit << i; }
    return sym;
  }

  private len(base: number, posState: number): number {
    if (!this.bit(base)) return this.tree(base + 2 + posState * 8, 3);
    if (!this.bit(base + 1)) return 8 + this.tree(base + 2 + 128 + posState * 8, 3);
    return 16 + this.tree(base + 2 + 256, 8);
  }

  /** One LZMA chunk: compressed bytes b[p, end) → `size` bytes appended to the history. */
  decode(b: Buffer, p: number, end: number, size: number, h: History): void {
    this.b = b; this.p = p; this.end = end;
    if (end - p < 5 || b[p] !== 0) bad('bad range coder start');
    this.code = b.readUInt32BE(p + 1); this.range = 0xffffffff; this.p = p + 5;
    h.room(size);
    const out = h.buf;
    let pos = h.len;
    const stop = pos + size;
    const pbMask = (1 << this.pb) - 1, lpMask = (1 << this.lp) - 1;
    const reps = this.reps;
    let state = this.state;
    while (pos < stop) {
      const total = h.total + (pos - h.len);
      const posState = total & pbMask;
      if (!this.bit(Lzma.IS_MATCH + (state << 4) + posState)) {
        const prev = pos > 0 ? out[pos - 1] : 0;
        const base = Lzma.LITERAL + 0x300 * (((total & lpMask) << this.lc) + (prev >> (8 - this.lc)));
        let sym = 1;
        if (state >= 7) {
          if (reps[0] >= pos) bad('match byte outside the dictionary');
          let match = out[pos - reps[0] - 1];
          do {
            const mb = (match >> 7) & 1; match <<= 1;
            const bit = this.bit(base + ((1 + mb) << 8) + sym);
            sym = (sym << 1) | bit;
            if (mb !== bit) break;
          } while (sym < 0x100);
        }
        while (sym < 0x100) sym = (sym << 1) | this.bit(base + sym);
        out[pos++] = sym & 0xff;
        state = state < 4 ? 0 : state < 10 ? state - 3 : state - 6;
        continue;
      }
      let len: number;
      if (!this.bit(Lzma.IS_REP + state)) {
        reps[3] = reps[2]; reps[2] = reps[1]; reps[1] = reps[0];
        len = this.len(Lzma.LEN, posState);
        state = state < 7 ? 7 : 10;
        const slot = this.tree(Lzma.POS_SLOT + Math.min(len, 3) * 64, 6);
        let dist: number;
        if (slot < 4) dist = slot;
        else {
          const n = (slot >> 1) - 1;
          dist = (2 | (slot & 1)) * 2 ** n;
          if (slot < 14) dist += this.reverse(Lzma.SPEC_POS + dist - slot - 1, n);
          else dist += this.direct(n - 4) * 16 + this.reverse(Lzma.ALIGN - 1, 4);
        }
        if (dist === 0xffffffff) bad('end marker inside an LZMA2 chunk');
        reps[0] = dist;
      } else {
        if (!this.bit(Lzma.IS_REP_G0 + state)) {
          if (!this.bit(Lzma.IS_REP0_LONG + (state << 4) + posState)) {
            state = state < 7 ? 9 : 11;
            if (reps[0] >= pos) bad('distance outside the dictionary');
            out[pos] = out[pos - reps[0] - 1]; pos++;
            continue;
          }
        } else {
          let dist: number;
          if (!this.bit(Lzma.IS_REP_G1 + state)) dist = reps[1];
          else {
            if (!this.bit(Lzma.IS_REP_G2 + state)) dist = reps[2];
            else { dist = reps[3]; reps[3] = reps[2]; }
            reps[2] = reps[1];
          }
          reps[1] = reps[0]; reps[0] = dist;
        }
        len = this.len(Lzma.REP_LEN, posState);
        state = state < 7 ? 8 : 11;
      }
      len += 2;
      if (reps[0] >= pos || reps[0] >= h.dict) bad('distance outside the dictionary');
      if (pos + len > stop) bad('match runs past the chunk');
      let src = pos - reps[0] - 1;
      for (let i = 0; i < len; i++) out[pos++] = out[src++];
    }
    this.state = state;
    h.len = pos;
    h.total += size;
  }
}

/** The decoded output kept for back-references: the last `dict` bytes, compacted as it grows. */
class History {
  buf = new Uint8Array(1 << 16);
  len = 0;
  total = 0;
  constructor(readonly dict: number) {}
  room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const keep = Math.min(this.len, this.dict);
    if (keep + n <= this.buf.length >> 1) { this.buf.copyWithin(0, this.len - keep, this.len); this.len = keep; return; }
    const grown = new Uint8Array(Math.max(this.buf.length * 2, (keep + n) * 2));
    grown.set(this.buf.subarray(this.len - keep, this.len));
    this.buf = grown; this.len = keep;
  }
}

type Phase = 'stream' | 'block' | 'chunks' | 'check' | 'index' | 'footer' | 'between';

export class XzDecoder implements UnitDecoder {
  private phase: Phase = 'stream';
  private checkSize = 0;
  private blockStart = 0;
  private blockBytes = 0;
  private lzma = new Lzma();
  private hist: History | null = null;
  private needProps = true;

  next(input: InputBuffer): Buffer | null {
    const b = input.buf;
    const p = input.pos;
    switch (this.phase) {
      case 'between': {
        // stream padding (zero bytes in fours), then maybe another stream
        if (input.available === 0) { if (input.ended) return null; input.need(p, 1, 'xz'); }
        if (b[p] === 0) { input.need(p, 4, 'xz stream padding'); if (b.readUInt32LE(p) !== 0) bad('bad stream padding'); input.pos = p + 4; return Buffer.alloc(0); }
        this.phase = 'stream';
        return Buffer.alloc(0);
      }
      case 'stream': {
        input.need(p, 12, 'xz stream header');
        if (!b.subarray(p, p + 6).equals(MAGIC)) bad('bad stream header (or trailing data after the stream)');
        if (b[p + 6] !== 0 || b[p + 7] > 15) bad('unsupported stream flags');
        this.checkSize = CHECK_SIZES[b[p + 7]];
        input.pos = p + 12;
        this.phase = 'block';
        return Buffer.alloc(0);
      }
      case 'block': {
        input.need(p, 1, 'xz block');
        if (b[p] === 0) { this.phase = 'index'; return Buffer.alloc(0); }
        const size = (b[p] + 1) * 4;
        input.need(p, size, 'xz block header');
        const flags = b[p + 1];
        if (flags & 0x3c) bad('unsupported block flags');
        if ((flags & 3) !== 0) bad('filter chains other than LZMA2 alone are not supported');
        let q = p + 2;
        const end = p + size - 4;
        if (flags & 0x40) q += vli(b, q, end)[1];
        if (flags & 0x80) q += vli(b, q, end)[1];
        const [id, n1] = vli(b, q, end); q += n1;
        const [propLen, n2] = vli(b, q, end); q += n2;
        if (id !== 0x21 || propLen !== 1) bad(`unsupported filter 0x${id.toString(16)}`);
        const d = b[q];
        if (d > 40) bad('bad LZMA2 dictionary size');
        const dict = d === 40 ? 0xffffffff : (2 | (d & 1)) * 2 ** (Math.floor(d / 2) + 11);
        if (dict > MAX_DICT) bad(`dictionary too large (${dict} > ${MAX_DICT})`);
        this.hist = new History(dict);
        this.needProps = true;
        input.pos = p + size;
        this.blockStart = input.pos;
        this.blockBytes = 0;
        this.phase = 'chunks';
        return Buffer.alloc(0);
      }
      case 'chunks': {
        input.need(p, 1, 'LZMA2 chunk');
        const c = b[p];
        const h = this.hist!;
        if (c === 0) {
          this.blockBytes += 1;
          input.pos = p + 1;
          this.phase = 'check';
          return Buffer.alloc(0);
        }
        if (c === 1 || c === 2) {
          input.need(p, 3, 'LZMA2 chunk');
          const size = b.readUInt16BE(p + 1) + 1;
          input.need(p + 3, size, 'LZMA2 chunk');
          if (c === 1) { h.len = 0; h.total = 0; }
          h.room(size);
          h.buf.set(b.subarray(p + 3, p + 3 + size), h.len);
          const out = Buffer.from(h.buf.subarray(h.len, h.len + size));
          h.len += size; h.total += size;
          input.pos = p + 3 + size;
          this.blockBytes += 3 + size;
          return out;
        }
        if (c < 0x80) bad('bad LZMA2 control byte');
        input.need(p, 5, 'LZMA2 chunk');
        const size = (c & 0x1f) * 65536 + b.readUInt16BE(p + 1) + 1;
        const packed = b.readUInt16BE(p + 3) + 1;
        const reset = (c >> 5) & 3;
        let q = p + 5;
        if (reset >= 2) { input.need(q, 1, 'LZMA2 chunk'); this.lzma.setProps(b[q++]); this.needProps = false; }
        else if (this.needProps) bad('LZMA2 chunk without properties');
        if (reset === 3) { h.len = 0; h.total = 0; }
        if (reset >= 1) this.lzma.resetState();
        input.need(q, packed, 'LZMA2 chunk');
        const start = h.len;
        this.lzma.decode(b, q, q + packed, size, h);
        input.pos = q + packed;
        this.blockBytes += input.pos - p;
        return Buffer.from(h.buf.subarray(start, h.len));
      }
      case 'check': {
        const pad = (4 - (this.blockBytes % 4)) % 4;
        input.need(p, pad + this.checkSize, 'xz block check');
        for (let i = 0; i < pad; i++) if (b[p + i] !== 0) bad('bad block padding');
        input.pos = p + pad + this.checkSize;
        this.phase = 'block';
        return Buffer.alloc(0);
      }
      case 'index': {
        // the whole index must be here: indicator, count, records, padding, CRC32
        let q = p + 1;
        const guard = (n: number) => input.need(q, n, 'xz index');
        guard(1);
        const [count, n] = vliOrMore(input, q); q += n;
        for (let i = 0; i < count * 2; i++) { const [, m] = vliOrMore(input, q); q += m; }
        const pad = (4 - ((q - p) % 4)) % 4;
        guard(pad + 4);
        input.pos = q + pad + 4;
        this.phase = 'footer';
        return Buffer.alloc(0);
      }
      case 'footer': {
        input.need(p, 12, 'xz stream footer');
        if (b[p + 10] !== 0x59 || b[p + 11] !== 0x5a) bad('bad stream footer');
        input.pos = p + 12;
        this.phase = 'between';
        return Buffer.alloc(0);
      }
    }
  }
}

/** A VLI that may not all be buffered yet (NeedMore / truncation through InputBuffer.need). */
function vliOrMore(input: InputBuffer, q: number): [number, number] {
  for (let i = 0; i < 9; i++) {
    input.need(q, i + 1, 'xz index');
    if (!(input.buf[q + i] & 0x80)) return vli(input.buf, q, q + i + 1);
  }
  return bad('number too long');
}
