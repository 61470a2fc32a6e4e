/**
 * Sieve enotify (RFC 5435) with its one method, mailto (RFC 5436), as
 * Pigeonhole 0.5 implements them (ext-enotify-common.c, uri-mailto.c,
 * ntfy-mailto.c, vmodf-encodeurl.c): the method URI's scheme, the mailto
 * URI parser with its limits (8 recipients, 16 header fields, reserved and
 * unique header fields, duplicate recipients merged), the :options syntax,
 * the :encodeurl variables modifier, and the notification message itself
 * (headers, Auto-Submitted, importance, subject and body rules). Messages
 * and warnings are Pigeonhole's texts; sending is the caller's.
 */
import { hostname } from 'node:os';
import { parseSieveAddress } from './address.js';
import { sanitize } from './match.js';
import type { ParsedMessage } from './message.js';
import { foldHeader } from './vacation.js';

/** ntfy-mailto.c: NTFY_MAILTO_MAX_RECIPIENTS, _MAX_HEADERS, _MAX_SUBJECT. */
export const MAILTO_MAX_RECIPIENTS = 8;
export const MAILTO_MAX_HEADERS = 16;
export const MAILTO_MAX_SUBJECT = 256;
/** ext-enotify-limits.h: EXT_ENOTIFY_MAX_SCHEME_LEN. */
const MAX_SCHEME_LEN = 32;

/** The notify methods Pigeonhole registers (managesieve_notify_capability). */
export const NOTIFY_METHODS = ['mailto'];

const RESERVED = new Set(['auto-submitted', 'received', 'message-id', 'data', 'bcc', 'in-reply-to', 'references', 'resent-date', 'resent-from',
  'resent-sender', 'resent-to', 'resent-cc', 'resent-bcc', 'resent-msg-id', 'from', 'sender']);
const UNIQUE = new Set(['reply-to']);

export interface MailtoRecipient { full: string; address: string; cc: boolean }
export interface MailtoUri { recipients: MailtoRecipient[]; headers: { name: string; body: string }[]; subject?: string; body?: string }

/** Logs the parser's errors (which end the parse) and warnings (which don't). */
export interface UriLog { error(msg: string): void; warning(msg: string): void }

/**
 * RFC 3986 scheme before ':' (ext_enotify_uri_scheme_parse): the scheme and
 * the rest, or null.
 */
export function uriScheme(uri: string): { scheme: string; body: string } | null {
  if (!/^[A-Za-z]/.test(uri)) return null;
  let i = 1;
  while (i < uri.length && i <= MAX_SCHEME_LEN && /[A-Za-z0-9+\-.]/.test(uri[i])) i++;
  if (uri[i] !== ':') return null;
  return { scheme: uri.slice(0, i), body: uri.slice(i + 1) };
}

