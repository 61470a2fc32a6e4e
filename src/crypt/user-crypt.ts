/**
 * mail-crypt for one user, from Dovecot's settings (plugin {} and userdb
 * fields: mail_crypt_save_version, mail_crypt_curve,
 * mail_crypt_private_password, mail_crypt_require_encrypted_user_key,
 * mail_crypt_global_public_key / _private_key, and Sealmail's
 * sealmail_crypt_key_rotation): the MessageCodec the store
 * runs every message through and the IndexCipher that seals everything the
 * store caches. `unlockUserCrypt` is the login path (password → keys, once
 * per session); `deliveryCrypt` the offline path (public keys only).
 *
 * Re-reads cost AES only: each message's unwrapped key data is kept in
 * `sealmail.keycache` beside the attribute dict, sealed (AES-256-GCM) under a
 * key derived from the user's private key — useless without the password.
 */
import { createCipheriv, createDecipheriv, createHash, createPrivateKey, createPublicKey, hkdfSync, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import type { DovecotConfig } from '../config/settings.js';
import { resolveMailPlugins } from '../config/mail-plugins.js';
import { parseTime } from '../config/values.js';
import type { IndexCipher, MessageCodec } from './codec.js';
import { identityCipher, identityCodec } from './codec.js';
import { AttributeDict, attributeDictFile } from './attributes.js';
import { decryptStream, encryptStream, headerBytesNeeded, isEncrypted, parseHeader, type MailHeader } from './container.js';
import { cryptJob, toWirePriv, toWirePub } from './crypt-worker.js';
import {
  CryptError, curveByName, keyId, legacyKeyId, parsePrivateKeyString, decryptPrivateKey, parsePublicKeyString,
  publicFromPoint, privateFromScalar, type PrivateKey, type PublicKey,
} from './keys.js';
import { UserKeystore } from './keystore.js';
import { AppPasswordStore } from './app-passwords.js';

export interface UserCrypt { codec: MessageCodec; cipher: IndexCipher; keystore?: UserKeystore; settings: CryptSettings }

export interface CryptUser {
  username: string;
  /** Root of the Maildir (where dovecot-attributes lives by default). */
  mailRoot: string;
  /** Home directory, for %h in mail_attribute_dict. */
  home?: string;
  /** userdb fields (userdb_ prefix already removed). */
  fields: [string, string][];
  protocol: string;
  /** The user's mail_plugins as the mail-user service resolved them; without it they are resolved here the same way. */
  mailPlugins?: string[];
  /** IMAP mailbox name → its GUID (from dovecot-uidlist, created if needed). */
  mailboxGuid(mailbox: string): Promise<string>;
}

export interface CryptSettings {
  enabled: boolean;
  saveVersion: number;
  curve?: string;
  password?: Buffer;
  requireEncryptedUserKey: boolean;
  attributesPath: string;
  globalPublic?: PublicKey;
  globalPrivate: PrivateKey[];
  /** plugin { sealmail_crypt_key_rotation }: a folder key older than this (ms) is replaced at the folder's next save; 0 = never */
  rotateAfterMs: number;
}

function pluginsEnabled(config: DovecotConfig, user: CryptUser): boolean {
  return (user.mailPlugins ?? resolveMailPlugins(config, user.fields, user.protocol)).includes('mail_crypt');
}

/** A key given as a dovecot key string, PEM, or base64(PEM) (global keys). */
function loadKeyText(text: string, password?: string): PublicKey | PrivateKey {
  let t = text.trim();
  if (!t.startsWith('-----') && /^[A-Za-z0-9+/=\s]+$/.test(t) && !/^[12][:\t]/.test(t)) {
    const dec = Buffer.from(t, 'base64').toString('latin1');
    if (dec.startsWith('-----')) t = dec.trim();
  }
  if (t.startsWith('-----BEGIN') && t.includes('PRIVATE KEY')) {
    const jwk = createPrivateKey({ key: t, passphrase: password }).export({ format: 'jwk' }) as { crv: string; d: string };
    return privateFromScalar(curveByName(jwk.crv), Buffer.from(jwk.d, 'base64url'));
  }
  if (t.startsWith('-----BEGIN')) {
    const jwk = createPublicKey(t).export({ format: 'jwk' }) as { crv: string; x: string; y: string };
    return publicFromPoint(curveByName(jwk.crv), Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]));
  }
  if (/^[12][:\t]/.test(t)) {
    const f = t.split(/[:\t]/);
    if ((f[0] === '2' && f.length === 3) || (f[0] === '1' && f.length === 4)) return parsePublicKeyString(t);
    return decryptPrivateKey(parsePrivateKeyString(t), { password: password ? Buffer.from(password) : undefined });
  }
  throw new CryptError('unrecognised key format (expected PEM, base64 PEM or a dovecot key string)');
}

