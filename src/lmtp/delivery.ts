/**
 * Delivering one message to one recipient, as Dovecot's LMTP does: userdb
 * lookup (detail stripped at `recipient_delimiter`), the mail user opened by
 * src/mailuser with mail-crypt's public keys only (the user is offline), Dovecot's
 * Return-Path / Delivered-To / Received headers, Sieve when the `sieve`
 * plugin is enabled (a broken script keeps the mail in INBOX and logs, as
 * Pigeonhole; `sieve` in the user's mail_plugins, as settled by src/mailuser), `lmtp_save_to_detail_mailbox`, and the message written with
 * tmp/ → fsync → rename → directory fsync so it is acknowledged only once it
 * is on disk (MailFolder.deliver: concurrent deliveries to a folder are
 * committed together, and get UIDs only if the uidlist lock is free, as
 * Dovecot's LMTP saves do).
 * Quota (src/quota) is tested per save with the incoming message's CRLF
 * size, as Dovecot's quota_save_begin does; `lmtp_rcpt_check_quota` also
 * refuses at RCPT a user who is over quota already. Over quota: `552 5.2.2`,
 * or `452 4.2.2` with `quota_full_tempfail`, then quota_exceeded_message.
 * `quota_max_mail_size` (quota_test_alloc's OVER_MAXSIZE, a MAIL_ERROR_LIMIT
 * that mail_deliver reports as temporary): `451 4.2.0` and quota.c's text.
 * The message comes from its spool (src/lmtp/data-spool.ts) as a stream for
 * each recipient, Dovecot's headers in front: the store writes it chunk by
 * chunk. Only Sieve's body test and a redirect read it into one Buffer.
 * A message Sieve's editheader (RFC 5293) changed is stored with its edited
 * header block followed by the spooled body, streamed from its spool as is.
 */
import { hostname } from 'node:os';
import type { AuthEngine } from '../auth/engine.js';
import { splitDetail } from '../auth/recipient.js';
import type { DovecotConfig } from '../config/settings.js';
import { Logger } from '../log/logger.js';
import { faultText } from '../util/fault.js';
import type { Fields } from '../auth/databases.js';
import { utf8ToMutf7 } from '../mailstore/api/mailbox-utf7.js';
import { MailStoreError } from '../mailstore/errors.js';
import type { SystemFlag } from '../mailstore/api/flags.js';
import { MailAccessRefused, openMailUser, type OpenedMailUser } from '../mailuser/open-mail-user.js';
import { runSieveForDelivery, type SieveOutcomeAction } from '../sieve/deliver.js';
import { sendSieveMail } from './submit.js';
import type { SpooledMessage } from './data-spool.js';
import { OVER_MAXSIZE_MESSAGE as OVER_MAXSIZE, type UserQuota } from '../quota/quota.js';
import { deliverLogLine, fromAddress, headerValue } from './deliver-log.js';

export type RcptCheck = { ok: true; user: string; detail: string } | { ok: false; temp: boolean; text: string };
export type DeliveryResult = { ok: true } | { ok: false; temp: boolean; code: string; text: string };

/** lmtp_rcpt_check_quota's refusal of a user over quota already: `552 5.2.2` / `452 4.2.2` and quota_exceeded_message. */
export interface QuotaRefusal { temp: boolean; code: string; text: string }

/**
 * lmtp_rcpt_check_quota: is this user over quota already? The refusal, or
 * null. Rejects when the user's mail can't be opened (a uid outside
 * first_valid_uid…last_valid_uid included). Where the mail is read is the
 * caller's (server/lmtp-process.ts: the mail process of the user's uid).
 */
export type OverQuotaCheck = (config: DovecotConfig, user: string, fields: Fields) => Promise<QuotaRefusal | null>;

/** OverQuotaCheck in this process: the user's mail opened here (the mail_uid mode, and the root mode's mail processes). */
export async function overQuotaAlready(config: DovecotConfig, user: string, fields: Fields): Promise<QuotaRefusal | null> {
  const { quota } = await openMailUser(config, { user, fields, protocol: 'lmtp', crypt: { kind: 'none' } });
  return quota && await quota.overAlready() ? quotaReply(config, quota) : null;
}

