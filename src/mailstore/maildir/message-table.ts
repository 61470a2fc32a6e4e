/**
 * The messages of one Maildir folder as of its last sync, in UID order, held
 * compactly: a mailbox of 100k+ messages must not cost one JS object (plus a
 * flag Set, keyword arrays, file-name strings and a uidlist record) per
 * message, as Dovecot's index does not. Per row: UID, size, virtual size,
 * INTERNALDATE once seen, MODSEQ, change serial (typed arrays), new/ and \Recent bits, the file's base
 * name (one string table with offsets) and its info suffix (":2,FSa"),
 * interned: messages share the few distinct suffixes, and each suffix holds
 * its parsed flags and keywords once.
 *
 * Protocol code still sees MailMessage objects: MessageRef is a two-field view
 * (owner, UID) made when asked for, reading and writing the owner's current
 * table, so a view taken before a sync sees the message's state after it; a
 * message that left the table is read from the owner's snapshot of it
 * (expunged-but-not-yet-announced, RFC 3501 §7.4.1).
 */
import type { SystemFlag } from '../api/flags.js';
import type { MailMessage } from '../api/mailbox.js';
import { parseName } from './filename.js';

/** A message of the Maildir driver: the storage API's MailMessage and where its file is. */
export interface MaildirMessage extends MailMessage {
  uid: number;
  base: string;
  /** Current file name inside `sub`. */
  file: string;
  sub: 'new' | 'cur';
  flags: Set<SystemFlag>;
  /** Keyword names, in letter order. */
  keywords: string[];
  keywordIdx: number[];
  otherLetters: string;
  extra: string;
  /** S= and W= from the name, or computed lazily. */
  size?: number;
  vsize?: number;
  /**
   * INTERNALDATE (the file's mtime, ms) once a stat saw it: what a FETCH answers after another
   * process removed the file, before this session announced the expunge (Dovecot's index cache).
   */
  mtime?: number;
  /** True when first seen by this handle in new/ or as a new UID (\Recent candidate). */
  recent: boolean;
  /** The folder's change serial when this message's flags/keywords last changed (sessions compare it with the serial they last saw). */
  changed: number;
  /** RFC 7162 MODSEQ (0 while unknown: a handle that cannot seal, e.g. delivery without the user's key). */
  modseq: number;
}

/** What an info suffix (the file name after the base, e.g. ":2,FSa") says, parsed once per distinct suffix. */
export interface Suffix {
  readonly text: string;
  /** Shared by every message with this suffix: never mutated. */
  readonly flags: ReadonlySet<SystemFlag>;
  readonly keywordIdx: readonly number[];
  readonly keywords: readonly string[];
  readonly otherLetters: string;
  readonly extra: string;
}

/** One row's values, to add it (and a removed message's snapshot). */
export interface RowInit {
  uid: number;
  base: string;
  file: string;
  sub: 'new' | 'cur';
  size?: number;
  vsize?: number;
  mtime?: number;
  recent: boolean;
  changed: number;
  modseq: number;
}

const SUB_NEW = 1;
const RECENT = 2;

/**
 * The parsed suffixes of one table, by text. Keyword names come from the
 * folder's keyword map as it was when the table was built (letters map to
 * names through dovecot-keywords).
 */
class Suffixes {
  private byText = new Map<string, number>();
  readonly list: Suffix[] = [];
  constructor(private readonly nameFor: (idx: number) => string) {}

  id(text: string): number {
    let id = this.byText.get(text);
    if (id === undefined) {
      const p = parseName(`x${text}`);
      const idx = [...new Set(p.keywordIdx)].sort((a, b) => a - b);
      id = this.list.length;
      this.list.push({ text, flags: p.flags, keywordIdx: idx, keywords: idx.map(this.nameFor), otherLetters: p.otherLetters, extra: p.extra });
      this.byText.set(text, id);
    }
    return id;
  }
}

/** Rows in UID order; built by add() in ascending UID order, then read and updated in place. */
export class MessageTable {
  length = 0;
  private uids: Uint32Array;
  private sizes: Float64Array;
  private vsizes: Float64Array;
  private mtimes: Float64Array;
  private modseqs: Float64Array;
  private serials: Float64Array;
  private bits: Uint8Array;
  private suffixIds: Uint32Array;
  private nameOff: Uint32Array;
  private nameLen: Uint16Array;
  /** Base names one after another; `parts` collects them until the first read joins them. */
  private names = '';
  private parts: string[] = [];
  private namesLen = 0;
  private readonly suffixes: Suffixes;

