/**
 * The FLAGS / PERMANENTFLAGS a client was told for the selected mailbox
 * (RFC 3501 §7.2.6, §7.1): Dovecot's keyword list only grows during a
 * session, and when a command makes it grow — STORE of a keyword the
 * mailbox never had, or SEARCH KEYWORD naming one — Dovecot announces the
 * new list in an untagged FLAGS and OK [PERMANENTFLAGS] before its other
 * replies.
 */
import { atom, list } from './wire/encoder.js';
import type { Selected } from './selected.js';
import { SYSTEM_FLAGS } from '../mailstore/api/flags.js';
import type { MailMessage } from '../mailstore/api/mailbox.js';
import type { Session } from './session.js';

/** The untagged FLAGS and OK [PERMANENTFLAGS] lines for a keyword list (SELECT sends them too). */
export async function sendFlagLines(s: Session, keywords: string[], readOnly: boolean): Promise<void> {
  await s.untagged([atom('FLAGS'), list([...SYSTEM_FLAGS, ...keywords].map(atom))]);
  await s.send({ kind: 'status', status: 'OK', code: { name: 'PERMANENTFLAGS', args: [list(readOnly ? [] : [...SYSTEM_FLAGS, ...keywords, '\\*'].map(atom))] }, text: readOnly ? 'Read-only mailbox.' : 'Flags permitted.' });
}

/**
 * Before flags go out (a sync's updates, FETCH, STORE replies): keywords the
 * mailbox has now, or that `names` carry, which the client was not told of
 * yet — set by another session, process or Dovecot — are announced first,
 * as Dovecot's client_send_mailbox_flags does at every sync and before any
 * FETCH line with keywords (RFC 3501 §7.2.6: a client learns of a flag from
 * FLAGS before it sees it on a message). The list only grows, so it never
 * drops a keyword still set on a message.
 */
export async function announceMailboxKeywords(s: Session, sel: Selected, names: Iterable<string> = []): Promise<void> {
  await announceKeywords(s, sel, [...sel.folder.keywordOrder, ...names]);
}

/**
 * A message's flags as they go out now, their keywords announced first when
 * the client was not told of them. Taken once: the folder handle is shared,
 * and another session's sync during the announcement may change the message.
 */
export async function announcedFlags(s: Session, sel: Selected, m: MailMessage): Promise<string[]> {
  const flags = sel.flagsOf(m);
  const kws = keywordsIn([flags]);
  if (sel.unannounced(kws)) await announceMailboxKeywords(s, sel, kws);
  return flags;
}

/** Keywords (not system flags) of flag lists. */
export function keywordsIn(flagLists: Iterable<string[]>): string[] {
  const out: string[] = [];
  for (const fl of flagLists) for (const f of fl) if (!f.startsWith('\\')) out.push(f);
  return out;
}

/** Add keywords the client has not been told about; announce the list when it grew. */
export async function announceKeywords(s: Session, sel: Selected, names: string[]): Promise<void> {
  const known = new Set(sel.keywordsAnnounced.map((k) => k.toLowerCase()));
  const added = names.filter((n) => !known.has(n.toLowerCase()) && (known.add(n.toLowerCase()), true));
  if (!added.length) return;
  sel.keywordsAnnounced.push(...added);
  await sendFlagLines(s, sel.keywordsAnnounced, sel.readOnly);
}
