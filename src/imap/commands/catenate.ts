/**
 * CATENATE (RFC 4469) parts as Dovecot 2.3's cmd-append.c and
 * imap-msgpart-url.c build them: `TEXT` literals and `URL` parts (relative
 * IMAP URLs, imap-url.ts, with RFC 5550 `;PARTIAL=`) of the user's own
 * messages, read decrypted through the storage interface and cut with the
 * FETCH section code (fetch-render.ts sectionBytes) over the CRLF form, as
 * Dovecot's imap_msgpart_open does. A composed message is held whole while
 * it is built (all of one command's together bounded by APPENDLIMIT) and then saved through the normal
 * save path, so a mail-crypt user's message is encrypted like any APPEND.
 *
 * Failures are recorded in part order, like Dovecot's ctx->failed: the first
 * one answers the command and the parts after it are not resolved. Replies:
 * `NO [BADURL url] <text>.` for URLs that do not parse or resolve; a URL that
 * parses but names no message part, or a section imap_msgpart_parse refuses,
 * gets the storage's last error instead (client_send_box_error), which this
 * session tracks for the errors CATENATE itself causes.
 */
import type { ImapArg } from '../wire/parser.js';
import type { ResponseCode } from '../wire/encoder.js';
import type { Session } from '../session.js';
import type { MailFolder, MailMessage } from '../../mailstore/api/mailbox.js';
import { ArgTokenizer, WireSyntaxError } from '../wire/lexer.js';
import { MailStoreError } from '../../mailstore/errors.js';
import { parseMime, toCrlf } from '../../mailstore/mime/parts.js';
import { encodeBinaryParts } from '../../mailstore/mime/binary.js';
import { sectionBytes } from '../fetch-render.js';
import { parseRelativeImapUrl } from '../imap-url.js';
import { utf8ToMutf7 } from '../../mailstore/api/mailbox-utf7.js';
import { astring, inboxCased } from './args.js';
import { displayName } from './errors.js';

/** A reply that ends an APPEND: the first one in part order is sent. */
export class AppendRefusal extends Error {
  constructor(readonly status: 'NO' | 'BAD', readonly text: string, readonly code?: ResponseCode) { super(text); }
}

/** A message not saved because an earlier one of the command failed (Dovecot rolls the transaction back). */
export class AppendSkipped extends Error {}

export const unknownCte = () => new AppendRefusal('NO', 'Binary input allowed only when the first part is binary.', { name: 'UNKNOWN-CTE' });
export const invalidArguments = () => new AppendRefusal('BAD', 'Error in IMAP command APPEND: Invalid arguments.');

/** The storage error Dovecot's client_send_box_error would repeat (per session; Dovecot keeps it per storage). */
interface StorageError { text: string; code?: ResponseCode }
const lastStorageError = new WeakMap<Session, StorageError>();
const noStorageError: StorageError = { text: 'BUG: Unknown internal error', code: { name: 'SERVERBUG' } };

/** An APPEND that found its mailbox missing leaves that error behind, as in Dovecot's storage. */
export function noteMailboxMissing(s: Session, name: string): void {
  lastStorageError.set(s, { text: `Mailbox doesn't exist: ${displayName(name)}` });
}

function boxError(s: Session): AppendRefusal {
  const e = lastStorageError.get(s) ?? noStorageError;
  return new AppendRefusal('NO', e.text, e.code);
}

/**
 * imap_msgpart_parse's rules: an optional part number (digits and single
 * dots, no trailing dot unless a name follows), then nothing, MIME (part
 * only), TEXT, HEADER, or HEADER.FIELDS[.NOT] with a non-empty list of
 * astrings and nothing after it.
 */