  constructor(capacity: number, nameFor: (idx: number) => string) {
    const n = Math.max(capacity, 16);
    this.uids = new Uint32Array(n);
    this.sizes = new Float64Array(n);
    this.vsizes = new Float64Array(n);
    this.mtimes = new Float64Array(n);
    this.modseqs = new Float64Array(n);
    this.serials = new Float64Array(n);
    this.bits = new Uint8Array(n);
    this.suffixIds = new Uint32Array(n);
    this.nameOff = new Uint32Array(n);
    this.nameLen = new Uint16Array(n);
    this.suffixes = new Suffixes(nameFor);
  }

  private grow(): void {
    const n = this.uids.length * 2;
    const g = <T extends Uint32Array | Float64Array | Uint8Array | Uint16Array>(a: T): T => { const b = new (a.constructor as new (n: number) => T)(n); b.set(a); return b; };
    this.uids = g(this.uids); this.sizes = g(this.sizes); this.vsizes = g(this.vsizes); this.mtimes = g(this.mtimes); this.modseqs = g(this.modseqs);
    this.serials = g(this.serials); this.bits = g(this.bits); this.suffixIds = g(this.suffixIds); this.nameOff = g(this.nameOff); this.nameLen = g(this.nameLen);
  }

  /** Appends a row; its UID must be above the last one. Returns the row. */
  add(r: RowInit): number {
    if (this.length && r.uid <= this.uids[this.length - 1]) throw new RangeError(`message table: UID ${r.uid} after ${this.uids[this.length - 1]}`);
    if (!r.file.startsWith(r.base)) throw new RangeError(`message table: file ${r.file} does not start with its base name`);
    // lengths are 16-bit (a file name has at most NAME_MAX = 255 bytes)
    if (r.base.length > 0xffff) throw new RangeError(`message table: base name of ${r.base.length} characters`);
    if (this.length === this.uids.length) this.grow();
    const i = this.length++;
    this.uids[i] = r.uid;
    this.sizes[i] = r.size ?? NaN;
    this.vsizes[i] = r.vsize ?? NaN;
    this.mtimes[i] = r.mtime ?? NaN;
    this.modseqs[i] = r.modseq;
    this.serials[i] = r.changed;
    this.bits[i] = (r.sub === 'new' ? SUB_NEW : 0) | (r.recent ? RECENT : 0);
    this.suffixIds[i] = this.suffixes.id(r.file.slice(r.base.length));
    this.nameOff[i] = this.namesLen;
    this.nameLen[i] = r.base.length;
    this.parts.push(r.base);
    this.namesLen += r.base.length;
    return i;
  }

