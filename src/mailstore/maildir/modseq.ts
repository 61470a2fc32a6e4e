/**
 * Per-message MODSEQ and HIGHESTMODSEQ of one Maildir folder (RFC 7162
 * CONDSTORE/QRESYNC), kept in `sealmail.modseq` beside the uidlist. Maildir
 * itself has no modseqs (Dovecot keeps them in its index, which we never
 * write), so every change we see gets the next one: our own STORE/APPEND/
 * EXPUNGE, and whatever a rescan finds different from the flags we last
 * recorded (a flag change or expunge by Dovecot or another process).
 * Expunged UIDs are remembered with their modseq (a bounded list) for QRESYNC
 * VANISHED; below the list's floor the caller must assume anything vanished.
 *
 * File: `SMQ1 <uidvalidity>\n`, then frames [u32 length][sealed text]; the
 * first frame is a snapshot, later ones are appended changes; compaction
 * rewrites it atomically (temp + fsync + rename). Frames are sealed with the
 * user's IndexCipher (mail-crypt users: nothing about their mail in
 * plaintext). A missing or damaged file = nothing is known: UIDVALIDITY
 * stays, HIGHESTMODSEQ jumps above anything ever handed out (the clock in ms,
 * and above Dovecot's HIGHESTMODSEQ from dovecot.index.log on take-over), and
 * every message gets that new modseq, so clients simply resync.
 * One state object per folder per process, shared by every handle of it.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { IndexCipher } from '../../crypt/codec.js';
import { writeAtomic } from './dotlock.js';
import { readDovecotHighestModseq } from './dovecot-modseq.js';

export const MODSEQ_FILE = 'sealmail.modseq';
const MAGIC = 'SMQ1';
/** Expunges remembered for VANISHED (Dovecot keeps them as long as its transaction log). */
const MAX_VANISHED = 20_000;

interface Entry { sig: string; modseq: number; at: number }

/** What a message's flags look like on disk (the info after ":2,"); new/ and cur/ without flags are the same. */
export function flagSignature(file: string): string {
  const i = file.indexOf(':2,');
  return i < 0 ? '' : file.slice(i + 3);
}

export interface ModseqMessage { uid: number; file: string; modseq: number }

const STATES = new Map<string, ModseqState>();

function cipherWorks(c: IndexCipher): boolean {
  try { c.open(c.seal(Buffer.from('x'))); return true; } catch { return false; }
}

export class ModseqState {
  highest = 0;
  uidValidity = 0;
  /** Grows with every entry change: a sync knows which entries changed after its scan began. */
  tick = 0;
  private entries = new Map<number, Entry>();
  /** Expunged UIDs with their modseq, in modseq order. */
  private vanished: { uid: number; modseq: number }[] = [];
  /** Expunges with a modseq at or below this are forgotten. */
  private vanishedFloor = 0;
  /**
   * A CONDSTORE client has used this folder (Dovecot enables modseq tracking in
   * a mailbox's index then, for good, and SELECT shows HIGHESTMODSEQ to every client after).
   */
  tracked = false;
  private cipher: IndexCipher | null = null;
  private loading: Promise<void> | null = null;
  private pending: string[] = [];
  private writing: Promise<void> = Promise.resolve();
  private fileBytes = 0;
  private snapshotBytes = 0;

  private constructor(readonly path: string, private readonly dovecotIndexDir: string) {}

  /** The process-wide state of the folder whose control directory is `controlDir`. */
  static of(controlDir: string): ModseqState {
    const path = join(controlDir, MODSEQ_FILE);
    let s = STATES.get(path);
    if (!s) { s = new ModseqState(path, controlDir); STATES.set(path, s); }
    return s;
  }

  /** Forget the in-memory state (tests simulating a restart). */
  static forgetAll(): void { STATES.clear(); }

  /**
   * Load once with a cipher that can seal (delivery without the user's key
   * cannot: then modseqs are left to the next handle that can, which sees the
   * new messages by its rescan). Returns false when unusable.
   */
  async ready(cipher: IndexCipher, uidValidity: number, usedBefore: boolean): Promise<boolean> {
    if (!this.loading) {
      if (!cipherWorks(cipher)) return false;
      this.cipher = cipher;
      this.loading = this.load(uidValidity, usedBefore);
    }
    await this.loading;
    if (uidValidity !== this.uidValidity && uidValidity > 0) {
      // a new UIDVALIDITY: no old UID means anything now; the modseq still only grows
      this.entries.clear(); this.vanished = []; this.vanishedFloor = this.highest;
      this.uidValidity = uidValidity;
      await this.compact();
    }
    return true;
  }

