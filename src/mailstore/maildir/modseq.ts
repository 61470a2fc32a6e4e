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
 * One state object per folder per process, shared by every handle of it;
 * processes (IMAP workers, sealadm) share the file: every change is made
 * under `sealmail.modseq.lock` (Dovecot's dotlock) after reading what the
 * others appended, so a message has the same modseq in every process and
 * HIGHESTMODSEQ never goes down whichever process a client reaches. Reads
 * without the lock (the NOOP path) are dropped when the state moved on while
 * they waited for the file (they would put older entries back), and every
 * handle takes the entries others wrote, whichever handle read them.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { identityCipher, type IndexCipher } from '../../crypt/codec.js';
import { acquireDotlock, writeAtomic, type Dotlock } from './dotlock.js';
import { readDovecotHighestModseq } from './dovecot-modseq.js';
import { ModseqEntries } from './modseq-entries.js';

export const MODSEQ_FILE = 'sealmail.modseq';
const MAGIC = 'SMQ1';
/** Expunges remembered for VANISHED (Dovecot keeps them as long as its transaction log). */
const MAX_VANISHED = 20_000;


/** What a message's flags look like on disk (the info after ":2,"); new/ and cur/ without flags are the same. */
export function flagSignature(file: string): string {
  const i = file.indexOf(':2,');
  return i < 0 ? '' : file.slice(i + 3);
}

export interface ModseqMessage { uid: number; file: string; modseq: number }

/** Held by the folder handles using them: a folder nobody has open any more lets its state go (GC). */
const STATES = new Map<string, WeakRef<ModseqState>>();
const reaper = new FinalizationRegistry<string>((path) => { if (!STATES.get(path)?.deref()) STATES.delete(path); });

function cipherWorks(c: IndexCipher): boolean {
  try { c.open(c.seal(Buffer.from('x'))); return true; } catch { return false; }
}

export class ModseqState {
  highest = 0;
  uidValidity = 0;
  /** Grows with every entry change: a sync knows which entries changed after its scan began. */
  tick = 0;
  /**
   * A CONDSTORE client has used this folder (Dovecot enables modseq tracking in
   * a mailbox's index then, for good, and SELECT shows HIGHESTMODSEQ to every client after).
   */
  tracked = false;
  private entries = new ModseqEntries();
  /** Expunged UIDs with their modseq, in modseq order. */
  private vanished: { uid: number; modseq: number }[] = [];
  /** Expunges with a modseq at or below this are forgotten. */
  private vanishedFloor = 0;
  private cipher: IndexCipher | null = null;
  private loading: Promise<void> | null = null;
  /** Flag changes of this process waiting for their modseq (one per flush = one transaction). */
  private changes = new Map<number, ModseqMessage[]>();
  /** In-process serialisation of everything that touches the file. */
  private chain: Promise<unknown> = Promise.resolve();
  /** The file as last read or written: inode and bytes consumed (frames of other processes start there). */
  private fileIno = -1;
  private fileBytes = 0;
  private snapshotBytes = 0;
  /**
   * Grows whenever fileIno/fileBytes move (a read applied, a frame written, a compaction): a
   * refresh that read without the lock while this moved read what is older than the state now.
   */
  private fileEpoch = 0;
  /** Grows whenever any entry changes (read from the file or handed out here): handles adopt when it moved (catchUp). */
  version = 0;

  private constructor(readonly path: string, private readonly dovecotIndexDir: string) {}

  /** The process-wide state of the folder whose control directory is `controlDir` (keep a reference while using it). */
  static of(controlDir: string): ModseqState {
    const path = join(controlDir, MODSEQ_FILE);
    let s = STATES.get(path)?.deref();
    if (!s) {
      s = new ModseqState(path, controlDir);
      STATES.set(path, new WeakRef(s));
      reaper.register(s, path);
    }
    return s;
  }

  /** Forget the in-memory state (tests simulating a restart). */
  static forgetAll(): void { STATES.clear(); }

  /** Loaded with a working cipher: changes are recorded. */
  get active(): boolean { return this.cipher !== null; }

  /**
   * Load once with a cipher that can seal (delivery without the user's key
   * cannot: then modseqs are left to the next handle that can, which sees the
   * new messages by its rescan). Returns false when unusable.
   */
  async ready(cipher: IndexCipher, uidValidity: number, usedBefore: boolean): Promise<boolean> {
    // A mail-crypt user's first folder access in a process may come before the key is unlocked (the
    // INBOX GUID the keys are filed under, read with the plain cipher): the user's sealing cipher,
    // when it comes, takes over, or this process would write frames the user's other processes cannot
    // open, and each would take the other's for a lost file (HIGHESTMODSEQ jumping on every change).
    const upgrade = this.loading !== null && this.cipher === identityCipher && cipher !== identityCipher;
    if (!this.loading || upgrade) {
      if (!cipherWorks(cipher)) return !upgrade ? false : true;
      this.cipher = cipher;
      this.fileIno = -1;
      this.fileBytes = 0;
      this.fileEpoch++;
      this.loading = this.locked(() => this.loadLocked(uidValidity, usedBefore));
    }
    await this.loading;
    if (uidValidity !== this.uidValidity && uidValidity > 0) {
      await this.locked(async () => {
        if (uidValidity === this.uidValidity) return;
        // a new UIDVALIDITY: no old UID means anything now; the modseq still only grows
        this.entries.clear(); this.vanished = []; this.vanishedFloor = this.highest;
        this.uidValidity = uidValidity;
        await this.compactLocked();
      });
    }
    return true;
  }

  /** Run `fn` alone in this process and, across processes, under the file's dotlock. */
  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(async () => {
      let lock: Dotlock | null = null;
      // a lock that cannot be had (a hung holder) must not stop mail: go on, as Dovecot does read-only
      try { lock = await acquireDotlock(this.path, { timeoutMs: 30_000 }); } catch { lock = null; }
      try { return await fn(); } finally { await lock?.release().catch(() => undefined); }
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Catch up with the file: frames appended by other processes are applied,
   * a file replaced by another process's compaction is read again. Returns
   * false when the file is missing or damaged. With `locked`, an incomplete
   * last frame is damage (its writer died); without, it is still being written.
   */
  private async refresh(locked: boolean, msgs?: ModseqMessage[] | (() => ModseqMessage[])): Promise<boolean> {
    // the reads below await: a locked change of this process (or another refresh) may move the state on
    // meanwhile; what this one read is then older than the state and must not be applied over it
    const epoch = this.fileEpoch;
    let fh: fsp.FileHandle;
    try { fh = await fsp.open(this.path, 'r'); } catch { return false; }
    let st: import('node:fs').Stats;
    let from: number;
    let raw: Buffer;
    let bytesRead: number;
    try {
      st = await fh.stat();
      from = this.fileBytes;
      if (st.ino !== this.fileIno || st.size < this.fileBytes) from = 0;
      if (from === st.size) return true;
      raw = Buffer.alloc(st.size - from);
      ({ bytesRead } = await fh.read(raw, 0, raw.length, from));
    } finally { await fh.close(); }
    if (epoch !== this.fileEpoch) return this.refresh(locked, msgs);
    // from here on no await: what other processes wrote reaches the state and `msgs` at once, so no
    // session sees the new HIGHESTMODSEQ while a message still shows its old MODSEQ
    {
      // what we read after having read the file before is another process's newer state
      const fresh = this.fileIno !== -1;
      let off = 0;
      const data = raw.subarray(0, bytesRead);
      if (from === 0) {
        const nl = data.indexOf(0x0a);
        const head = nl > 0 ? data.subarray(0, nl).toString('latin1').split(' ') : [];
        if (head[0] !== MAGIC || !(Number(head[1]) > 0)) return false;
        // a whole file: what it says replaces what we had (never the highest modseq)
        this.entries.clear(); this.vanished = []; this.snapshotBytes = 0;
        this.uidValidity = Number(head[1]);
        off = nl + 1;
      }
      while (off < data.length) {
        if (off + 4 > data.length) { if (locked) return false; break; }
        const len = data.readUInt32BE(off);
        if (off + 4 + len > data.length) { if (locked) return false; break; }
        let text: string;
        try { text = this.cipher!.open(data.subarray(off + 4, off + 4 + len)).toString('utf8'); } catch { return false; }
        this.apply(text, fresh);
        off += 4 + len;
        if (from === 0 && this.snapshotBytes === 0) this.snapshotBytes = off;
      }
      this.fileIno = st.ino;
      this.fileBytes = from + off;
      this.fileEpoch++;
      // a list built only when another process wrote something (a folder's views cost one object each)
      if (msgs) this.adopt(typeof msgs === 'function' ? msgs() : msgs);
      return true;
    }
  }

  /** Messages whose flags are as another process recorded them take its modseq. */
  private adopt(msgs: ModseqMessage[]): void {
    for (const m of msgs) {
      const e = this.entries.get(m.uid);
      if (e && e.sig === flagSignature(m.file)) m.modseq = e.modseq;
    }
  }

  /**
   * With the lock: catch up; a file that vanished or was damaged under us
   * (its writer died mid-frame, someone deleted it) held changes we cannot
   * know: HIGHESTMODSEQ jumps as for a lost file, and it is rewritten from memory.
   */
  private async refreshLocked(msgs?: ModseqMessage[]): Promise<void> {
    if (await this.refresh(true, msgs)) return;
    this.highest = Math.max(this.highest, Date.now());
    this.vanishedFloor = this.highest;
    await this.compactLocked();
  }

  private async loadLocked(uidValidity: number, usedBefore: boolean): Promise<void> {
    if (await this.refresh(true) && this.uidValidity === uidValidity) return;
    // nothing (reliable) known about this folder's past modseqs
    const dv = await readDovecotHighestModseq(this.dovecotIndexDir);
    const floor = Math.max(this.highest, dv === null ? 0 : Number(dv));
    if (dv !== null) this.tracked = true;
    this.entries.clear();
    this.vanished = [];
    this.uidValidity = uidValidity;
    // a folder that never held a message (no UID ever given) cannot have handed out a message's
    // modseq: start as Dovecot does (1), or where Dovecot or this process already stood. A mail-crypt
    // user's new folder gets here once its key is unlocked (the file the plain cipher wrote before
    // cannot be opened with the user's): that is no loss to jump over
    this.highest = usedBefore ? Math.max(floor, Date.now()) : Math.max(floor, 1);
    this.vanishedFloor = this.highest;
    if (uidValidity > 0) await this.compactLocked();
  }

  /** `fresh`: entries read from another process's writes count as newer than a running sync's scan. */
  private apply(text: string, fresh: boolean): void {
    // hot on a cold open of a big folder (one line per message): index arithmetic, no split()
    const at = fresh ? ++this.tick : 0;
    this.version++;
    let pos = 0;
    while (pos < text.length) {
      let end = text.indexOf('\n', pos);
      if (end < 0) end = text.length;
      const k = text.charCodeAt(pos);
      if (k === 0x6d /* m */) {
        const a = text.indexOf(' ', pos + 2);
        const b = text.indexOf(' ', a + 1);
        const uid = +text.slice(pos + 2, a);
        if (b < 0 || b > end) this.entries.set(uid, { modseq: +text.slice(a + 1, end), sig: '', at });
        else this.entries.set(uid, { modseq: +text.slice(a + 1, b), sig: text.slice(b + 1, end), at });
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

  modseqOf(uid: number): number { return this.entries.get(uid)?.modseq ?? 0; }

  /** What a full scan differs in from the records: changed/new messages and vanished UIDs. */
  private diff(msgs: ModseqMessage[], since: number): { changed: ModseqMessage[]; gone: number[] } {
    const changed: ModseqMessage[] = [];
    let known = 0;
    for (const m of msgs) {
      const e = this.entries.get(m.uid);
      if (e) known++;
      if (e && (e.sig === flagSignature(m.file) || e.at > since)) { m.modseq = e.modseq; continue; }
      changed.push(m);
    }
    const gone: number[] = [];
    if (this.entries.size > known) {
      // recorded UIDs not in the scan: expunged (unless recorded after the scan began)
      const live = new Set(msgs.map((m) => m.uid));
      for (const [uid, e] of this.entries) if (!live.has(uid) && e.at <= since) gone.push(uid);
    }
    return { changed, gone };
  }

  /**
   * Compare a full scan with what was recorded: new UIDs and changed flags
   * get one new modseq (one transaction), recorded UIDs that are gone are
   * expunged. Entries changed after the scan began (`since`), by this process
   * or read from another's frames, are newer than the scan and kept.
   */
  async reconcile(msgs: ModseqMessage[], since: number): Promise<void> {
    // the common case (nothing changed) needs no lock: catch up with others, compare
    await this.refresh(false, msgs);
    const quick = this.diff(msgs, since);
    if (!quick.changed.length && !quick.gone.length && !this.changes.size) return;
    await this.locked(async () => {
      await this.refreshLocked(msgs);
      const { changed, gone } = this.diff(msgs, since);
      const lines: string[] = [];
      let ms = 0;
      const next = () => (ms ||= ++this.highest);
      for (const m of changed) {
        const sig = flagSignature(m.file);
        this.entries.set(m.uid, { sig, modseq: next(), at: ++this.tick });
        lines.push(`m ${m.uid} ${ms} ${sig}`);
        m.modseq = ms;
      }
      if (gone.length) lines.push(...this.recordExpunges(gone, next()));
      lines.push(...this.takeChanges(next));
      await this.write(lines);
    });
  }

  /**
   * Between scans (the Maildir looked unchanged): frames other processes
   * appended since — the modseqs of their flag changes, which they may write
   * after the rename a scan of ours already saw and gave a modseq of its own —
   * are applied to the messages whose flags they recorded as we see them, so
   * every process reports a message with the same MODSEQ. `seen`: the
   * version the caller's messages last took entries at; returns the new one.
   */
  async catchUp(msgs: () => ModseqMessage[], seen: number): Promise<number> {
    if (!this.cipher || !this.loading) return seen;
    // one stat when nothing was appended (the NOOP path): the file is opened only when it grew
    let grew: boolean;
    try {
      const st = await fsp.stat(this.path);
      grew = st.ino !== this.fileIno || st.size !== this.fileBytes;
    } catch { return seen; }
    if (grew) await this.refresh(false);
    // every handle adopts, not only the one whose refresh read the frames: another handle of this
    // process (an APPEND's, a COPY's) may have read them first, leaving this one with the old modseq
    if (seen !== this.version) this.adopt(msgs());
    return this.version;
  }

  /** Remember that a CONDSTORE client used the folder. */
  async track(): Promise<void> {
    if (this.tracked || !this.cipher) return;
    await this.locked(async () => {
      await this.refreshLocked();
      if (this.tracked) return;
      this.tracked = true;
      await this.write(['t 1']);
    });
  }

  /**
   * A flag change by this process; its modseq is handed out by the next
   * flush (all changes of one flush share it, as a Dovecot transaction).
   * `m` may be several objects of the same message (shared handles).
   */
  change(...ms: ModseqMessage[]): void {
    const uid = ms[0].uid;
    const list = this.changes.get(uid) ?? [];
    for (const m of ms) if (!list.includes(m)) list.push(m);
    this.changes.set(uid, list);
  }

  /**
   * A newer object of a message whose change waits for its modseq (a sync
   * rebuilt the message list between the rename and the flush) gets that
   * modseq too, or it would keep the old one while HIGHESTMODSEQ moves on.
   */
  get pending(): boolean { return this.changes.size > 0; }

  alsoFor(m: ModseqMessage): void {
    const list = this.changes.get(m.uid);
    if (list && !list.includes(m)) list.push(m);
  }

  private takeChanges(next: () => number): string[] {
    const lines: string[] = [];
    for (const [uid, objs] of this.changes) {
      const sig = flagSignature(objs[0].file);
      const ms = next();
      this.entries.set(uid, { sig, modseq: ms, at: ++this.tick });
      for (const o of objs) o.modseq = ms;
      lines.push(`m ${uid} ${ms} ${sig}`);
    }
    this.changes.clear();
    return lines;
  }

  /** Expunges by this process (one transaction). */
  async expunged(uids: number[]): Promise<void> {
    await this.locked(async () => {
      await this.refreshLocked();
      const known = uids.filter((u) => this.entries.has(u));
      let ms = 0;
      const next = () => (ms ||= ++this.highest);
      const lines = known.length ? this.recordExpunges(known, next()) : [];
      lines.push(...this.takeChanges(next));
      await this.write(lines);
    });
  }

  private recordExpunges(uids: number[], ms: number): string[] {
    for (const uid of uids) {
      this.entries.delete(uid);
      this.vanished.push({ uid, modseq: ms });
    }
    this.tick++;
    return uids.map((uid) => `x ${uid} ${ms}`);
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

  /** Hand out the modseq of pending flag changes and write them; resolves once on disk (a reply may then show them). */
  async flush(): Promise<void> {
    if (!this.changes.size || !this.cipher) return;
    await this.locked(async () => {
      await this.refreshLocked();
      let ms = 0;
      await this.write(this.takeChanges(() => (ms ||= ++this.highest)));
    });
  }

  /** With the lock: append a frame (or compact when the appended part outgrew the snapshot). */
  private async write(lines: string[]): Promise<void> {
    if (!lines.length || !this.cipher) return;
    this.version++;
    lines.push(`h ${this.highest}`);
    if (this.fileBytes === 0 || (this.fileBytes > 65536 && this.fileBytes > 2 * this.snapshotBytes)) { await this.compactLocked(); return; }
    const sealed = this.cipher.seal(Buffer.from(lines.join('\n'), 'utf8'));
    const frame = Buffer.alloc(4 + sealed.length);
    frame.writeUInt32BE(sealed.length, 0);
    sealed.copy(frame, 4);
    const start = this.fileBytes;
    try {
      await fsp.appendFile(this.path, frame, { mode: 0o600 });
      // an unlocked refresh may have read (and counted) this frame while it was being appended
      if (this.fileBytes === start) this.fileBytes = start + frame.length;
      this.fileEpoch++;
    } catch {
      // a full disk or read-only folder: the next sync finds the difference and moves the modseq on
    }
  }

  private async compactLocked(): Promise<void> {
    if (!this.cipher) return;
    this.version++;
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
      this.fileIno = (await fsp.stat(this.path)).ino;
      this.fileBytes = this.snapshotBytes = data.length;
      this.fileEpoch++;
    } catch { /* as in write(): only costs a later modseq jump */ }
  }
}