export function validSection(section: string): boolean {
  let i = 0;
  let nextDigit = true;
  for (; i < section.length; i++) {
    const c = section.charCodeAt(i);
    if (c >= 0x30 && c <= 0x39) nextDigit = false;
    else if (!nextDigit && c === 0x2e) nextDigit = true;
    else break;
  }
  let rest = section;
  let numbered = false;
  if (i > 0) {
    if (i === section.length) return section[i - 1] !== '.';
    if (section[i - 1] !== '.') return false;
    numbered = true;
    rest = section.slice(i);
  }
  if (rest === '') return true;
  const up = rest.toUpperCase();
  if (up === 'MIME') return numbered;
  if (up === 'TEXT' || up === 'HEADER') return true;
  const fields = up.startsWith('HEADER.FIELDS.NOT') ? rest.slice(17) : up.startsWith('HEADER.FIELDS') ? rest.slice(13) : null;
  if (fields === null) return false;
  return headerList(fields.startsWith(' ') ? fields.slice(1) : fields);
}

/** One IMAP list of at least one astring, and nothing else (the command lexer reads it). */
function headerList(text: string): boolean {
  const buf = Buffer.from(text, 'latin1');
  const tok = new ArgTokenizer(1);
  try {
    if (tok.feed(buf, 0, buf.length, 0) !== null) return false;
  } catch (e) {
    if (e instanceof WireSyntaxError) return false;
    throw e;
  }
  const [list, ...more] = tok.top;
  return !more.length && list?.type === 'list' && list.items.length > 0 && list.items.every((a) => astring(a) !== null);
}

/** A URL's mailbox (UTF-8 bytes as latin1 characters) as the store names it (mUTF-7). */
function mailboxName(bytes: string): string {
  const utf8 = Buffer.from(bytes, 'latin1').toString('utf8');
  try { return utf8ToMutf7(utf8); } catch { return utf8; }
}

/** The bytes a CATENATE URL names, or the refusal Dovecot answers. */
export async function readUrlPart(s: Session, urlText: string): Promise<Buffer> {
  const sel = s.selected;
  const badUrl = (text: string) => new AppendRefusal('NO', text, { name: 'BADURL', args: urlText });
  // URLs name mailboxes in %-encoded UTF-8 (Dovecot's vnames); the parser works on bytes as latin1 characters
  const base = sel ? Buffer.from(displayName(sel.name), 'utf8').toString('latin1') : null;
  const parsed = parseRelativeImapUrl(Buffer.from(urlText, 'utf8').toString('latin1'), { mailbox: base, uidValidity: sel ? sel.folder.uidValidity : 0 });
  if (!parsed.ok) throw badUrl(`Invalid IMAP URL: ${parsed.error}`);
  const url = parsed.url;
  if (url.mailbox === null) throw badUrl('Mailbox-relative IMAP URL, but no mailbox selected');
  if (url.uid === 0 || url.searchProgram !== null || !validSection(url.section ?? '')) throw boxError(s);
  const name = inboxCased(mailboxName(url.mailbox));
  let folder: MailFolder;
  let message: MailMessage | undefined;
  const selectedHere = sel && inboxCased(sel.name) === name;
  if (sel && selectedHere) {
    folder = sel.folder;
  } else {
    try {
      folder = await s.store!.open(name);
      await folder.sync();
    } catch (e) {
      if (e instanceof MailStoreError && (e.code === 'NONEXISTENT' || e.code === 'INVALIDNAME' || e.code === 'BADENCODING')) {
        noteMailboxMissing(s, name);
        throw badUrl(`Mailbox doesn't exist: ${displayName(name)}`);
      }
      throw e;
    }
  }
  if (url.uidValidity > 0 && folder.uidValidity !== url.uidValidity) throw badUrl('Invalid UIDVALIDITY');
  message = sel && selectedHere ? sel.message(url.uid) : folder.message(url.uid);
  if (!message) {
    lastStorageError.set(s, { text: 'Message was expunged', code: { name: 'EXPUNGEISSUED' } });
    throw badUrl('Message not found');
  }
  const whole = toCrlf(await folder.readAll(message));
  const data = url.section === null ? whole : sectionBytes(whole, parseMime(whole), url.section) ?? Buffer.alloc(0);
  if (!url.havePartial) return data;
  const from = Math.min(url.partialOffset, data.length);
  return data.subarray(from, url.partialSize ? Math.min(data.length, from + url.partialSize) : data.length);
}

