/**
 * The POP3 maildrop: the user's INBOX as Dovecot's pop3 sees it for one
 * session (pop3-client.c read_mailbox/init_mailbox, pop3-commands.c
 * client_update_mails). Opened once at login: synced (new/ moved to cur/
 * unless pop3_no_flag_updates, as MAILBOX_FLAG_DROP_RECENT does), messages
 * carrying pop3_deleted_flag left out, each message's size the virtual
 * (CRLF) size of its plaintext — W= or the cached value first with
 * pop3_fast_size_lookups, then S=, then counted — so a mail-crypt user sees
 * the sizes Dovecot's pop3 reports. A message expunged while the sizes are
 * read makes the scan start again (three tries, as Dovecot). UIDLs through
 * uidl.ts. At QUIT the DELEted messages are expunged (or given
 * pop3_deleted_flag with pop3_delete_type = flag) and the RETRieved ones
 * get \Seen. pop3_lock_session: Dovecot's dovecot-pop3-session.lock
 * dotlock in the mail root, so two sessions of one user never overlap.
 * Storage only through the MailFolder interface; no reply is formatted here.
 */
import { join } from 'node:path';
import type { DovecotConfig } from '../config/settings.js';
import type { MailFolder, MailMessage } from '../mailstore/api/mailbox.js';
import { MailStoreError } from '../mailstore/errors.js';
import { acquireDotlock, type Dotlock } from '../mailstore/maildir/dotlock.js';
import type { MailStore } from '../mailstore/store.js';
import { messageUidl, uidlKeys, xUidl } from './uidl.js';

/** The pop3_* settings of `protocol pop3 { }` (Dovecot's pop3-settings.c; defaults from defaults-data). */
export interface Pop3Settings {
  uidlFormat: string;
  reuseXuidl: boolean;
  deletedFlag: string;
  /** pop3_delete_type resolved: `expunge`, or `flag` (pop3_deleted_flag added instead). */
  deleteType: 'expunge' | 'flag';
  noFlagUpdates: boolean;
  fastSizeLookups: boolean;
  lockSession: boolean;
  logoutFormat: string;
  uidlDuplicates: 'allow' | 'rename';
}

export function pop3Settings(config: DovecotConfig): Pop3Settings {
  const ctx = { protocol: 'pop3' };
  const deletedFlag = config.get('pop3_deleted_flag', ctx);
  const dt = config.get('pop3_delete_type', ctx);
  return {
    uidlFormat: config.get('pop3_uidl_format', ctx),
    reuseXuidl: config.getBool('pop3_reuse_xuidl', ctx),
    deletedFlag,
    deleteType: dt === 'flag' || (dt !== 'expunge' && deletedFlag !== '') ? 'flag' : 'expunge',
    noFlagUpdates: config.getBool('pop3_no_flag_updates', ctx),
    fastSizeLookups: config.getBool('pop3_fast_size_lookups', ctx),
    lockSession: config.getBool('pop3_lock_session', ctx),
    logoutFormat: config.get('pop3_logout_format', ctx),
    uidlDuplicates: config.get('pop3_uidl_duplicates', ctx) === 'rename' ? 'rename' : 'allow',
  };
}

/** pop3_* settings Dovecot refuses at start (pop3_settings_verify, client_create's i_fatal). */
export function pop3SettingsError(s: Pop3Settings): string | null {
  if (uidlKeys(s.uidlFormat).size === 0) return 'Invalid pop3_uidl_format';
  if (s.deleteType === 'flag' && s.deletedFlag === '') return 'pop3_delete_type=flag, but pop3_deleted_flag not set';
  return null;
}

/** Dovecot's POP3_LOCK_FNAME without the dotlock suffix (acquireDotlock adds ".lock"). */
const SESSION_LOCK = 'dovecot-pop3-session';
/** session_dotlock_set: 10 s to wait, stale after 5 minutes (refreshed meanwhile). */
const SESSION_LOCK_TIMEOUT_MS = 10_000;
const SESSION_LOCK_STALE_MS = 5 * 60_000;

/** Why the maildrop could not be opened, with the reply Dovecot's pop3 gives. */
export class MaildropError extends Error {
  constructor(readonly reply: string, message: string) { super(message); }
}

export class Maildrop {
  /** UIDLs computed on first use (UIDL), in message order. */
  private uidlCache: string[] | null = null;
  private lockTimer: NodeJS.Timeout | null = null;

  private constructor(
    private readonly folder: MailFolder,
    readonly messages: MailMessage[],
    readonly sizes: number[],
    readonly settings: Pop3Settings,
    private lock: Dotlock | null,
  ) {
    if (lock) {
      // Dovecot touches the lock every stale-timeout so a long session keeps it
      this.lockTimer = setInterval(() => void lock.touch().catch(() => undefined), SESSION_LOCK_STALE_MS - 30_000);
      this.lockTimer.unref();
    }
  }

  get uidValidity(): number { return this.folder.uidValidity; }
  get totalSize(): number { return this.sizes.reduce((a, b) => a + b, 0); }

