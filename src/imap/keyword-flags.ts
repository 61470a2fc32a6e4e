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
import type { Session } from './session.js';

/** The untagged FLAGS and OK [PERMANENTFLAGS] lines for a keyword list (SELECT sends them too). */
export async function sendFlagLines(s: Session, keywords: string[], readOnly: boolean): Promise<void> {
  await s.untagged([atom('FLAGS'), list([...SYSTEM_FLAGS, ...keywords].map(atom))]);
  await s.send({ kind: 'status', status: 'OK', code: { name: 'PERMANENTFLAGS', args: [list(readOnly ? [] : [...SYSTEM_FLAGS, ...keywords, '\\*'].map(atom))] }, text: readOnly ? 'Read-only mailbox.' : 'Flags permitted.' });
}

/** Add keywords the client has not been told about; announce the list when it grew. */
export async function announceKeywords(s: Session, sel: Selected, names: string[]): Promise<void> {
  const known = new Set(sel.keywordsAnnounced.map((k) => k.toLowerCase()));
  const added = names.filter((n) => !known.has(n.toLowerCase()) && (known.add(n.toLowerCase()), true));
  if (!added.length) return;
  sel.keywordsAnnounced.push(...added);
  await sendFlagLines(s, sel.keywordsAnnounced, sel.readOnly);
}
