/**
 * What the protocol layers (src/imap, src/lmtp, src/cli, src/sieve) may see
 * of a mailbox and its messages: the storage interface between them and a
 * mail_location driver. The Maildir driver (src/mailstore/maildir) implements
 * it with MaildirFolder/MaildirMessage, whose file names, new/cur placement
 * and keyword letters stay behind it; a second driver or an in-memory test
 * backend implements the same interfaces. Names are IMAP's (mUTF-7 on the
 * wire and in storage, see mailbox-utf7.ts), flags are SystemFlag.
 */
import type { FieldCache } from '../field-cache.js';
import type { SystemFlag } from './flags.js';

/** One message as a mailbox view lists it. */
export interface MailMessage {
  uid: number;
  /** The message's identity in its mailbox (Dovecot's GUID for Maildir: the file's base name). */
  readonly base: string;
  flags: Set<SystemFlag>;
  /** Keyword names, in the mailbox's keyword order. */
  keywords: string[];
  /** Physical and virtual (CRLF) size when known without reading the message. */
  size?: number;
  vsize?: number;
  /** First seen by this handle as new (a \Recent candidate). */
  recent: boolean;
  /** The mailbox's change serial when this message's flags/keywords last changed. */
  changed: number;
  /** RFC 7162 MODSEQ (0 while unknown). */
  modseq: number;
}

export interface MailSaveOptions {
  flags?: Iterable<SystemFlag>;
  keywords?: Iterable<string>;
  internalDate?: Date;
  /** The saving session has this mailbox selected read-write: told the UIDs it took \Recent of, `from`..`to`. */
  tookRecent?: (from: number, to: number) => void;
}

/** One opened mailbox: a view of its messages, refreshed by sync(). */
export interface MailFolder {
  /** Where the mailbox lives: its identity (two handles of one mailbox have the same) and what IDLE watches. */
  readonly dir: string;
  readonly controlDir: string;
  /** The messages as of the last sync, in UID order. */
  messages: MailMessage[];
  /** Raised by every flag/keyword change this handle sees (MailMessage.changed holds its value then). */
  readonly serial: number;
  /** Raised whenever messages were added or removed. */
  readonly generation: number;
  readonly uidValidity: number;
  readonly uidNext: number;
  readonly guid: string;
  readonly highestModseq: number;
  readonly modseqTracked: boolean;
  readonly keywordOrder: string[];
  readonly fieldCache: FieldCache | null;
  sync(opts?: { moveNew?: boolean; assignUids?: boolean }): Promise<void>;
  message(uid: number): MailMessage | undefined;
  /** The highest MODSEQ any current message has (0 without modseqs): a session's point of comparison. */
  maxMessageModseq(): number;
  /** The UIDs of `messages`, in order (without a view object per message). */
  uidList(): number[];
  /** Position in `messages` of the first message without `flag` (SELECT's [UNSEEN]), -1 if none. */
  firstWithout(flag: SystemFlag): number;
  /** A message expunged by the last sync (for the session's EXPUNGE/VANISHED replies). */
  removedMessage(uid: number): MailMessage | undefined;
  /** \Recent: which candidates (UIDs) are recent to nobody else yet, and taking them (RFC 3501 §2.3.2: one session has each). */
  recentAmong(candidates: number[], untracked: (uid: number) => boolean): Promise<Set<number>>;
  takeRecent(candidates: number[], upTo: number, untracked: (uid: number) => boolean): Promise<Set<number>>;
  /** MailMessage.recent by UID, without a message object. */
  isRecentCandidate(uid: number): boolean;
  /** CONDSTORE/QRESYNC (RFC 7162): start tracking MODSEQs, write pending ones, UIDs expunged since a MODSEQ (null: unknown). */
  trackModseqs(): Promise<void>;
  commitModseqs(): Promise<void>;
  vanishedSince(modseq: number): number[] | null;
  /** The POP3 UIDL the storage keeps for a message (Dovecot's dovecot-uidlist `P` field), when it has one. */
  pop3Uidl(m: MailMessage): string | undefined;
  read(m: MailMessage): AsyncIterable<Buffer>;
  readAll(m: MailMessage): Promise<Buffer>;
  readHead(m: MailMessage, max?: number): Promise<{ head: Buffer; mtime: Date }>;
  /** The header through its empty line, plaintext; null when longer than `max`. */
  readHeader(m: MailMessage, max?: number): Promise<Buffer | null>;
  prefetch(ms: MailMessage[]): void;
  stat(m: MailMessage): Promise<{ mtime: Date; ctime: Date; size: number }>;
  /**
   * INTERNALDATE. For a message another process removed that this view still
   * shows, the date last seen (as Dovecot answers from its index cache);
   * EXPUNGED when it was never seen.
   */
  receivedDate(m: MailMessage): Promise<Date>;
  saveDate(m: MailMessage): Promise<Date>;
  virtualSize(m: MailMessage): Promise<number>;
  isEncryptedFile(m: MailMessage): Promise<boolean>;
  append(data: Buffer | AsyncIterable<Buffer>, opts?: MailSaveOptions): Promise<number>;
  deliver(data: Buffer | AsyncIterable<Buffer>, opts?: MailSaveOptions): Promise<void>;
  /** COPY: the message of another mailbox saved here; returns its new UID. */
  copyFrom(src: MailFolder, m: MailMessage, opts?: MailSaveOptions): Promise<number>;
  /** Quota changes of a batch of saves counted (after COPY of several messages). */
  endQuotaBatch(): Promise<void>;
  setFlags(m: MailMessage, flags: Iterable<SystemFlag>, keywords: Iterable<string>, opts?: { deferModseq?: boolean }): Promise<void>;
  expunge(ms: MailMessage[]): Promise<number[]>;
}
