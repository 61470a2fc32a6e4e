/**
 * The selected mailbox of one IMAP session (RFC 3501 §5.2, §7.3, §7.4): the
 * message sequence numbers this client knows, its \Recent set, and the
 * untagged updates (EXISTS, RECENT, FETCH FLAGS, EXPUNGE) that bring the
 * client up to date after changes by other sessions, LMTP, other processes
 * or Dovecot. EXPUNGE is only announced when the caller says it may be
 * (never during FETCH/STORE/SEARCH), so sequence numbers stay valid.
 */
import type { MailFolder, MailMessage } from '../mailstore/api/mailbox.js';
import { SYSTEM_FLAGS } from '../mailstore/api/flags.js';
import { normalizeSequenceSet, type SequenceSet } from './wire/sequence.js';
import { SearchUpdates } from './search-updates.js';


export type Update = { kind: 'expunge'; seq: number } | { kind: 'vanished'; uids: number[] } | { kind: 'exists'; count: number } | { kind: 'recent'; count: number }
  | { kind: 'flags'; seq: number; uid: number; flags: string[]; modseq: number };

export class Selected {
  /** UIDs in sequence order, as this client knows them. */
  uids: number[] = [];
  /** The shared folder's change serial this client is up to date with. */
  private seenSerial = 0;
  /** Flag changes this client made itself and was already told about (uid → serial and MODSEQ then). */
  private ownChanges = new Map<number, { changed: number; modseq: number }>();
  /**
   * The highest MODSEQ among the messages as this client last heard of them:
   * a message whose MODSEQ is above it changed since, even when its flags
   * look the same (another process set a flag and cleared it again, RFC 7162
   * §3.1.4.1; Dovecot reports such a message too, from its log's flag
   * updates). Taken from the messages, not the folder's HIGHESTMODSEQ: that
   * may move before a message shows its new MODSEQ (another process's frame
   * read before our rescan saw its rename).
   */
  private seenModseq = 0;
  /** The folder's HIGHESTMODSEQ and generation at the last look (nothing to compare while both stay). */
  private lookedAt = { highest: 0, generation: -1 };
  readonly recent = new Set<number>();
  /** RFC 5182 SEARCHRES: the UIDs of the last SEARCH RETURN (SAVE), `$` in later commands (empty before any). */
  saved: number[] = [];
  /** RFC 5267 CONTEXT=SEARCH: the SEARCH/SORT RETURN (UPDATE) contexts, which end with this selection. */
  readonly searchUpdates = new SearchUpdates();
  /**
   * What the last sync() found, for the search contexts (kept only while
   * there are any): UIDs announced expunged with their sequence numbers
   * before it, UIDs whose flags or MODSEQ changed (this session's own
   * changes too), UIDs new to the client.
   */
  lastSync: { gone: { uid: number; seq: number }[]; changed: number[]; added: number[] } = { gone: [], changed: [], added: [] };
  /** The RECENT count the client was last told. */
  private reportedRecent = 0;

  /** Keywords the client was told in FLAGS (grows only, as Dovecot's list does; keyword-flags.ts). */
  keywordsAnnounced: string[] = [];
  private announcedSet: { n: number; set: Set<string> } | null = null;

  /** Some of these keywords were not in a FLAGS list this client was sent. */
  unannounced(keywords: string[]): boolean {
    if (!keywords.length) return false;
    if (this.announcedSet?.n !== this.keywordsAnnounced.length) this.announcedSet = { n: this.keywordsAnnounced.length, set: new Set(this.keywordsAnnounced.map((k) => k.toLowerCase())) };
    const set = this.announcedSet.set;
    return keywords.some((k) => !set.has(k.toLowerCase()));
  }

  /** IMAP4rev2 enabled (RFC 9051 has no \Recent flag). */
  rev2 = false;

  /** `release` gives the shared folder handle back (UNSELECT, CLOSE, LOGOUT). */
  constructor(readonly name: string, readonly folder: MailFolder, readonly readOnly: boolean, readonly release: () => void = () => undefined) {}

  /** Flags as the client sees them: system flags in Dovecot's order, \Recent, keywords. */
  flagsOf(m: MailMessage): string[] {
    return [...SYSTEM_FLAGS.filter((f) => m.flags.has(f)), ...(!this.rev2 && this.recent.has(m.uid) ? ['\\Recent'] : []), ...m.keywords];
  }

  message(uid: number): MailMessage | undefined { return this.known(uid); }