  /** The row of `uid`, -1 when it is not in the table (binary search; `hint` is tried first). */
  rowOf(uid: number, hint = -1): number {
    if (hint >= 0 && hint < this.length && this.uids[hint] === uid) return hint;
    let lo = 0;
    let hi = this.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const u = this.uids[mid];
      if (u === uid) return mid;
      if (u < uid) lo = mid + 1; else hi = mid - 1;
    }
    return -1;
  }

  uid(row: number): number { return this.uids[row]; }

  base(row: number): string {
    if (this.parts.length) { this.names += this.parts.join(''); this.parts = []; }
    return this.names.slice(this.nameOff[row], this.nameOff[row] + this.nameLen[row]);
  }

  suffix(row: number): Suffix { return this.suffixes.list[this.suffixIds[row]]; }
  file(row: number): string { return this.base(row) + this.suffix(row).text; }
  sub(row: number): 'new' | 'cur' { return this.bits[row] & SUB_NEW ? 'new' : 'cur'; }
  recent(row: number): boolean { return (this.bits[row] & RECENT) !== 0; }
  size(row: number): number | undefined { const v = this.sizes[row]; return Number.isNaN(v) ? undefined : v; }
  vsize(row: number): number | undefined { const v = this.vsizes[row]; return Number.isNaN(v) ? undefined : v; }
  mtime(row: number): number | undefined { const v = this.mtimes[row]; return Number.isNaN(v) ? undefined : v; }
  modseq(row: number): number { return this.modseqs[row]; }
  changed(row: number): number { return this.serials[row]; }

  /** The message's file was renamed (flag change, new/ → cur/, found after a foreign rename): same base name. */
  setFile(row: number, sub: 'new' | 'cur', file: string): void {
    const base = this.base(row);
    if (!file.startsWith(base)) throw new RangeError(`message table: ${file} is not a name of ${base}`);
    this.suffixIds[row] = this.suffixes.id(file.slice(base.length));
    this.bits[row] = (this.bits[row] & ~SUB_NEW) | (sub === 'new' ? SUB_NEW : 0);
  }

  setSize(row: number, v: number | undefined): void { this.sizes[row] = v ?? NaN; }
  setVsize(row: number, v: number | undefined): void { this.vsizes[row] = v ?? NaN; }
  setMtime(row: number, v: number | undefined): void { this.mtimes[row] = v ?? NaN; }
  setModseq(row: number, v: number): void { this.modseqs[row] = v; }
  setChanged(row: number, v: number): void { this.serials[row] = v; }
  setRecent(row: number, v: boolean): void { this.bits[row] = (this.bits[row] & ~RECENT) | (v ? RECENT : 0); }

  /** Has any row this flag (the flag Sets are per suffix: one test per distinct suffix). */
  private suffixesWith(flag: SystemFlag, want: boolean): Uint8Array {
    const ok = new Uint8Array(this.suffixes.list.length);
    this.suffixes.list.forEach((s, i) => { ok[i] = s.flags.has(flag) === want ? 1 : 0; });
    return ok;
  }

  /** The first row (in UID order) whose flags have `flag` (`want` true) or lack it; -1 if none. */
  firstRow(flag: SystemFlag, want: boolean): number {
    const ok = this.suffixesWith(flag, want);
    for (let i = 0; i < this.length; i++) if (ok[this.suffixIds[i]]) return i;
    return -1;
  }

  /** How many rows have (or lack) `flag`. */
  count(flag: SystemFlag, want: boolean): number {
    const ok = this.suffixesWith(flag, want);
    let n = 0;
    for (let i = 0; i < this.length; i++) n += ok[this.suffixIds[i]];
    return n;
  }

  /** A plain object of the row's values (a removed message's last state). */
  snapshot(row: number): MaildirMessage {
    const s = this.suffix(row);
    return {
      uid: this.uids[row], base: this.base(row), file: this.file(row), sub: this.sub(row), flags: new Set(s.flags), keywords: [...s.keywords],
      keywordIdx: [...s.keywordIdx], otherLetters: s.otherLetters, extra: s.extra, size: this.size(row), vsize: this.vsize(row), mtime: this.mtime(row),
      recent: this.recent(row), changed: this.serials[row], modseq: this.modseqs[row],
    };
  }

  /** Snapshots of the rows of `uids` (those in the table), in UID order. */
  snapshotsOf(uids: ReadonlySet<number>): MaildirMessage[] {
    const out: MaildirMessage[] = [];
    for (let r = 0; r < this.length; r++) if (uids.has(this.uids[r])) out.push(this.snapshot(r));
    return out;
  }

  /** Keywords in the order Dovecot's rebuilt index lists them: by first use, in UID order. */
  keywordOrder(): string[] {
    const order: string[] = [];
    const done = new Uint8Array(this.suffixes.list.length);
    for (let r = 0; r < this.length; r++) {
      const id = this.suffixIds[r];
      if (done[id]) continue;
      done[id] = 1;
      for (const k of this.suffixes.list[id].keywords) if (!order.includes(k)) order.push(k);
    }
    return order;
  }

  /** Removes the rows of `uids` (in place, order kept); returns the rows' snapshots as they were. */
  remove(uids: ReadonlySet<number>): MaildirMessage[] {
    const gone: MaildirMessage[] = [];
    let w = 0;
    for (let r = 0; r < this.length; r++) {
      if (uids.has(this.uids[r])) { gone.push(this.snapshot(r)); continue; }
      if (w !== r) {
        this.uids[w] = this.uids[r]; this.sizes[w] = this.sizes[r]; this.vsizes[w] = this.vsizes[r]; this.mtimes[w] = this.mtimes[r]; this.modseqs[w] = this.modseqs[r];
        this.serials[w] = this.serials[r]; this.bits[w] = this.bits[r]; this.suffixIds[w] = this.suffixIds[r];
        this.nameOff[w] = this.nameOff[r]; this.nameLen[w] = this.nameLen[r];
      }
      w++;
    }
    // the names of removed rows stay in the string table until the next build (a full sync makes a new table)
    this.length = w;
    return gone;
  }
}