  private async load(uidValidity: number, usedBefore: boolean): Promise<void> {
    let raw: Buffer | null = null;
    try { raw = await fsp.readFile(this.path); } catch { /* missing */ }
    let ok = false;
    if (raw) {
      const nl = raw.indexOf(0x0a);
      const head = nl > 0 ? raw.subarray(0, nl).toString('latin1').split(' ') : [];
      if (head[0] === MAGIC && Number(head[1]) > 0) {
        this.uidValidity = Number(head[1]);
        ok = true;
        let off = nl + 1;
        let first = true;
        while (off < raw.length) {
          if (off + 4 > raw.length) { ok = false; break; }
          const len = raw.readUInt32BE(off);
          if (off + 4 + len > raw.length) { ok = false; break; } // torn tail: its change is unknown
          let text: string;
          try { text = this.cipher!.open(raw.subarray(off + 4, off + 4 + len)).toString('utf8'); } catch { ok = false; break; }
          this.apply(text);
          off += 4 + len;
          if (first) { this.snapshotBytes = off; first = false; }
        }
        this.fileBytes = off;
      }
    }
    if (ok && this.uidValidity === uidValidity) return;
    // nothing (reliable) known about this folder's past modseqs
    const dv = await readDovecotHighestModseq(this.dovecotIndexDir);
    const floor = Math.max(this.highest, dv === null ? 0 : Number(dv));
    if (dv !== null) this.tracked = true;
    this.entries.clear();
    this.vanished = [];
    this.uidValidity = uidValidity;
    // a folder that never held a message cannot have handed out a modseq: start as Dovecot does
    this.highest = usedBefore || floor > 0 ? Math.max(floor, Date.now()) : 1;
    this.vanishedFloor = this.highest;
    if (uidValidity > 0) await this.compact();
  }

  private apply(text: string): void {
    // hot on a cold open of a big folder (one line per message): index arithmetic, no split()
    let pos = 0;
    while (pos < text.length) {
      let end = text.indexOf('\n', pos);
      if (end < 0) end = text.length;
      const k = text.charCodeAt(pos);
      if (k === 0x6d /* m */) {
        const a = text.indexOf(' ', pos + 2);
        const b = text.indexOf(' ', a + 1);
        const uid = +text.slice(pos + 2, a);
        if (b < 0 || b > end) this.entries.set(uid, { modseq: +text.slice(a + 1, end), sig: '', at: 0 });
        else this.entries.set(uid, { modseq: +text.slice(a + 1, b), sig: text.slice(b + 1, end), at: 0 });
      } else if (k === 0x78 /* x */) {
        const a = text.indexOf(' ', pos + 2);
        const uid = +text.slice(pos + 2, a);
        this.entries.delete(uid);
        this.vanished.push({ uid, modseq: +text.slice(a + 1, end) });
      } else if (k === 0x68 /* h */) this.highest = Math.max(this.highest, +text.slice(pos + 2, end));
      else if (k === 0x66 /* f */) this.vanishedFloor = Math.max(this.vanishedFloor, +text.slice(pos + 2, end));
      else if (k === 0x74 /* t */) this.tracked = true;
      pos = end + 1;
    }
  }

  /** Loaded with a working cipher: changes are recorded. */
  get active(): boolean { return this.cipher !== null; }

  modseqOf(uid: number): number { return this.entries.get(uid)?.modseq ?? 0; }

  /**
   * Compare a full scan with what was recorded: new UIDs and changed flags
   * get one new modseq (one transaction), recorded UIDs that are gone are
   * expunged. Entries changed by this process after the scan began (`since`)
   * are newer than the scan and kept.
   */
  async reconcile(msgs: ModseqMessage[], since: number): Promise<void> {
    let next = 0;
    let known = 0;
    for (const m of msgs) {
      const e = this.entries.get(m.uid);
      if (e) known++;
      const sig = flagSignature(m.file);
      if (e && (e.sig === sig || e.at > since)) { m.modseq = e.modseq; continue; }
      if (!next) next = ++this.highest;
      this.entries.set(m.uid, { sig, modseq: next, at: ++this.tick });
      this.pending.push(`m ${m.uid} ${next} ${sig}`);
      m.modseq = next;
    }
    const gone: number[] = [];
    if (this.entries.size - (msgs.length - known) > known) {
      // some recorded UIDs were not in the scan: expunged (unless recorded after the scan began)
      const live = new Set(msgs.map((m) => m.uid));
      for (const [uid, e] of this.entries) if (!live.has(uid) && e.at <= since) gone.push(uid);
    }
    if (gone.length) this.recordExpunges(gone, next || ++this.highest);
    if (this.pending.length) await this.flush();
  }

