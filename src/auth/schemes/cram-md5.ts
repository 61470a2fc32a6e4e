/**
 * The CRAM-MD5 scheme's stored form: not a hash of the password but the two
 * MD5 states an HMAC-MD5 keyed with it reaches after its first (opad, then
 * ipad) block, as Dovecot's hmac_md5_get_cram_context() writes them (words
 * little-endian, outer state first). node:crypto does not expose MD5's
 * intermediate state, so the one-block compression (RFC 1321) is here.
 */
import { createHash } from 'node:crypto';

const S = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
const K = Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) >>> 0);

function md5Block(state: number[], block: Buffer): number[] {
  const X = Array.from({ length: 16 }, (_, i) => block.readUInt32LE(i * 4));
  let [a, b, c, d] = state;
  for (let i = 0; i < 64; i++) {
    let f: number;
    let g: number;
    if (i < 16) { f = (b & c) | (~b & d); g = i; }
    else if (i < 32) { f = (d & b) | (~d & c); g = (5 * i + 1) % 16; }
    else if (i < 48) { f = b ^ c ^ d; g = (3 * i + 5) % 16; }
    else { f = c ^ (b | ~d); g = (7 * i) % 16; }
    const s = S[(i >> 4) * 4 + (i % 4)];
    const tmp = d;
    d = c;
    c = b;
    const x = (a + f + K[i] + X[g]) >>> 0;
    b = (b + ((x << s) | (x >>> (32 - s)))) >>> 0;
    a = tmp;
  }
  return [(state[0] + a) >>> 0, (state[1] + b) >>> 0, (state[2] + c) >>> 0, (state[3] + d) >>> 0];
}

const INIT = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];

export function cramMd5Context(password: Buffer): Buffer {
  const key = Buffer.alloc(64);
  (password.length > 64 ? createHash('md5').update(password).digest() : password).copy(key);
  const pad = (v: number) => Buffer.from(key.map((k) => k ^ v));
  const inner = md5Block(INIT, pad(0x36));
  const outer = md5Block(INIT, pad(0x5c));
  const out = Buffer.alloc(32);
  [...outer, ...inner].forEach((w, i) => out.writeUInt32LE(w, i * 4));
  return out;
}
