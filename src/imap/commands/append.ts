/**
 * APPEND (RFC 3501 §6.3.11, RFC 3502 MULTIAPPEND, RFC 4315 APPENDUID, RFC
 * 7888 LITERAL+): the message literal is streamed straight into the store's
 * save path (tmp/ → fsync → rename) as it arrives, never held whole; a
 * client that disconnects mid-literal leaves nothing behind (the tmp file
 * is removed). Flags and INTERNALDATE come from the arguments before the
 * literal. Quota is tested with the literal's size before saving (Dovecot's
 * quota_save_begin): NO [OVERQUOTA] with quota_exceeded_message. With
 * IMAPSieve the saved messages go to the mailbox rules (cause APPEND) before
 * the tagged reply, as Pigeonhole runs them at the save's commit.
 * CATENATE (RFC 4469, catenate.ts) messages are read from the same argument
 * stream: the arguments are taken in order as each literal starts and at the
 * end of the command, so MULTIAPPEND may mix both kinds.
 */
import { MailStoreError } from '../../mailstore/errors.js';
import { QuotaExceeded } from '../../quota/quota.js';
import { SYSTEM_FLAGS, type SystemFlag } from '../../mailstore/api/flags.js';
import type { ImapArg, LiteralInfo } from '../wire/parser.js';
import { uidSetText, type Session } from '../session.js';
import { AUTHED, type Command } from './types.js';
import { astring, inboxCased } from './args.js';
import { displayName, replyError } from './errors.js';
import { parseMime } from '../../mailstore/mime/parts.js';
import { encodeBinaryParts } from '../../mailstore/mime/binary.js';
import { AppendRefusal, AppendSkipped, CatenateMessage, discardSink, invalidArguments, noteMailboxMissing, unknownCte } from './catenate.js';

/** A push-fed async iterable of Buffers (the literal as it arrives). */
class ChunkQueue implements AsyncIterable<Buffer> {
  private chunks: Buffer[] = [];
  private done = false;
  private failed: Error | null = null;
  private wake: (() => void) | null = null;
  push(b: Buffer): void { this.chunks.push(b); this.wake?.(); }
  end(): void { this.done = true; this.wake?.(); }
  abort(): void { this.failed = new Error('client disconnected in the middle of APPEND'); this.wake?.(); }
  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    for (;;) {
      if (this.failed) throw this.failed;
      const c = this.chunks.shift();
      if (c) { yield c; continue; }
      if (this.done) return;
      await new Promise<void>((r) => { this.wake = r; });
      this.wake = null;
    }
  }
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

function parseDate(s: string): Date | undefined {
  const m = /^\s?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$/.exec(s);
  if (!m || !MONTHS.includes(m[2].toLowerCase())) return undefined;
  const off = (m[7] === '-' ? -1 : 1) * (Number(m[8]) * 60 + Number(m[9]));
  return new Date(Date.UTC(Number(m[3]), MONTHS.indexOf(m[2].toLowerCase()), Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6])) - off * 60_000);
}

class EmptyMessage extends Error {}
/** APPEND's UTF8 data item (RFC 6855) without ENABLE UTF8=ACCEPT. */
class Utf8NotEnabled extends Error {}

/**
 * A `UTF8 (literal)` data item of an earlier message (MULTIAPPEND: this
 * message's arguments follow it). The last argument is this message's own
 * list, which the reader fills meanwhile, so it is never taken for one.
 */
function isUtf8Data(a: ImapArg): boolean {
  return a.type === 'list' && a.items.length === 1 && a.items[0].type === 'literal';
}

/** A literal8 message with its `Content-Transfer-Encoding: binary` parts base64-encoded (held whole: literal8 APPENDs are rare). */
async function* binaryConverted(src: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of src) parts.push(c);
  const msg = Buffer.concat(parts);
  yield encodeBinaryParts(msg, parseMime(msg)) ?? msg;
}

type Result = { ok: true; uid: number; uidValidity: number; mailbox: string } | { ok: false; error: unknown };

/** The mailbox an APPEND literal goes to (MULTIAPPEND: every message names the first argument's). */
function appendMailbox(s: Session, args: readonly ImapArg[]): string {
  return inboxCased(s.mailboxIn(astring(args[0]) ?? ''), s.inboxSep);
}

