/**
 * Dovecot's password schemes (src/auth/password-scheme*.c): `{SCHEME}data`
 * prefixes (case-insensitive), `.b64`/`.base64`/`.hex` encoding suffixes, hex
 * accepted where the raw length says so, unprefixed hashes through
 * default_pass_scheme. Synchronous: the public async API (index.ts) runs this
 * on worker threads. Errors never contain the hash or the password.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { argon2i, argon2id } from '@noble/hashes/argon2.js';
import { cramMd5Context } from './cram-md5.js';
import { bcryptHash, cryptDispatch, cryptSalt, md5Crypt, shaCrypt } from './crypt-algorithms.js';
import { SchemeError } from './errors.js';

export { SchemeError };

type Encoding = 'base64' | 'hex' | 'none';

interface Scheme {
  /** default encoding of the stored data for digest schemes */
  encoding: Encoding;
  /** raw digest length: hex of exactly this size is accepted whatever the encoding */
  rawLength?: number;
  verify(plain: Buffer, data: string, raw: () => Buffer, user: string): boolean;
  generate(plain: Buffer, opts: { rounds?: number; user: string }): string | Buffer;
}

function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function digest(alg: string): Scheme {
  return {
    encoding: 'base64',
    rawLength: createHash(alg).digest().length,
    verify: (p, _d, raw) => safeEqual(createHash(alg).update(p).digest(), raw()),
    generate: (p) => createHash(alg).update(p).digest(),
  };
}

function salted(alg: string, len: number): Scheme {
  return {
    encoding: 'base64',
    verify: (p, _d, raw) => {
      const r = raw();
      if (r.length <= len) throw new SchemeError('stored hash is too short');
      return safeEqual(createHash(alg).update(p).update(r.subarray(len)).digest(), r.subarray(0, len));
    },
    generate: (p) => {
      const salt = randomBytes(len === 16 ? 4 : 8);
      return Buffer.concat([createHash(alg).update(p).update(salt).digest(), salt]);
    },
  };
}

const crypt = (gen: (p: Buffer, rounds?: number) => string): Scheme => ({
  encoding: 'none',
  verify: (p, d) => {
    try { return cryptDispatch(p, d); } catch (e) { throw new SchemeError((e as Error).message); }
  },
  generate: (p, o) => gen(p, o.rounds),
});

function argon2(kind: 'argon2i' | 'argon2id'): Scheme {
  // Node 20 has no Argon2 in node:crypto; @noble/hashes (already a dependency
  // of @noble/curves) implements it in pure JS. It runs on the hash workers.
  const fn = kind === 'argon2i' ? argon2i : argon2id;
  return {
    encoding: 'none',
    verify: (p, d) => {
      const m = new RegExp(`^\\$${kind}\\$v=19\\$m=(\\d+),t=(\\d+),p=(\\d+)\\$([A-Za-z0-9+/]+)\\$([A-Za-z0-9+/]+)$`).exec(d);
      if (!m) throw new SchemeError(`malformed ${kind.toUpperCase()} hash`);
      const salt = Buffer.from(m[4], 'base64');
      const want = Buffer.from(m[5], 'base64');
      const got = Buffer.from(fn(p, salt, { m: Number(m[1]), t: Number(m[2]), p: Number(m[3]), dkLen: want.length }));
      return safeEqual(got, want);
    },
    generate: (p, o) => {
      const [mem, t] = kind === 'argon2i' ? [32768, o.rounds ?? 4] : [65536, o.rounds ?? 3];
      const salt = randomBytes(16);
      const h = Buffer.from(fn(p, salt, { m: mem, t, p: 1, dkLen: 32 }));
      const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');
      return `$${kind}$v=19$m=${mem},t=${t},p=1$${b64(salt)}$${b64(h)}`;
    },
  };
}

const pbkdf2: Scheme = {
  encoding: 'none',
  verify: (p, d) => {
    const m = /^\$1\$([^$]+)\$(\d+)\$([0-9a-fA-F]+)$/.exec(d);
    if (!m) throw new SchemeError('malformed PBKDF2 hash');
    const want = Buffer.from(m[3], 'hex');
    return safeEqual(pbkdf2Sync(p, m[1], Number(m[2]), want.length, 'sha1'), want);
  },
  generate: (p, o) => {
    const salt = cryptSalt(16);
    const rounds = o.rounds ?? 5000;
    return `$1$${salt}$${rounds}$${pbkdf2Sync(p, salt, rounds, 20, 'sha1').toString('hex')}`;
  },
};

function scram(alg: 'sha1' | 'sha256'): Scheme {
  return {
    encoding: 'none',
    verify: (p, d) => {
      const [iter, saltB64, storedKeyB64] = d.split(',');
      if (!/^\d+$/.test(iter ?? '') || !saltB64 || !storedKeyB64) throw new SchemeError('malformed SCRAM hash');
      const len = alg === 'sha1' ? 20 : 32;
      const salted = pbkdf2Sync(p, Buffer.from(saltB64, 'base64'), Number(iter), len, alg);
      const clientKey = createHmac(alg, salted).update('Client Key').digest();
      return safeEqual(createHash(alg).update(clientKey).digest(), Buffer.from(storedKeyB64, 'base64'));
    },
    generate: (p) => {
      const salt = randomBytes(16);
      const len = alg === 'sha1' ? 20 : 32;
      const salted = pbkdf2Sync(p, salt, 4096, len, alg);
      const storedKey = createHash(alg).update(createHmac(alg, salted).update('Client Key').digest()).digest();
      const serverKey = createHmac(alg, salted).update('Server Key').digest();
      return `4096,${salt.toString('base64')},${storedKey.toString('base64')},${serverKey.toString('base64')}`;
    },
  };
}

