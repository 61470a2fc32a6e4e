/**
 * The selected mailbox of one IMAP session (RFC 3501 §5.2, §7.3, §7.4): the
 * message sequence numbers this client knows, its \Recent set, and the
 * untagged updates (EXISTS, RECENT, FETCH FLAGS, EXPUNGE) that bring the
 * client up to date after changes by other sessions, LMTP, other processes
 * or Dovecot. EXPUNGE is only announced when the caller says it may be
 * (never during FETCH/STORE/SEARCH), so sequence numbers stay valid.
 */
import type { MaildirFolder, MaildirMessage } from '../mailstore/maildir/folder.js';
import type { SystemFlag } from '../mailstore/maildir/filename.js';
import { normalizeSequenceSet, type SequenceSet } from './wire/sequence.js';

export const SYSTEM_FLAGS: SystemFlag[] = ['\\Answered', '\\Flagged', '\\Deleted', '\\Seen', '\\Draft'];

export type Update = { kind: 'expunge'; seq: number } | { kind: 'exists'; count: number } | { kind: 'recent'; count: number } | { kind: 'flags'; seq: number; uid: number; flags: string[] };

export class Selected {
  /** UIDs in sequence order, as this client knows them. */
  uids: number[] = [];
  /** The shared folder's change serial this client is up to date with. */
  private seenSerial = 0;
  /** Flag changes this client made itself and was already told about (uid → serial). */
  private ownChanges = new Map<number, number>();
  readonly recent = new Set<number>();
  /** The RECENT count the client was last told. */
  private reportedRecent = 0;

  /** `release` gives the shared folder handle back (UNSELECT, CLOSE, LOGOUT). */
  constructor(readonly name: string, readonly folder: MaildirFolder, readonly readOnly: boolean, readonly release: () => void = () => undefined) {}

  /** Flags as the client sees them: system flags in Dovecot's order, \Recent, keywords. */
  flagsOf(m: MaildirMessage): string[] {
    return [...SYSTEM_FLAGS.filter((f) => m.flags.has(f)), ...(this.recent.has(m.uid) ? ['\\Recent'] : []), ...m.keywords];
  }

  message(uid: number): MaildirMessage | undefined { return this.folder.message(uid); }

  /** The first sync at SELECT: the read-write open takes the \Recent messages. */
  async open(): Promise<void> {
    const first = await this.folder.firstRecentUid();
    await this.folder.sync({ moveNew: !this.readOnly });
    for (const m of this.folder.messages) {
      if (first === null ? m.recent : m.uid >= first) this.recent.add(m.uid);
    }
    this.uids = this.folder.messages.map((m) => m.uid);
    this.seenSerial = this.folder.serial;
    this.reportedRecent = this.recent.size;
    if (!this.readOnly) await this.folder.setFirstRecentUid(this.folder.uidNext);
  }

  /**
   * Re-read the folder and return the untagged updates, in a legal order:
   * expunges first (highest sequence first keeps numbers valid as they go),
   * then EXISTS/RECENT for new messages, then flag changes.
   */
  async sync(allowExpunge: boolean, quietUids: Set<number> = new Set()): Promise<Update[]> {
    await this.folder.sync({ moveNew: !this.readOnly });
    const out: Update[] = [];
    const live = new Set(this.folder.messages.map((m) => m.uid));
    if (allowExpunge) {
      for (let i = this.uids.length - 1; i >= 0; i--) {
        if (!live.has(this.uids[i])) {
          out.push({ kind: 'expunge', seq: i + 1 });
          this.recent.delete(this.uids[i]);
          this.uids.splice(i, 1);
        }
      }
    }
    const known = new Set(this.uids);
    const added = this.folder.messages.filter((m) => !known.has(m.uid));
    if (added.length) {
      const first = this.readOnly ? null : await this.folder.firstRecentUid();
      for (const m of added) {
        if (!this.readOnly && (first === null || m.uid >= first)) this.recent.add(m.uid);
        this.uids.push(m.uid);
      }
      if (!this.readOnly) await this.folder.setFirstRecentUid(this.folder.uidNext);
      out.push({ kind: 'exists', count: this.uids.length });
      out.push({ kind: 'recent', count: this.recent.size });
      this.reportedRecent = this.recent.size;
    } else if (this.recent.size !== this.reportedRecent) {
      // Dovecot reports a changed RECENT count after expunges too
      out.push({ kind: 'recent', count: this.recent.size });
      this.reportedRecent = this.recent.size;
    }
    if (this.folder.serial !== this.seenSerial) {
      const since = this.seenSerial;
      const known = new Set(added.map((m) => m.uid));
      this.uids.forEach((uid, i) => {
        const m = this.folder.message(uid);
        if (!m || m.changed <= since || known.has(uid) || quietUids.has(uid)) return;
        if (this.ownChanges.get(uid) === m.changed) return;
        out.push({ kind: 'flags', seq: i + 1, uid, flags: this.flagsOf(m) });
      });
      this.seenSerial = this.folder.serial;
    }
    this.ownChanges.clear();
    return out;
  }

  /** Record flags the client was just told about (a STORE reply) so sync() doesn't repeat them. */
  noteFlags(m: MaildirMessage): void { this.ownChanges.set(m.uid, m.changed); }

  seqOf(uid: number): number { return this.uids.indexOf(uid) + 1; }

  /** Messages a sequence set names, in sequence order (`*` = the last; UIDs outside are skipped, as RFC 3501 says). */
  resolve(set: SequenceSet, uid: boolean, saved: number[] = []): { seq: number; m: MaildirMessage }[] {
    const out: { seq: number; m: MaildirMessage }[] = [];
    if (set.type === 'saved') {
      for (const u of saved) { const s = this.seqOf(u); const m = this.folder.message(u); if (s && m) out.push({ seq: s, m }); }
      return out;
    }
    if (uid) {
      const max = this.uids.length ? this.uids[this.uids.length - 1] : 0;
      const ranges = normalizeSequenceSet(set.ranges, max);
      this.uids.forEach((u, i) => {
        if (ranges.some((r) => u >= r.from && u <= r.to)) { const m = this.folder.message(u); if (m) out.push({ seq: i + 1, m }); }
      });
      return out;
    }
    for (const r of normalizeSequenceSet(set.ranges, this.uids.length)) {
      if (r.to > this.uids.length) throw new RangeError('Invalid messageset');
      for (let s = r.from; s <= r.to; s++) { const m = this.folder.message(this.uids[s - 1]); if (m) out.push({ seq: s, m }); }
    }
    return out;
  }
}
