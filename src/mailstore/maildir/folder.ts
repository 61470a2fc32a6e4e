/**
 * One Maildir folder as Dovecot 2.3 keeps it (maildir-sync.c, maildir-save.c):
 * scanning new/ and cur/, giving files without a uidlist entry the next UIDs
 * in Dovecot's order under `dovecot-uidlist.lock`, moving new/ → cur/ only
 * for read-write opens, and saving/flagging/expunging the way Dovecot does
 * (tmp/ → fsync → rename → fdatasync of the directory; flag change = rename
 * within cur/; expunge = unlink), so Dovecot and Sealmail can share the same
 * directory. LMTP deliveries are committed in batches per folder and get
 * UIDs only when the uidlist lock is free, as Dovecot's do.
 */
import { close as closeCb, createReadStream, fstat as fstatCb, open as openCb, read as readCb, readFile as readFileCb, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { IndexCipher, MessageCodec } from '../../crypt/codec.js';
import { identityCipher, identityCodec } from '../../crypt/codec.js';
import { FieldCache } from '../field-cache.js';
import { MailStoreError, ioError } from '../errors.js';
import { announceChange } from '../changes.js';
import { acquireDotlock, writeAtomic, type Dotlock, type DotlockOptions } from './dotlock.js';
import { baseName, compareBaseNames, infoSuffix, newBaseName, parseName } from './filename.js';
import type { SystemFlag } from '../api/flags.js';
import type { MailFolder, MailMessage } from '../api/mailbox.js';
import { MessageRef, MessageTable, type MaildirMessage, type TableOwner } from './message-table.js';
import { KeywordMap, writeKeywords } from './keywords.js';
import { appendMaildirsize } from './maildirsize.js';
import { MAX_UID, appendUidlist, emptyUidlist, nextUid, rewriteUidlist, type Uidlist, type UidlistRecord } from './uidlist.js';
import { nextUidValidity } from './uidvalidity.js';
import { ModseqState } from './modseq.js';
import { readUidlistTail, recordOf } from './uidlist-tail.js';
import { FolderFiles, type FolderSnapshot } from './folder-files.js';
import { CorruptStream } from '../compression/input.js';
import { bodyForSave, decompressedBody, needsDecompression } from '../compression/message-body.js';
import type { CompressionSettings } from '../compression/settings.js';
import { headerEnd } from '../message-headers.js';

export const RECENT_FILE = 'sealmail.recent';

export type { MaildirMessage } from './message-table.js';

export interface FolderOptions {
  codec?: MessageCodec;
  /** Seals cached values (FieldCache); identity for users without mail-crypt. */
  cipher?: IndexCipher;
  /** IMAP name, passed to the codec. */
  mailboxName: string;
  /** Root control dir holding dovecot-uidvalidity* and maildirsize. */
  rootDir: string;
  /** Directory holding this folder's dovecot-uidlist/keywords (CONTROL=), default the folder dir. */
  controlDir?: string;
  lock?: DotlockOptions;
  /** Log sink for repairs (Dovecot logs these as errors/warnings). */
  warn?: (msg: string) => void;
  /** Dovecot's zlib plugin for this user (mail_plugins has `zlib`); absent = files are read and written as they are. */
  compression?: CompressionSettings;
  /** false: saves and expunges here leave maildirsize alone (a quota rule `ignore`s this mailbox). */
  quotaCounted?: boolean;
  /** After maildirsize got counted changes (quota warnings); never throws. */
  quotaChanged?: QuotaChangeHook;
}

/**
 * Called with the `[bytes, count]` of each quota transaction just counted
 * (one per delivery of a batch, one per APPEND, COPY or EXPUNGE), in order.
 */
export type QuotaChangeHook = (changes: [bytes: number, count: number][]) => Promise<void>;

export interface SyncOptions {
  /** Read-write open with "drop recent" (IMAP SELECT): move new/ → cur/. */
  moveNew?: boolean;
  /** false = never take the lock (pure read-only view). Default true. */
  assignUids?: boolean;
}

export interface AppendOptions {
  flags?: Iterable<SystemFlag>;
  keywords?: Iterable<string>;
  internalDate?: Date;
  /**
   * The saving session has this folder selected read-write: it takes the \Recent of what it
   * saves under the lock that gives the UID (Dovecot's maildir_save_sync_index), so an idling
   * session's sync can never take it first. Told the UIDs it took, `from`..`to`.
   */
  tookRecent?: (from: number, to: number) => void;
}

/** new/ and cur/ as listed: base name → file name per directory, and the names to rename (duplicates). */
interface Scan {
  cur: ReadonlyMap<string, string>;
  new: ReadonlyMap<string, string>;
  dups: { sub: 'new' | 'cur'; file: string }[];
}

function scanOf(s: FolderSnapshot): Scan {
  const dups: Scan['dups'] = [...s.cur.dups.map((file) => ({ sub: 'cur' as const, file })), ...s.new.dups.map((file) => ({ sub: 'new' as const, file }))];
  // a base name in both: the one in new/ is the duplicate (cur/ is listed first)
  for (const [base, file] of s.new.files) if (s.cur.files.has(base)) dups.push({ sub: 'new', file });
  return { cur: s.cur.files, new: s.new.files, dups };
}

/**
 * The keywords a folder's FLAGS list has had, by control directory and
 * UIDVALIDITY (a deleted and recreated folder starts again): Dovecot's
 * list lives in its index and only grows (a keyword no message has any more
 * stays listed). Kept for the life of this process; a fresh process starts,
 * like a rebuilt Dovecot index, from the keywords on messages.
 */
const FOLDER_KEYWORDS = new Map<string, string[]>();
/** Folders remembered (the oldest is forgotten first: it starts again from its messages' keywords). */
const FOLDER_KEYWORDS_MAX = 10_000;

/** The folder's list with the keywords now on messages (`inUse`, first use by UID) added at the end. */
function knownKeywords(folderKey: string, inUse: string[]): string[] {
  const known = FOLDER_KEYWORDS.get(folderKey);
  if (!known) {
    FOLDER_KEYWORDS.set(folderKey, [...inUse]);
    if (FOLDER_KEYWORDS.size > FOLDER_KEYWORDS_MAX) FOLDER_KEYWORDS.delete(FOLDER_KEYWORDS.keys().next().value!);
    return inUse;
  }
  for (const k of inUse) if (!known.includes(k)) known.push(k);
  return [...known];
}

/** Where a message's file is. */
function fileOf(scan: Scan, base: string): { sub: 'new' | 'cur'; file: string } | undefined {
  const c = scan.cur.get(base);
  if (c !== undefined) return { sub: 'cur', file: c };
  const n = scan.new.get(base);
  return n === undefined ? undefined : { sub: 'new', file: n };
}

/** Every base name listed (one in both directories once). */
function* basesOf(scan: Scan): Iterable<string> {
  yield* scan.cur.keys();
  for (const b of scan.new.keys()) if (!scan.cur.has(b)) yield b;
}

async function readdirSafe(dir: string): Promise<string[]> {
  try { return await fsp.readdir(dir); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw ioError('scanning', dir, e);
  }
}

/** LF-normalises (Dovecot stores LF, mail_save_crlf=no) and counts the CRLF size. */
async function* normalise(src: AsyncIterable<Buffer>, count: { stored: number; virt: number }): AsyncIterable<Buffer> {
  let pendingCR = false;
  for await (const chunk of src) {
    const out: number[] = [];
    let start = 0;
    const parts: Buffer[] = [];
    if (pendingCR) {
      if (chunk[0] !== 0x0a) parts.push(Buffer.from([0x0d]));
      pendingCR = false;
    }
    for (let i = 0; i < chunk.length; i++) {
      if (chunk[i] === 0x0d) {
        if (i + 1 === chunk.length) { parts.push(chunk.subarray(start, i)); start = i + 1; pendingCR = true; }
        else if (chunk[i + 1] === 0x0a) { parts.push(chunk.subarray(start, i)); start = i + 1; }
      }
    }
    void out;
    if (start < chunk.length) parts.push(chunk.subarray(start));
    const b = Buffer.concat(parts);
    let lfs = 0;
    for (let i = 0; i < b.length; i++) if (b[i] === 0x0a) lfs++;
    count.stored += b.length; count.virt += b.length + lfs;
    if (b.length) yield b;
  }
  if (pendingCR) { count.stored += 1; count.virt += 1; yield Buffer.from([0x0d]); }
}

/** filehandle.write may write less than asked (e.g. a filling disk): loop until done or an error. */
async function writeFully(fh: fsp.FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off);
    if (bytesWritten === 0) throw Object.assign(new Error('ENOSPC: write returned 0 bytes'), { code: 'ENOSPC' });
    off += bytesWritten;
  }
}

