/**
 * What one Maildir folder holds on disk, as this process last read it:
 * the names in new/ and cur/, the parsed dovecot-uidlist and
 * dovecot-keywords, re-read only where something changed. One state per
 * folder per process, shared by every handle of it (IMAP sessions, STATUS,
 * LMTP), so a change costs one set of reads however many sessions look.
 *
 * The change check is Dovecot's maildir sync rule with
 * maildir_very_dirty_syncs=no (maildir-sync.c): a directory is listed again
 * only when its mtime (ns) or inode changed, or when it was last listed
 * within MAILDIR_SYNC_SECS of its mtime — a change in the same clock tick
 * as our listing leaves the mtime as it was, so such a listing is not
 * trusted and the next check lists again (Dovecot's "delayed refresh").
 * The uidlist is only ever appended to or replaced by a rename, so its
 * inode, birth time, mtime and size show every change, and appends are
 * read from the last offset (uidlist-tail.ts). dovecot-keywords is
 * replaced by a rename before any file name uses a new letter, so it only
 * needs a look when a directory or the uidlist changed. Writers in this
 * process need not tell us anything: what they change shows in the stats.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { ioError } from '../errors.js';
import { baseName } from './filename.js';
import { KeywordMap } from './keywords.js';
import { fileKey, readUidlistFrom, type UidlistSnapshot } from './uidlist-tail.js';

/** Dovecot's MAILDIR_SYNC_SECS: the largest clock step (or mtime granularity) a listing must be older than its directory's mtime by to be trusted. */
export const MAILDIR_SYNC_MS = 1000;

export type Sub = 'new' | 'cur';

/** One directory's listing: base name → file name, and what could not be used as is. */
export interface DirListing {
  readonly files: ReadonlyMap<string, string>;
  /** Names starting with ':' and second files of a base name (Dovecot renames them to fresh ones). */
  readonly dups: readonly string[];
}

interface DirState extends DirListing {
  key: string;
  /** Listed long enough after its mtime that a later change must move the mtime. */
  trusted: boolean;
}

interface KeywordState { key: string; map: KeywordMap }

/** The folder's files as of one refresh. `version` grows whenever any of it differs from the previous one. */
export interface FolderSnapshot {
  readonly version: number;
  readonly uidlist: UidlistSnapshot;
  readonly cur: DirListing;
  readonly new: DirListing;
  /** dovecot-keywords as read after the listings (shared: clone() before changing it). */
  readonly keywords: KeywordMap;
  /** Version of the keywords map (a letter's name may have changed). */
  readonly keywordsVersion: number;
}

const EMPTY: DirState = { key: '-', trusted: true, files: new Map(), dups: [] };

async function statKey(p: string): Promise<{ key: string; mtimeMs: number }> {
  try {
    const st = await fsp.stat(p, { bigint: true });
    return { key: fileKey(st), mtimeMs: Number(st.mtimeNs / 1_000_000n) };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { key: '-', mtimeMs: 0 };
    throw ioError('checking', p, e);
  }
}

/** Hold a reference while using it: a folder nobody uses any more lets its state go (GC). */
const STATES = new Map<string, WeakRef<FolderFiles>>();
const reaper = new FinalizationRegistry<string>((k) => { if (!STATES.get(k)?.deref()) STATES.delete(k); });

export class FolderFiles {
  private dirs: Record<Sub, DirState> = { new: EMPTY, cur: EMPTY };
  private ul: UidlistSnapshot | null = null;
  private kw: KeywordState | null = null;
  private version = 0;
  private keywordsVersion = 0;
  private snapshot: FolderSnapshot | null = null;
  /** One refresh at a time; callers arriving while one waits to start share it. */
  private running: Promise<unknown> = Promise.resolve();
  private queued: Promise<FolderSnapshot> | null = null;

  private constructor(readonly dir: string, readonly uidlistPath: string, readonly keywordsPath: string, private readonly warn: (msg: string) => void) {}