export function cryptSettings(config: DovecotConfig, user: CryptUser, loginPassword?: string): CryptSettings {
  const plugin = config.plugin({ protocol: user.protocol });
  const get = (k: string): string | undefined => user.fields.find(([f]) => f === k)?.[1] ?? plugin[k];
  const enabled = pluginsEnabled(config, user);
  const sv = get('mail_crypt_save_version');
  if (enabled && (sv === undefined || sv === '')) throw new CryptError(`user ${user.username}: mail_crypt_save_version setting missing`);
  const pw = get('mail_crypt_private_password') ?? loginPassword;
  const globalPrivate: PrivateKey[] = [];
  for (let i = 1; ; i++) {
    const name = i === 1 ? 'mail_crypt_global_private_key' : `mail_crypt_global_private_key${i}`;
    const v = get(name);
    if (!v) break;
    const k = loadKeyText(v, get(`${name}_password`));
    if (!('d' in k)) throw new CryptError(`${name}: not a private key`);
    globalPrivate.push(k);
  }
  const gp = get('mail_crypt_global_public_key');
  const attr = config.get('mail_attribute_dict', { protocol: user.protocol });
  const attributesPath = attributeDictFile(attr, user) ?? join(user.mailRoot, 'dovecot-attributes');
  const rotation = get('sealmail_crypt_key_rotation') || '0';
  const rotateAfterMs = parseTime(rotation, false);
  if (typeof rotateAfterMs !== 'number') throw new CryptError(`sealmail_crypt_key_rotation: ${rotateAfterMs}`);
  return {
    enabled,
    rotateAfterMs,
    saveVersion: Number((sv ?? '0')[0]),
    curve: get('mail_crypt_curve') || undefined,
    password: pw !== undefined && pw !== '' ? Buffer.from(pw, 'utf8') : undefined,
    requireEncryptedUserKey: get('mail_crypt_require_encrypted_user_key') !== undefined,
    attributesPath,
    globalPublic: gp ? (loadKeyText(gp) as PublicKey) : undefined,
    globalPrivate,
  };
}

/** Seal/open with AES-256-GCM: nonce(12) ‖ ciphertext ‖ tag(16). */
function gcmBox(key: Buffer): { seal(b: Buffer): Buffer; open(b: Buffer): Buffer } {
  return {
    seal(plain) {
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', key, iv);
      return Buffer.concat([iv, c.update(plain), c.final(), c.getAuthTag()]);
    },
    open(sealed) {
      if (sealed.length < 28) throw new CryptError('sealed record too short');
      const d = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12));
      d.setAuthTag(sealed.subarray(sealed.length - 16));
      try { return Buffer.concat([d.update(sealed.subarray(12, sealed.length - 16)), d.final()]); } catch { throw new CryptError('sealed record does not open (other key, or damaged)'); }
    },
  };
}

function derive(k: PrivateKey, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', k.d, Buffer.from(keyId(k), 'hex'), info, 32));
}

/**
 * Unwrapped message keys, sealed under the user key: fixed 120-byte records
 * (SHA-256 of the file's header, then the sealed 60-byte key data), appended
 * with O_APPEND; a record that doesn't open is ignored.
 */
