/**
 * doveadm's search query language (doveadm-search-query(7)), shared by the
 * sealadm commands that take `<search query>`: IMAP SEARCH keys given as
 * separate arguments, implicit AND, infix OR, NOT, parentheses as their own
 * arguments, plus doveadm's `mailbox`, `mailbox-guid` and `guid` keys.
 * Error texts are doveadm's ("Unknown argument X", "Use parenthesis when
 * mixing ANDs and ORs"). Evaluation is per message over a small view so the
 * command decides what to load (headers/bodies only when a key needs them).
 */
import { decodeWords, headerEnd, headerValues, parseMessageDate } from '../mailstore/message-headers.js';

export type Query =
  | { k: 'all' }
  | { k: 'and' | 'or'; of: Query[] }
  | { k: 'not'; q: Query }
  | { k: 'mailbox'; mask: RegExp }
  | { k: 'mailbox-guid' | 'guid'; v: string }
  | { k: 'uid' | 'seq'; set: [number, number][] }
  | { k: 'flag'; flag: string; want: boolean }
  | { k: 'recent' | 'new' | 'old' }
  | { k: 'keyword'; v: string; want: boolean }
  | { k: 'header'; name: string; v: string }
  | { k: 'body' | 'text'; v: string }
  | { k: 'larger' | 'smaller'; n: number }
  | { k: 'date'; which: 'received' | 'saved' | 'sent'; cmp: 'before' | 'on' | 'since'; day: number };

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
  vsize(): Promise<number>;
  received(): Promise<Date>;
  saved(): Promise<Date>;
  /** Plaintext message. */
  text(): Promise<Buffer>;
}

const FLAG_KEYS: Record<string, [string, boolean]> = {
  SEEN: ['\\Seen', true], UNSEEN: ['\\Seen', false], ANSWERED: ['\\Answered', true], UNANSWERED: ['\\Answered', false],
  DELETED: ['\\Deleted', true], UNDELETED: ['\\Deleted', false], FLAGGED: ['\\Flagged', true], UNFLAGGED: ['\\Flagged', false],
  DRAFT: ['\\Draft', true], UNDRAFT: ['\\Draft', false],
};
const HEADER_KEYS = new Set(['SUBJECT', 'FROM', 'TO', 'CC', 'BCC']);
const DATE_KEYS: Record<string, ['received' | 'saved' | 'sent', 'before' | 'on' | 'since']> = {
  BEFORE: ['received', 'before'], ON: ['received', 'on'], SINCE: ['received', 'since'],
  SAVEDBEFORE: ['saved', 'before'], SAVEDON: ['saved', 'on'], SAVEDSINCE: ['saved', 'since'],
  SENTBEFORE: ['sent', 'before'], SENTON: ['sent', 'on'], SENTSINCE: ['sent', 'since'],
};
const IMAP_MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/** A mailbox mask: `*` and `%` wildcards, case-sensitive except INBOX (doveadm). */
export function mailboxMask(mask: string): RegExp {
  const re = mask.split('').map((c) => (c === '*' ? '.*' : c === '%' ? '[^/.]*' : c.replace(/[\\^$.|?+()[\]{}]/g, '\\$&'))).join('');
  const inbox = /^inbox/i.test(mask) ? `(?:INBOX|${re.slice(0, 5)})${re.slice(5)}` : re;
  return new RegExp(`^${inbox}$`);
}

function parseSet(s: string, what: string): [number, number][] {
  const out: [number, number][] = [];
  for (const part of s.split(',')) {
    const m = /^(\d+|\*)(?::(\d+|\*))?$/.exec(part);
    if (!m) throw new QueryError(`Invalid ${what} set: ${s}`);
    const n = (x: string) => (x === '*' ? 0xffffffff : Number(x));
    const a = n(m[1]);
    const b = m[2] === undefined ? a : n(m[2]);
    out.push([Math.min(a, b), Math.max(a, b)]);
  }
  return out;
}