const plain: Scheme = {
  encoding: 'none',
  verify: (p, d) => safeEqual(p, Buffer.from(d, 'utf8')),
  generate: (p) => p.toString('utf8'),
};

const plainTrunc: Scheme = {
  encoding: 'none',
  verify: (p, d) => {
    const m = /^(\d+)-(.*)$/s.exec(d);
    if (!m) return safeEqual(p, Buffer.from(d, 'utf8'));
    return safeEqual(p.subarray(0, Number(m[1])), Buffer.from(m[2], 'utf8'));
  },
  generate: (p) => p.toString('utf8'),
};

const cramMd5: Scheme = {
  encoding: 'hex',
  verify: (p, _d, raw) => safeEqual(cramMd5Context(p), raw()),
  generate: (p) => cramMd5Context(p),
};

const SCHEMES: Record<string, Scheme> = {
  'CRAM-MD5': cramMd5,
  'BLF-CRYPT': crypt((p, r) => bcryptHash(p, r ?? 5)),
  CRYPT: crypt((p, r) => bcryptHash(p, r ?? 5)),
  'SHA512-CRYPT': crypt((p, r) => shaCrypt('sha512', p, `$6$${r ? `rounds=${r}$` : ''}${cryptSalt(16)}`)!),
  'SHA256-CRYPT': crypt((p, r) => shaCrypt('sha256', p, `$5$${r ? `rounds=${r}$` : ''}${cryptSalt(16)}`)!),
  'MD5-CRYPT': crypt((p) => md5Crypt(p, `$1$${cryptSalt(8)}`)!),
  SSHA512: salted('sha512', 64),
  SSHA256: salted('sha256', 32),
  SSHA: salted('sha1', 20),
  SMD5: salted('md5', 16),
  SHA512: digest('sha512'),
  SHA256: digest('sha256'),
  SHA: digest('sha1'),
  'PLAIN-MD5': { ...digest('md5'), encoding: 'hex' },
  'LDAP-MD5': digest('md5'),
  PLAIN: plain,
  'PLAIN-TRUNC': plainTrunc,
  ARGON2I: argon2('argon2i'),
  ARGON2ID: argon2('argon2id'),
  PBKDF2: pbkdf2,
  'SCRAM-SHA-1': scram('sha1'),
  'SCRAM-SHA-256': scram('sha256'),
};
const ALIASES: Record<string, string> = { MD5: 'MD5-CRYPT', CLEAR: 'PLAIN', CLEARTEXT: 'PLAIN', SHA1: 'SHA', 'PLAIN-MD4': '' };

/** Scheme names `sealadm pw -l` lists. */
export const SCHEME_NAMES = [...Object.keys(SCHEMES), 'MD5', 'CLEAR', 'CLEARTEXT', 'SHA1'].sort();

interface Parsed { name: string; scheme: Scheme; encoding: Encoding; data: string }

function lookup(nameWithSuffix: string): { name: string; scheme: Scheme; encoding: Encoding } {
  let name = nameWithSuffix.toUpperCase();
  let encoding: Encoding | undefined;
  const dot = name.lastIndexOf('.');
  if (dot > 0) {
    const suffix = name.slice(dot + 1);
    if (suffix === 'HEX') encoding = 'hex';
    else if (suffix === 'B64' || suffix === 'BASE64') encoding = 'base64';
    if (encoding) name = name.slice(0, dot);
  }
  const canonical = ALIASES[name] ?? name;
  const scheme = SCHEMES[canonical];
  if (!scheme) throw new SchemeError(`Unknown scheme ${nameWithSuffix}`);
  return { name: canonical, scheme, encoding: encoding ?? scheme.encoding };
}

/** Split `{SCHEME}data`; unprefixed data uses the default scheme. */
export function parseStored(stored: string, defaultScheme: string, noScheme = false): Parsed {
  const m = noScheme ? null : /^\{([^}]+)\}(.*)$/s.exec(stored);
  const { name, scheme, encoding } = lookup(m ? m[1] : defaultScheme);
  return { name, scheme, encoding, data: m ? m[2] : stored };
}

function decodeRaw(data: string, encoding: Encoding, rawLength?: number): Buffer {
  // Dovecot also accepts hex for digests when the length says it is hex.
  if (encoding === 'hex' || (rawLength !== undefined && data.length === rawLength * 2 && /^[0-9a-fA-F]+$/.test(data))) {
    if (!/^[0-9a-fA-F]*$/.test(data) || data.length % 2) throw new SchemeError('stored hash is not valid hex');
    return Buffer.from(data, 'hex');
  }
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(data)) throw new SchemeError('stored hash is not valid base64');
  return Buffer.from(data, 'base64');
}

export function verifySync(plain: Buffer, stored: string, defaultScheme: string, user: string, noScheme = false): boolean {
  const p = parseStored(stored, defaultScheme, noScheme);
  return p.scheme.verify(plain, p.data, () => decodeRaw(p.data, p.encoding, p.scheme.rawLength), user);
}

export function hashSync(schemeName: string, plain: Buffer, opts: { rounds?: number; user?: string } = {}): string {
  const { scheme, encoding } = lookup(schemeName);
  const out = scheme.generate(plain, { rounds: opts.rounds, user: opts.user ?? '' });
  const text = typeof out === 'string' ? out : encoding === 'hex' ? out.toString('hex') : out.toString('base64');
  return `{${schemeName.toUpperCase()}}${text}`;
}
