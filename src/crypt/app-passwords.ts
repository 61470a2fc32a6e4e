/**
 * Per-device app passwords (Sealmail's own; Dovecot has none): random
 * passwords, one per device, each holding its own copy of the user's
 * mail-crypt private keys, encrypted with that app password in Dovecot's
 * password-encrypted key format (the same code opens it as the main copy).
 * A login whose password the passdb refuses but that matches an app
 * password of the user succeeds (the auth engine asks `verifyAppPassword`)
 * and the session opens its keys with that copy.
 *
 * Stored in `<home>/sealmail-app-passwords`, a file Dovecot never reads
 * (so a rollback to Dovecot is unaffected: there only the main password
 * works), in the `file:` dict format with its dotlock (attributes.ts): one
 * record per app password, key = its id, value = JSON with the name, the
 * creation and last-use times, an scrypt hash of the password (verified in
 * libuv's thread pool, off the event loop) and the key copies. Revoking
 * removes the record: the copy is gone and the password stops working at
 * the next login. The main password changing re-encrypts only the main
 * copies, so app passwords stay valid.
 */
import { randomBytes, randomInt, scrypt, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import { AttributeDict } from './attributes.js';

/** The file in the user's home (the userdb's `home`). */
export const APP_PASSWORDS_FILE = 'sealmail-app-passwords';

export function appPasswordsPath(home: string): string {
  return join(home, APP_PASSWORDS_FILE);
}

export interface AppPasswordRecord {
  id: string;
  name: string;
  /** ISO time */
  created: string;
  lastUsed?: string;
  /** `$scrypt$ln=14,r=8,p=1$<salt b64>$<hash b64>` */
  hash: string;
  /** user key id → that key encrypted with the app password (Dovecot's key string) */
  keys: Record<string, string>;
}

/** scrypt cost: 2^14 × 8 × 128 bytes = 16 MiB and some tens of ms per check. */
const LN = 14, R = 8, P = 1;
/** Last use is written at most this often (a polling client must not rewrite the file at every login). */
const LAST_USED_EVERY_MS = 3600_000;

function scryptAsync(password: Buffer, salt: Buffer, ln: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(password, salt, 32, { N: 2 ** ln, r, p, maxmem: 256 * 2 ** ln * r }, (e, k) => (e ? reject(e) : resolve(k))));
}

export async function hashAppPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const h = await scryptAsync(Buffer.from(password, 'utf8'), salt, LN, R, P);
  return `$scrypt$ln=${LN},r=${R},p=${P}$${salt.toString('base64')}$${h.toString('base64')}`;
}

export async function checkAppPasswordHash(password: string, stored: string): Promise<boolean> {
  const m = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/=]{1,64})\$([A-Za-z0-9+/=]{1,128})$/.exec(stored);
  if (!m) return false;
  const [ln, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (ln < 10 || ln > 20 || r < 1 || p < 1) return false;
  const want = Buffer.from(m[5], 'base64');
  const got = await scryptAsync(Buffer.from(password, 'utf8'), Buffer.from(m[4], 'base64'), ln, r, p);
  return want.length === got.length && timingSafeEqual(want, got);
}

/** 20 letters and digits from an alphabet without look-alikes (about 100 bits), in groups of four for typing. */
export function newAppPassword(): string {
  const alphabet = 'abcdefghjkmnpqrstuvwxyz23456789';
  const chars = Array.from({ length: 20 }, () => alphabet[randomInt(alphabet.length)]);
  return [0, 4, 8, 12, 16].map((i) => chars.slice(i, i + 4).join('')).join('-');
}

function parseRecord(id: string, json: string): AppPasswordRecord | null {
  try {
    const v = JSON.parse(json) as Partial<AppPasswordRecord>;
    if (typeof v.hash !== 'string' || typeof v.keys !== 'object' || !v.keys) return null;
    return { id, name: String(v.name ?? ''), created: String(v.created ?? ''), lastUsed: v.lastUsed, hash: v.hash, keys: v.keys };
  } catch {
    return null; // a damaged record opens nothing
  }
}

export class AppPasswordStore {
  private readonly dict: AttributeDict;
  constructor(readonly path: string) { this.dict = new AttributeDict(path); }

  static forHome(home: string): AppPasswordStore { return new AppPasswordStore(appPasswordsPath(home)); }

  async list(): Promise<AppPasswordRecord[]> {
    const out: AppPasswordRecord[] = [];
    for (const [id, v] of await this.dict.read()) { const r = parseRecord(id, v); if (r) out.push(r); }
    return out.sort((a, b) => a.created.localeCompare(b.created));
  }

  /** A new record: `keys` already encrypted with `password`. Returns the id. */
  async add(name: string, password: string, keys: Record<string, string>): Promise<string> {
    const hash = await hashAppPassword(password);
    const id = randomBytes(4).toString('hex');
    const rec = { name, created: new Date().toISOString(), hash, keys };
    await this.dict.update((m) => { m.set(id, JSON.stringify(rec)); });
    return id;
  }

  /** Removes the record (its key copy with it); false when there was none. */
  async revoke(id: string): Promise<boolean> {
    let found = false;
    await this.dict.update((m) => { found = m.delete(id); });
    return found;
  }

  /** The record `password` belongs to, or null (no file, no match). */
  async match(password: string): Promise<AppPasswordRecord | null> {
    for (const r of await this.list()) if (await checkAppPasswordHash(password, r.hash)) return r;
    return null;
  }

  /** Notes a use (at most hourly); a failure to write is not the login's problem. */
  async touch(r: AppPasswordRecord): Promise<void> {
    if (r.lastUsed && Date.now() - Date.parse(r.lastUsed) < LAST_USED_EVERY_MS) return;
    await this.dict.update((m) => {
      const cur = m.get(r.id);
      const rec = cur ? parseRecord(r.id, cur) : null;
      if (!rec) return; // revoked meanwhile: stays revoked
      const { id: _id, ...rest } = rec;
      m.set(r.id, JSON.stringify({ ...rest, lastUsed: new Date().toISOString() }));
    }).catch(() => undefined);
  }
}

/**
 * The auth engine's check (installed by the server, see auth/engine.ts
 * setAppPasswordCheck): the id of the user's app password that `password`
 * is, or null. A user without the file costs one failed open. `touch`:
 * note the use (only where the file's owner runs: the root master checks
 * for its auth process with touch off, the session notes the use).
 */
export async function verifyAppPassword(home: string, password: string, touch = true): Promise<{ id: string; name: string } | null> {
  const store = AppPasswordStore.forHome(home);
  let r: AppPasswordRecord | null;
  try { r = await store.match(password); } catch { return null; }
  if (!r) return null;
  if (touch) await store.touch(r);
  return { id: r.id, name: r.name };
}
