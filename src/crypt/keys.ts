/**
 * EC keys in Dovecot 2.3's dcrypt formats (mail-crypt-format.md §3): the
 * curves mail-crypt offers, compressed-point SPKI and the SHA-256 key id
 * (plus the legacy id of v1 data), OpenSSL MPI scalars, and the "dovecot"
 * key strings — v2 public keys and v2 private keys unencrypted (enctype 0),
 * encrypted with a password (2: PBKDF2-SHA256 → AES-256-CTR) or to another
 * EC key (1: ephemeral ECDH → PBKDF2 → AES-256-CTR), and v1 strings for
 * reading. There is no MAC on encrypted private keys, so every decryption
 * is checked against the key id (a wrong password is caught there).
 * node:crypto (OpenSSL) does the EC and AES work: it is several times faster
 * than the pure-JS noble implementations for ECDH, the hot path (see
 * ephemeralAgreement for which of its interfaces, per curve).
 */
import { createCipheriv, createDecipheriv, createECDH, createHash, createPublicKey, diffieHellman, generateKeyPairSync, pbkdf2, pbkdf2Sync, randomBytes, ECDH, type KeyObject } from 'node:crypto';

export class CryptError extends Error {}

export interface Curve {
  /** OpenSSL / node name, as in `mail_crypt_curve`. */
  name: 'prime256v1' | 'secp384r1' | 'secp521r1';
  oid: string;
  /** OpenSSL NID (v1 key strings). */
  nid: number;
  /** Field size in bytes (scalar and coordinate length). */
  size: number;
  oidDer: Buffer;
}

const ECPUBKEY_OID = Buffer.from('06072a8648ce3d0201', 'hex');
export const CURVES: Curve[] = [
  { name: 'prime256v1', oid: '1.2.840.10045.3.1.7', nid: 415, size: 32, oidDer: Buffer.from('06082a8648ce3d030107', 'hex') },
  { name: 'secp384r1', oid: '1.3.132.0.34', nid: 715, size: 48, oidDer: Buffer.from('06052b81040022', 'hex') },
  { name: 'secp521r1', oid: '1.3.132.0.35', nid: 716, size: 66, oidDer: Buffer.from('06052b81040023', 'hex') },
];
const ALIASES: Record<string, Curve['name']> = { 'p-256': 'prime256v1', secp256r1: 'prime256v1', 'p-384': 'secp384r1', 'p-521': 'secp521r1' };

export function curveByName(name: string): Curve {
  const n = ALIASES[name.toLowerCase()] ?? name;
  const c = CURVES.find((x) => x.name === n);
  if (!c) throw new CryptError(`unsupported curve ${name} (supported: ${CURVES.map((x) => x.name).join(', ')})`);
  return c;
}

function curveBy(pred: (c: Curve) => boolean, what: string): Curve {
  const c = CURVES.find(pred);
  if (!c) throw new CryptError(`key for an unknown curve (${what})`);
  return c;
}

export interface PublicKey { curve: Curve; /** uncompressed 04‖X‖Y */ point: Buffer }
export interface PrivateKey extends PublicKey { /** scalar, left-padded to the field size */ d: Buffer }

export function compressPoint(k: PublicKey): Buffer {
  return ECDH.convertKey(k.point, k.curve.name, undefined, undefined, 'compressed') as Buffer;
}

function derLen(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  if (n < 0x100) return Buffer.from([0x81, n]);
  return Buffer.from([0x82, n >> 8, n & 0xff]);
}
const der = (tag: number, body: Buffer) => Buffer.concat([Buffer.from([tag]), derLen(body.length), body]);

/** DER SubjectPublicKeyInfo with the compressed point: what Dovecot hashes for the id. */
export function spki(k: PublicKey): Buffer {
  return der(0x30, Buffer.concat([der(0x30, Buffer.concat([ECPUBKEY_OID, k.curve.oidDer])), der(0x03, Buffer.concat([Buffer.from([0]), compressPoint(k)]))]));
}

