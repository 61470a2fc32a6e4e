/**
 * The storage interface the protocol layers (IMAP, LMTP, sealadm) use for one
 * user's Maildir: folder list with LIST attributes, create/delete/rename with
 * Dovecot's on-disk outcome, subscriptions, opening folders, STATUS counters
 * and quota usage. Special-use flags come from configuration (never disk).
 * All failures are MailStoreError; no protocol text here.
 */
import { promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import type { IndexCipher, MessageCodec } from '../crypt/codec.js';
import { identityCipher, identityCodec } from '../crypt/codec.js';
import { MailStoreError, ioError } from './errors.js';
import type { DotlockOptions } from './maildir/dotlock.js';
import { MaildirFolder, RECENT_FILE, type MaildirMessage } from './maildir/folder.js';
import { folderDir, folderExists, imapNameFromStorage, isInbox, listFolders, splitImapName, storageLevels } from './maildir/folders.js';
import type { MaildirLocation } from './maildir/location.js';
import { buildNamespaces, DEFAULT_NAMESPACE, findNamespace, innerName, locate, outerName, type Namespace, type NamespaceOptions } from './namespaces.js';
import type { QuotaChangeHook } from './maildir/folder.js';
import { readMaildirsize, readMaildirsizeFile, writeMaildirsize, type QuotaUsage } from './maildir/maildirsize.js';
import { readSubscriptions, updateSubscriptions } from './maildir/subscriptions.js';
import { emptyUidlist, readUidlistHeader, rewriteUidlist } from './maildir/uidlist.js';
import { nextUidValidity } from './maildir/uidvalidity.js';
import { mutf7ToUtf8 } from './api/mailbox-utf7.js';
import { verifyCreateName } from './mailbox-name.js';
import { cleanTmpIfDue, DEFAULT_TEMP_SCAN_INTERVAL_MS } from './maildir/tmp-cleanup.js';
import type { CompressionSettings } from './compression/settings.js';
import { folderStamp, readStatusCache, writeStatusCache } from './status-cache.js';
import { watchDirs, watchFolder, type ChangeSubscription } from './changes.js';

export interface StoreOptions {
  /** `mail_location` with %-variables already expanded. */
  mailLocation: string;
  /** The private namespaces (their `location` expanded); absent: Dovecot's default one. */
  namespaces?: NamespaceOptions[];
  home?: string;
  codec?: MessageCodec;
  cipher?: IndexCipher;
  /** Dovecot's zlib plugin (compression/settings.ts); absent without `zlib` in mail_plugins. */
  compression?: CompressionSettings;
  /** Mailbox name (as clients see it) → special-use flag (`namespace inbox { mailbox X { special_use } }`). */
  specialUse?: Record<string, string>;
  /** `mailbox X { auto = create|subscribe }`, in configuration order. */
  autoMailboxes?: AutoMailbox[];
  /** `mailbox X { autoexpunge = … }`: expunge what was saved longer ago than this. */
  autoexpunge?: { name: string; ms: number }[];
  /** `mail_temp_scan_interval` in ms (0: never clean tmp/); Dovecot's week when not given. */
  tempScanIntervalMs?: number;
  lock?: DotlockOptions;
  warn?: (msg: string) => void;
}

export interface AutoMailbox { name: string; auto: 'create' | 'subscribe' }

/**
 * When a message was saved: the time in its Maildir base name (Dovecot and
 * Sealmail name a file when they save or copy it, and it survives flag
 * changes, unlike ctime), else the file's ctime.
 */
async function savedAt(folder: MaildirFolder, m: MaildirMessage): Promise<number | null> {
  const t = /^(\d{9,})\./.exec(m.base);
  if (t) return Number(t[1]) * 1000;
  const st = await folder.stat(m).catch(() => null);
  return st ? st.ctime.getTime() : null;
}

/**
 * Names in the order Dovecot's subscription tree gives them: each name goes
 * under its parents (made where their first descendant appears), children
 * after their parent, in the order they were first seen.
 */
function treeOrder(names: string[], sep: string): string[] {
  const kids = new Map<string, string[]>([['', []]]);
  const wanted = new Set(names);
  const place = (name: string): void => {
    if (kids.has(name)) return;
    const i = name.lastIndexOf(sep);
    const parent = i < 0 ? '' : name.slice(0, i);
    place(parent);
    kids.get(parent)!.push(name);
    kids.set(name, []);
  };
  for (const n of names) place(n);
  const out: string[] = [];
  const walk = (n: string): void => { for (const c of kids.get(n)!) { if (wanted.has(c)) out.push(c); walk(c); } };
  walk('');
  return out;
}

/** Roots whose autoexpunge is running in this process (one run at a time per user, as Dovecot's lock file). */
const AUTOEXPUNGING = new Map<string, Promise<number>>();

export interface ListEntry {
  name: string;
  /** Its namespace's hierarchy separator. */
  sep: string;
  /** LIST-EXTENDED attributes in Dovecot's order: \NonExistent/\Noselect, \Subscribed, children, special-use. */
  flags: string[];
}

/** One folder of the LIST tree (LIST-EXTENDED builds its flags from this). */
export interface FolderInfo {
  /** As clients see it: namespace prefix included. */
  name: string;
  /** Its namespace's hierarchy separator. */
  sep: string;
  /** Its namespace's prefix, and whether that namespace is listed (`list = yes|children`, else only for patterns that start with the prefix). */
  nsPrefix: string;
  nsListed: boolean;
  /** The namespace prefix itself (`Archive` of `prefix = Archive/`): listed \\Noselect when `list = yes`, or with children. */
  nsRoot?: boolean;
  /** Selectable mailbox. */
  exists: boolean;
  /** A directory that cannot hold mail (fs layout). */
  noselect: boolean;
  hasChildren: boolean;
  /** Configured special-use flag (shown only for existing folders). */
  specialUse?: string;
  /** Only the parent of an `auto` mailbox not created yet (Dovecot lists it just when the child itself doesn't match). */
  autoParent?: boolean;
}

export interface MailboxStatus {
  messages: number;
  recent: number;
  uidnext: number;
  uidvalidity: number;
  unseen: number;
  /** Messages flagged \Deleted (IMAP4rev2 STATUS DELETED); absent in status caches written before it existed. */
  deleted?: number;
  /** Sum of physical sizes. */
  size: number;
  /** Sum of virtual (CRLF) sizes: IMAP STATUS=SIZE, doveadm's vsize. */
  vsize: number;
  guid: string;
  /** Keywords in use, in Dovecot's FLAGS order. */
  keywords: string[];
  /** RFC 7162 HIGHESTMODSEQ. */
  highestModseq: number;
  /** A CONDSTORE client used the folder (so STATUS HIGHESTMODSEQ needs not mark it again). */
  modseqTracked?: boolean;
}

/** Process-wide shared folder handles (see MailStore.openShared). */
const SHARED = new Map<string, { folder: MaildirFolder; refs: number }>();

export class MailStore {
  /** The inbox namespace's location: INBOX, quota (maildirsize), mail-crypt keys, uidvalidity. */
  readonly loc: MaildirLocation;
  /** Dovecot's namespace order (shortest prefix first). */
  readonly namespaces: Namespace[];
  readonly codec: MessageCodec;
  readonly cipher: IndexCipher;
  /** Set by the quota layer: mailboxes whose changes maildirsize doesn't count (`Trash:ignore`). */
  quotaIgnored: ((name: string) => boolean) | null = null;
  /** Set by the quota layer when it has warning rules: told of every counted change after maildirsize has it. */
  quotaChanged: QuotaChangeHook | null = null;

  constructor(readonly opts: StoreOptions) {
    this.namespaces = buildNamespaces(opts.namespaces?.length ? opts.namespaces : [DEFAULT_NAMESPACE], opts.mailLocation, opts.home);
    const inbox = this.namespaces.find((n) => n.inbox) ?? this.namespaces.find((n) => !n.unusable)!;
    this.loc = inbox.loc;
    this.codec = opts.codec ?? identityCodec;
    this.cipher = opts.cipher ?? identityCipher;
  }

  /** Root control dir: dovecot-uidvalidity*, subscriptions, maildirsize. */
  get rootControl(): string { return this.loc.control ?? this.loc.root; }
  get subscriptionsPath(): string { return join(this.rootControl, 'subscriptions'); }

  /** The inbox namespace's separator (what LMTP, Sieve and sealadm use for names without a namespace of their own). */
  get sep(): string { return findNamespace(this.namespaces, 'INBOX')!.sep; }

  /** The separator LIST patterns split at and LIST "" "" shows: the first listed namespace's (mail_namespaces_get_root_sep). */
  get listSep(): string { return (this.namespaces.find((n) => n.list === 'yes' && !n.unusable) ?? findNamespace(this.namespaces, 'INBOX')!).sep; }

  /** The separator of a name's namespace (the inbox one's for a name no namespace takes). */
  separatorOf(vname: string): string { return findNamespace(this.namespaces, vname)?.sep ?? this.sep; }

  /** What LIST needs of a name's namespace: its prefix, and whether it is listed without a pattern naming that prefix. */
  listingOf(vname: string): { nsPrefix: string; nsListed: boolean } {
    const ns = findNamespace(this.namespaces, vname);
    return { nsPrefix: ns?.prefix ?? '', nsListed: !!ns && ns.list !== 'no' && !ns.unusable };
  }

  /**
   * Change watches for NOTIFY (RFC 5465): `watchMailbox` fires on any change
   * of one mailbox (shared inotify watches plus the in-process bus, see
   * changes.ts), `watchList` on mailboxes created, deleted or renamed and on
   * subscription changes; `listStamp` is a cheap stamp of the same (two stats).
   */
  watchMailbox(name: string, onChange: () => void): ChangeSubscription {
    return watchFolder(this.dirOf(name), onChange, 0, this.controlDirOf(name) ?? this.dirOf(name));
  }

  watchList(onChange: () => void): ChangeSubscription {
    return watchDirs([this.loc.root, this.rootControl], onChange);
  }

  async listStamp(): Promise<string> {
    const parts: string[] = [];
    for (const p of [this.loc.root, this.subscriptionsPath]) {
      const st = await fsp.stat(p, { bigint: true }).catch(() => null);
      parts.push(st ? `${st.ino}:${st.mtimeNs}:${st.size}` : '-');
    }
    return parts.join(' ');
  }

  /** Whether two names are in one namespace (throws NONAMESPACE for a name in none). */
  sameNamespace(a: string, b: string): boolean { return this.at(a).ns === this.at(b).ns; }

  /** The namespaces a client is told about (NAMESPACE): not hidden, usable. */
  visibleNamespaces(): { prefix: string; sep: string }[] {
    return this.namespaces.filter((n) => !n.hidden && !n.unusable).map((n, i) => ({ n, i }))
      .sort((a, b) => (a.n.order ?? 0) - (b.n.order ?? 0) || a.i - b.i).map(({ n }) => ({ prefix: n.prefix, sep: n.sep }));
  }

  /** The namespace of a name (as clients see it) and the name inside it. */
  private at(vname: string): { ns: Namespace; name: string; loc: MaildirLocation } {
    const { ns, name } = locate(this.namespaces, vname);
    // '' is a namespace's root only where it has a prefix; without one it is an empty name (refused)
    if (name === '' && ns.prefix === '') splitImapName(ns.loc, name);
    return { ns, name, loc: ns.loc };
  }

  dirOf(vname: string): string { const a = this.at(vname); return folderDir(a.loc, a.name); }

  private controlDirOf(vname: string): string | undefined {
    const { loc, name } = this.at(vname);
    if (!loc.control) return undefined;
    return folderDir({ ...loc, root: loc.control, inbox: loc.control }, name);
  }

  private folderExists(vname: string): Promise<boolean> { const a = this.at(vname); return folderExists(a.loc, a.name); }

  private static subscriptionsFile(ns: Namespace): string { return join(ns.loc.control ?? ns.loc.root, 'subscriptions'); }

  /** Make sure the root (INBOX) exists, as Dovecot does on first access. */
  async ensureRoot(): Promise<void> {
    for (const d of ['cur', 'new', 'tmp']) {
      await fsp.mkdir(join(this.loc.inbox, d), { recursive: true, mode: 0o700 }).catch((e) => { throw ioError('creating INBOX', this.loc.inbox, e); });
    }
  }

  /**
   * Subscribed names in the subscriptions file's order, then the
   * `auto = subscribe` mailboxes the file lacks (Dovecot shows them
   * subscribed whether or not they were ever created or unsubscribed).
   */
  async subscriptions(): Promise<string[]> {
    // each subscriptions=yes namespace has its own file, names without its prefix; the names of a
    // subscriptions=no namespace are kept, prefix and all, in the file of the one its names fall in
    const names: string[] = [];
    for (const ns of this.namespaces) {
      if (!ns.subscriptions || ns.unusable) continue;
      const s = await readSubscriptions(MailStore.subscriptionsFile(ns), ns.loc.storageSep);
      for (const l of s.names) {
        // Dovecot joins a line's levels with the layout's separator into a storage name: a "." inside a Maildir++ level splits it too
        const inner = imapNameFromStorage(ns.loc, l.join(ns.loc.storageSep).split(ns.loc.storageSep));
        if (inner !== null) names.push(outerName(ns, inner));
      }
    }
    const have = new Set(names);
    for (const a of this.opts.autoMailboxes ?? []) if (a.auto === 'subscribe' && !have.has(a.name)) names.push(a.name);
    // LSUB goes namespace by namespace, each in its tree order
    const out: string[] = [];
    for (const ns of this.namespaces) {
      const mine = names.filter((n) => findNamespace(this.namespaces, n) === ns);
      out.push(...treeOrder(mine, ns.sep));
    }
    return out;
  }

  private auto(name: string): AutoMailbox | undefined {
    return this.opts.autoMailboxes?.find((a) => a.name === name);
  }

  /**
   * An `auto` mailbox is there for the client before it is on disk (Dovecot
   * 2.3 creates it when it is first opened, subscribing it if so configured).
   * True when the mailbox exists now.
   */
  private async materialize(name: string): Promise<boolean> {
    if (await this.folderExists(name)) return true;
    const a = this.auto(name);
    if (!a) return false;
    try { await this.create(name); } catch (e) { if (!(e instanceof MailStoreError && e.code === 'ALREADYEXISTS')) throw e; }
    if (a.auto === 'subscribe') await this.subscribe(name, true);
    return true;
  }

  /** `anyName`: doveadm's mailbox subscribe, which subscribes a name whether or not it exists (IMAP's SUBSCRIBE does not). */
  async subscribe(name: string, on = true, anyName = false): Promise<void> {
    const { ns: own, loc, name: inner } = this.at(name);
    storageLevels(loc, inner);
    if (on && !anyName && !(await this.folderExists(name)) && !this.auto(name)) throw new MailStoreError('NONEXISTENT', `mailbox ${name} does not exist`);
    // a subscriptions=no namespace's names go, prefix included, to the file of the subscriptions=yes one they fall in
    const ns = own.subscriptions ? own : findNamespace(this.namespaces, name, (n) => n.subscriptions && !n.unusable);
    if (!ns) throw new MailStoreError('NOTPOSSIBLE', 'No namespace keeps subscriptions for this mailbox');
    const levels = storageLevels(ns.loc, innerName(ns, name));
    await updateSubscriptions(MailStore.subscriptionsFile(ns), ns.loc.storageSep, (s) => {
      const key = levels.join('\t');
      const i = s.names.findIndex((l) => l.join('\t') === key);
      if (on && i < 0) s.names.push(levels);
      if (!on && i >= 0) s.names.splice(i, 1);
    });
  }

  /** LIST "" "*" RETURN (SPECIAL-USE SUBSCRIBED CHILDREN), or plain LIST with `plain` (sealadm, and IMAP's SELECT list line). */
  async list(plain = false): Promise<ListEntry[]> {
    const subs = new Set(plain ? [] : await this.subscriptions());
    // a list = no namespace shows only to a pattern naming its prefix: not in this "*" listing
    return (await this.listInfo()).filter((f) => f.nsListed).map((f) => {
      const flags: string[] = [];
      if (!f.exists) flags.push(f.noselect || plain ? '\\Noselect' : '\\NonExistent');
      if (subs.has(f.name)) flags.push('\\Subscribed');
      flags.push(f.hasChildren ? '\\HasChildren' : '\\HasNoChildren');
      if (f.specialUse && f.exists) flags.push(f.specialUse);
      return { name: f.name, sep: f.sep, flags };
    });
  }

  /**
   * Every folder in Dovecot's LIST order, parents without a mailbox
   * included: the folders on disk, then the `auto` mailboxes not created yet
   * (configuration order, as Dovecot lists them), INBOX last.
   */
  async listInfo(): Promise<FolderInfo[]> {
    // namespace by namespace, an INBOX without prefix after all of them (Dovecot lists it last)
    const out: FolderInfo[] = [];
    let last: FolderInfo | undefined;
    for (const ns of this.namespaces) {
      if (ns.unusable) continue;
      const part = await this.namespaceInfo(ns);
      if (ns.inbox && ns.prefix === '') last = part.pop();
      out.push(...part);
    }
    if (last) out.push(last);
    return out;
  }

  /** One namespace's part of the LIST tree: its prefix (when listed), its folders, INBOX last. */
  private async namespaceInfo(ns: Namespace): Promise<FolderInfo[]> {
    const sep = ns.sep;
    const base = { sep, nsPrefix: ns.prefix, nsListed: ns.list !== 'no' };
    const disk = await listFolders(ns.loc);
    const inbox = disk.pop()!;
    const vn = (n: string) => outerName(ns, n);
    const out: FolderInfo[] = disk.map((f) => ({ ...f, ...base, name: vn(f.name), specialUse: this.opts.specialUse?.[vn(f.name)] }));
    for (const a of this.opts.autoMailboxes ?? []) {
      if (isInbox(a.name) || findNamespace(this.namespaces, a.name) !== ns) continue;
      const f = out.find((x) => x.name === a.name);
      if (f) { if (!f.exists && !f.noselect) f.exists = true; continue; }
      // parents missing on disk are listed (\\NonExistent) just before it, as Dovecot's tree has them
      const inner = innerName(ns, a.name);
      const levels = inner.split(sep);
      for (let k = 1; k < levels.length; k++) {
        const parent = vn(levels.slice(0, k).join(sep));
        if (!out.some((x) => x.name === parent)) out.push({ ...base, name: parent, exists: false, noselect: false, hasChildren: true, autoParent: true });
      }
      out.push({ ...base, name: a.name, exists: true, noselect: false, hasChildren: out.some((x) => x.name.startsWith(a.name + sep)), specialUse: this.opts.specialUse?.[a.name] });
      for (let i = inner.lastIndexOf(sep); i > 0; i = inner.lastIndexOf(sep, i - 1)) {
        const parent = out.find((x) => x.name === vn(inner.slice(0, i)));
        if (parent) parent.hasChildren = true;
      }
    }
    const root = ns.prefix.slice(0, -1);
    // Courier's prefix "INBOX.": the prefix is INBOX itself, listed first with the folders as its children
    if (ns.inbox && ns.prefix !== '' && isInbox(root)) out.unshift({ ...inbox, ...base, name: 'INBOX', hasChildren: out.length > 0, specialUse: this.opts.specialUse?.INBOX });
    else if (ns.inbox) out.push({ ...inbox, ...base, name: 'INBOX', specialUse: this.opts.specialUse?.INBOX });
    // the prefix itself (a mailbox once its root has cur/): always with list = yes, with list = children when something is under it
    if (ns.prefix !== '' && !isInbox(root) && (ns.list === 'yes' || (ns.list === 'children' && out.length > 0))) {
      out.unshift({ ...base, name: root, exists: await folderExists(ns.loc, ''), noselect: false, hasChildren: out.length > 0, nsRoot: true });
    }
    return out;
  }

  /** LSUB: subscribed names (also missing ones) with special-use of existing folders. */
  async lsub(): Promise<ListEntry[]> {
    const out: ListEntry[] = [];
    for (const name of await this.subscriptions()) {
      const su = this.opts.specialUse?.[name];
      out.push({ name, sep: findNamespace(this.namespaces, name)?.sep ?? this.sep, flags: su && await this.exists(name).catch(() => false) ? [su] : [] });
    }
    return out;
  }

  async exists(name: string): Promise<boolean> { return (await this.folderExists(name)) || !!this.auto(name); }

  /** Open a folder (no sync yet). */
  async open(name: string): Promise<MaildirFolder> {
    if (!(await this.materialize(name))) throw new MailStoreError('NONEXISTENT', `mailbox ${name} does not exist`);
    // Dovecot cleans a Maildir's tmp/ when it opens it, when due (tmp-cleanup.ts)
    await cleanTmpIfDue(this.dirOf(name), this.opts.tempScanIntervalMs ?? DEFAULT_TEMP_SCAN_INTERVAL_MS);
    return new MaildirFolder(this.dirOf(name), {
      codec: this.codec, cipher: this.cipher, compression: this.opts.compression, mailboxName: isInbox(name) ? 'INBOX' : name, rootDir: this.rootOf(name),
      controlDir: this.controlDirOf(name), lock: this.opts.lock, warn: this.opts.warn,
      quotaCounted: !this.quotaIgnored?.(isInbox(name) ? 'INBOX' : name), quotaChanged: this.quotaChanged ?? undefined,
    });
  }

  /** The control root of a name's namespace (its dovecot-uidvalidity files). */
  private rootOf(vname: string): string { const { loc } = this.at(vname); return loc.control ?? loc.root; }

  /** A mailbox's GUID (dovecot-uidlist's G field, created with the uidlist if needed): mail-crypt and metadata keys use it. */
  async mailboxGuid(name: string): Promise<string> {
    if (isInbox(name)) await this.ensureRoot();
    const f = await this.open(name);
    // the header suffices (every delivery of a mail-crypt user asks): no scan of a big folder
    const head = await readUidlistHeader(f.uidlistPath);
    if (head?.guid && !head.problems.length) return head.guid;
    await f.sync();
    return f.guid;
  }

  /**
   * The folder handle shared by every session of this process that has it
   * selected: one copy of the message list however many clients idle on it
   * (Dovecot shares its mmap'd index the same way). `release()` when done.
   */
  async openShared(name: string): Promise<{ folder: MaildirFolder; release(): void }> {
    const key = `${this.dirOf(name)}\0${this.codec === identityCodec ? '' : this.codec.locked ? 'crypt-locked' : 'crypt'}`;
    let e = SHARED.get(key);
    if (!e) {
      e = { folder: await this.open(name), refs: 0 };
      SHARED.set(key, e);
    } else if (!(await this.materialize(name))) {
      throw new MailStoreError('NONEXISTENT', `mailbox ${name} does not exist`);
    }
    const entry = e;
    entry.refs++;
    let released = false;
    return {
      folder: entry.folder,
      release: () => {
        if (released) return;
        released = true;
        // kept a little while: clients reconnect and re-SELECT all the time, and a warm handle skips the scan
        if (--entry.refs === 0) setTimeout(() => { if (entry.refs === 0 && SHARED.get(key) === entry) SHARED.delete(key); }, 60_000).unref();
      },
    };
  }

  /**
   * CREATE. `directory` (a name sent with a trailing separator): with
   * LAYOUT=fs only a directory for children is made, a \\Noselect parent;
   * Maildir++ has no such thing and makes a mailbox (Dovecot's
   * MAILBOX_LIST_PROP_NO_NOSELECT).
   */
  async create(name: string, directory = false): Promise<void> {
    if (isInbox(name)) throw new MailStoreError('ALREADYEXISTS', 'mailbox INBOX already exists');
    const { ns, loc, name: inner } = this.at(name);
    if (inner !== '') splitImapName(loc, inner);
    verifyCreateName(mutf7ToUtf8(name), storageLevels(loc, inner));
    const dir = this.dirOf(name);
    if (await this.folderExists(name)) throw new MailStoreError('ALREADYEXISTS', `mailbox ${name} already exists`);
    if (directory && loc.layout === 'fs' && inner !== '') {
      try { await fsp.mkdir(dirname(dir), { recursive: true, mode: 0o700 }); await fsp.mkdir(dir, { mode: 0o700 }); } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new MailStoreError('ALREADYEXISTS', `mailbox ${name} already exists`);
        throw ioError(`creating mailbox ${name}`, dir, e);
      }
      return;
    }
    if (ns === findNamespace(this.namespaces, 'INBOX')) await this.ensureRoot();
    else await fsp.mkdir(loc.root, { recursive: true, mode: 0o700 }).catch((e) => { throw ioError('creating the mail root', loc.root, e); });
    try {
      await fsp.mkdir(dirname(dir), { recursive: true, mode: 0o700 });
      // fs parents and a namespace root exist as plain directories before they are mailboxes
      await fsp.mkdir(dir, { mode: 0o700 }).catch((e) => { if (e.code !== 'EEXIST' || (loc.layout !== 'fs' && inner !== '')) throw e; });
      for (const d of ['cur', 'new', 'tmp']) await fsp.mkdir(join(dir, d), { mode: 0o700 }).catch((e) => { if (e.code !== 'EEXIST') throw e; });
      if (loc.layout === 'maildir++' && inner !== '') await fsp.writeFile(join(dir, 'maildirfolder'), '', { mode: 0o600 });
      const ctl = this.controlDirOf(name) ?? dir;
      await fsp.mkdir(ctl, { recursive: true, mode: 0o700 });
      await rewriteUidlist(join(ctl, 'dovecot-uidlist'), emptyUidlist(await nextUidValidity(loc.control ?? loc.root)));
      await fsp.writeFile(join(ctl, RECENT_FILE), '1\n', { mode: 0o600 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new MailStoreError('ALREADYEXISTS', `mailbox ${name} already exists`);
      throw e instanceof MailStoreError ? e : ioError(`creating mailbox ${name}`, dir, e);
    }
  }

  /**
   * Dovecot's DELETE: Maildir++ renames `.Name` to `..DOVECOT-TRASH` and
   * removes it; children stay. fs layout with children keeps the directory
   * (it becomes \Noselect). Subscriptions are not touched.
   */
  async delete(name: string): Promise<void> {
    if (isInbox(name)) throw new MailStoreError('NOTPOSSIBLE', 'INBOX can not be deleted');
    if (name === '' || this.at(name).name === '') throw new MailStoreError('NOTPOSSIBLE', "Storage root can't be deleted");
    const { loc } = this.at(name);
    // an auto mailbox not created yet: Dovecot says OK, and it stays listed
    if (this.auto(name) && !(await this.folderExists(name))) return;
    if (!(await this.folderExists(name))) throw new MailStoreError('NONEXISTENT', `mailbox ${name} does not exist`);
    const dir = this.dirOf(name);
    try {
      if (loc.layout === 'maildir++') {
        const trash = join(loc.root, '..DOVECOT-TRASH');
        await fsp.rm(trash, { recursive: true, force: true });
        await fsp.rename(dir, trash);
        await fsp.rm(trash, { recursive: true, force: true });
      } else {
        const children = (await fsp.readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory() && !['cur', 'new', 'tmp'].includes(e.name));
        if (!children.length) { await fsp.rm(dir, { recursive: true, force: true }); return; }
        for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
          if (e.isDirectory() && !['cur', 'new', 'tmp'].includes(e.name)) continue;
          await fsp.rm(join(dir, e.name), { recursive: true, force: true });
        }
      }
    } catch (e) {
      throw ioError(`deleting mailbox ${name}`, dir, e);
    }
  }

  /** RENAME with children; UIDVALIDITY/GUID move with the directories; subscriptions untouched (Dovecot). */
  async rename(from: string, to: string): Promise<void> {
    if (isInbox(from)) throw new MailStoreError('NOTPOSSIBLE', "Renaming INBOX isn't supported");
    const src = this.at(from);
    if (src.name === '') throw new MailStoreError('NOTPOSSIBLE', "Can't rename mailbox root");
    splitImapName(src.loc, src.name);
    if (isInbox(to)) throw new MailStoreError('ALREADYEXISTS', 'mailbox INBOX already exists');
    const dst = this.at(to);
    splitImapName(dst.loc, dst.name);
    verifyCreateName(mutf7ToUtf8(to), storageLevels(dst.loc, dst.name));
    // namespaces of one user may move folders between them when their storages are alike (mail_storages_rename_compatible)
    if (src.ns !== dst.ns && (src.loc.layout !== dst.loc.layout || src.loc.utf8 !== dst.loc.utf8)) throw new MailStoreError('NOTPOSSIBLE', "Can't rename mailboxes across specified storages.");
    const all = await listFolders(src.loc);
    const dstAll = src.ns === dst.ns ? all : await listFolders(dst.loc);
    const s = all.find((f) => f.name === src.name);
    if (!s || (!s.exists && !s.noselect && !s.hasChildren)) throw new MailStoreError('NONEXISTENT', `mailbox ${from} does not exist`);
    const dsep = dst.ns.sep;
    if (dstAll.some((f) => f.name === dst.name || f.name.startsWith(dst.name + dsep)) && (await this.folderExists(to) || dstAll.some((f) => f.name.startsWith(dst.name + dsep)))) {
      throw new MailStoreError('ALREADYEXISTS', `mailbox ${to} already exists`);
    }
    if (src.ns === dst.ns && dst.name.startsWith(src.name + dsep)) throw new MailStoreError('NOTPOSSIBLE', `can not rename ${from} into its own child ${to}`);
    const ssep = src.ns.sep;
    try {
      if (src.loc.layout === 'fs') {
        const target = this.dirOf(to);
        const old = this.dirOf(from);
        await fsp.mkdir(dirname(target), { recursive: true, mode: 0o700 });
        await fsp.rename(old, target);
        // Dovecot's rename_dir of the index/control path (the mail directory unless INDEX= and CONTROL= move them)
        // then removes the old parents left empty, up to the root (mailbox_list_delete_until_root)
        if (!src.loc.index || !src.loc.control) {
          for (let p = dirname(old); p.startsWith(src.loc.root + '/'); p = dirname(p)) if (!(await fsp.rmdir(p).then(() => true, () => false))) break;
        }
      } else {
        if (src.ns !== dst.ns) await fsp.mkdir(dst.loc.root, { recursive: true, mode: 0o700 });
        const moves = all.filter((f) => (f.name === src.name || f.name.startsWith(src.name + ssep)) && f.exists);
        for (const f of moves) {
          const rest = f.name.slice(src.name.length).split(ssep).join(dsep);
          await fsp.rename(folderDir(src.loc, f.name), this.dirOf(to + rest));
        }
      }
    } catch (e) {
      throw ioError(`renaming ${from} to ${to}`, this.dirOf(from), e);
    }
  }

  /**
   * STATUS without moving new/ → cur/ (like Dovecot's STATUS/EXAMINE). An
   * unchanged folder answers from its status cache without a directory scan;
   * the cache is only written when nothing changed while we counted.
   */
  async status(name: string, trackModseqs = false): Promise<MailboxStatus> {
    const f = await this.open(name);
    const before = await folderStamp(f.dir, f.controlDir);
    if (before) {
      const hit = await readStatusCache(f.controlDir, before);
      if (hit && hit.highestModseq && hit.deleted !== undefined && (!trackModseqs || hit.modseqTracked)) return hit;
    }
    await f.sync();
    if (trackModseqs) await f.trackModseqs();
    let size = 0;
    let vsize = 0;
    for (const m of f.messages) { size += m.size ?? (await f.stat(m)).size; vsize += await f.virtualSize(m); }
    const st: MailboxStatus = {
      vsize,
      messages: f.messages.length,
      recent: await (async () => { const fr = await f.firstRecentUid(); return f.messages.filter((m) => (fr === null ? m.recent : m.uid >= fr)).length; })(),
      uidnext: f.uidNext,
      uidvalidity: f.uidValidity,
      unseen: f.messages.filter((m) => !m.flags.has('\\Seen')).length,
      deleted: f.messages.filter((m) => m.flags.has('\\Deleted')).length,
      size,
      guid: f.guid,
      keywords: f.keywordOrder,
      highestModseq: f.highestModseq,
      modseqTracked: f.modseqTracked,
    };
    const after = await folderStamp(f.dir, f.controlDir);
    if (after && after === before) await writeStatusCache(f.controlDir, after, st);
    return st;
  }

  /**
   * Dovecot's autoexpunge (run at the end of a session): in each configured
   * mailbox that exists, messages saved longer ago than its `autoexpunge`
   * are expunged, oldest
   * UID first, stopping at the first newer one as Dovecot does. One run at
   * a time per user (a lock file in the root's control directory, since
   * IMAP sessions live in several processes). Returns how many were expunged.
   */
  async autoexpunge(now = Date.now()): Promise<number> {
    const rules = this.opts.autoexpunge ?? [];
    if (!rules.length) return 0;
    const key = this.rootControl;
    const running = AUTOEXPUNGING.get(key);
    if (running) return running;
    const run = (async () => {
      // one run per user across processes too (Dovecot: dovecot.autoexpunge.lock); a stale lock is taken over
      const lock = join(this.rootControl, 'sealmail.autoexpunge.lock');
      const take = () => fsp.writeFile(lock, `${process.pid}\n`, { flag: 'wx', mode: 0o600 }).then(() => true, (e: NodeJS.ErrnoException) => { if (e.code === 'EEXIST') return false; throw e; });
      if (!(await take())) {
        const st = await fsp.stat(lock).catch(() => null);
        if (st && Date.now() - st.mtimeMs < 10 * 60_000) return 0;
        await fsp.rm(lock, { force: true });
        if (!(await take())) return 0;
      }
      let n = 0;
      try {
        n = await this.expungeOld(rules, now);
      } finally { await fsp.rm(lock, { force: true }); }
      return n;
    })().finally(() => AUTOEXPUNGING.delete(key));
    AUTOEXPUNGING.set(key, run);
    return run;
  }

  private async expungeOld(rules: { name: string; ms: number }[], now: number): Promise<number> {
    let n = 0;
    for (const r of rules) {
      if (!(await this.folderExists(r.name).catch(() => false))) continue;
      const h = await this.openShared(r.name);
      try {
        await h.folder.sync();
        const old = [];
        for (const m of [...h.folder.messages].sort((x, y) => x.uid - y.uid)) {
          const saved = await savedAt(h.folder, m);
          if (saved === null) continue;
          if (saved > now - r.ms) break;
          old.push(m);
        }
        if (old.length) n += (await h.folder.expunge(old)).length;
      } finally { h.release(); }
    }
    return n;
  }

  /** Quota usage from maildirsize (null when the file is missing: Dovecot will recount). */
  async quota(): Promise<QuotaUsage | null> {
    return readMaildirsize(join(this.rootControl, 'maildirsize'));
  }

  /** maildirsize as stored (the quota layer decides whether it is current). */
  async readMaildirsizeFile(): Promise<{ text: string; usage: QuotaUsage } | null> {
    return readMaildirsizeFile(join(this.rootControl, 'maildirsize'));
  }

  /** Replace maildirsize with a recalculated one. */
  async writeMaildirsize(limits: string, bytes: number, count: number): Promise<void> {
    await this.ensureRoot();
    await writeMaildirsize(join(this.rootControl, 'maildirsize'), limits, bytes, count);
  }
}