/** Saving into the mailbox selected read-write: the session takes the new messages' \Recent itself (Dovecot). */
export function ownRecent(s: Session, dir: string): ((from: number, to: number) => void) | undefined {
  const sel = s.selected;
  return sel && !sel.readOnly && sel.folder.dir === dir ? (from, to) => sel.tookRecent(from, to) : undefined;
}

/** Would this literal be refused by quota (tested before `+ OK`, as Dovecot does)? */
export async function appendOverQuota(s: Session, info: LiteralInfo): Promise<boolean> {
  if (!s.quota || info.name !== 'APPEND' || info.size === 0 || (s.state !== 'authenticated' && s.state !== 'selected')) return false;
  try {
    return !(await s.quota.fits(appendMailbox(s, info.args), [info.size]));
  } catch {
    return false; // the save path reports the problem
  }
}

/** A message's `[flags] [date]` before its literal or CATENATE list. */
interface MessageHead { flags: string[]; date?: Date }

/**
 * How far the session got through one APPEND's arguments: MULTIAPPEND
 * messages and CATENATE lists are taken as they complete (at each literal
 * the reader streams, and at the end of the command).
 */
export interface AppendScan {
  tag: string;
  /** The first top-level argument not yet taken. */
  pos: number;
  /** The CATENATE message whose list is still being read. */
  open: CatenateMessage | null;
  /** Each message's failure (null: fine), in order: what a literal is refused with. */
  readonly refusals: (() => Promise<AppendRefusal | null>)[];
  readonly catenates: CatenateMessage[];
  /** Set at the end of the command: may the CATENATE messages be saved (none of them failed)? */
  readonly verdict: Promise<boolean>;
  decide(ok: boolean): void;
  invalid: boolean;
  /** What the CATENATE messages may still hold in memory (catenate.ts). */
  readonly budget: { left: number };
}

function newScan(tag: string, limit: number): AppendScan {
  let decide!: (ok: boolean) => void;
  const verdict = new Promise<boolean>((r) => { decide = r; });
  return { tag, pos: 1, open: null, refusals: [], catenates: [], verdict, decide, invalid: false, budget: { left: limit } };
}

function scanOf(s: Session, tag: string): AppendScan {
  if (s.appendScan?.tag !== tag) {
    // what an APPEND that never ended left behind (its line failed to parse) is dropped
    if (s.appendScan || s.appendResults.length) abandonAppend(s);
    s.appendScan = newScan(tag, s.appendLimit);
  }
  return s.appendScan;
}

/** The APPEND being read ends without its command (refused, or its line failed): nothing of it is saved or waited for. */
export function abandonAppend(s: Session): void {
  const st = s.appendScan;
  s.appendScan = null;
  s.appendResults.splice(0);
  if (!st) return;
  st.decide(false);
  for (const m of st.catenates) m.close();
}

const isAtom = (a: ImapArg | undefined, v: string): boolean => a?.type === 'atom' && a.value.toUpperCase() === v;

/** The arguments are not what APPEND takes: the rest of the command is refused (BAD, in its place among the messages). */
function markInvalid(s: Session, st: AppendScan): void {
  if (st.invalid) return;
  st.invalid = true;
  const e = invalidArguments();
  st.refusals.push(async () => e);
  s.appendResults.push(Promise.resolve({ ok: false, error: e }));
}

/**
 * Take the messages complete in `args[st.pos..limit)`. Returns the head
 * (flags, date) of the message still open at `limit` and where its
 * arguments stopped, or null when the arguments are invalid.
 */