/** RCPT TO: the userdb user behind the address (detail stripped), or the reply Dovecot gives. */
export async function checkRecipient(config: DovecotConfig, auth: AuthEngine, address: string, overQuota: OverQuotaCheck = overQuotaAlready): Promise<RcptCheck> {
  const { user, detail } = splitDetail(address, config.get('recipient_delimiter', { protocol: 'lmtp' }));
  const r = await auth.lookupUser(user, { service: 'lmtp' });
  if (r.result === 'tempfail') return { ok: false, temp: true, text: '451 4.3.0 <' + address + '> Temporary internal error' };
  if (r.result !== 'ok') return { ok: false, temp: false, text: `550 5.1.1 <${address}> User doesn't exist: ${user.toLowerCase()}` };
  if (config.getBool('lmtp_rcpt_check_quota', { protocol: 'lmtp' })) {
    // lmtp-local.c's lmtp_local_rcpt_check_quota: a user whose mail can't be opened gets 451 at RCPT
    const q = await overQuota(config, r.user, r.fields).catch((e: unknown) => {
      Logger.forUser('lmtp', r.user).error(`Failed to initialize user ${address}: ${e instanceof MailAccessRefused ? e.message : faultText(e)}`);
      return 'failed' as const;
    });
    if (q === 'failed') return { ok: false, temp: true, text: `451 4.3.0 <${address}> Temporary internal error` };
    if (q) return { ok: false, temp: q.temp, text: `${q.code} <${address}> ${q.text}` };
  }
  return { ok: true, user: r.user, detail };
}

function quotaReply(config: DovecotConfig, quota: UserQuota): QuotaRefusal {
  const temp = config.getBool('quota_full_tempfail', { protocol: 'lmtp' });
  return { temp, code: temp ? '452 4.2.2' : '552 5.2.2', text: quota.exceededMessage() };
}

/** Dovecot's added headers as a Buffer, and their size with CRLF line ends (they end in LF, so sizes add up). */
function headerBlock(text: string | Buffer): { bytes: Buffer; crlfSize: number } {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  let n = bytes.length;
  for (let i = bytes.indexOf(0x0a); i >= 0; i = bytes.indexOf(0x0a, i + 1)) if (i === 0 || bytes[i - 1] !== 0x0d) n++;
  return { bytes, crlfSize: n };
}

/** The stream without its first `n` bytes. */
async function* skipBytes(src: AsyncIterable<Buffer>, n: number): AsyncIterable<Buffer> {
  for await (const chunk of src) {
    if (n >= chunk.length) { n -= chunk.length; continue; }
    yield n ? chunk.subarray(n) : chunk;
    n = 0;
  }
}

/** The message's header (up to its empty line) when it lies within `head`, else null. */
function headerOf(head: Buffer): Buffer | null {
  if (head[0] === 0x0a) return head.subarray(0, 0);
  const end = head.indexOf('\n\n');
  return end < 0 ? null : head.subarray(0, end + 1);
}

/** Message-ID for the log lines: from the header only. */
function messageId(head: Buffer): string {
  const h = headerOf(head) ?? head;
  return /^Message-ID:\s*(.*)$/im.exec(h.toString('latin1'))?.[1] ?? 'unspecified';
}

class OverQuota extends Error {}
class OverMaxSize extends Error {}

/** Dovecot's trace header: `for <rcpt>` (and Delivered-To) only when the transaction has one recipient; no `([ip])` over a unix socket. */
export function received(d: Pick<DeliveryInput, 'config' | 'heloName' | 'rip' | 'sessionId' | 'mailFrom' | 'single' | 'rcpt'>): string {
  const host = d.config.get('hostname') || hostname();
  const date = new Date().toUTCString().replace(/GMT$/, '+0000').replace(/^(\w+), 0?/, '$1, ');
  return `Received: from ${d.heloName}${d.rip ? ` ([${d.rip}])` : ''}\n\tby ${host} with LMTP\n\tid ${d.sessionId}\n\t(envelope-from <${d.mailFrom}>)${d.single ? `\n\tfor <${d.rcpt}>` : ''}; ${date}\n`;
}

export interface DeliveryInput {
  config: DovecotConfig;
  auth: AuthEngine;
  user: string;
  detail: string;
  rcpt: string;
  mailFrom: string;
  heloName: string;
  rip: string;
  sessionId: string;
  /** The only recipient of its transaction (Delivered-To and `for <rcpt>` are added). */
  single: boolean;
  /** The message as received, LF line ends, read back from its spool. */
  message: SpooledMessage;
}

