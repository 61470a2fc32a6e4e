/**
 * `sealadm fetch [-u USER | -A] <fields> <search query>` = doveadm-fetch(1):
 * the same field names, the same mailbox order (the folder list's order,
 * INBOX where Maildir++ readdir puts it), the same formatter quirks for
 * streamed fields (hdr, body, text) and the same errors and exit codes.
 * Differences (dovecot-compat.md): `flags` shows \Recent by Sealmail's rule
 * (a message not yet taken by a read-write SELECT of ours, or in new/),
 * `modseq` is Sealmail's counter; imap.* and body.snippet/preview, pop3.*,
 * body.<section>/binary.<section> are refused with a clear error until the
 * MIME layer provides them.
 */
import { headerEnd, headerValues, parseMessageDate } from '../../mailstore/message-headers.js';
import { getopt } from '../args.js';
import { CommandError, EX_TEMPFAIL, UsageError, type CliCommand, type CommandContext } from '../command.js';
import type { Header } from '../printer.js';
import { parseQuery, QueryError } from '../search-query.js';
import { forEachMatch } from '../message-iter.js';
import { listUsers } from './mailbox.js';

/** doveadm's list, printed as is when a field is unknown. */
const AVAILABLE = 'hdr.<name> body.<section> binary.<section> user mailbox mailbox-guid seq uid guid flags modseq hdr body body.preview body.snippet text text.utf8 size.physical size.virtual date.received date.sent date.saved date.received.unixtime date.sent.unixtime date.saved.unixtime imap.envelope imap.body imap.bodystructure pop3.uidl pop3.order refcount storageid';
const SUPPORTED = new Set(['user', 'mailbox', 'mailbox-guid', 'seq', 'uid', 'guid', 'flags', 'modseq', 'hdr', 'body', 'text', 'text.utf8',
  'size.physical', 'size.virtual', 'date.received', 'date.sent', 'date.saved', 'date.received.unixtime', 'date.sent.unixtime', 'date.saved.unixtime']);
const KNOWN_LATER = new Set(['body.preview', 'body.snippet', 'imap.envelope', 'imap.body', 'imap.bodystructure', 'pop3.uidl', 'pop3.order', 'refcount', 'storageid']);
const STREAMED = new Set(['hdr', 'body', 'text', 'text.utf8']);
const FLAG_ORDER = ['\\Answered', '\\Flagged', '\\Deleted', '\\Seen', '\\Draft'];

const pad = (n: number) => String(n).padStart(2, '0');
/** doveadm prints received/saved dates in local time. */
function localStamp(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
/** date.sent: the UTC clock followed by the sender's zone — Dovecot 2.3's exact output. */
function sentStamp(time: number, tz: number): string {
  const d = new Date(time);
  const z = `${tz < 0 ? '-' : '+'}${pad(Math.floor(Math.abs(tz) / 60))}${pad(Math.abs(tz) % 60)}`;
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} (${z})`;
}

function parseFields(spec: string): string[] {
  const fields = spec.split(/[\s]+/).filter(Boolean);
  for (const f of fields) {
    const low = f.toLowerCase();
    if (SUPPORTED.has(low) || /^hdr\.[^\s]+$/.test(low)) continue;
    if (KNOWN_LATER.has(low) || /^(body|binary)\.[^\s]+$/.test(low)) {
      throw new CommandError(`Fatal: fetch field ${f} is not supported by sealadm yet (dovecot-compat.md)`, EX_TEMPFAIL);
    }
    throw new CommandError(`Available fetch fields: ${AVAILABLE}\nFatal: Unknown fetch field: ${f}`, EX_TEMPFAIL);
  }
  return fields.map((f) => f.toLowerCase());
}

async function fetchUser(ctx: CommandContext, user: string, fields: string[], queryArgs: string[], print: (v: string | Buffer) => void): Promise<void> {
  // MODSEQs are ours (sealmail.modseq, kept up to date by the sync; Dovecot's live in its index)
  await forEachMatch(ctx, user, queryArgs, async ({ name, folder, m, seq, text: getText, stat: getStat }) => {
    for (const f of fields) {
      switch (f) {
        case 'user': print(user); break;
        case 'mailbox': print(name); break;
        case 'mailbox-guid': print(folder.guid); break;
        case 'seq': print(String(seq)); break;
        case 'uid': print(String(m.uid)); break;
        case 'guid': print(m.base); break;
        case 'flags': print([...FLAG_ORDER.filter((x) => m.flags.has(x as never)), ...(m.recent ? ['\\Recent'] : []), ...m.keywords].join(' ')); break;
        case 'modseq': print(String(m.modseq || 1)); break;
        case 'size.physical': print(String(m.size ?? (await getStat()).size)); break;
        case 'size.virtual': print(String(await folder.virtualSize(m))); break;
        case 'date.received': print(localStamp((await getStat()).mtime)); break;
        case 'date.saved': print(localStamp(await folder.saveDate(m))); break;
        case 'date.received.unixtime': print(String(Math.floor((await getStat()).mtime.getTime() / 1000))); break;
        case 'date.saved.unixtime': print(String(Math.floor((await folder.saveDate(m)).getTime() / 1000))); break;
        case 'date.sent':
        case 'date.sent.unixtime': {
          const d = parseMessageDate(headerValues(await getText(), 'date')[0] ?? '') ?? { time: 0, tz: 0 };
          print(f === 'date.sent' ? sentStamp(d.time, d.tz) : String(Math.floor(d.time / 1000)));
          break;
        }
        case 'hdr': { const t = await getText(); print(t.subarray(0, headerEnd(t))); break; }
        case 'body': { const t = await getText(); print(t.subarray(headerEnd(t))); break; }
        case 'text': case 'text.utf8': print(await getText()); break;
        default: print(headerValues(await getText(), f.slice(4)).join('\n'));
      }
    }
  });
}

export const fetchCommand: CliCommand = {
  async run(ctx) {
    const { opts, rest } = getopt(ctx.args, 'u:AS:F:');
    if (rest.length < 2 || (!opts.has('u') && !opts.has('A'))) throw new UsageError('doveadm fetch [-u <user>|-A] [-S <socket_path>] <fields> <search query>');
    const fields = parseFields(rest[0]);
    try { parseQuery(rest.slice(1)); } catch (e) {
      if (e instanceof QueryError) throw new CommandError(`Fatal: ${e.message}`, EX_TEMPFAIL);
      throw e;
    }
    const p = ctx.printer('pager');
    for (const f of fields) {
      const h: Header = { key: f };
      if (STREAMED.has(f)) h.stream = true;
      p.header(h);
    }
    const users = opts.has('A') ? await listUsers(ctx) : [opts.get('u') as string];
    for (const user of users) await fetchUser(ctx, user, fields, rest.slice(1), (v) => p.value(v));
    p.flush();
    return 0;
  },
};
