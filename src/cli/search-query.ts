/**
 * doveadm's search query language (doveadm-search-query(7)), shared by the
 * sealadm commands that take `<search query>`: IMAP SEARCH keys given as
 * separate arguments, implicit AND, infix OR, NOT, parentheses as their own
 * arguments, plus doveadm's `mailbox`, `mailbox-guid` and `guid` keys.
 * Error texts are doveadm's ("Unknown argument X", "Use parenthesis when
 * mixing ANDs and ORs"). Evaluation is per message over a small view so the
 * command decides what to load (headers/bodies only when a key needs them).
 */
import type { Query } from '../mailstore/search.js';
export { matches, mailboxMatches, QueryError, type MessageView, type Query } from '../mailstore/search.js';
import { QueryError } from '../mailstore/search.js';
import { imapPattern, type NameMatcher } from '../util/wildcard.js';
import { parseTime } from '../config/values.js';

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

/** A mailbox mask: `*` and `%` wildcards, case-sensitive except INBOX (doveadm), matched in linear time. */
export function mailboxMask(mask: string): NameMatcher {
  // doveadm shows names with either separator in its masks: `%` stops at both
  return imapPattern(mask, './');
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

/** A day as UTC midnight ms: YYYY-MM-DD, IMAP's d-Mon-yyyy, a UNIX time, or an interval back from now. */
function parseDay(s: string): number {
  let m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (m) return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  m = /^(\d{1,2})-([A-Za-z]{3})-(\d{4})$/.exec(s);
  if (m && IMAP_MONTHS.includes(m[2].toLowerCase())) return Date.UTC(Number(m[3]), IMAP_MONTHS.indexOf(m[2].toLowerCase()), Number(m[1]));
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  // an interval back from now (`30d`, `2w`, `12 hours`), as mail_parse_human_timestamp's settings_get_time
  const back = parseTime(s, false);
  if (typeof back === 'number') return Math.floor((Date.now() - back) / 1000) * 1000;
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
    // FROM/TO/CC/BCC match the parsed addresses, as in Dovecot (SEARCH_HEADER_ADDRESS)
    if (HEADER_KEYS.has(u)) return { k: 'header', name: u.toLowerCase(), v: next(), ...(u === 'SUBJECT' ? {} : { address: true }) };
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