class KeyCache {
  private map: Map<string, Buffer> | null = null;
  private readonly box: ReturnType<typeof gcmBox>;
  private static RECORD = 32 + 12 + 60 + 16;

  constructor(readonly path: string, userKey: PrivateKey) {
    this.box = gcmBox(derive(userKey, 'sealmail mail-crypt key cache v1'));
  }

  private async load(): Promise<Map<string, Buffer>> {
    if (this.map) return this.map;
    this.map = new Map();
    const raw = await fsp.readFile(this.path).catch(() => Buffer.alloc(0));
    for (let off = 0; off + KeyCache.RECORD <= raw.length; off += KeyCache.RECORD) {
      const id = raw.subarray(off, off + 32).toString('hex');
      try { this.map.set(id, this.box.open(raw.subarray(off + 32, off + KeyCache.RECORD))); } catch { /* other user key or torn write */ }
    }
    return this.map;
  }

  async get(header: Buffer): Promise<Buffer | undefined> {
    return (await this.load()).get(createHash('sha256').update(header).digest('hex'));
  }

  async put(header: Buffer, keydata: Buffer): Promise<void> {
    if (keydata.length !== 60) return; // v1 file keys are cheap to recompute
    const h = createHash('sha256').update(header).digest();
    (await this.load()).set(h.toString('hex'), keydata);
    await fsp.appendFile(this.path, Buffer.concat([h, this.box.seal(keydata)]), { mode: 0o600 }).catch(() => undefined);
  }
}

function makeCodec(s: CryptSettings, user: CryptUser, ks: UserKeystore | undefined, cache: KeyCache | null): MessageCodec {
  // one unwrap per message even when warm() and the read race for it
  const inflight = new Map<string, Promise<Buffer>>();
  const unlock = (h: MailHeader, raw: Buffer): Promise<Buffer> => {
    const id = createHash('sha256').update(raw).digest('hex');
    let p = inflight.get(id);
    if (!p) {
      p = unlockNow(h, raw).finally(() => inflight.delete(id));
      inflight.set(id, p);
    }
    return p;
  };
  const unlockNow = async (h: MailHeader, raw: Buffer): Promise<Buffer> => {
    const hit = await cache?.get(raw);
    if (hit) return hit;
    let key = h.version === 2
      ? s.globalPrivate.find((k) => keyId(k) === h.keyId || legacyKeyId(k) === h.keyId)
      : s.globalPrivate.find((k) => legacyKeyId(k) === h.keyId);
    if (!key) {
      if (!ks) throw new CryptError(`user ${user.username}: Private key not available: no key ${h.keyId.slice(0, 16)}…`);
      key = await ks.privateKey(h.keyId, h.version === 1);
    }
    const out = Buffer.from(await cryptJob<Uint8Array>({ op: 'unwrap', header: raw, key: toWirePriv(key), check: false }));
    await cache?.put(raw, out);
    return out;
  };
  return {
    isEncrypted,
    warm(_mailbox, head) {
      if (!isEncrypted(head)) return;
      try {
        const need = headerBytesNeeded(head);
        if (head.length < need) return;
        const h = parseHeader(head.subarray(0, need));
        unlock(h, head.subarray(0, h.headerLen)).catch(() => undefined); // the real read reports errors
      } catch { /* a damaged header is reported by the read */ }
    },
    encrypt(mailbox, plaintext) {
      return (async function* () {
        if (s.saveVersion === 0) { yield* plaintext; return; }
        if (s.saveVersion === 1) throw new CryptError(`user ${user.username}: mail_crypt_save_version = 1 (legacy v1 container) is not written by Sealmail; use 2`);
        let to: PublicKey;
        if (s.globalPublic) to = s.globalPublic;
        else {
          if (!ks) throw new CryptError(`user ${user.username}: no key store`);
          await ks.ensureUserKey(s.curve, s.password, s.requireEncryptedUserKey);
          to = await ks.folderPublicKey(await user.mailboxGuid(mailbox), s.curve, mailbox, false, s.rotateAfterMs);
        }
        const { header, keydata } = await cryptJob<{ header: Uint8Array; keydata: Uint8Array }>({ op: 'newHeader', to: toWirePub(to) });
        yield* encryptStream(plaintext, Buffer.from(header), Buffer.from(keydata));
      })();
    },
    decrypt(mailbox, stored) {
      return (async function* () {
        try {
          yield* decryptStream(stored, unlock);
        } catch (e) {
          if (e instanceof CryptError && !e.message.includes(mailbox)) throw new CryptError(`${e.message.startsWith('user ') ? '' : `user ${user.username}: `}${e.message} (mailbox ${mailbox})`);
          throw e;
        }
      })();
    },
  };
}