export async function deliver(d: DeliveryInput): Promise<DeliveryResult> {
  const log = Logger.forUser('lmtp', d.user, d.sessionId);
  const u = await d.auth.lookupUser(d.user, { service: 'lmtp' });
  if (u.result !== 'ok') return { ok: false, temp: true, code: '451 4.3.0', text: 'Temporary user lookup failure' };
  let mu: OpenedMailUser;
  try {
    // `auto` mailboxes exist for delivery too (fileinto "Junk" creates ISPmail's Junk, as Dovecot's lmtp does)
    mu = await openMailUser(d.config, { user: u.user, fields: u.fields, protocol: 'lmtp', crypt: { kind: 'delivery' } });
  } catch (e) {
    if (!(e instanceof MailAccessRefused)) throw e;
    log.error(`Failed to initialize user: ${e.message}`);
    return { ok: false, temp: true, code: '451 4.3.0', text: 'Temporary internal error' };
  }
  const { store, quota } = mu;
  const added = headerBlock(`Return-Path: <${d.mailFrom}>\n${d.single ? `Delivered-To: ${d.rcpt}\n` : ''}${received(d)}`);
  const full = async function* (): AsyncIterable<Buffer> { yield added.bytes; yield* d.message.stream(); };
  // one copy of the whole message, made only when something needs it at once (Sieve's body test, redirect)
  let whole: Promise<Buffer> | null = null;
  const wholeMessage = () => (whole ??= d.message.buffer().then((m) => Buffer.concat([added.bytes, m])));
  const msgid = messageId(d.message.head);
  const headText = (headerOf(d.message.head) ?? d.message.head).toString('latin1');
  const logVars = {
    msgid, subject: headerValue(headText, 'Subject'), from: fromAddress(headerValue(headText, 'From')),
    fromEnvelope: d.mailFrom, toEnvelope: d.rcpt, size: added.bytes.length + d.message.size, vsize: added.crlfSize + d.message.crlfSize,
  };
  const delivered = (text: string) => log.info(deliverLogLine(d.config, logVars, text));
  /** The message with Sieve's edited header block in place of its own (the body streamed from the spool). */
  const editedMessage = async (header: Buffer) => {
    const skip = bodyStart - added.bytes.length;
    const head = skip <= d.message.head.length ? d.message.head : (await wholeMessage()).subarray(added.bytes.length);
    const block = headerBlock(header);
    return {
      crlfSize: block.crlfSize + d.message.crlfSize - headerBlock(head.subarray(0, skip)).crlfSize,
      stream: async function* (): AsyncIterable<Buffer> { yield block.bytes; yield* skipBytes(d.message.stream(), skip); },
    };
  };
  let targets: { mailbox: string; flags: string[]; create: boolean; header?: Buffer }[] = [];
  /** Where the body starts in Dovecot's headers + the message (known once Sieve ran). */
  let bodyStart = 0;
  const detailBox = d.config.getBool('lmtp_save_to_detail_mailbox', { protocol: 'lmtp' }) && d.detail ? d.detail : 'INBOX';
  let discarded = false;
  const outgoing: (SieveOutcomeAction & { message?: Buffer })[] = [];
  let sieveCommit: (() => Promise<void>) | null = null;
  if (mu.sieveAtDelivery && mu.user.home) {
    try {
      const header = headerOf(d.message.head);
      const sieveMessage = header ? { head: Buffer.concat([added.bytes, header, Buffer.from('\n')]), size: added.bytes.length + d.message.size, load: wholeMessage } : await wholeMessage();
      const outcome = await runSieveForDelivery(d.config, { username: u.user, home: mu.user.home, fields: u.fields }, sieveMessage,
        { from: d.mailFrom, to: d.rcpt }, { mailboxExists: (n) => store.exists(n), protocol: 'lmtp' });
      for (const e of outcome.errors) log.error(`sieve: ${e}`);
      sieveCommit = outcome.commit;
      bodyStart = outcome.bodyStart;
      for (const a of outcome.actions) {
        if (a.type === 'keep') targets.push({ mailbox: detailBox, flags: a.flags ?? [], create: false, header: a.header });
        // the name as the script wrote it (UTF-8, the user's namespace separator: fileinto "Archive/2024" with separator = /), as Pigeonhole
        else if (a.type === 'fileinto' && a.mailbox) targets.push({ mailbox: utf8ToMutf7(a.mailbox), flags: a.flags ?? [], create: a.create ?? false, header: a.header });
        else if (a.type === 'discard') discarded = true;
        else if (a.type === 'redirect' && a.header) outgoing.push({ ...a, message: Buffer.concat([a.header, (await wholeMessage()).subarray(bodyStart)]) });
        else if (a.type === 'redirect' || a.type === 'vacation' || a.type === 'notify') outgoing.push(a);
        else log.info(`sieve: action ${a.type} is not carried out by Sealmail yet`);
      }
      // a redirect replaces the implicit keep; one that could not be sent keeps the message instead
      // (the whole message is read only for a redirect: a vacation reply does not carry it)
      const message = outgoing.some((a) => a.type === 'redirect') ? await wholeMessage() : added.bytes;
      if (await sendSieveMail(d.config, { user: u.user, mailFrom: d.mailFrom, message, msgid, log }, outgoing)) discarded ||= outgoing.some((a) => a.type === 'redirect');
      else if (!targets.length) targets.push({ mailbox: detailBox, flags: [], create: false });
    } catch (e) {
      log.error(`sieve: ${(e as Error).message}: keeping the message in ${detailBox}`);
      sieveCommit = null;
      targets = [];
      discarded = false;
    }
  }
  // no Sieve, or a script that failed: implicit keep
  if (!targets.length && !discarded) targets = [{ mailbox: detailBox, flags: [], create: false }];
  try {
    for (const t of targets) {
      let box = t.mailbox;
      // a name the store refuses (another separator, no such namespace): the message is kept in INBOX, as Pigeonhole does
      const there = box.toUpperCase() === 'INBOX' || await store.exists(box).catch((e) => {
        if (!(e instanceof MailStoreError) || e.code === 'IO') throw e;
        log.info(`mailbox ${box}: ${e.code === 'NONAMESPACE' ? 'no such namespace' : e.message}: saving to INBOX`);
        box = 'INBOX';
        return true;
      });
      if (!there) {
        if (t.create || d.config.getBool('lda_mailbox_autocreate', { protocol: 'lmtp' })) await store.create(box);
        else { log.info(`mailbox ${box} doesn't exist: saving to INBOX`); box = 'INBOX'; }
      }
      // an edited header: the new block, then the message's body from the spool
      const edited = t.header ? await editedMessage(t.header) : null;
      const size = edited ? edited.crlfSize : added.crlfSize + d.message.crlfSize;
      if (quota && quota.settings.maxMailSize > 0 && size > quota.settings.maxMailSize) {
        delivered(`save failed to ${box}: ${OVER_MAXSIZE}`);
        throw new OverMaxSize();
      }
      if (quota && !(await quota.fits(box, [size]))) {
        delivered(`save failed to ${box}: ${quota.exceededMessage()}`);
        throw new OverQuota();
      }
      const folder = await store.open(box);
      const sys = t.flags.filter((f) => f.startsWith('\\')) as SystemFlag[];
      const kws = t.flags.filter((f) => !f.startsWith('\\'));
      await folder.deliver(edited ? edited.stream() : full(), { flags: sys, keywords: kws });
      delivered(`saved mail to ${box}`);
    }
    // RFC 7352: the duplicate ids count only for a message that was delivered
    if (sieveCommit) await sieveCommit();
    return { ok: true };
  } catch (e) {
    if (e instanceof OverQuota && quota) { const q = quotaReply(d.config, quota); return { ok: false, ...q }; }
    if (e instanceof OverMaxSize) return { ok: false, temp: true, code: '451 4.2.0', text: OVER_MAXSIZE };
    if (e instanceof MailStoreError && e.code === 'NOSPACE') return { ok: false, temp: true, code: '452 4.3.1', text: 'Insufficient system storage' };
    log.error(`delivery failed: ${(e as Error).message}`);
    return { ok: false, temp: true, code: '451 4.2.0', text: 'Temporary internal error' };
  }
}