/** One TEXT literal as it streams in. */
class TextPart {
  readonly chunks: Buffer[] = [];
  private settle!: (ok: boolean) => void;
  readonly done = new Promise<boolean>((r) => { this.settle = r; });
  push(b: Buffer): void { this.chunks.push(b); }
  end(): void { this.settle(true); }
  abort(): void { this.settle(false); }
}

/** What swallows a literal whose message already failed. */
export const discardSink = { push: (): void => undefined, end: (): void => undefined, abort: (): void => undefined };

/**
 * One `CATENATE (...)` message being built. `list` is the wire list (its
 * items grow while the command is read); `next` the first item not yet taken.
 */
export class CatenateMessage {
  next = 0;
  private readonly parts: (Buffer | TextPart)[] = [];
  /** Resolves true while every part so far is good; parts are taken in order. */
  chain: Promise<boolean> = Promise.resolve(true);
  failure: AppendRefusal | null = null;
  private closeList!: () => void;
  private readonly closed = new Promise<void>((r) => { this.closeList = r; });

  /**
   * `budget`: the bytes the command's CATENATE messages may still hold
   * (APPENDLIMIT for all of them together: they wait in memory until the
   * command ends).
   */
  constructor(private readonly s: Session, readonly list: ImapArg[], readonly binary: boolean, private readonly budget: { left: number }) {}

  /** A failure at this point of the part order. */
  fail(e: AppendRefusal): void {
    this.chain = this.chain.then((ok) => { if (ok) this.failure = e; return false; });
  }

  /** A condition checked at this point of the part order (it throws the refusal). */
  check(test: () => Promise<void>): void {
    this.chain = this.chain.then(async (ok) => {
      if (!ok) return false;
      try { await test(); return true; } catch (e) {
        this.failure = e instanceof AppendRefusal ? e : serverBug(this.s, e);
        return false;
      }
    });
  }

  addUrl(url: string): void {
    const slot = this.parts.length;
    this.parts.push(Buffer.alloc(0));
    this.chain = this.chain.then(async (ok) => {
      if (!ok) return false;
      try {
        const b = await readUrlPart(this.s, url);
        if (b.length > this.budget.left) throw tooBig();
        this.budget.left -= b.length;
        this.parts[slot] = b;
        return true;
      } catch (e) {
        this.failure = e instanceof AppendRefusal ? e : serverBug(this.s, e);
        return false;
      }
    });
  }

  /** A TEXT literal starts: where its data goes. */
  addText(size: number, literal8: boolean): { push(b: Buffer): void; end(): void; abort(): void } {
    // Dovecot converts binary input only when the first part is a literal8
    if (literal8 && !this.binary) return discardSink; // failed by the caller (unknownCte), before it asks for a refusal
    if (size > this.budget.left) { this.fail(tooBig()); return discardSink; }
    this.budget.left -= size;
    const part = new TextPart();
    this.parts.push(part);
    this.chain = this.chain.then(async (ok) => ok && part.done);
    return part;
  }

  /** The list is complete: no more parts. */
  close(): void { this.closeList(); }

  /** The composed message, or the first failure. */
  async composed(): Promise<Buffer> {
    await this.closed;
    if (!(await this.chain)) throw this.failure ?? new AppendRefusal('NO', 'Append aborted.');
    const msg = Buffer.concat(this.parts.map((p) => (p instanceof TextPart ? Buffer.concat(p.chunks) : p)));
    // RFC 3516 via CATENATE: binary parts stored base64-encoded, as for a literal8 APPEND
    return this.binary ? encodeBinaryParts(msg, parseMime(msg)) ?? msg : msg;
  }
}

function tooBig(): AppendRefusal {
  return new AppendRefusal('NO', 'Mail size is larger than the maximum size allowed by server configuration', { name: 'TOOBIG' });
}

function serverBug(s: Session, e: unknown): AppendRefusal {
  s.log.error(`CATENATE URL failed: ${(e as Error).message}`);
  return new AppendRefusal('NO', 'Internal error occurred. Refer to server log for more information.', { name: 'SERVERBUG' });
}
