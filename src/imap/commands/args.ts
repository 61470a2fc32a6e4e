/**
 * Reading command arguments the way Dovecot's imap commands do: astrings
 * (atom, quoted or literal), mailbox names (INBOX case-insensitive), flag
 * lists and sequence sets, with Dovecot's BAD texts for wrong shapes.
 */
import type { ImapArg } from '../wire/parser.js';
import { parseSequenceSet, type SequenceSet, SequenceSetError } from '../wire/sequence.js';

export class ArgError extends Error {}
/** An unknown CHARSET (SEARCH/SORT/THREAD): Dovecot answers NO [BADCHARSET] Unknown charset. */
export class BadCharsetError extends Error {}

/** An astring; NIL reads as the string "NIL" in the case it was sent (Dovecot's imap_arg_get_astring, RFC 3501 §4.5). */
export function astring(a: ImapArg | undefined): string | null {
  if (!a) return null;
  if (a.type === 'atom' || a.type === 'nil') return a.value;
  if (a.type === 'string') return a.value.toString('utf8');
  if (a.type === 'literal' && a.value) return a.value.toString('utf8');
  return null;
}

export function needAstring(a: ImapArg | undefined): string {
  const s = astring(a);
  if (s === null) throw new ArgError('Invalid arguments.');
  return s;
}

/** How a session reads mailbox names: as UTF-8 after ENABLE UTF8=ACCEPT (RFC 6855), else as sent (mUTF-7). */
export interface MailboxNames { mailboxIn(raw: string): string; readonly inboxSep?: string }

/** A mailbox argument: INBOX in any case means INBOX. */
export function mailboxArg(a: ImapArg | undefined, names?: MailboxNames): string {
  const raw = needAstring(a);
  const s = names ? names.mailboxIn(raw) : raw;
  return inboxCased(s, names?.inboxSep);
}

/** INBOX, and the INBOX of `inbox.child` (the inbox namespace's separator), in capitals as Dovecot names them (client_find_namespace_full). */
export function inboxCased(s: string, sep = '.'): string {
  return s.length >= 5 && s.slice(0, 5).toUpperCase() === 'INBOX' && (s.length === 5 || s[5] === sep) ? 'INBOX' + s.slice(5) : s;
}

export function flagList(a: ImapArg | undefined): string[] {
  if (!a) throw new ArgError('Invalid arguments.');
  const items = a.type === 'list' ? a.items : [a];
  return items.map((i) => {
    // a flag is read as an atom, and NIL is one there (imap_arg_get_atom): the keyword NIL
    if (i.type !== 'atom' && i.type !== 'nil') throw new ArgError('Invalid flags.');
    return i.value;
  });
}

export function seqSet(a: ImapArg | undefined, uid: boolean): SequenceSet {
  if (!a || a.type !== 'atom') throw new ArgError(uid ? 'Invalid uidset' : 'Invalid messageset');
  try {
    return parseSequenceSet(a.value);
  } catch (e) {
    if (e instanceof SequenceSetError) throw new ArgError(uid ? 'Invalid uidset' : 'Invalid messageset');
    throw e;
  }
}

/** An RFC 7162 mod-sequence value (1..2^63-1; 0 where the grammar allows it), or a BAD with `why`. */
export function modseqArg(a: ImapArg | undefined, why: string): number {
  const v = a?.type === 'atom' ? a.value : null;
  if (v === null || !/^\d{1,19}$/.test(v)) throw new ArgError(why);
  return Number(v);
}