  static async open(store: MailStore, s: Pop3Settings): Promise<Maildrop> {
    let lock: Dotlock | null = null;
    if (s.lockSession) {
      const root = store.loc.index ?? store.loc.root;
      try {
        lock = await acquireDotlock(join(root, SESSION_LOCK), { timeoutMs: SESSION_LOCK_TIMEOUT_MS, staleMs: SESSION_LOCK_STALE_MS });
      } catch (e) {
        if (e instanceof MailStoreError && e.code === 'LOCKTIMEOUT') throw new MaildropError('-ERR [IN-USE] Mailbox is locked by another POP3 session.', 'Mailbox is locked by another POP3 session');
        throw new MaildropError('-ERR [SYS/TEMP] Failed to create POP3 session lock.', `pop3_lock_session: ${(e as Error).message}`);
      }
    }
    try {
      await store.ensureRoot();
      const folder = await store.open('INBOX');
      let lastFailed = -1;
      for (let attempt = 0; ; attempt++) {
        await folder.sync({ moveNew: !s.noFlagUpdates });
        const msgs = s.deletedFlag ? folder.messages.filter((m) => !m.keywords.includes(s.deletedFlag)) : [...folder.messages];
        try {
          const sizes: number[] = [];
          for (const m of msgs) sizes.push(await Maildrop.sizeOf(folder, m, s.fastSizeLookups));
          return new Maildrop(folder, msgs, sizes, s, lock);
        } catch (e) {
          if (!(e instanceof MailStoreError && e.code === 'EXPUNGED') || attempt === 2) {
            throw e instanceof MailStoreError && e.code === 'EXPUNGED'
              ? new MaildropError('-ERR [SYS/TEMP] Couldn\'t sync mailbox.', lastFailed >= 0 ? `Couldn't init INBOX: ${e.message}` : 'Couldn\'t init INBOX: Can\'t sync mailbox: Messages keep getting expunged')
              : e;
          }
          lastFailed = attempt;
        }
      }
    } catch (e) {
      await lock?.release().catch(() => undefined);
      throw e;
    }
  }

  /**
   * pop3_mail_get_size: the virtual size; with pop3_fast_size_lookups what
   * is known without reading the message first (W=, then the physical S=).
   */
  private static async sizeOf(folder: MailFolder, m: MailMessage, fast: boolean): Promise<number> {
    if (fast) {
      if (m.vsize !== undefined) return m.vsize;
      if (m.size !== undefined) return m.size;
    }
    return folder.virtualSize(m);
  }

  seen(i: number): boolean { return this.messages[i].flags.has('\\Seen'); }

  /** Every message's UIDL, in message order (pop3_uidl_duplicates = rename: `-2`, `-3` … added to repeats). */
  async uidls(): Promise<string[]> {
    if (this.uidlCache) return this.uidlCache;
    const out: string[] = [];
    const seen = new Map<string, number>();
    for (const m of this.messages) {
      let x: string | null = null;
      const stored = this.folder.pop3Uidl(m);
      if (!stored && this.settings.reuseXuidl) x = xUidl((await this.folder.readHead(m, 64 * 1024)).head);
      let u = messageUidl(this.settings.uidlFormat, { uid: m.uid, uidValidity: this.folder.uidValidity, base: m.base, stored }, x);
      if (this.settings.uidlDuplicates === 'rename') {
        while (seen.has(u)) {
          const n = seen.get(u)! + 1;
          seen.set(u, n);
          u = `${u}-${n}`;
        }
        seen.set(u, 1);
      }
      out.push(u);
    }
    this.uidlCache = out;
    return out;
  }

  /** The message's plaintext (decrypted for a mail-crypt user). */
  read(i: number): AsyncIterable<Buffer> { return this.folder.read(this.messages[i]); }

  /**
   * QUIT: DELEted messages expunged (or flagged), RETRieved ones not yet
   * \Seen given \Seen (not the deleted ones). Returns the bytes removed.
   */
  async commit(deleted: ReadonlySet<number>, seen: ReadonlySet<number>): Promise<void> {
    const del = [...deleted].sort((a, b) => a - b).map((i) => this.messages[i]);
    if (del.length) {
      if (this.settings.deleteType === 'flag') {
        for (const m of del) await this.folder.setFlags(m, m.flags, [...new Set([...m.keywords, this.settings.deletedFlag])]);
      } else {
        await this.folder.expunge(del);
      }
    }
    for (const i of [...seen].sort((a, b) => a - b)) {
      if (deleted.has(i)) continue;
      const m = this.messages[i];
      if (m.flags.has('\\Seen')) continue;
      try {
        await this.folder.setFlags(m, new Set([...m.flags, '\\Seen']), m.keywords);
      } catch (e) {
        if (!(e instanceof MailStoreError && e.code === 'EXPUNGED')) throw e;
      }
    }
  }

  /** RSET with pop3_enable_last: \Seen off every message, at once (RFC 1460's LAST semantics, as Dovecot's cmd_rset). */
  async unseeAll(): Promise<void> {
    for (const m of this.messages) {
      if (!m.flags.has('\\Seen')) continue;
      const flags = new Set(m.flags);
      flags.delete('\\Seen');
      try {
        await this.folder.setFlags(m, flags, m.keywords);
      } catch (e) {
        if (!(e instanceof MailStoreError && e.code === 'EXPUNGED')) throw e;
      }
    }
  }

  async close(): Promise<void> {
    if (this.lockTimer) clearInterval(this.lockTimer);
    this.lockTimer = null;
    const l = this.lock;
    this.lock = null;
    await l?.release().catch(() => undefined);
  }
}
