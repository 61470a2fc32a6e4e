/**
 * One user's mail-crypt keys in the attribute dict (mail-crypt-format.md §1,
 * §2.2, §8): the user key pair under the INBOX GUID (private half encrypted
 * with the password), one key pair per folder under the folder's GUID
 * (private half encrypted to the user key), created on the first save with
 * the public key alone — so delivery works while the user is offline.
 * Unlocking opens every user private key the password opens; a wrong
 * password fails cleanly and nothing is ever written on that path. Every
 * private key ever used stays, because messages name their key by id.
 */
import { AttributeDict, attrKeys } from './attributes.js';
import { cryptJob, fromWirePriv, toWirePriv, toWirePub, type WirePriv } from './crypt-worker.js';
import {
  CryptError, curveByName, keyId, legacyKeyId, parsePrivateKeyString, parsePublicKeyString, privateKeyNeeds,
  privateKeyStringPlain, publicKeyString, type PrivateKey, type PublicKey,
} from './keys.js';

export interface KeyListEntry { id: string; active: boolean; mailbox?: string }

/**
 * Parsed public key strings, by the string: every delivery names the same
 * folder key, and parsing one costs a point decompression (a modular square
 * root, ~0.5 ms on P-521) and a SHA-256. The string names its key id and is
 * checked against it when parsed, so a string always means the same key.
 */
const parsedPublic = new Map<string, PublicKey>();
const PARSED_PUBLIC_MAX = 1000;

function publicKeyOf(s: string): PublicKey {
  let k = parsedPublic.get(s);
  if (!k) {
    k = parsePublicKeyString(s);
    if (parsedPublic.size >= PARSED_PUBLIC_MAX) parsedPublic.delete(parsedPublic.keys().next().value!);
    parsedPublic.set(s, k);
  }
  return k;
}

export class UserKeystore {
  /** Unlocked user private keys by id. */
  private userKeys = new Map<string, PrivateKey>();
  private privCache = new Map<string, PrivateKey>();
  private pubCache = new Map<string, { key: PublicKey; created: number }>();
  unlockedWithPassword = false;

  constructor(readonly dict: AttributeDict, readonly inboxGuid: string, readonly username: string) {}

  private err(msg: string): CryptError { return new CryptError(`user ${this.username}: ${msg}`); }

  async activeUserKeyId(): Promise<string | undefined> {
    return (await this.dict.readShared()).get(attrKeys.userActive(this.inboxGuid));
  }

  async userPublicKey(): Promise<PublicKey | null> {
    const d = await this.dict.readShared();
    const id = d.get(attrKeys.userActive(this.inboxGuid));
    if (!id) return null;
    const s = d.get(attrKeys.userPub(this.inboxGuid, id));
    if (!s) throw this.err(`user public key ${id} is missing from ${this.dict.path}`);
    return publicKeyOf(s);
  }