/** Whoever holds the current table of a folder, for MessageRef. */
export interface TableOwner {
  readonly table: MessageTable;
  /** A message no longer in the table, as last seen (expunged, not yet announced to every session). */
  removedMessage(uid: number): MaildirMessage | undefined;
}

/**
 * A message of `owner` by UID: reads and writes go to the row the UID has in
 * the owner's current table; once the message left it, to its last snapshot
 * (or, forgotten, to a detached copy of what the view last read).
 */
export class MessageRef implements MaildirMessage {
  private hint = -1;
  private hintTable: MessageTable | null = null;
  private detached: MaildirMessage | null = null;

  /** `table`/`row`: where the caller just found it (saves the first lookup). */
  constructor(private readonly owner: TableOwner, readonly uid: number, table: MessageTable | null = null, row = -1) {
    this.hintTable = table;
    this.hint = row;
  }

  /** The row in the current table, or -1 (then `gone()` has the values). */
  private row(): number {
    const t = this.owner.table;
    const r = t.rowOf(this.uid, this.hintTable === t ? this.hint : -1);
    this.hint = r; this.hintTable = t;
    return r;
  }

  private gone(): MaildirMessage {
    return this.owner.removedMessage(this.uid) ?? (this.detached ??= {
      uid: this.uid, base: '', file: '', sub: 'cur', flags: new Set(), keywords: [], keywordIdx: [], otherLetters: '', extra: '', recent: false, changed: 0, modseq: 0,
    });
  }

  get base(): string { const r = this.row(); return r < 0 ? this.gone().base : this.owner.table.base(r); }
  get file(): string { const r = this.row(); return r < 0 ? this.gone().file : this.owner.table.file(r); }
  get sub(): 'new' | 'cur' { const r = this.row(); return r < 0 ? this.gone().sub : this.owner.table.sub(r); }
  /** Shared with every message of the same flags: read it, replace it through the folder, never mutate it. */
  get flags(): Set<SystemFlag> { const r = this.row(); return r < 0 ? this.gone().flags : this.owner.table.suffix(r).flags as Set<SystemFlag>; }
  get keywords(): string[] { const r = this.row(); return r < 0 ? this.gone().keywords : this.owner.table.suffix(r).keywords as string[]; }
  get keywordIdx(): number[] { const r = this.row(); return r < 0 ? this.gone().keywordIdx : this.owner.table.suffix(r).keywordIdx as number[]; }
  get otherLetters(): string { const r = this.row(); return r < 0 ? this.gone().otherLetters : this.owner.table.suffix(r).otherLetters; }
  get extra(): string { const r = this.row(); return r < 0 ? this.gone().extra : this.owner.table.suffix(r).extra; }
  get recent(): boolean { const r = this.row(); return r < 0 ? this.gone().recent : this.owner.table.recent(r); }
  get changed(): number { const r = this.row(); return r < 0 ? this.gone().changed : this.owner.table.changed(r); }

  get size(): number | undefined { const r = this.row(); return r < 0 ? this.gone().size : this.owner.table.size(r); }
  set size(v: number | undefined) { const r = this.row(); if (r < 0) this.gone().size = v; else this.owner.table.setSize(r, v); }
  get vsize(): number | undefined { const r = this.row(); return r < 0 ? this.gone().vsize : this.owner.table.vsize(r); }
  set vsize(v: number | undefined) { const r = this.row(); if (r < 0) this.gone().vsize = v; else this.owner.table.setVsize(r, v); }
  get mtime(): number | undefined { const r = this.row(); return r < 0 ? this.gone().mtime : this.owner.table.mtime(r); }
  set mtime(v: number | undefined) { const r = this.row(); if (r < 0) this.gone().mtime = v; else this.owner.table.setMtime(r, v); }
  get modseq(): number { const r = this.row(); return r < 0 ? this.gone().modseq : this.owner.table.modseq(r); }
  set modseq(v: number) { const r = this.row(); if (r < 0) this.gone().modseq = v; else this.owner.table.setModseq(r, v); }
}