function scanMessages(s: Session, st: AppendScan, args: readonly ImapArg[], limit: number): { head: MessageHead; stop: number } | null {
  while (!st.invalid) {
    let i = st.pos;
    const head: MessageHead = { flags: [] };
    if (args[i]?.type === 'list' && i < limit) { head.flags = (args[i] as { items: ImapArg[] }).items.map((x) => (x.type === 'atom' ? x.value : '')); i++; }
    // the date: a string (any other word but CATENATE/UTF8 is taken as one too, as before CATENATE)
    const d = args[i];
    if (i < limit && d && (d.type === 'string' || (d.type === 'atom' && !isAtom(d, 'CATENATE') && !isAtom(d, 'UTF8')) || d.type === 'nil')) {
      const text = astring(d);
      if (text) head.date = parseDate(text);
      i++;
    }
    if (i >= limit || (isAtom(args[i], 'CATENATE') && i + 1 >= limit)) return { head, stop: i };
    const a = args[i];
    if (a.type === 'literal') { st.pos = i + 1; continue; } // a message streamed already
    if (isAtom(a, 'UTF8') && args[i + 1]?.type === 'list') { st.pos = i + 2; continue; }
    if (isAtom(a, 'CATENATE') && args[i + 1]?.type === 'list') {
      const list = (args[i + 1] as { items: ImapArg[] }).items;
      const msg = st.open?.list === list ? st.open : startCatenate(s, st, head, args, list, false);
      st.open = null;
      takeParts(st, msg, list, list.length);
      if (!list.length) msg.fail(new AppendRefusal('BAD', 'Error in IMAP command APPEND: Empty CATENATE list.'));
      msg.close();
      st.pos = i + 2;
      continue;
    }
    markInvalid(s, st);
  }
  return null;
}

/** CATENATE's URL parts in `list[msg.next..upTo)`; TEXT parts there were attached as their literals started. */
function takeParts(st: AppendScan, msg: CatenateMessage, list: ImapArg[], upTo: number): boolean {
  let j = msg.next;
  for (; j < upTo; j += 2) {
    const a = list[j];
    const v = list[j + 1];
    if (isAtom(a, 'URL') && j + 1 < upTo && (v.type === 'string' || v.type === 'atom' || (v.type === 'literal' && v.value !== null))) {
      msg.addUrl(astring(v)!);
    } else if (isAtom(a, 'TEXT') && j + 1 < upTo && v.type === 'literal' && v.streamed) {
      // attached when it started
    } else {
      msg.fail(invalidArguments());
      st.invalid = true;
      msg.next = upTo;
      return false;
    }
  }
  msg.next = j;
  return true;
}

/** A CATENATE message begins: it goes into the order of the command's messages. */
function startCatenate(s: Session, st: AppendScan, head: MessageHead, args: readonly ImapArg[], list: ImapArg[], binary: boolean): CatenateMessage {
  const name = appendMailbox(s, args);
  const msg = new CatenateMessage(s, list, binary, st.budget);
  // Dovecot opens the mailbox before it reads any part: a missing one answers first
  msg.check(async () => {
    try { await s.store!.open(name); } catch (e) {
      if (e instanceof MailStoreError && e.code === 'NONEXISTENT') {
        noteMailboxMissing(s, name);
        throw new AppendRefusal('NO', `Mailbox doesn't exist: ${displayName(name)}`, { name: 'TRYCREATE' });
      }
      throw e;
    }
  });
  st.catenates.push(msg);
  st.refusals.push(async () => ((await msg.chain) ? null : msg.failure));
  const sys = systemFlags(head.flags);
  const kws = head.flags.filter((f) => !f.startsWith('\\'));
  const before = s.appendResults[s.appendResults.length - 1];
  const job: Promise<Result> = (async (): Promise<Result> => {
    let data: Buffer;
    try { data = await msg.composed(); } catch (error) { return { ok: false, error }; }
    const prev = (await before?.catch(() => undefined)) as Result | undefined;
    if ((prev && !prev.ok) || !(await st.verdict)) return { ok: false, error: new AppendSkipped() };
    try {
      const folder = await s.store!.open(name);
      if (s.quota && !(await s.quota.fits(name, [data.length]))) throw new QuotaExceeded();
      const uid = await folder.append(data, { flags: sys, keywords: kws, internalDate: head.date, tookRecent: ownRecent(s, folder.dir) });
      return { ok: true, uid, uidValidity: folder.uidValidity, mailbox: name };
    } catch (error) {
      return { ok: false, error };
    }
  })();
  s.appendResults.push(job);
  return msg;
}

function systemFlags(flags: string[]): SystemFlag[] {
  return flags.map((f) => SYSTEM_FLAGS.find((x) => x.toLowerCase() === f.toLowerCase())).filter((x): x is SystemFlag => !!x);
}