/** uri-mailto.c _qchar_lookup: the characters allowed unencoded. */
function isQchar(c: number): boolean {
  if ((c >= 0x30 && c <= 0x39) || (c >= 0x40 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) return true; // digits, '@', letters
  return "!$'()*+,-._~".includes(String.fromCharCode(c));
}

/** A field name as rfc2822_header_field_name_verify wants it: printable ASCII but ':' and space, at least one. */
function fieldNameOk(s: string): boolean {
  if (!s.length) return false;
  for (let i = 0; i < s.length; i++) { const c = s.charCodeAt(i); if (c <= 0x20 || c >= 0x7f || c === 0x3a) return false; }
  return true;
}
/** rfc2822_header_field_body_verify(allow_crlf=FALSE, allow_8bit=FALSE). */
function fieldBodyOk(s: string): boolean {
  for (let i = 0; i < s.length; i++) { const c = s.charCodeAt(i); if (c === 0 || c === 0x0d || c === 0x0a || c >= 0x80) return false; }
  return true;
}

/**
 * Parse the part after "mailto:" (uri_mailto_parse). Percent-decoding works
 * on bytes (a %XX sequence may build UTF-8); `%00` is invalid. Returns null
 * after logging an error.
 */
export function parseMailto(body: string, log: UriLog): MailtoUri | null {
  const uri: MailtoUri = { recipients: [], headers: [] };
  const bytes = Buffer.from(body, 'utf8');
  let p = 0;
  const hex = (): number | null => {
    const h = bytes.subarray(p, p + 2).toString('latin1');
    if (!/^[0-9A-Fa-f]{2}$/.test(h)) return null;
    const v = parseInt(h, 16);
    p += 2;
    return v === 0 ? null : v;
  };
  const addRecipient = (raw: number[], cc: boolean): boolean => {
    const text = Buffer.from(raw).toString('utf8');
    const a = parseSieveAddress(text);
    if ('error' in a) { log.error(`invalid recipient '${sanitize(text, 80)}': ${a.error}`); return false; }
    if (uri.recipients.length >= MAILTO_MAX_RECIPIENTS) {
      if (uri.recipients.length === MAILTO_MAX_RECIPIENTS) log.warning(`more than the maximum ${MAILTO_MAX_RECIPIENTS} recipients specified; rest is discarded`);
      return true;
    }
    const dup = uri.recipients.find((r) => addressKey(r.address) === addressKey(a.address));
    if (dup) { dup.cc = dup.cc && cc; log.warning(`ignored duplicate recipient '${sanitize(text, 80)}'`); return true; }
    uri.recipients.push({ full: text, address: a.address, cc });
    return true;
  };

  // to-part: up to '?', "%2C" separates addresses
  if (p < bytes.length && bytes[p] !== 0x3f) {
    let to: number[] = [];
    while (p < bytes.length && bytes[p] !== 0x3f) {
      const c = bytes[p];
      if (c === 0x25) {
        p++;
        const v = hex();
        if (v === null) { log.error('invalid % encoding'); return null; }
        if (v === 0x2c) { if (!addRecipient(to, false)) return null; to = []; } else to.push(v);
        continue;
      }
      if (c === 0x3a || c === 0x3b || c === 0x2c || !isQchar(c)) { log.error(`invalid character '${String.fromCharCode(c)}' in 'to' part`); return null; }
      to.push(c);
      p++;
    }
    if (!addRecipient(to, false)) return null;
  }
  if (p >= bytes.length) return finish(uri, log);
  p++; // '?'
  let count = 0;
  while (p < bytes.length) {
    const name: number[] = [];
    while (p < bytes.length && bytes[p] !== 0x3d) {
      let c = bytes[p++];
      if (c === 0x25) { const v = hex(); if (v === null) { log.error('invalid % encoding'); return null; } c = v; }
      else if (!isQchar(c)) { log.error(`invalid character '${String.fromCharCode(c)}' in header field name part`); return null; }
      name.push(c);
    }
    if (p < bytes.length) p++;
    const fname = Buffer.from(name).toString('latin1');
    if (!fieldNameOk(fname)) { log.error('invalid header field name'); return null; }
    type Kind = 'ignored' | 'generic' | 'to' | 'cc' | 'subject' | 'body';
    let kind: Kind = 'generic';
    let generic: { name: string; body: string } | undefined;
    const lower = fname.toLowerCase();
    if (count >= MAILTO_MAX_HEADERS) {
      if (count === MAILTO_MAX_HEADERS) log.warning(`more than the maximum ${MAILTO_MAX_HEADERS} headers specified; rest is discarded`);
      kind = 'ignored';
    } else if (lower === 'to' || lower === 'cc' || lower === 'subject' || lower === 'body') kind = lower;
    else if (RESERVED.has(lower)) { log.warning(`ignored reserved header field '${sanitize(fname, 32)}'`); kind = 'ignored'; }
    else if (UNIQUE.has(lower) && uri.headers.some((h) => h.name.toLowerCase() === lower)) {
      log.warning(`ignored duplicate for unique header field '${sanitize(fname, 32)}'`); kind = 'ignored';
    } else { generic = { name: fname, body: '' }; uri.headers.push(generic); }
    count++;
    const value: number[] = [];
    while (p < bytes.length && bytes[p] !== 0x26) {
      let c = bytes[p++];
      if (c === 0x25) { const v = hex(); if (v === null) { log.error('invalid % encoding'); return null; } c = v; }
      else if (c !== 0x3d && !isQchar(c)) { log.error(`invalid character '${String.fromCharCode(c)}' in header field value part`); return null; }
      value.push(c);
    }
    if (p < bytes.length) p++;
    const vbuf = Buffer.from(value);
    if (kind !== 'body' && !fieldBodyOk(vbuf.toString('latin1'))) { log.error('invalid header field body'); return null; }
    const v = vbuf.toString('utf8');
    if (kind === 'to' || kind === 'cc') {
      for (const part of splitBytes(value, 0x2c)) if (!addRecipient(part, kind === 'cc')) return null;
    } else if (kind === 'subject') {
      if (uri.subject === undefined) uri.subject = v; else log.warning('ignored duplicate subject field');
    } else if (kind === 'body') {
      if (uri.body === undefined) uri.body = v; else log.warning('ignored duplicate body field');
    } else if (generic) generic.body = v;
  }
  return finish(uri, log);
}

/** smtp_address_equals: the local part compared exactly, the domain case-insensitively. */
function addressKey(a: string): string {
  const at = a.lastIndexOf('@');
  return at < 0 ? a : a.slice(0, at) + '@' + a.slice(at + 1).toLowerCase();
}

function finish(uri: MailtoUri, log: UriLog): MailtoUri {
  if (!uri.recipients.length) log.warning('notification URI specifies no recipients');
  return uri;
}

function splitBytes(b: number[], sep: number): number[][] {
  const out: number[][] = [[]];
  for (const c of b) if (c === sep) out.push([]); else out[out.length - 1].push(c);
  return out;
}

/**
 * ext_enotify_option_parse: "<optionname>=<value>", the name
 * ALPHA/DIGIT then ALPHA/DIGIT/"."/"-"/"_", the value without CR/LF.
 * Returns the error text or null.
 */
export function optionError(option: string, nameOnly = false): string | null {
  if (option === '') return 'empty option specified';
  const m = /^(?:[A-Za-z0-9][A-Za-z0-9._-]*)?/.exec(option)!;
  if (option[m[0].length] !== '=' || m[0].length === 0) return `invalid option name specified in option '${sanitize(option, 80)}'`;
  if (!nameOnly && /[\r\n]/.test(option)) return `notify command: invalid option value specified in option '${sanitize(option, 80)}'`;
  return null;
}

/**
 * vmodf-encodeurl.c: every byte outside RFC 3986's unreserved set
 * (ALPHA / DIGIT / "-" / "." / "_" / "~") as %XX, upper-case hex.
 */
export function encodeUrl(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const unreserved = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e;
    out += unreserved ? String.fromCharCode(b) : '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

export interface NotifyAction { importance: number; message?: string; from?: string; uri: MailtoUri; method: string }

/**
 * act_notify_check_duplicate for mailto: the recipients an earlier notify
 * already has are dropped from the later one; a notify left with none is a
 * duplicate (true).
 */
export function dropDuplicateRecipients(later: NotifyAction, earlier: NotifyAction): boolean {
  const seen = new Set(earlier.uri.recipients.map((r) => addressKey(r.address)));
  later.uri.recipients = later.uri.recipients.filter((r) => !seen.has(addressKey(r.address)));
  return later.uri.recipients.length === 0;
}

/** rfc2822_header_write: a value with CR/LF folded, so it never starts a field of its own. */
function field(name: string, value: string): string {
  return `${name}: ${foldHeader(value)}\r\n`;
}
/** rfc2822_header_utf8_printf: a value with 8-bit characters as one RFC 2047 encoded word. */
function utf8Field(name: string, value: string): string {
  // eslint-disable-next-line no-control-regex
  return /^[\x00-\x7f]*$/.test(value) ? field(name, value) : field(name, `=?utf-8?b?${Buffer.from(value, 'utf8').toString('base64')}?=`);
}
/** rfc2822_header_field_name_sanitize: characters a field name can't hold become '_'. */
const sanitizeFieldName = (n: string) => n.replace(/[^\x21-\x39\x3b-\x7e]/g, '_');

/** Dovecot's str_sanitize (control characters as '?', at most max bytes with "..."). */
const strSanitize = sanitize;

let notifyCounter = 0;

/** Who the notification is from and for: ntfy_mailto_send's inputs the caller decides. */
export interface NotifyEnv {
  /** The recipient whose script runs (owner-email of Auto-Submitted). */
  owner: string;
  /** Envelope sender of the notification (null: <>). */
  envelopeFrom: string | null;
  /** `postmaster_address`, the From when nothing else applies. */
  postmaster: string;
  now?: Date;
  host?: string;
}

/**
 * The notification message as ntfy_mailto_send writes it: X-Sieve,
 * Message-ID, Date, Subject (:message, else the URI's subject, else
 * "Notification: <original subject>", at most 256 bytes), From (:from, else
 * <owner>), To/Cc, Auto-Submitted: auto-notified; owner-email="...",
 * Precedence: bulk, X-Priority/Importance, the URI's header fields, and the
 * URI's body or "Notification of new message.".
 */
export function composeNotification(n: NotifyAction, msg: ParsedMessage, env: NotifyEnv): { message: Buffer; envelopeFrom: string; recipients: string[] } {
  const now = env.now ?? new Date();
  const host = env.host ?? hostname();
  let subject: string;
  if (n.message !== undefined) subject = strSanitize(n.message, MAILTO_MAX_SUBJECT);
  else if (n.uri.subject !== undefined) subject = n.uri.subject;
  else {
    const s = msg.headers.find((h) => h.name === 'subject')?.value;
    subject = s !== undefined ? strSanitize(`Notification: ${s}`, MAILTO_MAX_SUBJECT) : 'Notification: (no subject)';
  }
  const from = n.from ?? `<${env.owner}>`;
  const to = n.uri.recipients.filter((r) => !r.cc).map((r) => r.full);
  const cc = n.uri.recipients.filter((r) => r.cc).map((r) => r.full);
  const prio = n.importance === 1 ? ['1 (Highest)', 'High'] : n.importance === 3 ? ['5 (Lowest)', 'Low'] : ['3 (Normal)', 'Normal'];
  let text = field('X-Sieve', 'Sealmail Sieve')
    + field('Message-ID', `<dovecot-sieve-${Math.floor(now.getTime() / 1000)}-${process.pid}-${notifyCounter++}@${host}>`)
    + field('Date', now.toUTCString().replace('GMT', '+0000').replace(/^(\w+), 0/, '$1, '))
    + utf8Field('Subject', subject)
    + field('From', from)
    + (to.length ? field('To', to.join(', ')) : '')
    + (cc.length ? field('Cc', cc.join(', ')) : '')
    + field('Auto-Submitted', `auto-notified; owner-email="${env.owner}"`)
    + field('Precedence', 'bulk')
    + field('X-Priority', prio[0]) + field('Importance', prio[1]);
  for (const h of n.uri.headers) text += field(sanitizeFieldName(h.name), h.body);
  text += field('MIME-Version', '1.0');
  if (n.uri.body !== undefined) {
    // eslint-disable-next-line no-control-regex
    const eight = /[^\x00-\x7f]/.test(n.uri.body);
    text += field('Content-Type', `text/plain; charset=${eight ? 'utf-8' : 'us-ascii'}`) + field('Content-Transfer-Encoding', eight ? '8bit' : '7bit');
    text += `\r\n${n.uri.body}\r\n`;
  } else {
    text += field('Content-Type', 'text/plain; charset=US-ASCII') + field('Content-Transfer-Encoding', '7bit') + '\r\nNotification of new message.\r\n';
  }
  return { message: Buffer.from(text, 'utf8'), envelopeFrom: env.envelopeFrom ?? '', recipients: n.uri.recipients.map((r) => r.address) };
}

/** ntfy_mailto_action_execute: no notification for a message whose Auto-Submitted is anything but "no". */
export function autoSubmitted(msg: ParsedMessage): boolean {
  return msg.headers.some((h) => h.name === 'auto-submitted' && h.value.trim().toLowerCase() !== 'no');
}

/** The log text's recipient list: the first three, then "... (N total)". */
export function recipientSummary(rcpts: string[]): string {
  const shown = rcpts.slice(0, 3).map((r) => `<${r}>`).join(', ');
  return rcpts.length > 3 ? `${shown}, ... (${rcpts.length} total)` : shown;
}
