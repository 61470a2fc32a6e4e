/**
 * Dovecot mail-crypt message files (mail-crypt-format.md §4): the v2 AEAD
 * container (written and read) and the v1 container (read only). The header
 * names one recipient — the folder key — and carries the per-message key
 * data (AES key ‖ GCM nonce ‖ AAD) wrapped with ephemeral ECDH → PBKDF2 →
 * AES-256-CBC, plus Dovecot's 2048-round SHA-256 check. The body is one
 * AES-256-GCM stream, streamed both ways: a big message is never held whole.
 *
 * Release policy on read: plaintext of messages up to 1 MiB is only handed
 * out after the GCM tag checked; bigger ones stream, but the last chunk is
 * held back until the tag checks, so a tampered or truncated file always
 * ends in an error and never in a silently short message. (Dovecot streams
 * everything before checking the tag.)
 */
import { createCipheriv, createDecipheriv, createHash, pbkdf2Sync, randomBytes } from 'node:crypto';
import { CryptError, ecdh, ephemeralAgreement, keyId, type PrivateKey, type PublicKey } from './keys.js';
import { keyDataCheck } from './keydata-check.js';

export const MAGIC = Buffer.from('435259505445440307', 'hex');
const GCM_OID = Buffer.from('060960864801650304012e', 'hex');
const SHA256_OID = Buffer.from('0609608648016503040201', 'hex');
const FLAG_AEAD = 2;
const FLAG_HMAC = 1;
const FLAG_NONE = 4;
const KEYDATA_LEN = 60;
const RELEASE_AFTER = 1 << 20;

export function isEncrypted(head: Buffer): boolean {
  return head.length >= MAGIC.length && head.subarray(0, MAGIC.length).equals(MAGIC);
}

export interface V2Header {
  version: 2;
  headerLen: number;
  flags: number;
  rounds: number;
  /** Recipient key id (hex) — the folder key, or a global key. */
  keyId: string;
  ephemeral: Buffer;
  wrapped: Buffer;
  check: Buffer;
}

export interface V1Header {
  version: 1;
  headerLen: number;
  ephemeral: Buffer;
  /** Legacy id of the recipient key (hex). */
  keyId: string;
  keyHash: Buffer;
  encKey: Buffer;
}

export type MailHeader = V2Header | V1Header;

/** Bytes needed before the header can be parsed: 0 when `head` is enough. */
export function headerBytesNeeded(head: Buffer): number {
  if (head.length < 14) return 14;
  if (head[9] === 1) return 12 + head.readUInt16BE(10);
  if (head.length < 18) return 18;
  return head.readUInt32BE(14);
}

function reader(b: Buffer, start: number, what: string) {
  let off = start;
  const need = (n: number) => { if (off + n > b.length) throw new CryptError(`truncated mail-crypt header (${what})`); };
  return {
    get off() { return off; },
    u8: () => { need(1); return b[off++]; },
    u16: () => { need(2); const v = b.readUInt16BE(off); off += 2; return v; },
    u32: () => { need(4); const v = b.readUInt32BE(off); off += 4; return v; },
    bytes: (n: number) => { need(n); const v = b.subarray(off, off + n); off += n; return v; },
    oid: () => {
      need(2);
      if (b[off] !== 0x06) throw new CryptError('malformed mail-crypt header (OID)');
      let len = b[off + 1];
      let hdr = 2;
      if (len === 0x81) { need(3); len = b[off + 2]; hdr = 3; } else if (len === 0x82) { need(4); len = b.readUInt16BE(off + 2); hdr = 4; }
      need(hdr + len);
      const v = b.subarray(off, off + hdr + len);
      off += hdr + len;
      return Buffer.from([0x06, len, ...v.subarray(hdr)]);
    },
  };
}