/** Chunks gathered up to this size before one write (a message arrives in line-sized pieces). */
const WRITE_BLOCK = 64 * 1024;

/**
 * Writes the pieces of `src` in blocks of WRITE_BLOCK: every write is a round
 * trip through libuv's thread pool, and a 5 KiB message spooled line by line
 * would otherwise take ~150 of them.
 */
async function writeCoalesced(fh: fsp.FileHandle, src: AsyncIterable<Buffer>): Promise<void> {
  let parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of src) {
    if (size && size + chunk.length > WRITE_BLOCK) { await writeFully(fh, Buffer.concat(parts, size)); parts = []; size = 0; }
    if (chunk.length >= WRITE_BLOCK) { await writeFully(fh, chunk); continue; }
    parts.push(chunk);
    size += chunk.length;
  }
  if (size) await writeFully(fh, parts.length === 1 ? parts[0] : Buffer.concat(parts, size));
}

async function* toIterable(data: Buffer | AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  if (Buffer.isBuffer(data)) yield data; else yield* data;
}

/** fdatasync of a directory: the names just renamed into it are on disk. */
async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try { await fh.datasync(); } finally { await fh.close(); }
}

/** A delivery written to tmp/, waiting for its folder's next commit. */
interface PendingDelivery {
  tmp: string;
  base: string;
  flags: SystemFlag[];
  keywords: string[];
  /** What maildirsize counts (the plaintext S=). */
  size: number;
  savedAt: number;
  settle: (err?: Error) => void;
}

/**
 * Deliveries waiting for a commit, by folder directory and process-wide
 * (every LMTP delivery opens its own handle): what arrives while a batch
 * commits goes into the next one. A key is present while its committer runs.
 */
const deliveryQueues = new Map<string, PendingDelivery[]>();

/** Dovecot's maildir-util.c: how often a message file that moved under us is looked for again. */
const MAILDIR_RESYNC_RETRY_COUNT = 10;
/** New messages dated (stat) per sync when first listed: a big arrival is dated lazily beyond this. */
const DATE_ON_SIGHT_MAX = 64;

export class MaildirFolder implements MailFolder, TableOwner {
  readonly codec: MessageCodec;
  readonly controlDir: string;
  readonly uidlistPath: string;
  readonly keywordsPath: string;
  uidlist: Uidlist | null = null;
  keywords = new KeywordMap();
  /** The messages after the last sync, in UID order (message-table.ts: no object per message). */
  table = new MessageTable(0, (i) => this.keywords.nameFor(i));
  /** Made once here, not in build(): a closure made there would keep build's scan (every file name) alive with the table. */
  private readonly keywordName = (i: number): string => this.keywords.nameFor(i);
  /** Base names this handle saw before that are no longer in its table (a returning base is not \Recent). */
  private seenBases = new Set<string>();
  private firstSync = true;
  /** Keywords in the order Dovecot's rebuilt index lists them (first use by UID). */
  keywordOrder: string[] = [];
  /** Grows with every flag/keyword change this handle sees (its own or found by a sync). */
  serial = 0;
  /** Grows whenever the message list may have changed (a full scan, an expunge): sessions skip comparing it otherwise. */
  generation = 0;
  private scanSerial = 0;
  /** The FolderFiles snapshot the message list was last built from (0: none yet). */
  private builtVersion = 0;
  private newWasEmpty = false;
  /** The MODSEQ state's version this handle's rows last took their modseqs at (ModseqState.catchUp). */
  private modseqSeen = -1;
  /** The folder's files as this process last read them, shared with every other handle of it. */
  private readonly files: FolderFiles;

  constructor(readonly dir: string, readonly opts: FolderOptions) {
    this.codec = opts.codec ?? identityCodec;
    this.controlDir = opts.controlDir ?? dir;
    this.uidlistPath = join(this.controlDir, 'dovecot-uidlist');
    this.keywordsPath = join(this.controlDir, 'dovecot-keywords');
    this.modseqs = ModseqState.of(this.controlDir);
    this.files = FolderFiles.of(dir, this.controlDir, (m) => this.warn(m));
  }

  get uidValidity(): number { return this.uidlist?.uidValidity ?? 0; }
  get uidNext(): number { return this.uidlist ? nextUid(this.uidlist) : 1; }
  get guid(): string { return this.uidlist?.guid ?? ''; }

  private warn(msg: string): void { this.opts.warn?.(msg); }

  /**
   * Re-read the folder. Files without a UID get one under the uidlist lock
   * (if it cannot be taken they stay invisible, like Dovecot).
   */
  async sync(opts: SyncOptions = {}): Promise<void> {
    // one sync at a time per handle (it may be shared by many sessions): a
    // slower, older scan must never overwrite the result of a newer one.
    // Callers arriving while one waits to start share it: it starts after
    // their call, so it sees every change made before it.
    const kind = `${opts.moveNew === true} ${opts.assignUids !== false}`;
    const waiting = this.waitingSyncs.get(kind);
    if (waiting) return waiting;
    const run = this.syncing.then(() => { this.waitingSyncs.delete(kind); return this.syncNow(opts); });
    this.waitingSyncs.set(kind, run);
    this.syncing = run.catch(() => undefined);
    return run;
  }

  private syncing: Promise<void> = Promise.resolve();
  private waitingSyncs = new Map<string, Promise<void>>();

  private async syncNow(opts: SyncOptions): Promise<void> {
    // Dovecot's quick check: nothing in new/, cur/ or the uidlist changed since the message
    // list was built (folder-files.ts) = nothing to do: three stats, no listing, no reads
    let snap = await this.files.refresh();
    if (snap.version === this.builtVersion && (!opts.moveNew || this.newWasEmpty)) {
      // other processes' modseq frames for flag changes this process already saw renamed
      this.modseqSeen = await this.modseqs.catchUp(() => this.messages, this.modseqSeen);
      return;
    }
    this.scanSerial = this.serial;
    const modseqs = this.modseqs;
    const modseqSince = modseqs.tick;
    const assign = opts.assignUids !== false;
    const needsLock = (s: FolderSnapshot) => {
      const u = s.uidlist;
      if (!u.uidlist || u.uidlist.problems.length > 0 || s.cur.dups.length > 0 || s.new.dups.length > 0) return true;
      if (opts.moveNew === true && s.new.files.size > 0) return true;
      for (const b of s.new.files.keys()) if (!recordOf(u, b) || s.cur.files.has(b)) return true;
      for (const b of s.cur.files.keys()) if (!recordOf(u, b)) return true;
      return false;
    };
    let lock: Dotlock | null = null;
    let fresh: number[] = [];
    if (assign && needsLock(snap)) {
      try {
        lock = await acquireDotlock(this.uidlistPath, this.opts.lock);
      } catch (e) {
        if (!(e instanceof MailStoreError) || e.code !== 'LOCKTIMEOUT') throw e;
        this.warn(`${e.message}: new messages stay without UIDs until the lock is free`);
      }
    }
    try {
      if (lock) {
        snap = await this.files.refresh();
        await this.assignLocked(snap.uidlist.uidlist, scanOf(snap), opts.moveNew === true);
        snap = await this.files.refresh();
      }
      // the snapshot read dovecot-keywords after listing: writers update it before renaming a
      // file to use a new letter, so a letter we see is always in it (no false unknown-N)
      this.keywords = snap.keywords.clone();
      const ul = snap.uidlist.uidlist;
      fresh = this.build(ul, scanOf(snap));
      if (ul && await modseqs.ready(this.opts.cipher ?? identityCipher, ul.uidValidity, nextUid(ul) > 1)) {
        // entries that change during the reconcile (another handle's read) are adopted by the next catch-up
        const seen = modseqs.version;
        await modseqs.reconcile(this.messages, modseqSince);
        this.modseqSeen = seen;
      }
      if (lock && this.keywords.dirty) await writeKeywords(this.keywordsPath, this.keywords);
      this.newWasEmpty = snap.new.files.size === 0;
      this.builtVersion = snap.version;
    } finally {
      await lock?.release();
    }
    if (fresh.length) await this.dateOnSight(fresh);
  }