/** Minimal DER walk of an EC SPKI (compressed or uncompressed point). */
export function parseSpki(buf: Buffer): PublicKey {
  const read = (b: Buffer, off: number): { tag: number; start: number; end: number } => {
    const tag = b[off];
    let len = b[off + 1];
    let start = off + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let i = 0; i < n; i++) len = (len << 8) | b[start + i];
      start += n;
    }
    if (start + len > b.length || tag === undefined) throw new CryptError('malformed public key (DER)');
    return { tag, start, end: start + len };
  };
  const outer = read(buf, 0);
  const alg = read(buf, outer.start);
  const oid1 = read(buf, alg.start);
  const oid2 = read(buf, oid1.end);
  const bits = read(buf, alg.end);
  if (outer.tag !== 0x30 || alg.tag !== 0x30 || bits.tag !== 0x03) throw new CryptError('malformed public key (DER)');
  if (!buf.subarray(alg.start, oid1.end).equals(ECPUBKEY_OID)) throw new CryptError('not an EC public key');
  const oidDer = buf.subarray(oid1.end, oid2.end);
  const curve = curveBy((c) => c.oidDer.equals(oidDer), `OID ${oidDer.toString('hex')}`);
  return publicFromPoint(curve, buf.subarray(bits.start + 1, bits.end));
}

export function publicFromPoint(curve: Curve, point: Buffer): PublicKey {
  try {
    return { curve, point: ECDH.convertKey(point, curve.name, undefined, undefined, 'uncompressed') as Buffer };
  } catch {
    throw new CryptError(`invalid ${curve.name} point`);
  }
}

/** Dovecot's key id: lowercase hex SHA-256 of the compressed-point SPKI. */
export function keyId(k: PublicKey): string {
  return createHash('sha256').update(spki(k)).digest('hex');
}

/** v1 id: SHA-256 of the upper-case hex of the compressed point (EC_POINT_point2hex). */
export function legacyKeyId(k: PublicKey): string {
  return createHash('sha256').update(compressPoint(k).toString('hex').toUpperCase()).digest('hex');
}

export function privateFromScalar(curve: Curve, scalar: Buffer): PrivateKey {
  const d = Buffer.alloc(curve.size);
  const s = scalar.subarray(Math.max(0, scalar.length - curve.size));
  if (scalar.subarray(0, scalar.length - s.length).some((b) => b !== 0)) throw new CryptError('private key scalar too long');
  s.copy(d, curve.size - s.length);
  let e: ECDH;
  try {
    e = createECDH(curve.name);
    ecOps.multiplications++;
    e.setPrivateKey(d);
  } catch {
    throw new CryptError('invalid private key scalar');
  }
  return withEcdh({ curve, d, point: e.getPublicKey() }, e);
}

/** A fresh key pair: one base-point multiplication, and its ECDH object kept for ecdh(). */
export function generateKey(curve: Curve): PrivateKey {
  const e = createECDH(curve.name);
  ecOps.multiplications++;
  e.generateKeys();
  const raw = e.getPrivateKey();
  const d = Buffer.alloc(curve.size);
  raw.copy(d, curve.size - raw.length);
  return withEcdh({ curve, d, point: e.getPublicKey() }, e);
}

/**
 * Counts the EC scalar multiplications this thread asked OpenSSL for (key
 * generation, setPrivateKey, ECDH). P-521 makes each one cost milliseconds on
 * Node's bundled OpenSSL, so how many a message takes is part of the contract:
 * test/crypt/ec-op-count.test.ts holds a delivery to one keygen + one ECDH.
 */
export const ecOps = { multiplications: 0 };

// setPrivateKey() recomputes the public point (a full scalar multiplication,
// ~3 ms on P-521): the ECDH object that made or loaded a key stays with it,
// so ecdh() never re-creates one for a key whose public point is known
const ecdhObjects = new WeakMap<PrivateKey, ECDH>();

function withEcdh(k: PrivateKey, e: ECDH): PrivateKey {
  ecdhObjects.set(k, e);
  return k;
}

/** ECDH shared secret = X coordinate, field-size bytes (what OpenSSL's derive gives Dovecot). */
export function ecdh(priv: PrivateKey, peer: Buffer): Buffer {
  let e = ecdhObjects.get(priv);
  if (!e) {
    // a PrivateKey built by hand (not by this module): load it once
    e = createECDH(priv.curve.name);
    ecOps.multiplications++;
    e.setPrivateKey(priv.d);
    ecdhObjects.set(priv, e);
  }
  ecOps.multiplications++;
  try {
    return e.computeSecret(peer);
  } catch {
    throw new CryptError(`invalid ${priv.curve.name} peer point`);
  }
}