export function parseHeader(head: Buffer): MailHeader {
  if (!isEncrypted(head)) throw new CryptError('not a mail-crypt file');
  const version = head[9];
  if (version === 1) {
    const r = reader(head, 10, 'v1');
    const k = r.u16();
    const ephemeral = r.bytes(r.u16());
    const id = r.bytes(r.u16());
    const keyHash = r.bytes(r.u16());
    const encKey = r.bytes(r.u16());
    if (r.off !== 12 + k) throw new CryptError('malformed v1 mail-crypt header (key data length)');
    return { version: 1, headerLen: 12 + k, ephemeral, keyId: id.toString('hex'), keyHash, encKey };
  }
  if (version !== 2) throw new CryptError(`unsupported mail-crypt container version ${version}`);
  const r = reader(head, 10, 'v2');
  const flags = r.u32();
  const headerLen = r.u32();
  const cipher = r.oid();
  const mac = r.oid();
  if (!cipher.equals(GCM_OID)) throw new CryptError(`unsupported mail-crypt cipher (OID ${cipher.toString('hex')})`);
  if (!mac.equals(SHA256_OID)) throw new CryptError(`unsupported mail-crypt hash (OID ${mac.toString('hex')})`);
  if (!(flags & FLAG_AEAD) || flags & (FLAG_HMAC | FLAG_NONE)) throw new CryptError(`unsupported mail-crypt integrity mode (flags ${flags})`);
  const rounds = r.u32();
  r.u32(); // key-data length (the header length already bounds it)
  const count = r.u8();
  if (count < 1) throw new CryptError('mail-crypt header without a recipient');
  // Dovecot writes exactly one recipient; its reader only handles the first properly
  const type = r.u8();
  if (type !== 2) throw new CryptError(`mail-crypt recipient key type ${type} (RSA) is not supported`);
  const id = r.bytes(32);
  const ephemeral = r.bytes(r.u32());
  const wrapped = r.bytes(r.u32());
  const check = r.bytes(r.u32());
  if (r.off !== headerLen) throw new CryptError('malformed mail-crypt header (length)');
  return { version: 2, headerLen, flags, rounds, keyId: id.toString('hex'), ephemeral, wrapped, check };
}

/**
 * Unwrap the 60-byte key data of a v2 file with the recipient's private key
 * (1 ECDH + PBKDF2: run on a worker). `check` runs Dovecot's 2048-round hash
 * check (~2 ms); it may be skipped when the caller verifies the GCM tag
 * before releasing any plaintext (wrong key data cannot pass the tag).
 */
export function unwrapKeyData(h: V2Header, key: PrivateKey, check = true): Buffer {
  const secret = ecdh(key, h.ephemeral);
  const kek = pbkdf2Sync(secret, h.ephemeral, h.rounds, 48, 'sha256');
  let keydata: Buffer;
  try {
    const d = createDecipheriv('aes-256-cbc', kek.subarray(0, 32), kek.subarray(32, 48));
    keydata = Buffer.concat([d.update(h.wrapped), d.final()]);
  } catch {
    throw new CryptError('cannot unwrap the message key (wrong key or damaged header)');
  }
  if (keydata.length !== KEYDATA_LEN || (check && !keyDataCheck(keydata).equals(h.check))) throw new CryptError('message key check failed (wrong key or damaged header)');
  return keydata;
}

/** v1: file key = AES-256-CTR(SHA-256(ECDH secret), IV 0) of the stored key, checked by its hash. */
export function unwrapV1Key(h: V1Header, key: PrivateKey): Buffer {
  const k = createHash('sha256').update(ecdh(key, h.ephemeral)).digest();
  const d = createDecipheriv('aes-256-ctr', k, Buffer.alloc(16));
  const fileKey = Buffer.concat([d.update(h.encKey), d.final()]);
  if (!createHash('sha256').update(fileKey).digest().equals(h.keyHash)) throw new CryptError('message key check failed (wrong key or damaged v1 header)');
  return fileKey;
}

/** A fresh v2 header for one message to `to` (the folder public key) and its key data. */
export function newV2Header(to: PublicKey): { header: Buffer; keydata: Buffer } {
  const keydata = randomBytes(KEYDATA_LEN);
  const eph = ephemeralAgreement(to);
  const secret = eph.secret;
  const kek = pbkdf2Sync(secret, eph.point, 2048, 48, 'sha256');
  const c = createCipheriv('aes-256-cbc', kek.subarray(0, 32), kek.subarray(32, 48));
  const wrapped = Buffer.concat([c.update(keydata), c.final()]);
  const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
  const recipients = Buffer.concat([
    Buffer.from([1, 2]), Buffer.from(keyId(to), 'hex'),
    u32(eph.point.length), eph.point, u32(wrapped.length), wrapped,
    u32(32), keyDataCheck(keydata),
  ]);
  const fixed = 9 + 1 + 4 + 4 + GCM_OID.length + SHA256_OID.length + 4 + 4;
  const header = Buffer.concat([MAGIC, Buffer.from([2]), u32(FLAG_AEAD), u32(fixed + recipients.length), GCM_OID, SHA256_OID, u32(2048), u32(recipients.length), recipients]);
  return { header, keydata };
}

