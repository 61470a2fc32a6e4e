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
 */
import { MailStoreError } from '../../mailstore/errors.js';
import { QuotaExceeded } from '../../quota/quota.js';
import { SYSTEM_FLAGS, type SystemFlag } from '../../mailstore/api/flags.js';
import type { ImapArg, LiteralInfo } from '../wire/parser.js';
import type { Session } from '../session.js';
import { AUTHED, type Command } from './types.js';
import { astring, inboxCased } from './args.js';
import { displayName, replyError } from './errors.js';
import { parseMime } from '../../mailstore/mime/parts.js';
import { encodeBinaryParts } from '../../mailstore/mime/binary.js';

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

/** Called by the session when an APPEND literal starts: begin saving it. */
export function startAppendLiteral(s: Session, info: LiteralInfo): void {
  if (s.state !== 'authenticated' && s.state !== 'selected') return;
  // the reader lists this literal last; MULTIAPPEND: this message's arguments follow the previous literal
  const last = info.args[info.args.length - 1];
  const args = last && last.type === 'literal' && last.streamed ? info.args.slice(0, -1) : info.args;
  let i = 0;
  for (let k = args.length - 1; k >= 0; k--) if (args[k].type === 'literal' || (k < args.length - 1 && isUtf8Data(args[k]))) { i = k + 1; break; }
  const name = appendMailbox(s, info.args);
  if (i === 0) i = 1;
  let flags: string[] = [];
  let date: Date | undefined;
  let utf8 = false;
  for (; i < args.length; i++) {
    const a = args[i];
    // RFC 6855: `UTF8 (literal8)` — the message is the literal inside that list, never flags
    if (a.type === 'atom' && a.value.toUpperCase() === 'UTF8' && args[i + 1]?.type === 'list' && i + 2 === args.length) { utf8 = true; break; }
    if (a.type === 'list') flags = a.items.map((x) => (x.type === 'atom' ? x.value : ''));
    else { const d = astring(a); if (d) date = parseDate(d); }
  }
  const q = new ChunkQueue();
  s.literalSink = q;
  const sys = flags.map((f) => SYSTEM_FLAGS.find((x) => x.toLowerCase() === f.toLowerCase())).filter((x): x is SystemFlag => !!x);
  const kws = flags.filter((f) => !f.startsWith('\\'));
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
      await before?.catch(() => undefined);
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
      const results = (await Promise.all(s.appendResults.splice(0))) as Result[];
      if (!results.length) { await ctx.bad('Error in IMAP command APPEND: Invalid arguments.'); return; }
      const bad = results.find((r) => !r.ok) as { ok: false; error: unknown } | undefined;
      if (bad) {
        const e = bad.error;
        if (e instanceof Utf8NotEnabled) await ctx.bad('Error in IMAP command APPEND: UTF8 data item without ENABLE UTF8=ACCEPT.');
        else if (e instanceof EmptyMessage) await ctx.no('Can\'t save a zero byte message'); // Dovecot's answer
        else if (e instanceof MailStoreError && e.code === 'NONEXISTENT') await ctx.no(`Mailbox doesn't exist: ${displayName(appendMailbox(s, ctx.args))}`, { name: 'TRYCREATE' });
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
      await ctx.ok('Append completed', { name: 'APPENDUID', args: `${oks[0].uidValidity} ${oks.map((r) => r.uid).join(',')}` });
    },
  },
};