// The curves on which node:crypto's KeyObjects (EVP_PKEY keygen + derive) beat its ECDH objects, measured on
// Node 20's bundled OpenSSL 3.0 (bench/ec-ops.bench.ts; CPU per ephemeral keygen + ECDH): P-521 4.4–4.7 ms
// against 5.7 ms (and WebCrypto 6.8 ms, @noble/curves 12.8 ms: its keygen is the fastest, its ECDH the slowest),
// but P-256 0.23 ms against 0.15 ms. All are the same ECDH on the same curve: what is written does not change.
const KEYOBJECT_CURVES = new Set<Curve['name']>(['secp384r1', 'secp521r1']);
/** A peer public key as a KeyObject, made once per key (WeakMap: the worker keeps its folder keys). */
const peerObjects = new WeakMap<PublicKey, KeyObject>();

function peerObject(to: PublicKey): KeyObject {
  let k = peerObjects.get(to);
  if (!k) {
    const half = (to.point.length - 1) / 2;
    const crv = to.curve.name === 'secp521r1' ? 'P-521' : to.curve.name === 'secp384r1' ? 'P-384' : 'P-256';
    k = createPublicKey({ key: { kty: 'EC', crv, x: to.point.subarray(1, 1 + half).toString('base64url'), y: to.point.subarray(1 + half).toString('base64url') }, format: 'jwk' });
    peerObjects.set(to, k);
  }
  return k;
}

/**
 * A fresh ephemeral key pair on `to`'s curve and its ECDH secret with `to`
 * (one message's key agreement): one base-point and one variable-point
 * multiplication, by whichever node:crypto interface is faster on the curve.
 */
export function ephemeralAgreement(to: PublicKey): { point: Buffer; secret: Buffer } {
  if (!KEYOBJECT_CURVES.has(to.curve.name)) {
    const eph = generateKey(to.curve);
    return { point: eph.point, secret: ecdh(eph, to.point) };
  }
  ecOps.multiplications++;
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: to.curve.name });
  const jwk = privateKey.export({ format: 'jwk' }) as { x: string; y: string };
  const size = to.curve.size;
  const point = Buffer.alloc(1 + 2 * size);
  point[0] = 4;
  // JWK coordinates are the field size already; padded all the same
  const x = Buffer.from(jwk.x, 'base64url');
  const y = Buffer.from(jwk.y, 'base64url');
  x.copy(point, 1 + size - x.length);
  y.copy(point, 1 + 2 * size - y.length);
  ecOps.multiplications++;
  let secret: Buffer;
  try {
    secret = diffieHellman({ privateKey, publicKey: peerObject(to) });
  } catch {
    throw new CryptError(`invalid ${to.curve.name} peer point`);
  }
  return { point, secret };
}

/** OpenSSL BN_bn2mpi: 4-byte length, minimal big-endian magnitude, a 00 when the top bit is set. */
export function toMpi(d: Buffer): Buffer {
  let i = 0;
  while (i < d.length && d[i] === 0) i++;
  let mag = d.subarray(i);
  if (mag.length && mag[0] & 0x80) mag = Buffer.concat([Buffer.from([0]), mag]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(mag.length);
  return Buffer.concat([len, mag]);
}

/** OpenSSL's BN_mpi2bn checks, with its error strings (a wrong password usually ends here). */
export function fromMpi(b: Buffer): Buffer {
  if (b.length < 4 || b[0] & 0x80) throw new CryptError('error:0180006A:bignum routines::invalid length');
  if (b.readUInt32BE(0) + 4 !== b.length) throw new CryptError('error:01800068:bignum routines::encoding error');
  if (b.length > 4 && b[4] & 0x80) throw new CryptError('Key id mismatch after load'); // negative: not a valid scalar
  return b.subarray(4);
}

function ctr(key: Buffer, iv: Buffer, data: Buffer, decrypt: boolean): Buffer {
  const c = decrypt ? createDecipheriv('aes-256-ctr', key, iv) : createCipheriv('aes-256-ctr', key, iv);
  return Buffer.concat([c.update(data), c.final()]);
}

export interface PbkdfParams { salt: Buffer; rounds: number; hash: string }

export function pbkdf2Async(secret: Buffer, p: PbkdfParams, len: number): Promise<Buffer> {
  return new Promise((res, rej) => pbkdf2(secret, p.salt, p.rounds, len, p.hash, (e, k) => (e ? rej(e) : res(k))));
}

/** The parsed form of a private key string; decryption happens in decryptPrivateKey. */
export type PrivateKeyString =
  | { v: 2; curve: Curve; enc: 0; scalar: Buffer; id: string }
  | { v: 2; curve: Curve; enc: 2; cipher: string; salt: Buffer; hash: string; rounds: number; data: Buffer; id: string }
  | { v: 2; curve: Curve; enc: 1; cipher: string; salt: Buffer; hash: string; rounds: number; data: Buffer; ephemeral: Buffer; encId: string; id: string }
  | { v: 1; curve: Curve; enc: 0 | 1 | 2; data: Buffer; salt?: Buffer; ephemeral?: Buffer; encId?: string; id: string };

const hex = (s: string, what: string): Buffer => {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(s)) throw new CryptError(`malformed key string (${what})`);
  return Buffer.from(s, 'hex');
};