  /** The process-wide state of the folder at `dir` with its control files in `controlDir`. */
  static of(dir: string, controlDir: string, warn: (msg: string) => void = () => undefined): FolderFiles {
    const k = `${dir}\0${controlDir}`;
    let s = STATES.get(k)?.deref();
    if (!s) {
      s = new FolderFiles(dir, join(controlDir, 'dovecot-uidlist'), join(controlDir, 'dovecot-keywords'), warn);
      STATES.set(k, new WeakRef(s));
      reaper.register(s, k);
    }
    return s;
  }

  /**
   * The folder as of now: every change completed before this call is in
   * what it returns. Concurrent callers share a refresh that has not started yet.
   */
  refresh(): Promise<FolderSnapshot> {
    if (this.queued) return this.queued;
    const run = this.running.then(() => { this.queued = null; return this.refreshNow(); });
    this.queued = run;
    this.running = run.catch(() => undefined);
    return run;
  }

  /** Forget everything (a repair rewrote files in ways whose stats might not show, tests simulating a restart). */
  forget(): void {
    this.dirs = { new: EMPTY, cur: EMPTY };
    this.ul = null;
    this.kw = null;
    this.snapshot = null;
  }

  private async refreshNow(): Promise<FolderSnapshot> {
    const before = Date.now();
    const [n, c, u] = await Promise.all([statKey(join(this.dir, 'new')), statKey(join(this.dir, 'cur')), statKey(this.uidlistPath)]);
    let changed = this.snapshot === null;
    for (const [sub, st] of [['new', n], ['cur', c]] as const) {
      const old = this.dirs[sub];
      if (old !== EMPTY && old.trusted && old.key === st.key) continue;
      // the stat came before the listing: a change while we list moves the mtime past what we keep
      const listing = st.key === '-' ? EMPTY : await this.list(sub);
      const next: DirState = { ...listing, key: st.key, trusted: before - st.mtimeMs > MAILDIR_SYNC_MS };
      if (!sameListing(old, next)) changed = true;
      this.dirs[sub] = next;
    }
    if (!this.ul || this.ul.key !== u.key) {
      const ul = await readUidlistFrom(this.uidlistPath, this.ul);
      if (ul !== this.ul) changed = true;
      this.ul = ul;
    }
    if (changed || !this.kw) await this.readKeywordsIfChanged();
    if (changed || !this.snapshot || this.snapshot.keywordsVersion !== this.keywordsVersion) {
      this.snapshot = { version: ++this.version, uidlist: this.ul, cur: this.dirs.cur, new: this.dirs.new, keywords: this.kw!.map, keywordsVersion: this.keywordsVersion };
    }
    return this.snapshot;
  }

  private async list(sub: Sub): Promise<DirListing> {
    const dir = join(this.dir, sub);
    let names: string[];
    try { names = await fsp.readdir(dir); } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return EMPTY;
      throw ioError('scanning', dir, e);
    }
    const files = new Map<string, string>();
    const dups: string[] = [];
    for (const file of names) {
      if (file.startsWith('.')) continue;
      if (file.includes('\n') || file.includes('\r')) { this.warn(`Maildir ${dir}: file name with CR/LF skipped`); continue; }
      if (file.startsWith(':')) { dups.push(file); continue; }
      const base = baseName(file);
      if (files.has(base)) dups.push(file); else files.set(base, file);
    }
    return { files, dups };
  }

  private async readKeywordsIfChanged(): Promise<void> {
    const st = await statKey(this.keywordsPath);
    if (this.kw && this.kw.key === st.key) return;
    let text = '';
    if (st.key !== '-') {
      try { text = await fsp.readFile(this.keywordsPath, 'utf8'); } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError('reading keywords', this.keywordsPath, e);
      }
    }
    this.kw = { key: st.key, map: KeywordMap.parse(text, this.keywordsPath) };
    this.keywordsVersion++;
  }

  /**
   * dovecot-keywords as of now, a copy the caller may change (allocate,
   * unknown-N names). One stat when it has not changed since the last read.
   */
  async keywords(): Promise<KeywordMap> {
    await this.readKeywordsIfChanged();
    return this.kw!.map.clone();
  }
}

function sameListing(a: DirListing, b: DirListing): boolean {
  if (a.files.size !== b.files.size || a.dups.length !== b.dups.length) return false;
  for (const [base, file] of b.files) if (a.files.get(base) !== file) return false;
  return a.dups.every((d, i) => d === b.dups[i]);
}
