/**
 * Sealmail's own per-folder index `sealmail.index` (never needed by Dovecot,
 * rebuildable from the Maildir at any time): UID → file base, flags,
 * keywords, sizes, INTERNALDATE, SAVEDATE, MODSEQ, plus opaque cached
 * fields (ENVELOPE, BODYSTRUCTURE, headers) supplied by upper layers.
 * The whole record set is sealed with the user's IndexCipher, so no message
 * data is ever at rest in plaintext; writes are temp file + fsync + rename.
 * MODSEQ (RFC 7162) starts above Dovecot's HIGHESTMODSEQ on take-over and
 * never goes down.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { IndexCipher } from '../crypt/codec.js';
import { writeAtomic } from './maildir/dotlock.js';
import { readDovecotHighestModseq } from './maildir/dovecot-modseq.js';
import type { MaildirFolder } from './maildir/folder.js';

export interface IndexRecord {
  uid: number;
  base: string;
  flags: string[];
  keywords: string[];
  size?: number;
  vsize?: number;
  internalDate?: number;
  saveDate?: number;
  modseq: string; // bigint as decimal
  cache: Record<string, string>;
}

interface IndexFile { v: 1; uidValidity: number; highestModseq: string; records: IndexRecord[] }

export const INDEX_FILE = 'sealmail.index';
const MAGIC = Buffer.from('SMIX1\n');

export class MailIndex {
  records = new Map<number, IndexRecord>();
  highestModseq = 0n;
  uidValidity = 0;

  private constructor(readonly path: string, readonly cipher: IndexCipher) {}

  /** Load (or start) the index of a folder; a corrupt/unsealable file is rebuilt, never fatal. */
  static async open(controlDir: string, cipher: IndexCipher, dovecotIndexDir = controlDir): Promise<{ index: MailIndex; rebuilt: boolean }> {
    const idx = new MailIndex(join(controlDir, INDEX_FILE), cipher);
    let rebuilt = true;
    try {
      const raw = await fsp.readFile(idx.path);
      if (raw.subarray(0, MAGIC.length).equals(MAGIC)) {
        const f = JSON.parse(cipher.open(raw.subarray(MAGIC.length)).toString('utf8')) as IndexFile;
        idx.uidValidity = f.uidValidity;
        idx.highestModseq = BigInt(f.highestModseq);
        for (const r of f.records) idx.records.set(r.uid, r);
        rebuilt = false;
      }
    } catch { /* missing or damaged: rebuild from the Maildir */ }
    // never below what Dovecot handed out (spec §11.3)
    const dv = await readDovecotHighestModseq(dovecotIndexDir);
    if (dv !== null && idx.highestModseq <= dv) idx.highestModseq = dv + 1n;
    // no index of ours and none of Dovecot's: a client may still hold a modseq
    // from a lost index, so start from the clock (ms), which only grows
    if (rebuilt && dv === null) idx.highestModseq = BigInt(Date.now());
    return { index: idx, rebuilt };
  }

  /**
   * Reconcile with a synced folder: new UIDs and changed flags get the next
   * MODSEQ (one per reconcile = one per transaction), vanished UIDs are
   * dropped. Returns the UIDs whose state changed.
   */
  async reconcile(folder: MaildirFolder): Promise<{ changed: number[]; expunged: number[] }> {
    if (this.uidValidity !== folder.uidValidity) {
      this.records.clear();
      this.uidValidity = folder.uidValidity;
    }
    const changed: number[] = [];
    const next = (this.highestModseq + 1n).toString();
    const live = new Set<number>();
    for (const m of folder.messages) {
      live.add(m.uid);
      const flags = [...m.flags].sort();
      const old = this.records.get(m.uid);
      if (old && old.base === m.base && old.flags.join() === flags.join() && old.keywords.join() === m.keywords.join()) continue;
      const st = old?.base === m.base ? null : await folder.stat(m).catch(() => null);
      this.records.set(m.uid, {
        uid: m.uid, base: m.base, flags, keywords: [...m.keywords], size: m.size, vsize: m.vsize,
        internalDate: st ? st.mtime.getTime() : old?.internalDate, saveDate: st ? st.ctime.getTime() : old?.saveDate,
        modseq: next, cache: old?.base === m.base ? old.cache : {},
      });
      changed.push(m.uid);
    }
    const expunged = [...this.records.keys()].filter((u) => !live.has(u));
    for (const u of expunged) this.records.delete(u);
    if (changed.length || expunged.length) {
      this.highestModseq += 1n;
      await this.save();
    }
    return { changed, expunged };
  }

  setCache(uid: number, field: string, value: string): void {
    const r = this.records.get(uid);
    if (r) r.cache[field] = value;
  }

  async save(): Promise<void> {
    const f: IndexFile = { v: 1, uidValidity: this.uidValidity, highestModseq: this.highestModseq.toString(), records: [...this.records.values()] };
    const sealed = this.cipher.seal(Buffer.from(JSON.stringify(f)));
    await writeAtomic(this.path, Buffer.concat([MAGIC, sealed]), `${this.path}.tmp.${process.pid}`);
  }
}