export function parsePrivateKeyString(s: string): PrivateKeyString {
  const f = s.trim().split(/[:\t]/);
  if (f[0] === '2') {
    if (f.length < 5) throw new CryptError('malformed private key string');
    const curve = curveBy((c) => c.oid === f[1], f[1]);
    const enc = Number(f[2]);
    if (enc === 0 && f.length === 5) return { v: 2, curve, enc: 0, scalar: fromMpi(hex(f[3], 'scalar')), id: f[4] };
    if (enc === 2 && f.length === 9) return { v: 2, curve, enc: 2, cipher: f[3], salt: hex(f[4], 'salt'), hash: f[5], rounds: Number(f[6]), data: hex(f[7], 'data'), id: f[8] };
    if (enc === 1 && f.length === 11) return { v: 2, curve, enc: 1, cipher: f[3], salt: hex(f[4], 'salt'), hash: f[5], rounds: Number(f[6]), data: hex(f[7], 'data'), ephemeral: hex(f[8], 'ephemeral key'), encId: f[9], id: f[10] };
    throw new CryptError(`malformed private key string (enctype ${f[2]}, ${f.length} fields)`);
  }
  if (f[0] === '1') {
    const curve = curveBy((c) => String(c.nid) === f[1], `NID ${f[1]}`);
    const enc = Number(f[2]);
    if (enc === 0 && f.length === 5) return { v: 1, curve, enc: 0, data: hex(f[3], 'scalar'), id: f[4] };
    if (enc === 2 && f.length === 6) return { v: 1, curve, enc: 2, data: hex(f[3], 'data'), salt: hex(f[4], 'salt'), id: f[5] };
    if (enc === 1 && f.length === 7) return { v: 1, curve, enc: 1, data: hex(f[3], 'data'), ephemeral: hex(f[4], 'ephemeral key'), encId: f[5], id: f[6] };
    throw new CryptError('malformed v1 private key string');
  }
  throw new CryptError(`unsupported key string version ${f[0]}`);
}

export function parsePublicKeyString(s: string): PublicKey {
  const f = s.trim().split(/[:\t]/);
  if (f[0] === '2' && f.length === 3) {
    const k = parseSpki(hex(f[1], 'public key'));
    if (keyId(k) !== f[2]) throw new CryptError('Key id mismatch after load');
    return k;
  }
  if (f[0] === '1' && f.length === 4) {
    const curve = curveBy((c) => String(c.nid) === f[1], `NID ${f[1]}`);
    return publicFromPoint(curve, hex(f[2], 'point'));
  }
  throw new CryptError('malformed public key string');
}

export function publicKeyString(k: PublicKey): string {
  return `2:${spki(k).toString('hex')}:${keyId(k)}`;
}

/** Which key a private key string needs to be opened: nothing, the password, or the key with this id. */
export function privateKeyNeeds(p: PrivateKeyString): { kind: 'none' } | { kind: 'password' } | { kind: 'key'; id: string } {
  if (p.enc === 0) return { kind: 'none' };
  if (p.enc === 2) return { kind: 'password' };
  return { kind: 'key', id: p.encId! };
}

function checkId(k: PrivateKey, p: PrivateKeyString): PrivateKey {
  const id = p.v === 2 ? keyId(k) : legacyKeyId(k);
  if (id !== p.id) throw new CryptError('Key id mismatch after load');
  return k;
}

function scalarFromMpi(curve: Curve, mpi: Buffer): PrivateKey {
  // what OpenSSL reports for a wrong password: the MPI does not parse, or the key is not the one named
  const scalar = fromMpi(mpi);
  try {
    return privateFromScalar(curve, scalar);
  } catch {
    throw new CryptError('Key id mismatch after load');
  }
}

