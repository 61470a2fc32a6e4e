/**
 * Message search over the store (RFC 3501 §6.4.4 semantics, shared by IMAP
 * SEARCH and doveadm's search queries): a query tree and its evaluation
 * against one message at a time through a small view, so the caller decides
 * what to load — headers and bodies only when a key needs them. Text keys
 * are case-insensitive substring matches over RFC 2047-decoded headers and
 * bodies with their transfer encoding and charset undone (mime/decode.ts).
 */
import { decodeWords, headerValues, parseMessageDate } from './message-headers.js';
import { searchText } from './mime/decode.js';
import { casemap } from './unicode-casemap.js';
import { parseAddressList, writeAddressList } from './mime/rfc822-tokens.js';
import type { NameMatcher } from '../util/wildcard.js';

export type Query =
  | { k: 'all' }
  | { k: 'and' | 'or'; of: Query[] }
  | { k: 'not'; q: Query }
  | { k: 'mailbox'; mask: NameMatcher }
  | { k: 'mailbox-guid' | 'guid'; v: string }
  | { k: 'uid' | 'seq'; set: [number, number][] }
  | { k: 'flag'; flag: string; want: boolean }
  | { k: 'recent' | 'new' | 'old' }
  | { k: 'keyword'; v: string; want: boolean }
  /** `address`: FROM/TO/CC/BCC, matched against the parsed and rewritten address list (Dovecot's SEARCH_HEADER_ADDRESS). */
  | { k: 'header'; name: string; v: string; address?: boolean }
  | { k: 'body' | 'text'; v: string }
  | { k: 'larger' | 'smaller'; n: number }
  | { k: 'modseq'; n: number }
  | { k: 'date'; which: 'received' | 'saved' | 'sent'; cmp: 'before' | 'on' | 'since'; day: number }
  /** RFC 5032 OLDER/YOUNGER: INTERNALDATE before / at-or-after `time` (Unix seconds), no day rounding. */
  | { k: 'interval'; cmp: 'older' | 'younger'; time: number };

export class QueryError extends Error {}

export interface MessageView {
  mailbox: string;
  mailboxGuid: string;
  uid: number;
  seq: number;
  guid: string;
  flags: Set<string>;
  keywords: string[];
  recent: boolean;
  /** RFC 7162 MODSEQ (IMAP SEARCH MODSEQ). */
  modseq?: number;
  vsize(): Promise<number>;
  received(): Promise<Date>;
  saved(): Promise<Date>;
  /** Plaintext message. */
  text(): Promise<Buffer>;
}

/**
 * Can the query match anything in this mailbox? false = skip it without
 * opening, true/null = open it (null: depends on other keys).
 */
export function mailboxMatches(q: Query, name: string, guid: string): boolean | null {
  switch (q.k) {
    case 'mailbox': return q.mask.test(name);
    case 'mailbox-guid': return q.v === guid;
    case 'and': {
      let any: boolean | null = null;
      for (const s of q.of) { const r = mailboxMatches(s, name, guid); if (r === false) return false; if (r) any = true; }
      return any;
    }
    case 'or': {
      const rs = q.of.map((s) => mailboxMatches(s, name, guid));
      if (rs.every((r) => r === false)) return false;
      return rs.some((r) => r === null) ? null : true;
    }
    case 'not': { const r = mailboxMatches(q.q, name, guid); return r === null ? null : !r; }
    default: return null;
  }
}

/** Keywords compare case-insensitively (ASCII atoms). */
const fold = (s: string) => s.toLowerCase();

function dayOf(ms: number): number {
  const d = new Date(ms);
  return Date.UTC(d.getFullYear(), d.getMonth(), d.getDate());
}

export async function matches(q: Query, m: MessageView): Promise<boolean> {
  switch (q.k) {
    case 'all': return true;
    case 'and': for (const s of q.of) if (!(await matches(s, m))) return false; return true;
    case 'or': for (const s of q.of) if (await matches(s, m)) return true; return false;
    case 'not': return !(await matches(q.q, m));
    case 'mailbox': return q.mask.test(m.mailbox);
    case 'mailbox-guid': return q.v === m.mailboxGuid;
    case 'guid': return q.v === m.guid;
    case 'uid': return q.set.some(([a, b]) => m.uid >= a && m.uid <= b);
    case 'modseq': return (m.modseq ?? 0) >= q.n;
    case 'seq': return q.set.some(([a, b]) => m.seq >= a && m.seq <= b);
    case 'flag': return m.flags.has(q.flag) === q.want;
    case 'recent': return m.recent;
    case 'new': return m.recent && !m.flags.has('\\Seen');
    case 'old': return !m.recent;
    case 'keyword': return m.keywords.some((k) => fold(k) === fold(q.v)) === q.want;
    case 'larger': return (await m.vsize()) > q.n;
    case 'smaller': return (await m.vsize()) < q.n;
    case 'header': {
      const vals = headerValues(await m.text(), q.name);
      if (!vals.length) return false;
      // the address list as Dovecot writes it back (comments and spacing inside addresses gone), encoded words decoded after
      if (q.address && q.v !== '') return vals.some((v) => casemap(decodeWords(writeAddressList(parseAddressList(v)))).includes(casemap(q.v)));
      // whitespace runs (folding included) count as one space, as Dovecot compares header values
      return vals.some((v) => casemap(decodeWords(v.replace(/[ \t\r\n]+/g, ' '))).includes(casemap(q.v)));
    }
    case 'body':
    case 'text': {
      return casemap(searchText(await m.text(), q.k === 'text')).includes(casemap(q.v));
    }
    case 'interval': {
      const secs = Math.floor((await m.received()).getTime() / 1000);
      return q.cmp === 'older' ? secs < q.time : secs >= q.time;
    }
    case 'date': {
      let ms: number;
      if (q.which === 'sent') {
        const d = parseMessageDate(headerValues(await m.text(), 'date')[0] ?? '');
        ms = d ? d.time + d.tz * 60_000 : 0;
        ms = Date.UTC(new Date(ms).getUTCFullYear(), new Date(ms).getUTCMonth(), new Date(ms).getUTCDate());
      } else ms = dayOf((q.which === 'received' ? await m.received() : await m.saved()).getTime());
      return q.cmp === 'before' ? ms < q.day : q.cmp === 'on' ? ms === q.day : ms >= q.day;
    }
  }
}