  /** With the lock held: repair/create the uidlist, fix duplicates, assign UIDs, move new → cur. */
  private async assignLocked(read: Uidlist | null, scan: Scan, moveNew: boolean): Promise<Uidlist> {
    let rewrite = false;
    // a copy: what was read is shared (folder-files.ts)
    let ul = read && { ...read, records: [...read.records], problems: [...read.problems], extraHeader: [...read.extraHeader] };
    if (!ul) {
      ul = emptyUidlist(await nextUidValidity(this.opts.rootDir));
      rewrite = true;
      // a folder new to every server: all its messages are \Recent, as for Dovecot
      const rp = join(this.controlDir, RECENT_FILE);
      await fsp.writeFile(rp, '1\n', { flag: 'wx', mode: 0o600 }).catch(() => undefined);
    } else if (ul.problems.length) {
      this.warn(`${this.uidlistPath}: repaired, keeping ${ul.records.length} UIDs: ${ul.problems.slice(0, 5).join('; ')}${ul.problems.length > 5 ? ` (+${ul.problems.length - 5} more)` : ''}`);
      if (ul.uidValidity <= 0) ul.uidValidity = await nextUidValidity(this.opts.rootDir);
      rewrite = true;
    }
    // Dovecot: a duplicate base name is renamed to a fresh name in new/ (new UID)
    for (const d of scan.dups) {
      const p = parseName(d.file);
      const fresh = newBaseName(p.size ?? 0, p.vsize ?? 0).replace(/,S=\d+,W=\d+$/, '') + (p.size !== undefined ? `,S=${p.size}` : '') + (p.vsize !== undefined ? `,W=${p.vsize}` : '');
      const target = p.info !== null ? join(this.dir, 'cur', fresh + ':' + p.info) : join(this.dir, 'new', fresh);
      try {
        await fsp.rename(join(this.dir, d.sub, d.file), target);
        this.warn(`Maildir ${this.dir}: fixed a duplicate: ${d.sub}/${d.file} -> ${target.slice(this.dir.length + 1)}`);
      } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError('renaming duplicate', d.file, e); }
    }
    if (scan.dups.length) scan = scanOf(await this.files.refresh());
    const known = new Set(ul.records.map((r) => r.base));
    const pending = [...basesOf(scan)].filter((b) => !known.has(b)).sort(compareBaseNames);
    const added: UidlistRecord[] = [];
    let uid = nextUid(ul);
    for (const base of pending) {
      if (uid > 0xfffffffe) throw new MailStoreError('NOTPOSSIBLE', `${this.uidlistPath}: UID space exhausted`);
      const rec = { uid: uid++, base, ext: new Map<string, string>() };
      ul.records.push(rec); added.push(rec);
    }
    const listed = (b: string) => scan.cur.has(b) || scan.new.has(b);
    const live = ul.records.filter((r) => listed(r.base)).length;
    if (!rewrite && ul.records.length > 16 && live < ul.records.length * 0.75) {
      ul.headerNextUid = nextUid(ul);
      ul.records = ul.records.filter((r) => listed(r.base));
      rewrite = true;
    }
    if (rewrite) await rewriteUidlist(this.uidlistPath, ul);
    else await appendUidlist(this.uidlistPath, added);
    if (moveNew) {
      // a folder whose \Recent is still "in new/" (no session of ours took any yet): the move
      // would lose that, so the mark starts at the lowest UID moved (Dovecot's index keeps these
      // recent for the session that moves them, e.g. what an APPEND put there)
      if (scan.new.size && await this.firstRecentUid() === null) {
        let lowest = 0;
        for (const r of ul.records) if (scan.new.has(r.base) && !scan.cur.has(r.base) && (!lowest || r.uid < lowest)) lowest = r.uid;
        if (lowest) await this.raiseFirstRecent(null, lowest);
      }
      for (const [base, file] of scan.new) {
        if (scan.cur.has(base)) continue;
        const target = file.includes(':') ? file : `${base}:2,`;
        await fsp.rename(join(this.dir, 'new', file), join(this.dir, 'cur', target)).catch((e) => {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError('moving new/ to cur/', file, e);
        });
      }
    }
    return ul;
  }

  /** The new table; returns UIDs that are new to this handle after its first sync (at most DATE_ON_SIGHT_MAX), to be dated. */
  private build(ul: Uidlist | null, scan: Scan): number[] {
    const fresh: number[] = [];
    // kept for its header (UIDVALIDITY, next UID, GUID): the records are in the table now
    this.uidlist = ul && { ...ul, records: ul.records.slice(-1), problems: [] };
    // POP3 UIDLs Dovecot saved in the records' P field (pop3_save_uidl, migrations): few, kept by base
    this.pop3Uidls = null;
    for (const r of ul?.records ?? []) {
      const p = r.ext.get('P');
      if (p !== undefined) (this.pop3Uidls ??= new Map()).set(r.base, p);
    }
    const old = this.table;
    const live: UidlistRecord[] = ul ? ul.records.filter((r) => scan.cur.has(r.base) || scan.new.has(r.base)) : [];
    // rows leaving the table first: their bases are "seen" (a base back under a new UID is not \Recent)
    const gone = new Set<number>();
    for (let o = 0, n = 0; o < old.length; o++) {
      const u = old.uid(o);
      while (n < live.length && live[n].uid < u) n++;
      if (n >= live.length || live[n].uid !== u) gone.add(u);
    }
    if (gone.size) for (const m of old.snapshotsOf(gone)) this.noteRemoved(m);
    const table = new MessageTable(live.length, this.keywordName);
    let hint = -1;
    for (const r of live) {
      const f = fileOf(scan, r.base)!;
      const o = old.rowOf(r.uid, hint + 1);
      if (o >= 0) hint = o;
      else if (!this.firstSync && fresh.length < DATE_ON_SIGHT_MAX) fresh.push(r.uid);
      const row = table.add({
        uid: r.uid, base: r.base, file: f.file, sub: f.sub,
        size: sizeField(r.base, 'S') ?? (r.ext.has('S') ? Number(r.ext.get('S')) : o >= 0 ? old.size(o) : undefined),
        vsize: sizeField(r.base, 'W') ?? (r.ext.has('W') ? Number(r.ext.get('W')) : o >= 0 ? old.vsize(o) : undefined),
        mtime: o >= 0 ? old.mtime(o) : undefined,
        recent: o >= 0 ? old.recent(o) : this.firstSync ? f.sub === 'new' : !this.seenBases.has(r.base),
        changed: this.serial,
        modseq: o >= 0 ? old.modseq(o) : 0,
      });
      if (o < 0) continue;
      const oldFile = old.file(o);
      // changed by this process after our scan began (our own STORE): the row is newer than the scan
      if (old.changed(o) > this.scanSerial && oldFile !== f.file) { table.setFile(row, old.sub(o), oldFile); table.setChanged(row, old.changed(o)); continue; }
      table.setChanged(row, oldFile === f.file ? old.changed(o) : ++this.serial);
    }
    this.table = table;
    // (a change waiting for its modseq holds MessageRef views, which follow the new table by UID:
    // the flush reaches the new row without re-registering anything)
    this.generation++;
    this.keywordOrder = knownKeywords(`${this.controlDir}\0${this.uidlist?.uidValidity ?? 0}`, table.keywordOrder());
    this.firstSync = false;
    return fresh;
  }

  /** The messages as of the last sync, in UID order: views of the table's rows, made when asked for. */
  get messages(): MaildirMessage[] {
    const t = this.table;
    const out = new Array<MaildirMessage>(t.length);
    for (let i = 0; i < t.length; i++) out[i] = new MessageRef(this, t.uid(i), t, i);
    return out;
  }

  uidList(): number[] {
    const t = this.table;
    const out = new Array<number>(t.length);
    for (let i = 0; i < t.length; i++) out[i] = t.uid(i);
    return out;
  }

  firstWithout(flag: SystemFlag): number { return this.table.firstRow(flag, false); }

  /** First seen by this handle in new/ or as a new UID (a \Recent candidate); false for a message not in the table. */
  isRecentCandidate(uid: number): boolean {
    const row = this.table.rowOf(uid);
    return row >= 0 && this.table.recent(row);
  }

  maxMessageModseq(): number {
    const t = this.table;
    let max = 0;
    for (let i = 0; i < t.length; i++) if (t.modseq(i) > max) max = t.modseq(i);
    return max;
  }

  message(uid: number): MaildirMessage | undefined {
    const row = this.table.rowOf(uid);
    return row < 0 ? undefined : new MessageRef(this, uid, this.table, row);
  }

  /**
   * Messages that left the folder lately, as last seen: a session that has not
   * announced the expunge yet still shows them (Dovecot's view keeps them until then).
   */
  private removed = new Map<number, MaildirMessage>();
  removedMessage(uid: number): MaildirMessage | undefined { return this.removed.get(uid); }
  private noteRemoved(m: MaildirMessage): void {
    this.removed.set(m.uid, m);
    if (this.removed.size > 10_000) this.removed.delete(this.removed.keys().next().value!);
    this.seenBases.add(m.base);
    if (this.seenBases.size > 100_000) this.seenBases.delete(this.seenBases.values().next().value!);
  }

  /** This folder's MODSEQ state, shared with every other handle of the folder in this process. */
  private readonly modseqs: ModseqState;

  /** RFC 7162 HIGHESTMODSEQ (0 while unknown). */
  get highestModseq(): number { return this.modseqs.highest; }

  /** A CONDSTORE client used this folder once: its SELECT shows HIGHESTMODSEQ to everyone (as Dovecot's index does). */
  get modseqTracked(): boolean { return this.modseqs.tracked; }
  trackModseqs(): Promise<void> { return this.modseqs.track(); }

  /** Modseqs handed out by setFlags(…, { deferModseq }) are on disk once this resolves. */
  commitModseqs(): Promise<void> { return this.modseqs.flush(); }

  /** QRESYNC: UIDs expunged after `modseq`, or null when that is older than what is remembered. */
  vanishedSince(modseq: number): number[] | null { return this.modseqs.vanishedSince(modseq); }

  path(m: MaildirMessage): string { return join(this.dir, m.sub, m.file); }

  /** dovecot-uidlist's `P` extension field (MAILDIR_UIDLIST_REC_EXT_POP3_UIDL) of the message's record; an empty one means the base name. */
  /** Bases whose uidlist record has a P (POP3 UIDL) field, from the last full read of the uidlist. */
  private pop3Uidls: Map<string, string> | null = null;

  pop3Uidl(m: MailMessage): string | undefined {
    const v = this.pop3Uidls?.get(m.base);
    // an empty P is Dovecot's shorthand for "the file's base name" (maildir-mail.c)
    return v === undefined ? undefined : v === '' ? m.base : v;
  }

  /**
   * Find a message's current file after a foreign rename; false when it is in
   * neither directory. new/ is listed before cur/, so a move new/ → cur/
   * between the two listings is not missed.
   */
  private async relocate(m: MaildirMessage): Promise<boolean> {
    for (const sub of ['new', 'cur'] as const) {
      for (const f of await readdirSafe(join(this.dir, sub))) {
        if (baseName(f) === m.base) {
          await this.learnLetters(f);
          const objs = this.moved(m, sub, f);
          if (this.modseqs.active) this.modseqs.change(...objs);
          return true;
        }
      }
    }
    return false;
  }

  /**
   * A file found renamed between syncs may carry a keyword letter another
   * process added to dovecot-keywords after this handle read it: its name is
   * read now (writers add it before renaming a file to use it), or the
   * message would show `unknown-N` until the next sync and then the real
   * name — a keyword appearing from nowhere for every session.
   */
  private async learnLetters(file: string): Promise<void> {
    const idx = parseName(file).keywordIdx;
    if (!idx.some((i) => this.keywords.names[i] === undefined)) return;
    const now = await this.files.keywords();
    for (const i of idx) if (this.keywords.names[i] === undefined && now.names[i] !== undefined) this.keywords.names[i] = now.names[i];
  }

  /**
   * `m`'s file is now `sub`/`file` (renamed by us, or found renamed): its row
   * and, for a message no longer in the table, the snapshot sessions still
   * show get the new name, flags and a new change serial. Returns the objects
   * whose MODSEQ follows the change.
   */
  private moved(m: MaildirMessage, sub: 'new' | 'cur', file: string): MaildirMessage[] {
    const changed = ++this.serial;
    const out: MaildirMessage[] = [];
    const row = this.table.rowOf(m.uid);
    if (row >= 0 && file.startsWith(this.table.base(row))) {
      this.table.setFile(row, sub, file);
      this.table.setChanged(row, changed);
      out.push(m instanceof MessageRef ? m : new MessageRef(this, m.uid, this.table, row));
    }
    const plain = m instanceof MessageRef ? (row < 0 ? this.removed.get(m.uid) : undefined) : m;
    if (plain) {
      const p = parseName(file);
      plain.sub = sub; plain.file = file; plain.flags = p.flags; plain.keywordIdx = [...new Set(p.keywordIdx)].sort((a, b) => a - b);
      plain.keywords = plain.keywordIdx.map((i) => this.keywords.nameFor(i)); plain.otherLetters = p.otherLetters; plain.extra = p.extra;
      plain.changed = changed;
      out.push(plain);
    }
    return out;
  }

  private async withFile<T>(m: MaildirMessage, fn: (p: string) => Promise<T>): Promise<T> {
    // another process may rename the file again between our finding it and using it, and a listing
    // made while a file is renamed in the directory may miss it: like Dovecot's maildir_file_do, try
    // again (up to MAILDIR_RESYNC_RETRY_COUNT times); expunged = not found by two listings in a row
    let missed = 0;
    for (let attempt = 0; ; attempt++) {
      try { return await fn(this.path(m)); } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      if (await this.relocate(m)) missed = 0;
      else missed++;
      if (missed >= 2 || attempt >= MAILDIR_RESYNC_RETRY_COUNT) {
        throw new MailStoreError('EXPUNGED', `message UID ${m.uid} of ${this.opts.mailboxName} was expunged (${m.base})`, this.path(m));
      }
    }
  }

  /** INTERNALDATE (mtime), SAVEDATE fallback (ctime), physical size. */
  async stat(m: MaildirMessage): Promise<{ mtime: Date; ctime: Date; size: number }> {
    const st = await this.withFile(m, (p) => fsp.stat(p));
    m.size ??= st.size;
    m.mtime = st.mtimeMs;
    return { mtime: st.mtime, ctime: st.ctime, size: st.size };
  }

  /** INTERNALDATE: the file's mtime, or once the file is gone the mtime last seen (MailFolder.receivedDate). */
  async receivedDate(m: MaildirMessage): Promise<Date> {
    try {
      return (await this.stat(m)).mtime;
    } catch (e) {
      // removed by another process before this view dropped it: the date this process last saw
      const known = m.mtime;
      if (known === undefined || !(e instanceof MailStoreError && e.code === 'EXPUNGED')) throw e;
      return new Date(known);
    }
  }

  /**
   * A message another process added is dated when this handle first lists it
   * (one stat each, at most DATE_ON_SIGHT_MAX per sync, in parallel): a FETCH
   * INTERNALDATE after that process expunged it still has the date, where
   * Dovecot has it in its index cache. Messages of the first listing are
   * dated when first asked for (no stat of a whole big mailbox on open).
   */
  private async dateOnSight(uids: number[]): Promise<void> {
    await Promise.all(uids.map(async (uid) => {
      const m = this.message(uid);
      if (!m || m.mtime !== undefined) return;
      try {
        const st = await fsp.stat(this.path(m));
        m.mtime = st.mtimeMs;
        m.size ??= st.size;
      } catch { /* renamed or gone meanwhile: dated when asked for, if it still exists */ }
    }));
  }

  /**
   * SAVEDATE (RFC 8514, doveadm's date.saved) as Dovecot has it on Maildir:
   * the time recorded when the message was saved or first looked at (its
   * index cache field), else the file's ctime — which every flag change
   * (a rename) moves, so the first value seen is kept in the field cache.
   * Whole seconds, as Dovecot stores it.
   */
  async saveDate(m: MaildirMessage): Promise<Date> {
    const fc = this.fieldCache;
    const hit = await fc?.get(m.uid, SAVEDATE_FIELD);
    if (hit && hit.length === 8) return new Date(Number(hit.readBigInt64BE()) * 1000);
    const secs = Math.floor((await this.stat(m)).ctime.getTime() / 1000);
    // written at once (not behind): the value must survive the process, a later ctime would differ
    await fc?.setMany([[m.uid, SAVEDATE_FIELD, secondsBytes(secs)]]);
    return new Date(secs * 1000);
  }

  /**
   * Message body as plaintext Buffers (through the codec). A file that
   * vanishes mid-read ends with an EXPUNGED error, never silently short.
   */
  async *read(m: MaildirMessage): AsyncIterable<Buffer> {
    const fh = await this.withFile(m, (p) => fsp.open(p, 'r'));
    const self = this;
    async function* raw(): AsyncIterable<Buffer> {
      try {
        const stream = fh.createReadStream({ autoClose: false, highWaterMark: 64 * 1024 });
        for await (const c of stream) yield c as Buffer;
      } finally { await fh.close(); }
    }
    void self;
    yield* this.decrypted(m, raw());
  }

  /** Stored bytes → plaintext: mail-crypt, then the zlib plugin (Dovecot's plugin order). */
  private async *decrypted(m: MaildirMessage, raw: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
    try {
      yield* decompressedBody(this.opts.compression, this.codec.decrypt(this.opts.mailboxName, raw));
    } catch (e) {
      if (e instanceof MailStoreError) throw e;
      if (e instanceof CorruptStream) {
        // Dovecot logs such a mail as a read() failure of its compress() stream; nothing is rewritten
        throw new MailStoreError('CORRUPT', `user ${this.opts.compression?.user ?? '?'}: Mailbox ${this.opts.mailboxName}: UID ${m.uid}: read(compress(${this.path(m)})) failed: ${e.message}`, this.path(m), { cause: e });
      }
      // a codec failure names the user; add what only the store knows: UID and file
      throw new MailStoreError('CRYPT', `${(e as Error).message.replace(/ \(mailbox [^)]*\)$/, '')} (mailbox ${this.opts.mailboxName}, UID ${m.uid}, file ${m.file})`, this.path(m), { cause: e });
    }
  }

  /**
   * The whole plaintext in memory, for SEARCH of bodies: a plain file costs
   * one open, fstat, read and close (a read stream per message cost SEARCH
   * TEXT over 10k messages ~10x Dovecot's time); an encrypted one is
   * decrypted from the bytes already read.
   */
  async readAll(m: MaildirMessage): Promise<Buffer> {
    // callback readFile: plain fds (a promise FileHandle per message cost more main-thread time than the reads)
    const data = await this.withFile(m, (p) => new Promise<Buffer>((resolve, reject) => readFileCb(p, (e, b) => (e ? reject(e) : resolve(b)))));
    if (!this.codec.isEncrypted(data) && !needsDecompression(this.opts.compression, data)) return data;
    const parts: Buffer[] = [];
    for await (const c of this.decrypted(m, (async function* () { yield data; })())) parts.push(c);
    return Buffer.concat(parts);
  }

  /**
   * The first `max` plaintext bytes and the INTERNALDATE (header lookups:
   * SORT, THREAD). A plain file costs one open, fstat and pread; an
   * encrypted one goes through the codec and stops once `max` bytes are out.
   */
  async readHead(m: MaildirMessage, max = 16384): Promise<{ head: Buffer; mtime: Date }> {
    // callback fs calls: a FileHandle per message costs more main-thread time than the reads
    const { head, mtime } = await this.withFile(m, (p) => new Promise<{ head: Buffer; mtime: Date }>((resolve, reject) => {
      openCb(p, 'r', (err, fd) => {
        if (err) { reject(err); return; }
        fstatCb(fd, (e1, st) => {
          if (e1) { closeCb(fd, () => reject(e1)); return; }
          const buf = Buffer.allocUnsafe(Math.min(max, st.size));
          readCb(fd, buf, 0, buf.length, 0, (e2, n) => {
            closeCb(fd, () => undefined);
            if (e2) { reject(e2); return; }
            m.size ??= st.size;
            m.mtime = st.mtimeMs;
            resolve({ head: buf.subarray(0, n), mtime: st.mtime });
          });
        });
      });
    }));
    if (!this.codec.isEncrypted(head) && !needsDecompression(this.opts.compression, head)) return { head, mtime };
    const parts: Buffer[] = [];
    let n = 0;
    for await (const c of this.read(m)) { parts.push(c); n += c.length; if (n >= max) break; }
    return { head: Buffer.concat(parts).subarray(0, max), mtime };
  }

  /**
   * The message's header through its empty line (the whole message when it
   * has no body) as a Buffer of its own; null when the header is longer than
   * `max` bytes (the caller reads the message). A plain file costs one open,
   * pread and close into a reused scratch buffer (ENVELOPE of 100k messages:
   * no fstat and no 16 KiB allocation per message); an encrypted or
   * compressed one goes through readHead().
   */
  async readHeader(m: MaildirMessage, max = 16384): Promise<Buffer | null> {
    const pooled = max <= HEADER_SCRATCH_SIZE ? HEADER_SCRATCH.pop() : undefined;
    const scratch = pooled ?? Buffer.allocUnsafeSlow(Math.max(max, HEADER_SCRATCH_SIZE));
    try {
      let head = scratch.subarray(0, max);
      const n = await this.withFile(m, (p) => new Promise<number>((resolve, reject) => {
        openCb(p, 'r', (err, fd) => {
          if (err) { reject(err); return; }
          readCb(fd, head, 0, head.length, 0, (e, bytes) => { closeCb(fd, () => undefined); if (e) reject(e); else resolve(bytes); });
        });
      }));
      head = head.subarray(0, n);
      // encrypted or zlib-compressed: readHead() decrypts and decompresses
      if (this.codec.isEncrypted(head) || needsDecompression(this.opts.compression, head)) head = (await this.readHead(m, max)).head;
      const end = headerEnd(head);
      // no empty line in a full read: the header goes on beyond `max`
      if (end === head.length && head.length >= max) return null;
      return Buffer.from(head.subarray(0, end));
    } finally {
      if (scratch.length === HEADER_SCRATCH_SIZE && HEADER_SCRATCH.length < 64) HEADER_SCRATCH.push(scratch);
    }
  }

  /**
   * Let the codec start on the next messages of a FETCH while the current one
   * streams (mail-crypt unwraps their keys on worker threads). Best effort.
   */
  prefetch(ms: MaildirMessage[]): void {
    const warm = this.codec.warm?.bind(this.codec);
    if (!warm) return;
    for (const m of ms) {
      void this.withFile(m, async (p) => {
        const fh = await fsp.open(p, 'r');
        try {
          const head = Buffer.alloc(512);
          const { bytesRead } = await fh.read(head, 0, 512, 0);
          warm(this.opts.mailboxName, head.subarray(0, bytesRead));
        } finally { await fh.close(); }
      }).catch(() => undefined);
    }
  }

  /**
   * IMAP \Recent across sessions: messages from this UID on are recent (Dovecot
   * keeps first_recent_uid in its index; we keep it in `sealmail.recent`).
   * null when the folder predates Sealmail: then a message is recent while in new/.
   */
  async firstRecentUid(): Promise<number | null> {
    try {
      const n = Number((await fsp.readFile(join(this.controlDir, RECENT_FILE), 'utf8')).trim());
      return Number.isInteger(n) && n > 0 ? n : null;
    } catch { return null; }
  }

  /** Which of `candidates` are \Recent, without taking them (EXAMINE); `untracked` decides before any session took one. */
  async recentAmong(candidates: number[], untracked: (uid: number) => boolean): Promise<Set<number>> {
    const first = await this.firstRecentUid();
    return new Set(candidates.filter((u) => (first === null ? untracked(u) : u >= first)));
  }

  /**
   * A read-write session takes the \Recent messages among `candidates` and
   * moves the mark to `upTo`, so later sessions don't see them as recent.
   * Read and write happen under the uidlist lock (Dovecot moves
   * first_recent_uid inside its index sync lock): two sessions syncing at
   * once must never both take the same message.
   */
  async takeRecent(candidates: number[], upTo: number, untracked: (uid: number) => boolean): Promise<Set<number>> {
    const pick = (first: number | null) => new Set(candidates.filter((u) => (first === null ? untracked(u) : u >= first)));
    const seen = await this.firstRecentUid();
    // the mark only grows: nothing below it is left to take (the common case, no lock)
    if (seen !== null && seen >= upTo) return pick(seen);
    let lock: Dotlock | null = null;
    try {
      lock = await acquireDotlock(this.uidlistPath, this.opts.lock);
    } catch (e) {
      if (!(e instanceof MailStoreError) || e.code !== 'LOCKTIMEOUT') throw e;
      this.warn(`${e.message}: \Recent taken without the lock`);
    }
    try {
      const first = await this.firstRecentUid();
      await this.raiseFirstRecent(first, upTo);
      return pick(first);
    } finally {
      await lock?.release();
    }
  }

  /** With the uidlist lock held: the first recent UID becomes `upTo` unless it is already beyond. */
  private async raiseFirstRecent(first: number | null, upTo: number): Promise<void> {
    if (first !== null && first >= upTo) return; // unchanged: don't touch the file (and the STATUS cache's stamp)
    const p = join(this.controlDir, RECENT_FILE);
    await writeAtomic(p, `${upTo}\n`, `${p}.tmp.${process.pid}`).catch(() => undefined);
  }

  private fieldCacheInst: FieldCache | null = null;

  /** Cached per-message values of the protocol layer (ENVELOPE…), sealed; null before the first sync. */
  get fieldCache(): FieldCache | null {
    if (!this.uidlist) return null;
    if (!this.fieldCacheInst || this.fieldCacheValidity !== this.uidValidity) {
      this.fieldCacheInst = new FieldCache(this.controlDir, this.opts.cipher ?? identityCipher, this.uidValidity);
      this.fieldCacheValidity = this.uidValidity;
    }
    return this.fieldCacheInst;
  }
  private fieldCacheValidity = 0;

  /** Does the stored file start with the mail-crypt magic? */
  async isEncryptedFile(m: MaildirMessage): Promise<boolean> {
    const head = Buffer.alloc(9);
    const n = await this.withFile(m, async (p) => {
      const fh = await fsp.open(p, 'r');
      try { return (await fh.read(head, 0, 9, 0)).bytesRead; } finally { await fh.close(); }
    });
    return this.codec.isEncrypted(head.subarray(0, n));
  }

  /** RFC822.SIZE: W= when present, else counted over the decrypted text with CRLF line ends. */
  async virtualSize(m: MaildirMessage): Promise<number> {
    if (m.vsize !== undefined) return m.vsize;
    let n = 0;
    let prev = -1;
    for await (const c of this.read(m)) {
      for (let i = 0; i < c.length; i++) {
        if (c[i] === 0x0a && prev !== 0x0d) n++;
        prev = c[i];
      }
      n += c.length;
    }
    m.vsize = n;
    return n;
  }

  /**
   * Save a message: tmp/ → fsync → mtime → rename into new/ (no flags) or
   * cur/:2,… under the uidlist lock, then the next UID is appended. A failure
   * before the rename leaves nothing visible; tmp/ leftovers are cleaned later.
   */
  async append(data: Buffer | AsyncIterable<Buffer>, opts: AppendOptions = {}): Promise<number> {
    if (!this.uidlist) await this.sync();
    const { tmp, base, stored } = await this.writeTmp(data, opts.internalDate);
    try {
      return await this.place(tmp, base, opts, stored);
    } catch (e) {
      await fsp.unlink(tmp).catch(() => {});
      throw e;
    }
  }

  /** The message in tmp/, written, fsynced and dated; its base name carries the plaintext S= and W= (what Dovecot writes and reports, even for encrypted files). */
  private async writeTmp(data: Buffer | AsyncIterable<Buffer>, internalDate?: Date): Promise<{ tmp: string; base: string; stored: number }> {
    const prefix = newBaseName(0, 0).replace(/,S=0,W=0$/, '');
    const tmp = join(this.dir, 'tmp', prefix);
    const count = { stored: 0, virt: 0 };
    try {
      const fh = await fsp.open(tmp, 'wx', 0o600);
      try {
        // Dovecot's plugin order: the zlib plugin compresses, mail-crypt encrypts what it wrote;
        // written in large blocks, not one write per line received
        await writeCoalesced(fh, this.codec.encrypt(this.opts.mailboxName, bodyForSave(this.opts.compression, normalise(toIterable(data), count))));
        await fh.sync();
      } finally { await fh.close(); }
      if (internalDate) await fsp.utimes(tmp, internalDate, internalDate);
    } catch (e) {
      await fsp.unlink(tmp).catch(() => {});
      if (e instanceof MailStoreError) throw e;
      throw ioError(`saving a message to ${this.opts.mailboxName}`, tmp, e);
    }
    return { tmp, base: `${prefix},S=${count.stored},W=${count.virt}`, stored: count.stored };
  }

  /**
   * Hard-link (Dovecot's maildir_copy_with_hardlinks) or copy a message file
   * from another folder; a message of another storage driver is saved from
   * its content.
   */
  async copyFrom(src: MailFolder, msg: MailMessage, opts: AppendOptions = {}): Promise<number> {
    if (!this.uidlist) await this.sync();
    const m = msg as MaildirMessage;
    // mail-crypt: a message names its folder's key, and Dovecot looks keys up
    // in the folder it reads from, so a copy into another folder is
    // re-encrypted to that folder's key (a hard link would not open there)
    if (!(src instanceof MaildirFolder) || (src.dir !== this.dir && this.codec !== identityCodec && await src.isEncryptedFile(m))) {
      const st = await src.stat(m);
      return this.append(src.read(m), { ...opts, internalDate: opts.internalDate ?? st.mtime });
    }
    const srcPath = src.path(m);
    const size = m.size ?? (await src.stat(m)).size;
    const vsize = await src.virtualSize(m);
    const base = newBaseName(size, vsize);
    const tmp = join(this.dir, 'tmp', base);
    try {
      await src.withFile(m, async (p) => {
        try { await fsp.link(p, tmp); } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw e;
          await fsp.copyFile(p, tmp); // EXDEV/EPERM: different filesystem
          const st = await fsp.stat(p);
          await fsp.utimes(tmp, st.atime, st.mtime);
        }
      });
    } catch (e) {
      await fsp.unlink(tmp).catch(() => {});
      if (e instanceof MailStoreError) throw e;
      throw ioError(`copying to ${this.opts.mailboxName}`, srcPath, e);
    }
    const flags = opts.flags ?? m.flags;
    const keywords = opts.keywords ?? m.keywords;
    try { return await this.place(tmp, base, { flags, keywords, tookRecent: opts.tookRecent }, size); } catch (e) { await fsp.unlink(tmp).catch(() => {}); throw e; }
  }

  /**
   * LMTP delivery, as Dovecot's save commit without ASSIGN_UIDS
   * (maildir_transaction_save_commit_pre): written and fsynced in tmp/,
   * renamed into new/ (cur/ with flags), and that directory fdatasync'ed
   * (mail_fsync = optimized) before this resolves, so a 250 means on disk.
   * UIDs are appended to the uidlist only when its lock is free at once
   * (Dovecot's TRYLOCK; keywords need the lock, so then it waits), without a
   * directory scan; otherwise the next session's sync gives them, as after
   * Dovecot's delivery. Concurrent deliveries to one folder share a commit:
   * one lock, one directory fsync, one uidlist and maildirsize append.
   */
  async deliver(data: Buffer | AsyncIterable<Buffer>, opts: AppendOptions = {}): Promise<void> {
    const { tmp, base, stored } = await this.writeTmp(data, opts.internalDate);
    await new Promise<void>((resolve, reject) => {
      const d: PendingDelivery = { tmp, base, flags: [...(opts.flags ?? [])], keywords: [...(opts.keywords ?? [])], size: stored, savedAt: Date.now(), settle: (e) => (e ? reject(e) : resolve()) };
      const queue = deliveryQueues.get(this.dir);
      if (queue) { queue.push(d); return; }
      deliveryQueues.set(this.dir, [d]);
      void this.commitQueued();
    });
  }

  /** Commits the folder's queued deliveries, batch after batch, until none are left. */
  private async commitQueued(): Promise<void> {
    const queue = deliveryQueues.get(this.dir)!;
    while (queue.length) {
      const batch = queue.splice(0);
      try {
        await this.commitDeliveries(batch);
      } catch (e) {
        for (const d of batch) { await fsp.unlink(d.tmp).catch(() => {}); d.settle(e as Error); }
      }
    }
    deliveryQueues.delete(this.dir);
  }

  private async commitDeliveries(batch: PendingDelivery[]): Promise<void> {
    const fail = async (d: PendingDelivery, e: Error) => { await fsp.unlink(d.tmp).catch(() => {}); d.settle(e); };
    const needLock = batch.some((d) => d.keywords.length > 0);
    let lock: Dotlock | null = null;
    try {
      lock = await acquireDotlock(this.uidlistPath, needLock ? this.opts.lock : { ...this.opts.lock, timeoutMs: 0 });
    } catch (e) {
      if (needLock || !(e instanceof MailStoreError && e.code === 'LOCKTIMEOUT')) throw e;
    }
    const placed: [PendingDelivery, string][] = [];
    let assigned: { uidValidity: number; uids: Map<string, number> } | null = null;
    try {
      const kw = needLock ? await this.files.keywords() : null;
      const targets: [PendingDelivery, string][] = [];
      for (const d of batch) {
        const kidx = d.keywords.map((k) => kw!.allocate(k));
        if (kidx.some((i) => i < 0)) { await fail(d, new MailStoreError('NOTPOSSIBLE', `${this.opts.mailboxName}: more than 26 keywords cannot be stored in Maildir file names`)); continue; }
        targets.push([d, d.flags.length || kidx.length ? join(this.dir, 'cur', d.base + infoSuffix(d.flags, kidx)) : join(this.dir, 'new', d.base)]);
      }
      // a letter is in dovecot-keywords before any file name uses it
      if (kw?.dirty) await writeKeywords(this.keywordsPath, kw);
      const subs = new Set<'new' | 'cur'>();
      for (const [d, target] of targets) {
        try { await fsp.rename(d.tmp, target); } catch (e) { await fail(d, ioError('delivering', target, e)); continue; }
        placed.push([d, target]);
        subs.add(target.startsWith(join(this.dir, 'new')) ? 'new' : 'cur');
      }
      try {
        for (const sub of subs) await syncDir(join(this.dir, sub));
      } catch (e) {
        // as Dovecot: not acknowledged, so not kept
        for (const [d, target] of placed.splice(0)) {
          await fsp.unlink(target).catch(() => {});
          d.settle(ioError('syncing', this.dir, e));
        }
        return;
      }
      if (lock && placed.length) {
        // the messages are on disk: a uidlist that cannot be written now only leaves their UIDs to the next sync
        assigned = await this.assignDelivered(placed.map(([d]) => d.base)).catch((e: Error) => { this.warn(`${e.message}: delivered messages get their UIDs at the next sync`); return null; });
      }
      if (this.opts.quotaCounted !== false && placed.length) {
        await appendMaildirsize(join(this.opts.rootDir, 'maildirsize'), placed.map(([d]) => [d.size, 1])).catch((e: Error) => this.warn(e.message));
      }
    } finally {
      // the messages are in place either way: a lock we could not remove goes stale, it must not turn a stored message into a 451
      await lock?.release().catch((e: Error) => this.warn(e.message));
    }
    if (this.opts.quotaCounted !== false && placed.length) await this.opts.quotaChanged?.(placed.map(([d]) => [d.size, 1]));
    if (placed.length) announceChange(this.dir);
    if (assigned) {
      // Dovecot records the save date when it saves (a later flag rename must not move it)
      const rec = placed.filter(([d]) => assigned.uids.has(d.base)).map(([d]): [number, string, Buffer] => [assigned.uids.get(d.base)!, SAVEDATE_FIELD, secondsBytes(Math.floor(d.savedAt / 1000))]);
      await new FieldCache(this.controlDir, this.opts.cipher ?? identityCipher, assigned.uidValidity).appendOnly(rec);
    }
    for (const [d] of placed) d.settle();
  }

  /**
   * With the lock held: UIDs for just-delivered files from the uidlist alone,
   * no directory scan (Dovecot's MAILDIR_UIDLIST_SYNC_PARTIAL); a missing or
   * damaged uidlist takes the full path (Dovecot's sync_force), which gives
   * every file without one its UID.
   */
  private async assignDelivered(bases: string[]): Promise<{ uidValidity: number; uids: Map<string, number> }> {
    const wanted = new Set(bases);
    const tail = await readUidlistTail(this.uidlistPath);
    if (!tail) {
      const snap = await this.files.refresh();
      const ul = await this.assignLocked(snap.uidlist.uidlist, scanOf(snap), false);
      return { uidValidity: ul.uidValidity, uids: new Map(ul.records.filter((r) => wanted.has(r.base)).map((r) => [r.base, r.uid])) };
    }
    // a session's sync may have numbered some of them between our rename and our lock
    const added: UidlistRecord[] = [];
    let uid = tail.nextUid;
    for (const base of bases.filter((b) => tail.uidOf(b) === undefined).sort(compareBaseNames)) {
      if (uid > MAX_UID) throw new MailStoreError('NOTPOSSIBLE', `${this.uidlistPath}: UID space exhausted`);
      added.push({ uid: uid++, base, ext: new Map<string, string>() });
    }
    await appendUidlist(this.uidlistPath, added);
    const uids = new Map(added.map((r) => [r.base, r.uid]));
    for (const b of wanted) { const u = tail.uidOf(b); if (u !== undefined) uids.set(b, u); }
    return { uidValidity: tail.uidValidity, uids };
  }

  private async place(tmp: string, base: string, opts: AppendOptions, physSize: number): Promise<number> {
    const savedAt = Date.now();
    const lock = await acquireDotlock(this.uidlistPath, this.opts.lock);
    let uid = 0;
    try {
      const kw = await this.files.keywords();
      const flags = [...(opts.flags ?? [])];
      const kidx: number[] = [];
      for (const k of opts.keywords ?? []) {
        const i = kw.allocate(k);
        if (i < 0) throw new MailStoreError('NOTPOSSIBLE', `${this.opts.mailboxName}: more than 26 keywords cannot be stored in Maildir file names`);
        kidx.push(i);
      }
      if (kw.dirty) await writeKeywords(this.keywordsPath, kw);
      this.keywords = kw;
      const target = flags.length || kidx.length ? join(this.dir, 'cur', base + infoSuffix(flags, kidx)) : join(this.dir, 'new', base);
      await fsp.rename(tmp, target).catch((e) => { throw ioError('delivering', target, e); });
      // not on disk, not saved: the client hears NO, so the file must not stay (Dovecot unlinks it too)
      await syncDir(join(target, '..')).catch(async (e) => { await fsp.unlink(target).catch(() => {}); throw ioError('syncing', target, e); });
      // only the saved file gets its UID (Dovecot's MAILDIR_UIDLIST_SYNC_PARTIAL): the uidlist's
      // new lines are read, no directory is listed; others' files get theirs at the next sync
      const got = (await this.assignDelivered([base])).uids.get(base);
      if (got === undefined) throw new MailStoreError('IO', `${this.opts.mailboxName}: saved message ${base} vanished before it got a UID`);
      await this.countQuota(physSize, 1);
      uid = got;
      if (opts.tookRecent) {
        const first = await this.firstRecentUid();
        await this.raiseFirstRecent(first, uid + 1);
        opts.tookRecent(first ?? 1, uid);
      }
    } finally {
      await lock.release();
    }
    announceChange(this.dir);
    // the in-memory view is refreshed through sync(), which serialises with other sessions' syncs
    await this.sync();
    // Dovecot records the save date when it saves (a later flag rename must not move it)
    await this.fieldCache?.set(uid, SAVEDATE_FIELD, secondsBytes(Math.floor(savedAt / 1000)));
    return uid;
  }

  private quotaBatch: { bytes: number; count: number } | null = null;

  /** One maildirsize line per change, or per batch (Dovecot writes one per transaction: a COPY of many). */
  private async countQuota(bytes: number, count: number): Promise<void> {
    if (this.opts.quotaCounted === false) return;
    if (this.quotaBatch) { this.quotaBatch.bytes += bytes; this.quotaBatch.count += count; return; }
    await appendMaildirsize(join(this.opts.rootDir, 'maildirsize'), [[bytes, count]]);
    await this.opts.quotaChanged?.([[bytes, count]]);
  }

  /** Saves until `endQuotaBatch()` are one maildirsize line, as one Dovecot transaction. */
  beginQuotaBatch(): void { this.quotaBatch ??= { bytes: 0, count: 0 }; }

  async endQuotaBatch(): Promise<void> {
    const b = this.quotaBatch;
    this.quotaBatch = null;
    if (b) await this.countQuota(b.bytes, b.count);
  }

  /**
   * Change flags/keywords by renaming within cur/ (base name kept, so the UID
   * stays). Needs the uidlist lock only when a new keyword letter is allocated.
   */
  async setFlags(m: MaildirMessage, flags: Iterable<SystemFlag>, keywords: Iterable<string>, opts: { deferModseq?: boolean } = {}): Promise<void> {
    const fl = new Set(flags);
    const names = [...keywords];
    // a local map: a concurrent sync may replace this.keywords with an older read meanwhile
    let kw = await this.files.keywords();
    if (names.some((k) => kw.indexOf(k) < 0)) {
      const lock = await acquireDotlock(this.uidlistPath, this.opts.lock);
      try {
        kw = await this.files.keywords();
        for (const k of names) {
          if (kw.allocate(k) < 0) throw new MailStoreError('NOTPOSSIBLE', `${this.opts.mailboxName}: more than 26 keywords cannot be stored in Maildir file names`);
        }
        if (kw.dirty) await writeKeywords(this.keywordsPath, kw);
      } finally { await lock.release(); }
    }
    this.keywords = kw;
    const idx = [...new Set(names.map((k) => kw.indexOf(k)))].sort((a, b) => a - b);
    const file = m.base + infoSuffix(fl, idx, m.otherLetters, m.extra);
    if (file === m.file && m.sub === 'cur') return;
    await this.withFile(m, (p) => fsp.rename(p, join(this.dir, 'cur', file)));
    // the row (and a snapshot the caller may hold): a sync since the caller looked keeps the row by UID
    const objs = this.moved(m, 'cur', file);
    // the new MODSEQ is handed out (to every view of it) by the next flush: one per STORE command, as Dovecot's transaction
    const ms = this.modseqs;
    if (ms.active) ms.change(...objs);
    if (ms.active && !opts.deferModseq) await ms.flush();
    announceChange(this.dir);
  }

  /** Expunge = unlink (plus a negative maildirsize line). Already-gone files count as expunged. */
  async expunge(ms: MaildirMessage[]): Promise<number[]> {
    const done: number[] = [];
    let bytes = 0;
    for (const m of ms) {
      try {
        const size = m.size ?? (await this.stat(m)).size;
        await this.withFile(m, (p) => fsp.unlink(p));
        bytes += size;
        done.push(m.uid);
      } catch (e) {
        if (e instanceof MailStoreError && e.code === 'EXPUNGED') continue;
        throw e instanceof MailStoreError ? e : ioError('expunging', this.path(m), e);
      }
    }
    if (done.length) {
      await this.countQuota(-bytes, -done.length);
      if (this.modseqs.active) await this.modseqs.expunged(done);
      announceChange(this.dir);
    }
    const gone = new Set(done);
    if (gone.size) {
      for (const m of this.table.remove(gone)) this.noteRemoved(m);
      this.generation++;
    }
    return done;
  }
}

void createReadStream;

const SAVEDATE_FIELD = 'savedate';

/** Read buffers of readHeader(), reused (a FETCH renders a few messages at once). */
const HEADER_SCRATCH: Buffer[] = [];
const HEADER_SCRATCH_SIZE = 16384;

/** S= or W= of a base name ("…,S=1234,W=1260"), undefined when absent (filename.ts parseName, without its allocations). */
function sizeField(base: string, key: 'S' | 'W'): number | undefined {
  let found: number | undefined; // the last such field counts, as in parseName
  for (let c = base.indexOf(','); c >= 0; c = base.indexOf(',', c + 1)) {
    if (base.charCodeAt(c + 1) !== key.charCodeAt(0) || base.charCodeAt(c + 2) !== 0x3d) continue;
    let end = c + 3;
    while (end < base.length && base.charCodeAt(end) >= 0x30 && base.charCodeAt(end) <= 0x39) end++;
    // the whole field must be digits, as parseName's /^([SW])=(\d+)$/
    if (end > c + 3 && (end === base.length || base.charCodeAt(end) === 0x2c)) found = Number(base.slice(c + 3, end));
  }
  return found;
}

function secondsBytes(secs: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(BigInt(secs));
  return b;
}