  /** The first sync at SELECT: the read-write open takes the \Recent messages. */
  async open(): Promise<void> {
    await this.folder.sync({ moveNew: !this.readOnly });
    this.uids = this.folder.uidList();
    this.seenSerial = this.folder.serial;
    this.seenModseq = this.folder.maxMessageModseq();
    this.lookedAt = { highest: this.folder.highestModseq, generation: this.folder.generation };
    this.seenGeneration = this.folder.generation;
    for (const u of await this.takeRecent(this.uids, (u) => this.folder.isRecentCandidate(u))) this.recent.add(u);
    this.reportedRecent = this.recent.size;
  }

  /** UID ranges whose \Recent this session took when it saved them (APPEND/COPY into its own mailbox). */
  private ownRecent: [number, number][] = [];

  tookRecent(from: number, to: number): void { this.ownRecent.push([from, to]); }

  /**
   * \Recent among messages new to this client: a read-write session takes them
   * (up to the highest UID it knows, so one it hasn't seen stays for others);
   * a read-only one (EXAMINE) shows them without taking them (Dovecot).
   */
  private async takeRecent(uids: number[], untracked: (uid: number) => boolean): Promise<Set<number>> {
    if (this.readOnly) return this.folder.recentAmong(uids, untracked);
    const own = this.ownRecent;
    this.ownRecent = [];
    const mine = (u: number) => own.some(([from, to]) => u >= from && u <= to);
    const rest = own.length ? uids.filter((u) => !mine(u)) : uids;
    const out = new Set(own.length ? uids.filter(mine) : []);
    const upTo = this.uids.length ? this.uids[this.uids.length - 1] + 1 : 1;
    for (const u of await this.folder.takeRecent(rest, upTo, untracked)) out.add(u);
    return out;
  }

  /**
   * Re-read the folder and return the untagged updates in Dovecot's order:
   * flag changes, expunges (highest sequence first keeps numbers valid as
   * they go), then EXISTS/RECENT for new messages.
   */
  async sync(allowExpunge: boolean, quietUids: Set<number> = new Set(), qresync = false): Promise<Update[]> {
    await this.folder.sync({ moveNew: !this.readOnly });
    const out: Update[] = [];
    const track = this.searchUpdates.size > 0;
    this.lastSync = { gone: [], changed: [], added: [] };
    if (this.folder.generation === this.seenGeneration && !this.delayedExpunges) {
      // the message list is as this client knows it (the common case, cheap on 100k messages): flags only
      out.push(...this.flagUpdates(quietUids));
      this.ownChanges.clear();
      return out;
    }
    const generation = this.folder.generation;
    const live = new Set(this.folder.uidList());
    this.delayedExpunges = !allowExpunge && this.uids.some((u) => !live.has(u));
    // Dovecot's order: flag changes first (sequence numbers as the client knows them), then the
    // expunges (with QRESYNC one VANISHED, RFC 7162 §3.2.10), then new messages
    out.push(...this.flagUpdates(quietUids));
    if (allowExpunge && qresync) {
      const gone = this.uids.filter((u) => !live.has(u));
      if (track) this.uids.forEach((u, i) => { if (!live.has(u)) this.lastSync.gone.push({ uid: u, seq: i + 1 }); });
      if (gone.length) {
        out.push({ kind: 'vanished', uids: gone });
        for (const u of gone) this.recent.delete(u);
        this.uids = this.uids.filter((u) => live.has(u));
      }
    } else if (allowExpunge) {
      for (let i = this.uids.length - 1; i >= 0; i--) {
        if (!live.has(this.uids[i])) {
          out.push({ kind: 'expunge', seq: i + 1 });
          if (track) this.lastSync.gone.push({ uid: this.uids[i], seq: i + 1 });
          this.recent.delete(this.uids[i]);
          this.uids.splice(i, 1);
        }
      }
    }
    const known = new Set(this.uids);
    const added = [...live].filter((u) => !known.has(u));
    if (track) this.lastSync.added = added;
    if (added.length) {
      // new to this client: their MODSEQs are not changes to report later
      for (const u of added) {
        this.uids.push(u);
        const ms = this.folder.message(u)?.modseq ?? 0;
        if (ms > this.seenModseq) this.seenModseq = ms;
      }
      // before any session took one, a read-write session takes every new message, a read-only one those in new/
      for (const u of await this.takeRecent(added, (u) => !this.readOnly || this.folder.isRecentCandidate(u))) this.recent.add(u);
      out.push({ kind: 'exists', count: this.uids.length });
    }
    if (this.recent.size !== this.reportedRecent) {
      // Dovecot reports a changed RECENT count after expunges too
      out.push({ kind: 'recent', count: this.recent.size });
      this.reportedRecent = this.recent.size;
    }
    this.seenGeneration = generation;
    this.ownChanges.clear();
    return out;
  }