/**
 * Open a private key string (synchronous: run it on a worker for many keys).
 * `password` for enctype 2, `encKey` (the key with id `encId`) for enctype 1.
 */
export function decryptPrivateKey(p: PrivateKeyString, opts: { password?: Buffer; encKey?: PrivateKey }): PrivateKey {
  if (p.v === 2) {
    if (p.enc === 0) return checkId(privateFromScalar(p.curve, p.scalar), p);
    if (p.cipher !== 'aes-256-ctr') throw new CryptError(`unsupported key cipher ${p.cipher}`);
    let secret: Buffer;
    if (p.enc === 2) {
      if (!opts.password) throw new CryptError('Password not available');
      secret = opts.password;
    } else {
      if (!opts.encKey) throw new CryptError(`Private key not available (encrypted to key ${p.encId})`);
      secret = ecdh(opts.encKey, p.ephemeral);
    }
    const kd = pbkdf2Sync(secret, p.salt, p.rounds, 48, p.hash);
    return checkId(scalarFromMpi(p.curve, ctr(kd.subarray(0, 32), kd.subarray(32, 48), p.data, true)), p);
  }
  // v1: zero IV, no PBKDF2 for key-encryption; the password is hex-decoded first (Dovecot quirk)
  if (p.enc === 0) return checkId(privateFromScalar(p.curve, p.data), p);
  let key: Buffer;
  if (p.enc === 2) {
    if (!opts.password) throw new CryptError('Password not available');
    key = pbkdf2Sync(Buffer.from(opts.password.toString('utf8'), 'hex'), p.salt!, 16, 32, 'sha256');
  } else {
    if (!opts.encKey) throw new CryptError(`Private key not available (encrypted to key ${p.encId})`);
    key = createHash('sha256').update(ecdh(opts.encKey, p.ephemeral!)).digest();
  }
  return checkId(privateFromScalar(p.curve, ctr(key, Buffer.alloc(16), p.data, true)), p);
}

function head(k: PrivateKey): string { return `2:${k.curve.oid}`; }

export function privateKeyStringPlain(k: PrivateKey): string {
  return `${head(k)}:0:${toMpi(k.d).toString('hex')}:${keyId(k)}`;
}

/** enctype 2, as 2.3 writes it: aes-256-ctr, 8-byte salt, sha256, 2048 rounds. */
export function privateKeyStringWithPassword(k: PrivateKey, password: Buffer, salt = randomBytes(8)): string {
  const kd = pbkdf2Sync(password, salt, 2048, 48, 'sha256');
  const data = ctr(kd.subarray(0, 32), kd.subarray(32, 48), toMpi(k.d), false);
  return `${head(k)}:2:aes-256-ctr:${salt.toString('hex')}:sha256:2048:${data.toString('hex')}:${keyId(k)}`;
}

/** enctype 1: encrypted to `to` (the user's public key) with a fresh ephemeral key on `to`'s curve. */
export function privateKeyStringToKey(k: PrivateKey, to: PublicKey, salt = randomBytes(8)): string {
  const eph = generateKey(to.curve);
  const secret = ecdh(eph, to.point);
  const kd = pbkdf2Sync(secret, salt, 2048, 48, 'sha256');
  const data = ctr(kd.subarray(0, 32), kd.subarray(32, 48), toMpi(k.d), false);
  return `${head(k)}:1:aes-256-ctr:${salt.toString('hex')}:sha256:2048:${data.toString('hex')}:${eph.point.toString('hex')}:${keyId(to)}:${keyId(k)}`;
}

/** PKCS#8 PEM of a private key (what `doveadm mailbox cryptokey export` prints). */
export function privateKeyPem(k: PrivateKey): string {
  const ecPriv = der(0x30, Buffer.concat([
    Buffer.from('020101', 'hex'),
    der(0x04, k.d),
    der(0xa1, der(0x03, Buffer.concat([Buffer.from([0]), k.point]))),
  ]));
  const p8 = der(0x30, Buffer.concat([
    Buffer.from('020100', 'hex'),
    der(0x30, Buffer.concat([ECPUBKEY_OID, k.curve.oidDer])),
    der(0x04, ecPriv),
  ]));
  const b64 = p8.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN PRIVATE KEY-----\n${b64}\n-----END PRIVATE KEY-----\n`;
}
