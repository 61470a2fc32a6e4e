/**
 * The crypt(3) algorithms Dovecot's CRYPT family stores: SHA-512/SHA-256
 * crypt (Ulrich Drepper's specification, `$6$` / `$5$`, optional
 * `rounds=N`), MD5-crypt (`$1$`, Poul-Henning Kamp's algorithm) and bcrypt
 * (`$2a$ $2b$ $2y$`, through bcryptjs). Written from the published
 * specifications on node:crypto digests. Synchronous and CPU-bound: callers
 * run them on the hash worker pool (hash-worker.ts), never on the event loop.
 */
import { createHash, randomBytes } from 'node:crypto';
import bcrypt from 'bcryptjs';

const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function b64From24(b2: number, b1: number, b0: number, n: number): string {
  let w = (b2 << 16) | (b1 << 8) | b0;
  let out = '';
  for (let i = 0; i < n; i++) { out += ITOA64[w & 0x3f]; w >>>= 6; }
  return out;
}

export function cryptSalt(len: number): string {
  return [...randomBytes(len)].map((b) => ITOA64[b & 0x3f]).join('');
}

function repeatTo(src: Buffer, len: number): Buffer {
  const out = Buffer.alloc(len);
  for (let i = 0; i < len; i += src.length) src.copy(out, i, 0, Math.min(src.length, len - i));
  return out;
}

const SHA512_ORDER = [
  [0, 21, 42], [22, 43, 1], [44, 2, 23], [3, 24, 45], [25, 46, 4], [47, 5, 26], [6, 27, 48], [28, 49, 7],
  [50, 8, 29], [9, 30, 51], [31, 52, 10], [53, 11, 32], [12, 33, 54], [34, 55, 13], [56, 14, 35],
  [15, 36, 57], [37, 58, 16], [59, 17, 38], [18, 39, 60], [40, 61, 19], [62, 20, 41],
];
const SHA256_ORDER = [
  [0, 10, 20], [21, 1, 11], [12, 22, 2], [3, 13, 23], [24, 4, 14], [15, 25, 5], [6, 16, 26], [27, 7, 17],
  [18, 28, 8], [9, 19, 29],
];

/** SHA-crypt: `$5$` (sha256) or `$6$` (sha512). `setting` is the stored hash or `$6$[rounds=N$]salt`. */
export function shaCrypt(alg: 'sha256' | 'sha512', pw: Buffer, setting: string): string | null {
  const id = alg === 'sha512' ? '6' : '5';
  const m = new RegExp(`^\\$${id}\\$(?:rounds=(\\d+)\\$)?([^$]{0,16})`).exec(setting);
  if (!m) return null;
  const roundsGiven = m[1] !== undefined;
  const rounds = roundsGiven ? Math.min(999_999_999, Math.max(1000, Number(m[1]))) : 5000;
  const salt = Buffer.from(m[2], 'latin1');
  const H = () => createHash(alg);
  const hl = alg === 'sha512' ? 64 : 32;

  const B = H().update(pw).update(salt).update(pw).digest();
  const a = H().update(pw).update(salt);
  let cnt = pw.length;
  for (; cnt > hl; cnt -= hl) a.update(B);
  a.update(B.subarray(0, cnt));
  for (cnt = pw.length; cnt > 0; cnt >>= 1) a.update(cnt & 1 ? B : pw);
  let C = a.digest();

  const dp = H();
  for (let i = 0; i < pw.length; i++) dp.update(pw);
  const P = repeatTo(dp.digest(), pw.length);
  const ds = H();
  for (let i = 0; i < 16 + C[0]; i++) ds.update(salt);
  const S = repeatTo(ds.digest(), salt.length);

  for (let i = 0; i < rounds; i++) {
    const c = H();
    c.update(i & 1 ? P : C);
    if (i % 3) c.update(S);
    if (i % 7) c.update(P);
    c.update(i & 1 ? C : P);
    C = c.digest();
  }
  let out = '';
  for (const [x, y, z] of alg === 'sha512' ? SHA512_ORDER : SHA256_ORDER) out += b64From24(C[x], C[y], C[z], 4);
  out += alg === 'sha512' ? b64From24(0, 0, C[63], 2) : b64From24(0, C[31], C[30], 3);
  return `$${id}$${roundsGiven ? `rounds=${m[1]}$` : ''}${m[2]}$${out}`;
}

/** MD5-crypt (`$1$salt$hash`). */
export function md5Crypt(pw: Buffer, setting: string): string | null {
  const m = /^\$1\$([^$]{0,8})/.exec(setting);
  if (!m) return null;
  const salt = Buffer.from(m[1], 'latin1');
  const magic = Buffer.from('$1$');
  let fin = createHash('md5').update(pw).update(salt).update(pw).digest();
  const ctx = createHash('md5').update(pw).update(magic).update(salt);
  for (let pl = pw.length; pl > 0; pl -= 16) ctx.update(fin.subarray(0, Math.min(pl, 16)));
  for (let i = pw.length; i; i >>= 1) ctx.update(i & 1 ? Buffer.from([0]) : pw.subarray(0, 1));
  fin = ctx.digest();
  for (let i = 0; i < 1000; i++) {
    const c = createHash('md5');
    c.update(i & 1 ? pw : fin);
    if (i % 3) c.update(salt);
    if (i % 7) c.update(pw);
    c.update(i & 1 ? fin : pw);
    fin = c.digest();
  }
  const f = fin;
  const out = b64From24(f[0], f[6], f[12], 4) + b64From24(f[1], f[7], f[13], 4) + b64From24(f[2], f[8], f[14], 4)
    + b64From24(f[3], f[9], f[15], 4) + b64From24(f[4], f[10], f[5], 4) + b64From24(0, 0, f[11], 2);
  return `$1$${m[1]}$${out}`;
}

/** bcrypt; Dovecot writes `$2y$`, bcryptjs `$2b$`: the algorithm is the same. */
export function bcryptVerify(pw: Buffer, stored: string): boolean {
  if (!/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(stored)) throw new Error('invalid bcrypt hash');
  return bcrypt.compareSync(pw.toString('utf8'), stored.replace(/^\$2y\$/, '$2b$'));
}

export function bcryptHash(pw: Buffer, cost: number): string {
  return bcrypt.hashSync(pw.toString('utf8'), bcrypt.genSaltSync(cost)).replace(/^\$2b\$/, '$2y$');
}

/** crypt(3) dispatch on the `$id$` prefix, as glibc/libxcrypt does for Dovecot's CRYPT. */
export function cryptDispatch(pw: Buffer, stored: string): boolean {
  if (stored.startsWith('$2')) return bcryptVerify(pw, stored);
  let calc: string | null = null;
  if (stored.startsWith('$6$')) calc = shaCrypt('sha512', pw, stored);
  else if (stored.startsWith('$5$')) calc = shaCrypt('sha256', pw, stored);
  else if (stored.startsWith('$1$')) calc = md5Crypt(pw, stored);
  else throw new Error(`unsupported crypt hash type (${stored.startsWith('$') ? stored.split('$')[1] : 'DES'})`);
  if (calc === null) throw new Error('malformed crypt hash');
  return calc === stored;
}
