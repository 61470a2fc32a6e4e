/**
 * Per-folder cache of values the protocol layer derives from a message and
 * asks for again and again (IMAP ENVELOPE, BODY, BODYSTRUCTURE — opaque
 * bytes here), so a FETCH over a big mailbox doesn't parse every message
 * each time. `sealmail.cache` in the folder's control directory: a header
 * naming the UIDVALIDITY, then append-only records (uid, field, value), each
 * value sealed with the user's IndexCipher — for mail-crypt users nothing of
 * the message is at rest in plaintext; the header says `sealed` then, and a
 * cache of the other mode is started afresh. Rebuildable: a damaged tail, another
 * UIDVALIDITY or a record that does not open is simply not used.
 *
 * In memory a value is a latin1 string (one char per byte) in a map per
 * field keyed by UID: a 100k-message mailbox holds 100k ENVELOPEs, and a
 * small Buffer per value pinned a whole 8 KiB pool slab each (~370 MiB for
 * 100k), where a one-byte string costs its length plus a small header; the
 * FETCH fast path writes the text as it is.
 */
import { constants, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { identityCipher, type IndexCipher } from '../crypt/codec.js';

export const FIELD_CACHE_FILE = 'sealmail.cache';
const MAGIC = 'SMC1';
/** Values held back before an append is forced (a few hundred KiB at most). */
const WRITE_BEHIND_MAX = 512;

function put(m: Map<string, Map<number, string>>, uid: number, field: string, value: Buffer): void {
  let f = m.get(field);
  if (!f) m.set(field, f = new Map());
  f.set(uid, value.toString('latin1'));
}

export class FieldCache {
  /** field → uid → value (latin1 text of the bytes). */
  private map: Map<string, Map<number, string>> | null = null;
  private pending: [uid: number, field: string, value: Buffer][] = [];
  private flushSoon: NodeJS.Immediate | null = null;
  private writing: Promise<unknown> = Promise.resolve();
  private loading: Promise<void> | null = null;
  private readonly path: string;

  constructor(controlDir: string, private readonly cipher: IndexCipher, private readonly uidValidity: number) {
    this.path = join(controlDir, FIELD_CACHE_FILE);
  }

  private async load(): Promise<Map<string, Map<number, string>>> {
    if (this.map) return this.map;
    this.loading ??= (async () => {
      const m = new Map<string, Map<number, string>>();
      let raw: Buffer;
      try { raw = await fsp.readFile(this.path); } catch { raw = Buffer.alloc(0); }
      // the header names the mode: records sealed for a mail-crypt user would pass the identity
      // cipher as values once mail_crypt is turned off, and a plain cache must not stay at rest
      // once it is turned on (sealadm mailbox cryptokey encrypt-/decrypt-existing)
      const head = `${MAGIC} ${this.uidValidity}${this.cipher === identityCipher ? '' : ' sealed'}\n`;
      if (raw.subarray(0, head.length).toString('latin1') !== head) {
        // missing, damaged, of another UIDVALIDITY or the other mode: start afresh
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
        try { put(m, uid, field, this.cipher.open(raw.subarray(off + 9 + flen, end))); } catch { /* not ours to open */ }
        off = end;
      }
      this.map = m;
    })();
    await this.loading;
    return this.map!;
  }

  /** A value without waiting: undefined when absent or while the file is not loaded yet. */
  peek(uid: number, field: string): Buffer | undefined {
    const v = this.peekText(uid, field);
    return v === undefined ? undefined : Buffer.from(v, 'latin1');
  }

  /** peek() as latin1 text (one char per byte): what a response line is built from, without a Buffer. */
  peekText(uid: number, field: string): string | undefined {
    return this.map?.get(field)?.get(uid);
  }

  /** get() as latin1 text. */
  async getText(uid: number, field: string): Promise<string | undefined> {
    return (await this.load()).get(field)?.get(uid);
  }

  async get(uid: number, field: string): Promise<Buffer | undefined> {
    const v = (await this.load()).get(field)?.get(uid);
    return v === undefined ? undefined : Buffer.from(v, 'latin1');
  }

  /**
   * Best effort: without the user's key (delivery) or on a full disk the value is just not cached.
   * Written behind: values set in the same turn of the event loop (a FETCH over many messages)
   * go out in one append instead of an open/write/close each (100k of those took most of a
   * first ENVELOPE fetch of a big mailbox); `flush()` writes what is pending.
   */
  async set(uid: number, field: string, value: Buffer): Promise<void> {
    put(await this.load(), uid, field, value);
    this.pending.push([uid, field, value]);
    if (this.pending.length >= WRITE_BEHIND_MAX) await this.flush();
    else this.flushSoon ??= setImmediate(() => { void this.flush(); });
  }

  /** Append the values set but not yet written. */
  async flush(): Promise<void> {
    if (this.flushSoon) { clearImmediate(this.flushSoon); this.flushSoon = null; }
    const entries = this.pending.splice(0);
    const recs = this.records(entries);
    // one append at a time, in order: a record never interleaves with another of ours
    this.writing = this.writing.then(() => (recs.length ? fsp.appendFile(this.path, recs, { mode: 0o600 }).catch(() => undefined) : undefined));
    await this.writing;
  }

  /** Several values in one append (a SORT filling the cache for a whole mailbox). */
  async setMany(entries: [uid: number, field: string, value: Buffer][]): Promise<void> {
    const m = await this.load();
    for (const [uid, field, value] of entries) put(m, uid, field, value);
    this.pending.push(...entries);
    await this.flush();
  }

  /**
   * Append without loading the file (a delivery: its handle never reads the
   * cache, and a big mailbox's cache is large); only onto a file of this
   * UIDVALIDITY (or a new one), else nothing is written. Best effort, as set().
   */
  async appendOnly(entries: [uid: number, field: string, value: Buffer][]): Promise<void> {
    const recs = this.records(entries);
    if (!recs.length) return;
    const head = Buffer.from(`${MAGIC} ${this.uidValidity}\n`, 'latin1');
    const have = Buffer.alloc(head.length);
    let fh: fsp.FileHandle | undefined;
    try {
      fh = await fsp.open(this.path, constants.O_RDWR | constants.O_APPEND);
      const { bytesRead } = await fh.read(have, 0, have.length, 0);
      if (bytesRead === head.length && have.equals(head)) await fh.write(recs);
    } catch (e) {
      // no cache yet: start it (wx: a session that just did keeps its own)
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') await fsp.writeFile(this.path, Buffer.concat([head, recs]), { flag: 'wx', mode: 0o600 }).catch(() => undefined);
    } finally { await fh?.close(); }
  }

  /** Sealed records; values the cipher cannot seal (delivery without the user's key) are left out. */
  private records(entries: [uid: number, field: string, value: Buffer][]): Buffer {
    const recs: Buffer[] = [];
    for (const [uid, field, value] of entries) {
      let sealed: Buffer;
      try { sealed = this.cipher.seal(value); } catch { continue; }
      const f = Buffer.from(field, 'latin1');
      const hdr = Buffer.alloc(9);
      hdr.writeUInt32BE(uid, 0);
      hdr[4] = f.length;
      hdr.writeUInt32BE(sealed.length, 5);
      recs.push(hdr, f, sealed);
    }
    return Buffer.concat(recs);
  }
}
