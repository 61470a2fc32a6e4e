/**
 * Vacation responses (RFC 5230) as Pigeonhole sends them: the checks that
 * suppress a reply (empty or MAILER-DAEMON-like sender, Auto-Submitted,
 * Precedence bulk/list/junk, List-* headers, the user not in To/Cc/Bcc), the
 * per-sender/handle duplicate tracking for :days, and the reply message
 * itself (Auto-Submitted: auto-replied, In-Reply-To/References, "Auto: "
 * subject). Pigeonhole keeps its tracking in the lda-dupes file; Sealmail
 * keeps its own JSON file beside it (`~/.sealmail-sieve-dupes.json`).
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { parseAddresses, type ParsedMessage } from './message.js';
import type { SieveAction, SieveEnvelope } from './interpreter.js';

type Vacation = Extract<SieveAction, { type: 'vacation' }>;

export const DUPES_FILE = '.sealmail-sieve-dupes.json';

/** Why no reply is sent, or null when one should be. */
export function vacationSuppressed(v: Vacation, msg: ParsedMessage, env: SieveEnvelope): string | null {
  const sender = env.from.toLowerCase();
  if (!sender || sender === '<>') return 'envelope sender is <>';
  const local = sender.split('@')[0];
  if (['mailer-daemon', 'listserv', 'majordomo', 'postmaster'].includes(local) || local.startsWith('owner-') || local.endsWith('-request'))
    return `sender ${env.from} is a system address`;
  const h = (n: string) => msg.headers.filter((x) => x.name === n).map((x) => x.value);
  const auto = h('auto-submitted')[0];
  if (auto && auto.toLowerCase() !== 'no') return 'message is auto-submitted';
  const prec = (h('precedence')[0] ?? '').toLowerCase();
  if (['bulk', 'list', 'junk'].includes(prec)) return `precedence ${prec}`;
  if (msg.headers.some((x) => x.name.startsWith('list-'))) return 'message is from a mailing list';
  const mine = [env.to, env.origTo ?? '', ...v.addresses].filter(Boolean).map((a) => a.toLowerCase());
  const rcpts = ['to', 'cc', 'bcc', 'resent-to', 'resent-cc'].flatMap((n) => h(n).flatMap(parseAddresses)).map((a) => a.toLowerCase());
  if (!rcpts.some((r) => mine.includes(r))) return 'user is not a recipient in the To/Cc headers';
  return null;
}

/** True (and remembers it) when no reply went to this sender for this handle within the period. */
export async function vacationDue(home: string, v: Vacation, sender: string, now = Date.now()): Promise<boolean> {
  const path = join(home, DUPES_FILE);
  let db: Record<string, number> = {};
  try { db = JSON.parse(await fs.readFile(path, 'utf8')) as Record<string, number>; } catch { /* first use or damaged: start over */ }
  for (const [k, exp] of Object.entries(db)) if (exp <= now) delete db[k];
  const key = `${v.handle}\0${sender.toLowerCase()}`;
  if (db[key]) return false;
  db[key] = now + v.seconds * 1000;
  const tmp = `${path}.${process.pid}.tmp`;
  await fs.writeFile(tmp, JSON.stringify(db));
  await fs.rename(tmp, path);
  return true;
}

function encodeHeader(s: string): string {
  // eslint-disable-next-line no-control-regex
  return /^[\x20-\x7e]*$/.test(s) ? s : `=?utf-8?b?${Buffer.from(s, 'utf8').toString('base64')}?=`;
}

let replyCounter = 0;

/**
 * The reply as Pigeonhole 0.5 writes it (checked with dovecot-lda and a
 * recording sendmail): From the recipient in <>, To the original From when
 * it names the envelope sender, Message-ID `dovecot-sieve-<time>-<n>@host`,
 * In-Reply-To/References, Auto-Submitted, Precedence bulk and
 * X-Auto-Response-Suppress. Sent with envelope sender <> (the caller's job).
 */
export function composeVacation(v: Vacation, msg: ParsedMessage, env: SieveEnvelope, now = new Date(), host = hostname()): Buffer {
  const h = (n: string) => msg.headers.find((x) => x.name === n)?.value;
  const from = v.from ?? `<${env.to}>`;
  const subject = v.subject ?? `Auto: ${h('subject') ?? ''}`;
  const msgid = h('message-id');
  const refs = [h('references'), msgid].filter(Boolean).join(' ');
  const origFrom = h('from');
  // Pigeonhole rewrites the address it replies to: `Name <addr>` or `<addr>`
  const named = /^\s*(.*?)\s*<([^>]+)>\s*$/.exec(origFrom ?? '');
  const to = origFrom && parseAddresses(origFrom).some((a) => a.toLowerCase() === env.from.toLowerCase())
    ? (named?.[1] ? `${named[1]} <${named[2]}>` : `<${named?.[2] ?? parseAddresses(origFrom)[0]}>`) : `<${env.from}>`;
  const lines = [
    `X-Sieve: Sealmail Sieve`,
    `Message-ID: <dovecot-sieve-${Math.floor(now.getTime() / 1000)}-${process.pid}-${replyCounter++}@${host}>`,
    `Date: ${now.toUTCString().replace('GMT', '+0000').replace(/^(\w+), 0/, '$1, ')}`,
    `From: ${from}`,
    `To: ${to}`,
    `Subject: ${encodeHeader(subject)}`,
    ...(msgid ? [`In-Reply-To: ${msgid}`] : []),
    ...(refs ? [`References: ${refs}`] : []),
    `Auto-Submitted: auto-replied (vacation)`,
    `Precedence: bulk`,
    `X-Auto-Response-Suppress: All`,
    `MIME-Version: 1.0`,
  ];
  if (!v.mime) lines.push('Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit');
  const body = v.reason.replace(/\r?\n/g, '\r\n');
  return Buffer.from(lines.join('\r\n') + '\r\n' + (v.mime ? '' : '\r\n') + body + (body.endsWith('\r\n') ? '' : '\r\n'), 'utf8');
}