  /** The folder's message-list generation this client's `uids` were last compared with. */
  private seenGeneration = -1;

  /** Expunges a sync found but could not announce (FETCH/STORE/SEARCH): Dovecot's sync_delayed_expunges. */
  delayedExpunges = false;

  /** FETCH FLAGS updates for messages changed since the client last heard (not its own changes, not new ones). */
  private flagUpdates(quietUids: Set<number>): Update[] {
    const out: Update[] = [];
    const f = this.folder;
    if (f.serial === this.seenSerial && f.highestModseq === this.lookedAt.highest && f.generation === this.lookedAt.generation) return out;
    const since = this.seenSerial;
    const sinceModseq = this.seenModseq;
    let top = sinceModseq;
    const changed = this.searchUpdates.size ? this.lastSync.changed : null;
    this.uids.forEach((uid, i) => {
      const m = this.folder.message(uid);
      if (m && m.modseq > top) top = m.modseq;
      // (an expunged message is not in the folder any more: its expunge is what the client hears)
      if (!m || (m.changed <= since && (!sinceModseq || m.modseq <= sinceModseq))) return;
      // search contexts test every changed message again, whoever changed it (Dovecot's hidden updates too)
      changed?.push(uid);
      if (quietUids.has(uid)) return;
      const own = this.ownChanges.get(uid);
      if (own && own.changed === m.changed && own.modseq === m.modseq) return;
      out.push({ kind: 'flags', seq: i + 1, uid, flags: this.flagsOf(m), modseq: m.modseq });
    });
    this.seenSerial = f.serial;
    this.seenModseq = top;
    this.lookedAt = { highest: f.highestModseq, generation: f.generation };
    return out;
  }

  /**
   * Bring the shared folder up to date before a command reads it (Dovecot's FETCH/STORE/SEARCH
   * see changes made by other processes); the client hears of them at the command's end.
   */
  async refresh(): Promise<void> { await this.folder.sync({ moveNew: !this.readOnly }); }

  /** Another session changed the message since this client last heard (what the next sync would report). */
  hasUpdate(m: MailMessage): boolean {
    if (m.changed <= this.seenSerial && (!this.seenModseq || m.modseq <= this.seenModseq)) return false;
    const own = this.ownChanges.get(m.uid);
    return !own || own.changed !== m.changed || own.modseq !== m.modseq;
  }

  /** Record flags the client was just told about (a STORE reply) so sync() doesn't repeat them. */
  noteFlags(m: MailMessage): void { this.ownChanges.set(m.uid, { changed: m.changed, modseq: m.modseq }); }

  /** A message this client knows: still in the folder, or expunged and not yet announced to it. */
  private known(uid: number): MailMessage | undefined { return this.folder.message(uid) ?? this.folder.removedMessage(uid); }

  seqOf(uid: number): number { return this.uids.indexOf(uid) + 1; }

  /** Messages a sequence set names, in sequence order (`*` = the last; UIDs outside are skipped, as RFC 3501 says). */
  resolve(set: SequenceSet, uid: boolean, saved: number[] = this.saved): { seq: number; m: MailMessage }[] {
    const out: { seq: number; m: MailMessage }[] = [];
    if (set.type === 'saved') {
      // expunged UIDs simply drop out of the saved result (RFC 5182 §2.1)
      const want = new Set(saved);
      this.uids.forEach((u, i) => { if (want.has(u)) { const m = this.known(u); if (m) out.push({ seq: i + 1, m }); } });
      return out;
    }
    if (uid) {
      const max = this.uids.length ? this.uids[this.uids.length - 1] : 0;
      const ranges = normalizeSequenceSet(set.ranges, max);
      this.uids.forEach((u, i) => {
        if (ranges.some((r) => u >= r.from && u <= r.to)) { const m = this.known(u); if (m) out.push({ seq: i + 1, m }); }
      });
      return out;
    }
    for (const r of normalizeSequenceSet(set.ranges, this.uids.length)) {
      if (r.to > this.uids.length) throw new RangeError('Invalid messageset');
      for (let s = r.from; s <= r.to; s++) { const m = this.known(this.uids[s - 1]); if (m) out.push({ seq: s, m }); }
    }
    return out;
  }
}