/** A day as UTC midnight ms: YYYY-MM-DD, IMAP's d-Mon-yyyy, or a UNIX time. */
function parseDay(s: string): number {
  let m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (m) return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  m = /^(\d{1,2})-([A-Za-z]{3})-(\d{4})$/.exec(s);
  if (m && IMAP_MONTHS.includes(m[2].toLowerCase())) return Date.UTC(Number(m[3]), IMAP_MONTHS.indexOf(m[2].toLowerCase()), Number(m[1]));
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  throw new QueryError(`Invalid search date parameter: ${s}`);
}

export function parseQuery(args: string[]): Query {
  let i = 0;
  const next = (): string => {
    if (i >= args.length) throw new QueryError('Missing argument');
    return args[i++];
  };
  const list = (inParens: boolean): Query => {
    const items: Query[] = [];
    let mode: 'and' | 'or' | null = null;
    while (i < args.length) {
      if (args[i] === ')') {
        if (!inParens) throw new QueryError('Unexpected )');
        break;
      }
      if (items.length && args[i].toUpperCase() === 'OR') {
        if (mode === 'and') throw new QueryError('Use parenthesis when mixing ANDs and ORs');
        mode = 'or';
        i++;
        items.push(key());
        continue;
      }
      if (items.length) {
        if (mode === 'or') throw new QueryError('Use parenthesis when mixing ANDs and ORs');
        mode = 'and';
      }
      items.push(key());
    }
    if (inParens) {
      if (args[i] !== ')') throw new QueryError('Missing )');
      i++;
    }
    if (!items.length) throw new QueryError('Empty search query');
    return items.length === 1 ? items[0] : { k: mode ?? 'and', of: items };
  };
  const key = (): Query => {
    const a = next();
    if (a === '(') return list(true);
    const u = a.toUpperCase();
    if (u === 'NOT') return { k: 'not', q: key() };
    if (u === 'ALL') return { k: 'all' };
    if (u === 'MAILBOX') return { k: 'mailbox', mask: mailboxMask(next()) };
    if (u === 'MAILBOX-GUID') return { k: 'mailbox-guid', v: next() };
    if (u === 'GUID') return { k: 'guid', v: next() };
    if (u === 'UID') return { k: 'uid', set: parseSet(next(), 'uid') };
    if (/^[\d*][\d*:,]*$/.test(a)) return { k: 'seq', set: parseSet(a, 'sequence') };
    if (FLAG_KEYS[u]) return { k: 'flag', flag: FLAG_KEYS[u][0], want: FLAG_KEYS[u][1] };
    if (u === 'RECENT' || u === 'NEW' || u === 'OLD') return { k: u.toLowerCase() as 'recent' | 'new' | 'old' };
    if (u === 'KEYWORD' || u === 'UNKEYWORD') return { k: 'keyword', v: next(), want: u === 'KEYWORD' };
    if (HEADER_KEYS.has(u)) return { k: 'header', name: u.toLowerCase(), v: next() };
    if (u === 'HEADER') { const name = next(); return { k: 'header', name: name.toLowerCase(), v: next() }; }
    if (u === 'BODY' || u === 'TEXT') return { k: u.toLowerCase() as 'body' | 'text', v: next() };
    if (u === 'LARGER' || u === 'SMALLER') {
      const n = next();
      if (!/^\d+$/.test(n)) throw new QueryError(`Invalid size: ${n}`);
      return { k: u.toLowerCase() as 'larger' | 'smaller', n: Number(n) };
    }
    if (DATE_KEYS[u]) return { k: 'date', which: DATE_KEYS[u][0], cmp: DATE_KEYS[u][1], day: parseDay(next()) };
    throw new QueryError(`Unknown argument ${u}`);
  };
  const q = list(false);
  return q;
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
      return vals.some((v) => fold(decodeWords(v.replace(/\n[ \t]*/g, ' '))).includes(fold(q.v)));
    }
    case 'body':
    case 'text': {
      const t = await m.text();
      const part = q.k === 'body' ? t.subarray(headerEnd(t)) : t;
      return fold(decodeWords(part.toString('utf8'))).includes(fold(q.v));
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