  /** All user private key strings, active first. */
  async userPrivateKeyStrings(): Promise<[string, string][]> {
    const d = await this.dict.read();
    const active = d.get(attrKeys.userActive(this.inboxGuid));
    const prefix = attrKeys.userPrivPrefix(this.inboxGuid);
    const all = [...d].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v] as [string, string]);
    return all.sort(([a], [b]) => (a === active ? -1 : b === active ? 1 : 0));
  }

  /**
   * Open the user's private keys with the password (or unencrypted ones
   * without). Fails when the active key does not open; other keys that do
   * not open with this password are skipped (they may predate a change).
   * A password change interrupted after the SQL commit left copies under
   * the new password ("pending"): they are tried when the main copy does not
   * open, and with `promote` (the password was just verified by the passdb)
   * they replace the main copies, finishing the change.
   */
  async unlock(password: Buffer | undefined, opts: { promote?: boolean } = {}): Promise<void> {
    const keys = await this.userPrivateKeyStrings();
    if (!keys.length) return;
    const active = await this.activeUserKeyId();
    const d = await this.dict.read();
    let usedPending = false;
    for (const [id, str] of keys) {
      let k = await this.openWith(str, password);
      if (!k) {
        const pending = d.get(attrKeys.userPending(this.inboxGuid, id));
        if (pending) { k = await this.openWith(pending, password); if (k) usedPending = true; }
      }
      if (k) this.userKeys.set(id, k);
      else if (id === active) {
        const p = parsePrivateKeyString(str);
        if (privateKeyNeeds(p).kind === 'password' && !password) throw this.err('Password not available: the user key is encrypted with the login password');
        throw this.err(`cannot open the user key ${id.slice(0, 16)}…: wrong password or damaged key`);
      }
    }
    this.unlockedWithPassword = this.userKeys.size > 0;
    if (usedPending && opts.promote) await this.promotePending(password!);
  }

  private async openWith(str: string, password: Buffer | undefined): Promise<PrivateKey | null> {
    const p = parsePrivateKeyString(str);
    const need = privateKeyNeeds(p);
    if (need.kind === 'key') return null; // environment keys (mail_crypt_private_key) are not supported
    if (need.kind === 'password' && !password) return null;
    try {
      return fromWirePriv(await cryptJob<WirePriv>({ op: 'open', str, password: need.kind === 'password' ? password : undefined }));
    } catch {
      return null;
    }
  }

  /**
   * doveadm mailbox cryptokey password: every user private key re-encrypted
   * (fresh salt) with `newPassword`, or stored unencrypted with null (-C),
   * in one dict transaction; nothing is written unless all keys opened.
   * Errors use doveadm's texts.
   */
  async changePassword(oldPassword: Buffer | undefined, newPassword: Buffer | null): Promise<number> {
    const out = new Map<string, string>();
    for (const [id, str] of await this.userPrivateKeyStrings()) {
      const p = parsePrivateKeyString(str);
      if (privateKeyNeeds(p).kind === 'password' && !oldPassword) throw new CryptError(`dcrypt_key_load_private(${id}) failed: password missing`);
      let k: PrivateKey;
      try {
        k = fromWirePriv(await cryptJob<WirePriv>({ op: 'open', str, password: oldPassword }));
      } catch (e) {
        throw new CryptError(`dcrypt_key_load_private(${id}) failed: ${(e as Error).message}`);
      }
      out.set(id, newPassword ? await cryptJob<string>({ op: 'wrapWithPassword', key: toWirePriv(k), password: newPassword }) : privateKeyStringPlain(k));
    }
    await this.dict.update((m) => {
      for (const [id, v] of out) { m.set(attrKeys.userPriv(this.inboxGuid, id), v); m.delete(attrKeys.userPending(this.inboxGuid, id)); }
    });
    return out.size;
  }

  /** Step 1 of a crash-safe change: copies of every unlocked user key under the new password, beside the old ones. */
  async stagePassword(newPassword: Buffer): Promise<number> {
    const keys = await this.userPrivateKeyStrings();
    const out = new Map<string, string>();
    for (const [id] of keys) {
      const k = this.userKeys.get(id);
      if (!k) throw this.err(`user key ${id.slice(0, 16)}… is not unlocked`);
      out.set(id, await cryptJob<string>({ op: 'wrapWithPassword', key: toWirePriv(k), password: newPassword }));
    }
    await this.dict.update((m) => { for (const [id, v] of out) m.set(attrKeys.userPending(this.inboxGuid, id), v); });
    return out.size;
  }

  /** Last step: the pending copies (which open with `password`) become the keys; the old copies go. */
  async promotePending(password: Buffer): Promise<number> {
    const d = await this.dict.read();
    const prefix = attrKeys.userPendingPrefix(this.inboxGuid);
    const moves = new Map<string, string>();
    for (const [k, v] of d) {
      if (!k.startsWith(prefix)) continue;
      if (!(await this.openWith(v, password))) throw this.err('pending key copy does not open with this password: not promoted');
      moves.set(k.slice(prefix.length), v);
    }
    if (!moves.size) return 0;
    await this.dict.update((m) => {
      for (const [id, v] of moves) { m.set(attrKeys.userPriv(this.inboxGuid, id), v); m.delete(attrKeys.userPending(this.inboxGuid, id)); }
    });
    return moves.size;
  }

  /** Abandon a staged change (the SQL update failed): the pending copies are removed. */
  async dropPending(): Promise<void> {
    const prefix = attrKeys.userPendingPrefix(this.inboxGuid);
    await this.dict.update((m) => { for (const k of [...m.keys()]) if (k.startsWith(prefix)) m.delete(k); });
  }

  /** Opt-in recovery: every unlocked user key also stored encrypted under `code`. */
  async storeRecovery(code: Buffer): Promise<number> {
    const out = new Map<string, string>();
    for (const [id] of await this.userPrivateKeyStrings()) {
      const k = this.userKeys.get(id);
      if (!k) throw this.err(`user key ${id.slice(0, 16)}… is not unlocked`);
      out.set(id, await cryptJob<string>({ op: 'wrapWithPassword', key: toWirePriv(k), password: code }));
    }
    const prefix = attrKeys.userRecoveryPrefix(this.inboxGuid);
    await this.dict.update((m) => {
      for (const k of [...m.keys()]) if (k.startsWith(prefix)) m.delete(k);
      for (const [id, v] of out) m.set(attrKeys.userRecovery(this.inboxGuid, id), v);
    });
    return out.size;
  }

  /** Unlock with the recovery code instead of the password. */
  async unlockWithRecovery(code: Buffer): Promise<void> {
    const d = await this.dict.read();
    const prefix = attrKeys.userRecoveryPrefix(this.inboxGuid);
    const active = await this.activeUserKeyId();
    let any = false;
    for (const [k, v] of d) {
      if (!k.startsWith(prefix)) continue;
      const key = await this.openWith(v, code);
      if (key) { this.userKeys.set(k.slice(prefix.length), key); any = true; }
    }
    if (!any) throw this.err('no recovery copy of the user key opens with this code (none stored, or a wrong code)');
    if (active && !this.userKeys.has(active)) throw this.err('the active user key has no recovery copy (it was generated after the recovery code): recovery impossible');
  }

  /**
   * Unlock with an app password's own copies of the user keys
   * (app-passwords.ts): every copy that opens counts; the active key must
   * be among them (a key generated after the app password was made is not).
   */
  async unlockWithCopies(copies: Record<string, string>, password: Buffer): Promise<void> {
    for (const [id, str] of Object.entries(copies)) {
      const k = await this.openWith(str, password);
      if (k && keyId(k) === id) this.userKeys.set(id, k);
    }
    const active = await this.activeUserKeyId();
    if (active && !this.userKeys.has(active)) throw this.err(`the app password holds no copy of the active user key ${active.slice(0, 16)}… (generated after it was made): add a new app password`);
  }

  /** The unlocked user keys, each encrypted with `password` (an app password's copies). */
  async wrapUnlocked(password: Buffer): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const [id] of await this.userPrivateKeyStrings()) {
      const k = this.userKeys.get(id);
      if (k) out[id] = await cryptJob<string>({ op: 'wrapWithPassword', key: toWirePriv(k), password });
    }
    return out;
  }

  get unlocked(): boolean { return this.userKeys.size > 0; }

  /** The active unlocked user key (derives the index/key-cache keys). */
  async activeUserKey(): Promise<PrivateKey | null> {
    const id = await this.activeUserKeyId();
    return (id && this.userKeys.get(id)) || null;
  }

  /**
   * Make sure a user key exists: generate one when there is none (Dovecot's
   * first-use behaviour), encrypted with the password when there is one,
   * refused without a password under mail_crypt_require_encrypted_user_key.
   */
  async ensureUserKey(curve: string | undefined, password: Buffer | undefined, requireEncrypted: boolean, force = false): Promise<{ id: string; created: boolean }> {
    const existing = await this.activeUserKeyId();
    if (existing && !force) return { id: existing, created: false };
    if (!curve) throw this.err('no user key and mail_crypt_curve is not set: cannot generate one');
    if (requireEncrypted && !password) throw this.err('mail_crypt_require_encrypted_user_key set, cannot generate user keypair without password or key');
    const key = fromWirePriv(await cryptJob<WirePriv>({ op: 'generate', curve: curveByName(curve).name }));
    const priv = password
      ? await cryptJob<string>({ op: 'wrapWithPassword', key: toWirePriv(key), password })
      : privateKeyStringPlain(key);
    const id = keyId(key);
    // another process (a second login of the same user at the same moment) may have made one meanwhile:
    // checked again under the dict's lock, its key is the user's (two keys would seal the index differently)
    let theirs: string | undefined;
    await this.dict.update((m) => {
      theirs = force ? undefined : m.get(attrKeys.userActive(this.inboxGuid));
      if (theirs) return;
      m.set(attrKeys.userPub(this.inboxGuid, id), publicKeyString(key));
      m.set(attrKeys.userPriv(this.inboxGuid, id), priv);
      m.set(attrKeys.userActive(this.inboxGuid), id);
    });
    if (theirs) { await this.unlock(password); return { id: theirs, created: false }; }
    this.userKeys.set(id, key);
    return { id, created: true };
  }

  /**
   * The folder's active public key; created (public-key only work) when
   * missing. `rotateAfterMs` (plugin { sealmail_crypt_key_rotation }): an
   * active key older than that is replaced by a new one as `doveadm mailbox
   * cryptokey generate -f` does (the old keys stay, for reading). A key's
   * age counts from when Sealmail made it or first saw it (Dovecot records
   * no creation time).
   */
  async folderPublicKey(boxGuid: string, curve: string | undefined, mailbox: string, force = false, rotateAfterMs = 0): Promise<PublicKey> {
    if (!force) {
      const cached = this.pubCache.get(boxGuid);
      if (cached && !(rotateAfterMs && Date.now() - cached.created >= rotateAfterMs)) return cached.key;
      const d = await this.dict.readShared();
      const id = d.get(attrKeys.boxActive(boxGuid));
      if (id) {
        const s = d.get(attrKeys.boxPub(boxGuid, id));
        if (!s) throw this.err(`mailbox ${mailbox}: folder public key ${id} is missing from ${this.dict.path}`);
        const k = publicKeyOf(s);
        let created = Number(d.get(attrKeys.boxKeyCreated(boxGuid, id)));
        if (rotateAfterMs && !(created > 0)) {
          created = Date.now();
          await this.dict.update((m) => { if (!m.get(attrKeys.boxKeyCreated(boxGuid, id))) m.set(attrKeys.boxKeyCreated(boxGuid, id), String(created)); });
        }
        if (!(rotateAfterMs && Date.now() - created >= rotateAfterMs)) {
          this.pubCache.set(boxGuid, { key: k, created: created > 0 ? created : Date.now() });
          return k;
        }
        return this.newFolderKey(boxGuid, curve, mailbox, id);
      }
    }
    return this.newFolderKey(boxGuid, curve, mailbox, force ? undefined : null);
  }

  /**
   * A new active folder key. `replacing`: the active key id being rotated
   * out (another process may have rotated it meanwhile: then theirs is
   * kept), null when there was none, undefined to force (generate -f).
   */
  private async newFolderKey(boxGuid: string, curve: string | undefined, mailbox: string, replacing: string | null | undefined): Promise<PublicKey> {
    const user = await this.userPublicKey();
    if (!user) throw this.err(`mailbox ${mailbox}: the user has no key pair yet (generate one with sealadm mailbox cryptokey generate -U, or log in once)`);
    const key = fromWirePriv(await cryptJob<WirePriv>({ op: 'generate', curve: curveByName(curve ?? user.curve.name).name }));
    const wrapped = await cryptJob<string>({ op: 'wrapToKey', key: toWirePriv(key), to: toWirePub(user) });
    const id = keyId(key);
    await this.dict.update((m) => {
      // another process may have created (or rotated) it meanwhile: keep theirs
      if (replacing !== undefined && (m.get(attrKeys.boxActive(boxGuid)) ?? null) !== replacing) return;
      m.set(attrKeys.boxPub(boxGuid, id), publicKeyString(key));
      m.set(attrKeys.boxPriv(boxGuid, id), wrapped);
      m.set(attrKeys.boxActive(boxGuid), id);
      m.set(attrKeys.boxKeyCreated(boxGuid, id), String(Date.now()));
    });
    this.pubCache.delete(boxGuid);
    return this.folderPublicKey(boxGuid, curve, mailbox);
  }

  /** A private key by id: a folder key (opened with the user key) or a user key. */
  async privateKey(id: string, legacy = false): Promise<PrivateKey> {
    const hit = this.privCache.get(id);
    if (hit) return hit;
    if (!legacy) {
      const u = this.userKeys.get(id);
      if (u) return u;
    }
    const d = await this.dict.read();
    for (const [k, v] of d) {
      if (!k.startsWith('priv/') || !/\/crypt\/privkeys\/[0-9a-f]{64}$/.test(k)) continue;
      if (!legacy && !k.endsWith(`/crypt/privkeys/${id}`)) continue;
      const p = parsePrivateKeyString(v);
      const need = privateKeyNeeds(p);
      let key: PrivateKey;
      if (need.kind === 'key') {
        const enc = this.userKeys.get(need.id) ?? (k.includes('/server/') ? undefined : await this.privateKey(need.id).catch(() => undefined));
        if (!enc) {
          if (legacy) continue;
          throw this.err(this.userKeys.size ? `Private key not available: key ${id.slice(0, 16)}… is encrypted to a user key that did not open` : 'Private key not available: Password not available');
        }
        key = fromWirePriv(await cryptJob<WirePriv>({ op: 'open', str: v, encKey: toWirePriv(enc) }));
      } else if (need.kind === 'none') {
        key = fromWirePriv(await cryptJob<WirePriv>({ op: 'open', str: v }));
      } else {
        const u = this.userKeys.get(k.slice(k.lastIndexOf('/') + 1));
        if (!u) continue;
        key = u;
      }
      if (legacy && legacyKeyId(key) !== id) continue;
      this.privCache.set(id, key);
      return key;
    }
    if (legacy) for (const u of this.userKeys.values()) if (legacyKeyId(u) === id) return u;
    throw this.err(`Private key not available: no key ${id.slice(0, 16)}… in ${this.dict.path} (missing folder key)`);
  }

  /** Key ids for `cryptokey list`: the user's, or those of the given folder GUIDs. */
  async list(user: boolean, boxes: [string, string][] = []): Promise<KeyListEntry[]> {
    const d = await this.dict.read();
    const out: KeyListEntry[] = [];
    if (user) {
      const active = d.get(attrKeys.userActive(this.inboxGuid));
      const prefix = attrKeys.userPubPrefix(this.inboxGuid);
      for (const k of d.keys()) if (k.startsWith(prefix)) out.push({ id: k.slice(prefix.length), active: k.slice(prefix.length) === active });
    }
    for (const [mailbox, guid] of boxes) {
      const active = d.get(attrKeys.boxActive(guid));
      const prefix = `shared/${guid}/vendor/vendor.dovecot/pvt/crypt/pubkeys/`;
      for (const k of d.keys()) if (k.startsWith(prefix)) out.push({ id: k.slice(prefix.length), active: k.slice(prefix.length) === active, mailbox });
    }
    return out;
  }
}