export async function keystoreFor(s: CryptSettings, user: CryptUser): Promise<UserKeystore> {
  const inbox = await user.mailboxGuid('INBOX');
  return new UserKeystore(new AttributeDict(s.attributesPath), inbox, user.username);
}

/**
 * Login: unlock the user's keys with the password (the userdb's
 * mail_crypt_private_password, typically %w, or `password`). A user without
 * keys gets one on first use when mail_crypt_curve is set, as in Dovecot.
 * Throws CryptError (naming the user) when the password does not open the key.
 * `promotePending`: the password was just verified by the passdb, so a
 * password change interrupted after its SQL commit is finished here.
 */
export async function unlockUserCrypt(config: DovecotConfig, user: CryptUser, password?: string, opts: { promotePending?: boolean } = {}): Promise<UserCrypt> {
  const s = cryptSettings(config, user, password);
  if (!s.enabled) return { codec: identityCodec, cipher: identityCipher, settings: s };
  if (s.globalPublic || (s.globalPrivate.length && !s.curve)) {
    const k = s.globalPrivate[0];
    return { codec: makeCodec(s, user, undefined, null), cipher: k ? gcmBox(derive(k, 'sealmail index v1')) : deliveryCipher(user), settings: s };
  }
  let ks = await keystoreFor(s, user);
  try {
    await ks.unlock(s.password, { promote: opts.promotePending });
  } catch (e) {
    // not the main password: one of the user's app passwords opens its own copy (the copy opening
    // is the check: auth already paid for the scrypt, a key copy costs a PBKDF2)
    if (!(e instanceof CryptError) || !s.password || !user.home) throw e;
    const store = AppPasswordStore.forHome(user.home);
    let opened: UserKeystore | null = null;
    for (const r of await store.list().catch(() => [])) {
      const candidate = await keystoreFor(s, user);
      try { await candidate.unlockWithCopies(r.keys, s.password); } catch { continue; }
      if (!candidate.unlocked) continue;
      opened = candidate;
      await store.touch(r);
      break;
    }
    if (!opened) throw e;
    ks = opened;
  }
  if (!(await ks.activeUserKeyId()) && s.curve && s.saveVersion >= 2) await ks.ensureUserKey(s.curve, s.password, s.requireEncryptedUserKey);
  const userKey = await ks.activeUserKey();
  const cache = userKey ? new KeyCache(join(dirname(s.attributesPath), 'sealmail.keycache'), userKey) : null;
  const cipher = userKey ? gcmBox(derive(userKey, 'sealmail index v1')) : deliveryCipher(user);
  return { codec: makeCodec(s, user, ks, cache), cipher, keystore: ks, settings: s };
}

function deliveryCipher(user: CryptUser): IndexCipher {
  const no = (): never => { throw new CryptError(`user ${user.username}: the index is sealed with the user's key: not available without the password`); };
  return { seal: no, open: no };
}

/** Delivery while the user is offline: public keys only; reading is refused. */
export async function deliveryCrypt(config: DovecotConfig, user: CryptUser): Promise<UserCrypt> {
  const s = cryptSettings(config, user);
  if (!s.enabled) return { codec: identityCodec, cipher: identityCipher, settings: s };
  const ks = s.globalPublic ? undefined : await keystoreFor(s, user);
  return { codec: makeCodec({ ...s, password: undefined }, user, ks, null), cipher: deliveryCipher(user), keystore: ks, settings: s };
}