/** A literal of a CATENATE `URL` part: an astring, buffered like any argument (not message data). */
export function isCatenateUrlLiteral(info: LiteralInfo): boolean {
  if (info.depth !== 1) return false;
  const list = info.args[info.args.length - 1];
  return list?.type === 'list' && isAtom(info.args[info.args.length - 2], 'CATENATE') && isAtom(list.items[info.listIndex - 1], 'URL');
}

/**
 * Called by the session when an APPEND literal starts: begin saving it (a
 * message, or a CATENATE TEXT part). For a synchronising literal, resolves
 * to the reply that refuses it instead of `+ OK` when the command already
 * failed (Dovecot sends its tagged reply and invites no more data).
 */
export function startAppendLiteral(s: Session, info: LiteralInfo): Promise<AppendRefusal | null> {
  if (s.state !== 'authenticated' && s.state !== 'selected') return Promise.resolve(null);
  const st = scanOf(s, info.tag);
  const args = info.args;
  const len = args.length;
  const catenateText = info.depth === 1 && args[len - 1]?.type === 'list' && isAtom(args[len - 2], 'CATENATE');
  const utf8Data = info.depth === 1 && args[len - 1]?.type === 'list' && isAtom(args[len - 2], 'UTF8');
  if (catenateText) {
    const list = (args[len - 1] as { items: ImapArg[] }).items;
    let msg = st.open?.list === list ? st.open : null;
    if (!msg) {
      const r = scanMessages(s, st, args, len - 1);
      if (r && r.stop === len - 2) {
        msg = startCatenate(s, st, r.head, args, list, info.listIndex === 1 && info.literal8);
        st.open = msg;
      } else markInvalid(s, st);
    }
    if (msg && takeParts(st, msg, list, info.listIndex - 1) && isAtom(list[info.listIndex - 1], 'TEXT')) {
      // refused for what came before it (or for being a literal8 where the first part was not)
      if (info.literal8 && !msg.binary) msg.fail(unknownCte());
      const refusal = info.sync ? firstRefusal(st) : Promise.resolve(null);
      s.literalSink = msg.addText(info.size, info.literal8);
      msg.next = info.listIndex + 1;
      return refusal;
    } else {
      if (msg && !st.invalid) { msg.fail(invalidArguments()); st.invalid = true; }
      s.literalSink = discardSink;
    }
  } else if (info.depth > 0 && !utf8Data) {
    markInvalid(s, st);
    s.literalSink = discardSink;
  } else {
    const r = scanMessages(s, st, args, utf8Data ? len - 2 : len);
    if (!r || r.stop !== (utf8Data ? len - 2 : len)) {
      markInvalid(s, st);
      s.literalSink = discardSink;
    } else {
      st.pos = utf8Data ? len : len + 1;
      startMessage(s, info, r.head, utf8Data);
    }
  }
  return info.sync ? firstRefusal(st) : Promise.resolve(null);
}

/** The first failure of the parts taken so far (taken now: the literal starting is not waited for). */
async function firstRefusal(st: AppendScan): Promise<AppendRefusal | null> {
  const now = st.refusals.map((r) => r());
  for (const r of now) {
    const e = await r;
    if (e) return e;
  }
  return null;
}

/** A message literal (or `UTF8 (literal8)`) starts: it streams into the save path. */
function startMessage(s: Session, info: LiteralInfo, head: MessageHead, utf8: boolean): void {
  const name = appendMailbox(s, info.args);
  const q = new ChunkQueue();
  s.literalSink = q;
  const sys = systemFlags(head.flags);
  const kws = head.flags.filter((f) => !f.startsWith('\\'));
  const date = head.date;
  // MULTIAPPEND (RFC 3502): messages get their UIDs in the order they were sent, so each
  // waits for the one before it to be placed (its data meanwhile queues up)
  const before = s.appendResults[s.appendResults.length - 1];
  const job: Promise<Result> = (async (): Promise<Result> => {
    if (utf8 && !s.utf8Accept) {
      for await (const _ of q) void _;
      return { ok: false, error: new Utf8NotEnabled() };
    }
    if (info.size === 0) {
      for await (const _ of q) void _;
      return { ok: false, error: new EmptyMessage() };
    }
    try {
      const prev = (await before?.catch(() => undefined)) as Result | undefined;
      // after a failed message nothing more is saved (Dovecot's ctx->failed)
      if (prev && !prev.ok) throw new AppendSkipped();
      const folder = await s.store!.open(name);
      if (s.quota && !(await s.quota.fits(name, [info.size]))) throw new QuotaExceeded();
      // RFC 3516: a literal8 may hold binary parts, stored base64-encoded as Dovecot does
      const uid = await folder.append(info.literal8 ? binaryConverted(q) : q, { flags: sys, keywords: kws, internalDate: date, tookRecent: ownRecent(s, folder.dir) });
      return { ok: true, uid, uidValidity: folder.uidValidity, mailbox: name };
    } catch (error) {
      // drain what the client still sends
      try { for await (const _ of q) void _; } catch { /* aborted */ }
      return { ok: false, error };
    }
  })();
  s.appendResults.push(job);
}