/** Plaintext → v2 file bytes. Empty input gives an empty file, as Dovecot writes. */
export async function* encryptStream(plain: AsyncIterable<Buffer>, header: Buffer, keydata: Buffer): AsyncIterable<Buffer> {
  let gcm: ReturnType<typeof createCipheriv> | null = null;
  for await (const chunk of plain) {
    if (!chunk.length) continue;
    if (!gcm) {
      gcm = createCipheriv('aes-256-gcm', keydata.subarray(0, 32), keydata.subarray(32, 44));
      (gcm as unknown as { setAAD(b: Buffer): void }).setAAD(keydata.subarray(44, 60));
      yield header;
    }
    const out = gcm.update(chunk);
    if (out.length) yield out;
  }
  if (!gcm) return;
  const last = gcm.final();
  yield Buffer.concat([last, (gcm as unknown as { getAuthTag(): Buffer }).getAuthTag()]);
}

/**
 * Stored bytes → plaintext. `unlock` turns the parsed header into the key
 * material (v2: 60-byte key data; v1: 32-byte file key); it is where the
 * caller looks up the folder key, uses its key cache, or runs ECDH on a worker.
 * Files without the magic pass through unchanged.
 */
export async function* decryptStream(stored: AsyncIterable<Buffer>, unlock: (h: MailHeader, raw: Buffer) => Promise<Buffer>): AsyncIterable<Buffer> {
  const it = stored[Symbol.asyncIterator]();
  let head: Buffer = Buffer.alloc(0);
  let done = false;
  const more = async (): Promise<boolean> => {
    const r = await it.next();
    if (r.done) { done = true; return false; }
    head = head.length ? Buffer.concat([head, r.value]) : r.value;
    return true;
  };
  while (head.length < MAGIC.length && await more());
  if (!isEncrypted(head)) {
    if (head.length) yield head;
    while (!done) { const r = await it.next(); if (r.done) break; yield r.value; }
    return;
  }
  for (let need = headerBytesNeeded(head); head.length < need; need = headerBytesNeeded(head)) {
    if (!(await more())) throw new CryptError('truncated mail-crypt header');
  }
  const h = parseHeader(head.subarray(0, headerBytesNeeded(head)));
  const key = await unlock(h, head.subarray(0, h.headerLen));
  let rest: Buffer = head.subarray(h.headerLen);

  if (h.version === 1) {
    const ctr = createDecipheriv('aes-256-ctr', key, Buffer.alloc(16));
    if (rest.length) yield ctr.update(rest);
    for (;;) { const r = await it.next(); if (r.done) break; yield ctr.update(r.value); }
    const f = ctr.final();
    if (f.length) yield f;
    return;
  }

  const gcm = createDecipheriv('aes-256-gcm', key.subarray(0, 32), key.subarray(32, 44));
  (gcm as unknown as { setAAD(b: Buffer): void }).setAAD(key.subarray(44, 60));
  const held: Buffer[] = [];
  let heldBytes = 0;
  let released = 0;
  let tail: Buffer = Buffer.alloc(0); // the last 16 bytes seen are the tag, never ciphertext
  const feed = (chunk: Buffer): Buffer => {
    const all = tail.length ? Buffer.concat([tail, chunk]) : chunk;
    if (all.length <= 16) { tail = all; return Buffer.alloc(0); }
    tail = Buffer.from(all.subarray(all.length - 16));
    return gcm.update(all.subarray(0, all.length - 16));
  };
  const pending: Buffer[] = [];
  let keyChecked = false;
  const push = (p: Buffer) => { if (p.length) { held.push(p); heldBytes += p.length; } };
  push(feed(rest));
  rest = Buffer.alloc(0);
  for (;;) {
    const r = await it.next();
    if (r.done) break;
    push(feed(r.value));
    // past the threshold, release everything but the newest chunk — after
    // Dovecot's key-data check, since the tag can only be checked at the end
    if (released + heldBytes > RELEASE_AFTER && held.length > 1) {
      if (!keyChecked) {
        if (h.version === 2 && !keyDataCheck(key).equals(h.check)) throw new CryptError('message key check failed (wrong key or damaged header)');
        keyChecked = true;
      }
      while (held.length > 1) { const p = held.shift()!; heldBytes -= p.length; released += p.length; pending.push(p); }
      for (const p of pending.splice(0)) yield p;
    }
  }
  if (tail.length < 16) throw new CryptError('truncated mail-crypt file (no authentication tag)');
  gcm.setAuthTag(tail);
  let last: Buffer;
  try {
    last = gcm.final();
  } catch {
    throw new CryptError('mail-crypt authentication failed: the file was modified or truncated (GCM tag mismatch)');
  }
  for (const p of held) yield p;
  if (last.length) yield last;
}
