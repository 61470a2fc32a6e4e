/**
 * Vacation responses (RFC 5230) as Pigeonhole sends them: the checks that
 * suppress a reply (empty or MAILER-DAEMON-like sender, Auto-Submitted,
 * Precedence bulk/list/junk, List-* headers, the user not in To/Cc/Bcc), the
 * per-sender/handle duplicate tracking for :days, and the reply message
 * itself (Auto-Submitted: auto-replied, In-Reply-To/References, "Auto: "
 * subject). Pigeonhole keeps its tracking in the lda-dupes file, keyed by
 * a hash of the lower-cased sender and the handle (act_vacation_hash);
 * Sealmail keeps its own JSON file beside it (`~/.sealmail-sieve-dupes.json`)
 * keyed the same way with SHA-256, so the file names no correspondent, mode
 * 0600 and owned by the owner of the home directory (the mail user) even when
 * the server writes it as root.
 */
import { promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
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

/** The tracking key: Pigeonhole's act_vacation_hash input (lower-cased sender, then the handle), SHA-256 in hex. */
export function vacationKey(handle: string, sender: string): string {
  return createHash('sha256').update(sender.toLowerCase()).update(handle).digest('hex');
}
const HASHED = /^[0-9a-f]{64}$/;

/** True (and remembers it) when no reply went to this sender for this handle within the period. */
export async function vacationDue(home: string, v: Vacation, sender: string, now = Date.now()): Promise<boolean> {
  const path = join(home, DUPES_FILE);
  let db: Record<string, number> = {};
  try { db = JSON.parse(await fs.readFile(path, 'utf8')) as Record<string, number>; } catch { /* first use or damaged: start over */ }
  for (const [k, exp] of Object.entries(db)) {
    if (exp <= now) { delete db[k]; continue; }
    // entries of earlier versions were `handle\0sender` in plain text: hashed in place, nothing forgotten
    if (!HASHED.test(k)) { delete db[k]; const z = k.indexOf('\0'); if (z >= 0) db[vacationKey(k.slice(0, z), k.slice(z + 1))] = exp; }
  }
  const key = vacationKey(v.handle, sender);
  if (db[key]) return false;
  db[key] = now + v.seconds * 1000;
  const tmp = `${path}.${process.pid}.tmp`;
  await fs.writeFile(tmp, JSON.stringify(db), { mode: 0o600 });
  await fs.chmod(tmp, 0o600); // an umask-independent mode, also when tmp was left over
  if (process.getuid?.() === 0) {
    const st = await fs.stat(home);
    await fs.chown(tmp, st.uid, st.gid);
  }
  await fs.rename(tmp, path);
  return true;
}

/**
 * A header field body as rfc2822_header_append writes it: a CR/LF run (with
 * the blanks around it) becomes a fold, CRLF + TAB, so a value from a
 * script can never start a header field of its own.
 */
export function foldHeader(value: string): string {
  // a scan, not a regular expression: a long run of blanks must not cost quadratic time
  let out = '';
  for (let i = 0; i < value.length;) {
    const c = value[i];
    if (c !== '\r' && c !== '\n') { out += c; i++; continue; }
    let j = i;
    while (j < value.length && ' \t\r\n'.includes(value[j])) j++;
    let k = out.length;
    while (k > 0 && (out[k - 1] === ' ' || out[k - 1] === '\t')) k--;
    out = out.slice(0, k);
    if (j < value.length) out += '\r\n\t';
    i = j;
  }
  return out;
}

/**
 * `Name <addr>` or `<addr>` of a From header body, as /^\s*(.*?)\s*<([^>]+)>\s*$/
 * would split it, without the quadratic cost that regex has on a sender's
 * long header.
 */
function splitNamed(v: string): [string, string] | null {
  const s = v.trimEnd();
  if (!s.endsWith('>')) return null;
  const body = s.slice(0, -1);
  const lt = body.indexOf('<', body.lastIndexOf('>') + 1);
  if (lt < 0 || lt === body.length - 1) return null;
  return [body.slice(0, lt).trim(), body.slice(lt + 1)];
}

/**
 * str_sanitize_utf8(subject, sieve_vacation_max_subject_codepoints = 256):
 * control characters as U+FFFD, cut to 256 code points with the last one
 * replaced by U+2026.
 */
const sanitizeSubject = (s: string) => {
  // eslint-disable-next-line no-control-regex
  const cps = [...s.replace(/[\x00-\x1f]/g, '\ufffd')];
  return cps.length <= MAX_SUBJECT_CODEPOINTS ? cps.join('') : cps.slice(0, MAX_SUBJECT_CODEPOINTS - 1).join('') + '\u2026';
};
const MAX_SUBJECT_CODEPOINTS = 256;

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
  const from = foldHeader(v.from ?? `<${env.to}>`);
  const subject = sanitizeSubject(v.subject ?? `Auto: ${h('subject') ?? ''}`);
  const msgid = h('message-id');
  const refs = [h('references'), msgid].filter(Boolean).join(' ');
  const origFrom = h('from');
  // Pigeonhole rewrites the address it replies to: `Name <addr>` or `<addr>`
  const nm = splitNamed(origFrom ?? '');
  const named = nm ? [undefined, nm[0], nm[1]] as const : null;
  const to = origFrom && parseAddresses(origFrom).some((a) => a.toLowerCase() === env.from.toLowerCase())
    ? (named?.[1] ? `${named[1]} <${named[2]}>` : `<${named?.[2] ?? parseAddresses(origFrom)[0]}>`) : `<${env.from}>`;
  const lines = [
    `X-Sieve: Sealmail Sieve`,
    `Message-ID: <dovecot-sieve-${Math.floor(now.getTime() / 1000)}-${process.pid}-${replyCounter++}@${host}>`,
    `Date: ${now.toUTCString().replace('GMT', '+0000').replace(/^(\w+), 0/, '$1, ')}`,
    `From: ${from}`,
    `To: ${foldHeader(to)}`,
    `Subject: ${encodeHeader(subject)}`,
    ...(msgid ? [`In-Reply-To: ${foldHeader(msgid)}`] : []),
    ...(refs ? [`References: ${foldHeader(refs)}`] : []),
    `Auto-Submitted: auto-replied (vacation)`,
    `Precedence: bulk`,
    `X-Auto-Response-Suppress: All`,
    `MIME-Version: 1.0`,
  ];
  if (!v.mime) lines.push('Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit');
  const body = v.reason.replace(/\r?\n/g, '\r\n');
  return Buffer.from(lines.join('\r\n') + '\r\n' + (v.mime ? '' : '\r\n') + body + (body.endsWith('\r\n') ? '' : '\r\n'), 'utf8');
}