export const appendCommands: Record<string, Command> = {
  APPEND: {
    states: AUTHED,
    async run(ctx) {
      const s = ctx.session;
      // the arguments are complete: the messages no literal started (CATENATE of URLs only), and the last CATENATE list
      const st = scanOf(s, ctx.tag);
      s.appendScan = null;
      const rest = scanMessages(s, st, ctx.args, ctx.args.length);
      if (rest && rest.stop > st.pos) markInvalid(s, st);
      for (const m of st.catenates) m.close(); // also those a syntax error left open
      // the CATENATE messages are saved only when every one of them could be composed (Dovecot's transaction)
      st.decide((await Promise.all(st.catenates.map((m) => m.chain))).every(Boolean));
      const results = (await Promise.all(s.appendResults.splice(0))) as Result[];
      if (!results.length) { await ctx.bad('Error in IMAP command APPEND: Invalid arguments.'); return; }
      const failed = results.filter((r) => !r.ok) as { ok: false; error: unknown }[];
      const bad = failed.find((r) => !(r.error instanceof AppendSkipped)) ?? failed[0];
      if (bad) {
        const e = bad.error;
        if (e instanceof AppendRefusal) {
          if (e.status === 'BAD') await ctx.bad(e.text);
          else await ctx.no(e.text, e.code);
        } else if (e instanceof Utf8NotEnabled) await ctx.bad('Error in IMAP command APPEND: UTF8 data item without ENABLE UTF8=ACCEPT.');
        else if (e instanceof EmptyMessage) await ctx.no('Can\'t save a zero byte message'); // Dovecot's answer
        else if (e instanceof MailStoreError && e.code === 'NONEXISTENT') {
          noteMailboxMissing(s, appendMailbox(s, ctx.args));
          await ctx.no(`Mailbox doesn't exist: ${displayName(appendMailbox(s, ctx.args))}`, { name: 'TRYCREATE' });
        }
        else if (e instanceof QuotaExceeded && s.quota) await ctx.no(s.quota.exceededMessage(), { name: 'OVERQUOTA' });
        else if (e instanceof MailStoreError && e.code === 'NOSPACE') await ctx.no('Not enough disk space', { name: 'OVERQUOTA' });
        // a refused name answers as for any other command (Dovecot's mailbox_verify_name texts)
        else if (e instanceof MailStoreError && (e.code === 'INVALIDNAME' || e.code === 'BADENCODING' || e.code === 'NONAMESPACE' || e.code === 'NOTPOSSIBLE')) await replyError(ctx, e);
        else { s.log.error(`APPEND failed: ${(e as Error).message}`); await ctx.no('Internal error occurred. Refer to server log for more information.', { name: 'SERVERBUG' }); }
        return;
      }
      const oks = results as { ok: true; uid: number; uidValidity: number; mailbox: string }[];
      if (s.imapSieve) await s.imapSieve.run({ cause: 'APPEND', mailbox: oks[0].mailbox, from: null, uids: oks.map((r) => r.uid) });
      if (s.selected) await s.sendUpdates(false);
      await ctx.ok('Append completed', { name: 'APPENDUID', args: `${oks[0].uidValidity} ${uidSetText(oks.map((r) => r.uid))}` });
    },
  },
};
