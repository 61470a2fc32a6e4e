/**
 * Per-folder cache of values the protocol layer derives from a message and
 * asks for again and again (IMAP ENVELOPE, BODY, BODYSTRUCTURE — opaque
 * bytes here), so a FETCH over a big mailbox doesn't parse every message
 * each time. `sealmail.cache` in the folder's control directory: a header
 * naming the UIDVALIDITY, then append-only records (uid, field, value), each
 * value sealed with the user's IndexCipher — for mail-crypt users nothing of
 * the message is at rest in plaintext. Rebuildable: a damaged tail, another
 * UIDVALIDITY or a record that does not open is simply not used.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { IndexCipher } from '../crypt/codec.js';

export const FIELD_CACHE_FILE = 'sealmail.cache';
const MAGIC = 'SMC1';

export class FieldCache {
  private map: Map<string, Buffer> | null = null;
  private loading: Promise<void> | null = null;
  private readonly path: string;

  constructor(controlDir: string, private readonly cipher: IndexCipher, private readonly uidValidity: number) {
    this.path = join(controlDir, FIELD_CACHE_FILE);
  }

  private async load(): Promise<Map<string, Buffer>> {
    if (this.map) return this.map;
    this.loading ??= (async () => {
      const m = new Map<string, Buffer>();
      let raw: Buffer;
      try { raw = await fsp.readFile(this.path); } catch { raw = Buffer.alloc(0); }
      const head = `${MAGIC} ${this.uidValidity}\n`;
      if (raw.subarray(0, head.length).toString('latin1') !== head) {
        // missing, damaged or of another UIDVALIDITY: start afresh
        await fsp.writeFile(this.path, head, { mode: 0o600 }).catch(() => undefined);
        this.map = m;
        return;
      }
      let off = head.length;
      while (off + 9 <= raw.length) {
        const uid = raw.readUInt32BE(off);
        const flen = raw[off + 4];
        const vlen = raw.readUInt32BE(off + 5);
        const end = off + 9 + flen + vlen;
        if (end > raw.length) break; // torn last record
        const field = raw.subarray(off + 9, off + 9 + flen).toString('latin1');
        try { m.set(`${uid}\0${field}`, this.cipher.open(raw.subarray(off + 9 + flen, end))); } catch { /* not ours to open */ }
        off = end;
      }
      this.map = m;
    })();
    await this.loading;
    return this.map!;
  }

  async get(uid: number, field: string): Promise<Buffer | undefined> {
    return (await this.load()).get(`${uid}\0${field}`);
  }

  /** Best effort: without the user's key (delivery) or on a full disk the value is just not cached. */
  async set(uid: number, field: string, value: Buffer): Promise<void> {
    await this.setMany([[uid, field, value]]);
  }

  /** Several values in one append (a SORT filling the cache for a whole mailbox). */
  async setMany(entries: [uid: number, field: string, value: Buffer][]): Promise<void> {
    const m = await this.load();
    const recs: Buffer[] = [];
    for (const [uid, field, value] of entries) {
      m.set(`${uid}\0${field}`, value);
      let sealed: Buffer;
      try { sealed = this.cipher.seal(value); } catch { continue; }
      const f = Buffer.from(field, 'latin1');
      const hdr = Buffer.alloc(9);
      hdr.writeUInt32BE(uid, 0);
      hdr[4] = f.length;
      hdr.writeUInt32BE(sealed.length, 5);
      recs.push(hdr, f, sealed);
    }
    if (recs.length) await fsp.appendFile(this.path, Buffer.concat(recs), { mode: 0o600 }).catch(() => undefined);
  }
}