  /** Remember that a CONDSTORE client used the folder. */
  async track(): Promise<void> {
    if (this.tracked || !this.cipher) return;
    this.tracked = true;
    this.pending.push('t 1');
    await this.flush();
  }

  /** A flag change by this process: the message's next modseq (written by the next flush). */
  change(m: ModseqMessage): number {
    const ms = ++this.highest;
    this.entries.set(m.uid, { sig: flagSignature(m.file), modseq: ms, at: ++this.tick });
    this.pending.push(`m ${m.uid} ${ms} ${flagSignature(m.file)}`);
    m.modseq = ms;
    return ms;
  }

  /** Expunges by this process (one transaction). */
  async expunged(uids: number[]): Promise<void> {
    const known = uids.filter((u) => this.entries.has(u));
    if (!known.length) return;
    this.recordExpunges(known, ++this.highest);
    await this.flush();
  }

  private recordExpunges(uids: number[], ms: number): void {
    for (const uid of uids) {
      this.entries.delete(uid);
      this.vanished.push({ uid, modseq: ms });
      this.pending.push(`x ${uid} ${ms}`);
    }
    this.tick++;
  }

  /**
   * UIDs expunged after `modseq`, or null when that is older than what is
   * remembered (the caller then treats every missing UID as vanished).
   */
  vanishedSince(modseq: number): number[] | null {
    if (modseq < this.vanishedFloor) return null;
    const out: number[] = [];
    for (let i = this.vanished.length - 1; i >= 0 && this.vanished[i].modseq > modseq; i--) out.push(this.vanished[i].uid);
    return out.sort((a, b) => a - b);
  }

  /** Write what changed; resolves once it is on disk (a reply may then show the new modseqs). */
  flush(): Promise<void> {
    const run = this.writing.then(async () => {
      if (!this.pending.length || !this.cipher) return;
      const lines = this.pending;
      this.pending = [];
      lines.push(`h ${this.highest}`);
      if (this.fileBytes > 65536 && this.fileBytes > 2 * this.snapshotBytes) { await this.compactNow(); return; }
      const sealed = this.cipher.seal(Buffer.from(lines.join('\n'), 'utf8'));
      const frame = Buffer.alloc(4 + sealed.length);
      frame.writeUInt32BE(sealed.length, 0);
      sealed.copy(frame, 4);
      try {
        if (this.fileBytes === 0) { await this.compactNow(); return; }
        await fsp.appendFile(this.path, frame, { mode: 0o600 });
        this.fileBytes += frame.length;
      } catch {
        // a full disk or read-only folder: the next sync finds the difference and moves the modseq on
      }
    });
    this.writing = run.catch(() => undefined);
    return run;
  }

  private compact(): Promise<void> {
    const run = this.writing.then(() => this.compactNow());
    this.writing = run.catch(() => undefined);
    return run;
  }

  private async compactNow(): Promise<void> {
    if (!this.cipher) return;
    this.pending = [];
    if (this.vanished.length > MAX_VANISHED) {
      const cut = this.vanished.length - MAX_VANISHED;
      this.vanishedFloor = Math.max(this.vanishedFloor, this.vanished[cut - 1].modseq);
      this.vanished = this.vanished.slice(cut);
    }
    const lines: string[] = [`h ${this.highest}`, `f ${this.vanishedFloor}`];
    if (this.tracked) lines.push('t 1');
    for (const v of this.vanished) lines.push(`x ${v.uid} ${v.modseq}`);
    for (const [uid, e] of this.entries) lines.push(`m ${uid} ${e.modseq} ${e.sig}`);
    const sealed = this.cipher.seal(Buffer.from(lines.join('\n'), 'utf8'));
    const head = Buffer.from(`${MAGIC} ${this.uidValidity}\n`, 'latin1');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(sealed.length, 0);
    const data = Buffer.concat([head, len, sealed]);
    try {
      await writeAtomic(this.path, data, `${this.path}.tmp.${process.pid}`);
      this.fileBytes = this.snapshotBytes = data.length;
    } catch { /* as in flush: only costs a later modseq jump */ }
  }
}
