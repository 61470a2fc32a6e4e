/**
 * SORT (RFC 5256 §3, RFC 5957 DISPLAYFROM/DISPLAYTO) over messages' cached
 * header values, as Dovecot's index-sort does it: every key compares in its
 * own direction (REVERSE applies to the key it precedes), ties fall through
 * to the next key and finally to the sequence number. DATE is the Date:
 * field in UTC seconds, INTERNALDATE when missing or unparseable; FROM/TO/CC
 * compare the first address's mailbox (local part), DISPLAY* the decoded
 * display name or else mailbox@host; strings compare in i;unicode-casemap
 * form by code point. Pure functions: the caller loads the headers.
 */
import { parseAddressList } from './mime/rfc822-tokens.js';
import { baseSubject, casemap, compareCodepoints } from './base-subject.js';
import { decodeWords, parseMessageDate } from './message-headers.js';

/** The first value of each header SORT/THREAD read (null: no such field), unfolded. */
export interface SortHeaders {
  subject: string | null;
  from: string | null;
  to: string | null;
  cc: string | null;
  date: string | null;
  messageId: string | null;
  references: string | null;
  inReplyTo: string | null;
}

export const SORT_HEADER_NAMES: Record<keyof SortHeaders, string> = {
  subject: 'subject', from: 'from', to: 'to', cc: 'cc', date: 'date', messageId: 'message-id', references: 'references', inReplyTo: 'in-reply-to',
};

export interface SortMessage {
  seq: number;
  uid: number;
  /** INTERNALDATE, Unix seconds. */
  received: number;
  /** RFC822.SIZE. */
  size: number;
  h: SortHeaders;
  /** Derived sort values kept across commands (they depend only on the message). */
  memo?: Map<string, unknown>;
}

export type SortKey = 'ARRIVAL' | 'CC' | 'DATE' | 'FROM' | 'SIZE' | 'SUBJECT' | 'TO' | 'DISPLAYFROM' | 'DISPLAYTO' | 'X-SCORE';
export const SORT_KEYS: SortKey[] = ['ARRIVAL', 'CC', 'DATE', 'FROM', 'SIZE', 'SUBJECT', 'TO', 'X-SCORE', 'DISPLAYFROM', 'DISPLAYTO'];
export interface SortCriterion { key: SortKey; reverse: boolean }

/** Date: in Unix seconds, INTERNALDATE when the field is missing or unparseable (Dovecot's 0 date). */
export function sentDate(m: SortMessage): number {
  const d = m.h.date === null ? null : parseMessageDate(m.h.date);
  const t = d ? Math.floor(d.time / 1000) : 0;
  return t === 0 ? m.received : t;
}

/** The first address as Dovecot's parser gives it (placeholders for missing parts), after decoding encoded words. */
function firstAddress(v: string | null) {
  if (v === null) return null;
  return parseAddressList(decodeWords(v))[0] ?? null;
}

/** The string a string key compares (already in casemap form). */
export function sortString(m: SortMessage, key: SortKey): string {
  switch (key) {
    case 'SUBJECT': return m.h.subject === null ? '' : baseSubject(m.h.subject).subject;
    case 'FROM': case 'TO': case 'CC': {
      const a = firstAddress(key === 'FROM' ? m.h.from : key === 'TO' ? m.h.to : m.h.cc);
      return a ? casemap(a.mailbox ?? '') : '';
    }
    case 'DISPLAYFROM': case 'DISPLAYTO': {
      const a = firstAddress(key === 'DISPLAYFROM' ? m.h.from : m.h.to);
      if (!a) return '';
      if (a.name) return casemap(a.name);
      if (a.mailbox === null) return '';
      return casemap(a.domain !== null ? `${a.mailbox}@${a.domain}` : a.mailbox);
    }
    default: return '';
  }
}

/** A key's value for one message, remembered on the message (DATE and the strings cost parsing). */
export function sortValue(m: SortMessage, key: SortKey): string | number {
  if (key === 'ARRIVAL') return m.received;
  if (key === 'SIZE') return m.size;
  if (key === 'X-SCORE') return 0;
  const memo = (m.memo ??= new Map());
  let v = memo.get(key) as string | number | undefined;
  if (v === undefined) memo.set(key, (v = key === 'DATE' ? sentDate(m) : sortString(m, key)));
  return v;
}

/** Messages in the order the sort program gives (the input is not changed). */
export function sortMessages(msgs: SortMessage[], program: SortCriterion[]): SortMessage[] {
  // every key's values looked up once, then an index sort over plain arrays
  const cols = program.map((c) => {
    const v = msgs.map((m) => sortValue(m, c.key));
    // UTF-16 order is code point order unless a surrogate pair meets U+E000..U+FFFF
    const native = v.every((x) => typeof x === 'number' || !/[\uD800-\uDFFF]/.test(x));
    return { reverse: c.reverse, v, native };
  });
  const order = msgs.map((_, i) => i);
  order.sort((i, j) => {
    for (const c of cols) {
      const x = c.v[i];
      const y = c.v[j];
      const r = typeof x === 'number' || c.native ? (x < y ? -1 : x > y ? 1 : 0) : compareCodepoints(x, y as string);
      if (r !== 0) return c.reverse ? -r : r;
    }
    return msgs[i].seq - msgs[j].seq;
  });
  return order.map((i) => msgs[i]);
}
