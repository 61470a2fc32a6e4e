/**
 * SEARCH and UID SEARCH (RFC 3501 §6.4.4, RFC 4731 ESEARCH): the IMAP search-key grammar
 * (prefix OR, NOT, parenthesised lists, sequence sets, CHARSET) parsed into
 * the store's query tree and evaluated message by message; bodies are read
 * only when a text key needs them.
 */
import { matches, type MessageView, type Query } from '../../mailstore/search.js';
import { MailStoreError } from '../../mailstore/errors.js';
import { atom, list, num, str, type ImapValue } from '../wire/encoder.js';
import type { ImapArg } from '../wire/parser.js';
import { formatSequenceSet, normalizeSequenceSet } from '../wire/sequence.js';
import { SELECTED, type Command, type CommandContext } from './types.js';
import type { MailMessage } from '../../mailstore/api/mailbox.js';
import { ArgError, BadCharsetError, astring, modseqArg, seqSet } from './args.js';
import { replyError } from './errors.js';
import { announceKeywords } from '../keyword-flags.js';

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const FLAGS: Record<string, [string, boolean]> = {
  ANSWERED: ['\\Answered', true], UNANSWERED: ['\\Answered', false], DELETED: ['\\Deleted', true], UNDELETED: ['\\Deleted', false],
  FLAGGED: ['\\Flagged', true], UNFLAGGED: ['\\Flagged', false], SEEN: ['\\Seen', true], UNSEEN: ['\\Seen', false],
  DRAFT: ['\\Draft', true], UNDRAFT: ['\\Draft', false],
};
const DATES: Record<string, ['received' | 'saved' | 'sent', 'before' | 'on' | 'since']> = {
  BEFORE: ['received', 'before'], ON: ['received', 'on'], SINCE: ['received', 'since'],
  SENTBEFORE: ['sent', 'before'], SENTON: ['sent', 'on'], SENTSINCE: ['sent', 'since'],
  SAVEDBEFORE: ['saved', 'before'], SAVEDON: ['saved', 'on'], SAVEDSINCE: ['saved', 'since'],
};

function parseKeys(args: ImapArg[], maxSeq: number, maxUid: number, saved: number[] = []): Query {
  let i = 0;
  let w = '';
  const savedRanges = normalizeSequenceSet(saved.map((u) => ({ from: u, to: u })), 0).map((r): [number, number] => [r.from, r.to]);
  // Dovecot's texts: a key without its parameter names the key
  const str = (): string => {
    const s = astring(args[i++]);
    if (s === null) throw new ArgError(`Missing parameter for search key (for search key: ${w})`);
    return s;
  };
  const set = (a: ImapArg | undefined, uid: boolean): [number, number][] => {
    if (!a) throw new ArgError(`Missing parameter for search key (for search key: ${w})`);
    let s;
    try { s = seqSet(a, uid); } catch (e) { if (e instanceof ArgError && uid) throw new ArgError('Invalid UID messageset'); throw e; }
    // RFC 5182 `$`: the saved result, which is UIDs whichever way it is used
    if (s.type === 'saved') return savedRanges;
    return normalizeSequenceSet(s.ranges, uid ? maxUid : maxSeq).map((r) => [r.from, r.to]);
  };
  const key = (): Query => {
    const a = args[i];
    if (!a) throw new ArgError('Missing argument');
    if (a.type === 'list') {
      i++;
      if (!a.items.length) throw new ArgError('No search parameters inside list');
      return parseKeys(a.items, maxSeq, maxUid, saved);
    }
    w = (astring(a) ?? '').toUpperCase();
    if (a.type === 'atom' && a.value === '$') { i++; return { k: 'uid', set: savedRanges }; }
    if (a.type === 'atom' && /^[\d*$][\d*:,$]*$/.test(a.value)) { i++; return { k: 'seq', set: set(a, false) }; }
    i++;
    if (w === 'ALL') return { k: 'all' };
    if (FLAGS[w]) return { k: 'flag', flag: FLAGS[w][0], want: FLAGS[w][1] };
    if (w === 'NEW' || w === 'OLD' || w === 'RECENT') return { k: w.toLowerCase() as 'new' | 'old' | 'recent' };
    if (w === 'NOT') return { k: 'not', q: key() };
    if (w === 'OR') { const x = key(); const y = key(); return { k: 'or', of: [x, y] }; }
    if (w === 'UID') return { k: 'uid', set: set(args[i++], true) };
    if (w === 'MODSEQ') {
      // RFC 7162 §3.1.5: MODSEQ ["/flags/<flag>" priv|shared|all] n — one modseq per message here, the entry only checked
      if (args[i] && args[i].type !== 'atom') {
        i++;
        if (!['PRIV', 'SHARED', 'ALL'].includes((astring(args[i++]) ?? '').toUpperCase())) throw new ArgError('Invalid MODSEQ type');
      }
      return { k: 'modseq', n: modseqArg(args[i++], 'Invalid MODSEQ value') };
    }
    if (w === 'KEYWORD' || w === 'UNKEYWORD') return { k: 'keyword', v: str(), want: w === 'KEYWORD' };
    if (['FROM', 'TO', 'CC', 'BCC'].includes(w)) return { k: 'header', name: w.toLowerCase(), v: str(), address: true };
    if (w === 'SUBJECT') return { k: 'header', name: 'subject', v: str() };
    if (w === 'HEADER') { const n = str(); return { k: 'header', name: n.toLowerCase(), v: str() }; }
    if (w === 'BODY' || w === 'TEXT') return { k: w.toLowerCase() as 'body' | 'text', v: str() };
    if (w === 'LARGER' || w === 'SMALLER') { const n = str(); if (!/^\d+$/.test(n) || BigInt(n) >= 1n << 64n) throw new ArgError('Invalid search size parameter'); return { k: w.toLowerCase() as 'larger' | 'smaller', n: Number(n) }; }
    if (DATES[w]) {
      const d = /^(\d{1,2})-([A-Za-z]{3})-(\d{4})$/.exec(str());
      if (!d || !MONTHS.includes(d[2].toLowerCase())) throw new ArgError('Invalid search date parameter');
      return { k: 'date', which: DATES[w][0], cmp: DATES[w][1], day: Date.UTC(Number(d[3]), MONTHS.indexOf(d[2].toLowerCase()), Number(d[1])) };
    }
    if (w === 'OLDER' || w === 'YOUNGER') {
      // RFC 5032 WITHIN: seconds back from now against INTERNALDATE; Dovecot takes 1..2^32-1
      const n = str();
      if (!/^\d+$/.test(n) || Number(n) < 1 || Number(n) > 0xffffffff) throw new ArgError('Invalid search interval parameter');
      return { k: 'interval', cmp: w === 'OLDER' ? 'older' : 'younger', time: Math.floor(Date.now() / 1000) - Number(n) };
    }
    throw new ArgError(`Unknown argument ${w}`);
  };
  const items: Query[] = [];
  while (i < args.length) items.push(key());
  if (!items.length) throw new ArgError('Missing search parameters');
  return items.length === 1 ? items[0] : { k: 'and', of: items };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
function checkUtf8(args: ImapArg[]): void {
  for (const a of args) {
    if (a.type === 'list') checkUtf8(a.items);
    else if (a.type === 'string' || (a.type === 'literal' && a.value)) {
      try { utf8.decode(a.value as Buffer); } catch { throw new ArgError('Invalid search key'); }
    }
  }
}

/** Search-key arguments with their strings recoded from `charset` to UTF-8 (RFC 3501 §6.4.4). */
export function recodeArgs(args: ImapArg[], charset: string): ImapArg[] {
  const cs = charset.toLowerCase();
  // strings must be valid in their charset (UTF-8 without CHARSET): Dovecot's BAD otherwise
  if (cs === 'utf-8' || cs === 'us-ascii' || cs === 'utf8') { checkUtf8(args); return args; }
  let dec: InstanceType<typeof TextDecoder>;
  try { dec = new TextDecoder(cs); } catch { throw new BadCharsetError('Unknown charset'); }
  const conv = (a: ImapArg): ImapArg => {
    if (a.type === 'list') return { type: 'list', items: a.items.map(conv) };
    if (a.type === 'string') return { type: 'string', value: Buffer.from(dec.decode(a.value), 'utf8') };
    if (a.type === 'literal' && a.value) return { ...a, value: Buffer.from(dec.decode(a.value), 'utf8') };
    return a;
  };
  return args.map(conv);
}

/** The search program of SEARCH/SORT/THREAD against the selected mailbox. */
export function parseSearchProgram(ctx: CommandContext, args: ImapArg[]): Query {
  const sel = ctx.session.selected!;
  return parseKeys(args, sel.uids.length, sel.uids.length ? sel.uids[sel.uids.length - 1] : 0, sel.saved);
}

/** Keyword names a search program mentions (KEYWORD/UNKEYWORD), in order. */
function queryKeywords(q: Query): string[] {
  if (q.k === 'keyword') return [q.v];
  if (q.k === 'and' || q.k === 'or') return q.of.flatMap(queryKeywords);
  if (q.k === 'not') return queryKeywords(q.q);
  return [];
}

/** Messages of the selected mailbox that match, in sequence order. */
export async function searchSelected(ctx: CommandContext, q: Query): Promise<{ seq: number; m: MailMessage }[]> {
  const sel = ctx.session.selected!;
  const hits: { seq: number; m: MailMessage }[] = [];
  if (q.k === 'all') {
    for (let n = 0; n < sel.uids.length; n++) { const m = sel.message(sel.uids[n]); if (m) hits.push({ seq: n + 1, m }); }
    return hits;
  }
  // Messages are tested a window at a time, concurrently, so that the file
  // reads (and mail-crypt key unwraps) of a body search overlap; the window is
  // bounded in bytes too, so a search never holds more than a few MiB of mail.
  let window: Promise<{ seq: number; m: MailMessage } | null>[] = [];
  let windowBytes = 0;
  const flush = async () => {
    for (const r of await Promise.all(window)) if (r) hits.push(r);
    window = [];
    windowBytes = 0;
  };
  for (let n = 0; n < sel.uids.length; n++) {
    const m = sel.message(sel.uids[n]);
    if (!m) continue;
    const test = searchOne(sel, q, m, n + 1);
    window.push(test);
    windowBytes += m.size ?? 64 * 1024;
    if (window.length >= SEARCH_WINDOW || windowBytes >= SEARCH_WINDOW_BYTES) await flush();
  }
  await flush();
  return hits;
}

const SEARCH_WINDOW = 32;
const SEARCH_WINDOW_BYTES = 4 << 20;

/** One message against the search program (its body read only if a key needs it). */
async function searchOne(sel: NonNullable<CommandContext['session']['selected']>, q: Query, m: MailMessage, seq: number): Promise<{ seq: number; m: MailMessage } | null> {
  let text: Buffer | undefined;
  const view: MessageView = {
    mailbox: sel.name, mailboxGuid: sel.folder.guid, uid: m.uid, seq, guid: m.base,
    flags: new Set(m.flags), keywords: m.keywords, recent: sel.recent.has(m.uid), modseq: m.modseq,
    vsize: () => sel.folder.virtualSize(m),
    received: async () => (await sel.folder.stat(m).catch(() => ({ mtime: new Date(0), ctime: new Date(0) }))).mtime,
    saved: () => sel.folder.saveDate(m).catch(() => new Date(0)),
    text: async () => {
      if (text) return text;
      try {
        return (text = await sel.folder.readAll(m));
      } catch (e) {
        // expunged by another session since our view was made: it matches nothing
        if (e instanceof MailStoreError && e.code === 'EXPUNGED') return (text = Buffer.alloc(0));
        throw e;
      }
    },
  };
  return (await matches(q, view)) ? { seq, m } : null;
}

/** RFC 4731/5267 RETURN options: MIN MAX ALL COUNT (empty = ALL), SAVE (RFC 5182) where the caller keeps results; others are refused as Dovecot refuses unknown ones. */
export function parseReturn(args: ImapArg[], save = false): { ret: Set<string> | null; rest: ImapArg[] } {
  if (astring(args[0])?.toUpperCase() !== 'RETURN' || args[1]?.type !== 'list') return { ret: null, rest: args };
  const ret = new Set(args[1].items.map((i) => (astring(i) ?? '').toUpperCase()));
  for (const o of ret) if (!['MIN', 'MAX', 'ALL', 'COUNT', ...(save ? ['SAVE'] : [])].includes(o)) throw new ArgError('Unknown SEARCH return option');
  if (!ret.size) ret.add('ALL');
  return { ret, rest: args.slice(2) };
}

/**
 * The ESEARCH response (Dovecot's order: MIN MAX ALL COUNT; nothing but
 * COUNT when there is no match). For SORT, MIN/MAX are the first and last
 * in sort order and ALL keeps that order, as Dovecot sends them (SEARCH
 * hits are ascending, so the same rule gives the lowest and highest).
 */
export function esearchResponse(tag: string, uidMode: boolean, ret: Set<string>, hits: number[], sorted: boolean): ImapValue[] {
  const out: ImapValue[] = [atom('ESEARCH'), list([atom('TAG'), str(tag)])];
  if (uidMode) out.push(atom('UID'));
  if (hits.length) {
    if (ret.has('MIN')) out.push(atom('MIN'), num(hits[0]));
    if (ret.has('MAX')) out.push(atom('MAX'), num(hits[hits.length - 1]));
    if (ret.has('ALL')) out.push(atom('ALL'), atom(sorted ? orderedSet(hits) : formatSequenceSet(normalizeSequenceSet(hits.map((h) => ({ from: h, to: h })), 0))));
  }
  if (ret.has('COUNT')) out.push(atom('COUNT'), num(hits.length));
  return out;
}

/** A sequence set that keeps the given order: only ascending runs are joined (1:3,7,5). */
function orderedSet(ns: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < ns.length;) {
    let j = i;
    while (j + 1 < ns.length && ns[j + 1] === ns[j] + 1) j++;
    parts.push(j > i ? `${ns[i]}:${ns[j]}` : `${ns[i]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/**
 * The MODSEQ an answer reports when the program searched MODSEQ (RFC 7162
 * §3.1.5, RFC 4731): the highest of the messages it returns, counted as
 * Dovecot's imap-search.c does: with MIN and/or MAX alone (SAVE aside) only
 * those messages, else every match. `ordered` in the answer's order (SORT's).
 */
export function returnedModseq(ret: Set<string> | null, ordered: { modseq: number }[]): number {
  const ends = ret !== null && !ret.has('ALL') && !ret.has('COUNT') && (ret.has('MIN') || ret.has('MAX'));
  const counted = !ends || !ordered.length ? ordered
    : [...(ret.has('MIN') ? [ordered[0]] : []), ...(ret.has('MAX') ? [ordered[ordered.length - 1]] : [])];
  return counted.reduce((a, m) => Math.max(a, m.modseq), 0);
}

/** A MODSEQ key anywhere in the program (RFC 7162 §3.1.5: it enables CONDSTORE and adds the highest MODSEQ to the answer). */
export function usesModseq(q: Query): boolean {
  if (q.k === 'modseq') return true;
  if (q.k === 'and' || q.k === 'or') return q.of.some(usesModseq);
  if (q.k === 'not') return usesModseq(q.q);
  return false;
}

/**
 * What RETURN (SAVE …) keeps as `$` (RFC 5182 §2.1): with MIN and/or MAX
 * alone just those (the first/last of `uids`, which SORT gives in sort
 * order), else every result.
 */
export function savedResult(ret: Set<string>, uids: number[]): number[] {
  const onlyEnds = ret.size > 0 && !ret.has('ALL') && !ret.has('COUNT');
  if (!onlyEnds || !uids.length) return uids;
  return [...new Set([...(ret.has('MIN') ? [uids[0]] : []), ...(ret.has('MAX') ? [uids[uids.length - 1]] : [])])];
}

async function search(ctx: CommandContext, uidMode: boolean): Promise<void> {
  const sel = ctx.session.selected!;
  let saving = false;
  try {
    // RFC 4731 ESEARCH: SEARCH RETURN (MIN MAX ALL COUNT) …
    const parsed = parseReturn(ctx.args, true);
    let args = parsed.rest;
    // RFC 9051 §6.4.4: an IMAP4rev2 SEARCH without RETURN is RETURN (ALL), answered with ESEARCH
    const ret = parsed.ret ?? (ctx.session.rev2 ? new Set(['ALL']) : null);
    // RFC 5182: a SEARCH that fails leaves `$` empty
    if (ret?.has('SAVE')) { saving = true; ret.delete('SAVE'); }
    if (astring(args[0])?.toUpperCase() === 'CHARSET') {
      const cs = astring(args[1]);
      if (cs === null) throw new ArgError('Invalid charset argument');
      args = recodeArgs(args.slice(2), cs);
    } else args = recodeArgs(args, 'UTF-8');
    const q = parseSearchProgram(ctx, args);
    const byModseq = usesModseq(q);
    if (byModseq) await ctx.session.enableCondstore();
    await sel.refresh();
    const found = await searchSelected(ctx, q);
    const hits = found.map((h) => (uidMode ? h.m.uid : h.seq));
    // RFC 7162 §3.1.5: the highest MODSEQ of the returned messages when MODSEQ was searched
    const top = byModseq ? returnedModseq(ret, found.map((h) => h.m)) : 0;
    if (saving) sel.saved = savedResult(ret!, found.map((h) => h.m.uid));
    if (ret && saving && !ret.size && !top) { /* SAVE alone: no ESEARCH response, unless it has a MODSEQ to report (Dovecot) */ }
    else if (ret) await ctx.session.untagged([...esearchResponse(ctx.tag, uidMode, ret, hits, false), ...(top ? [atom('MODSEQ'), num(top)] : [])]);
    else await ctx.session.untagged([atom('SEARCH'), ...hits.map((h) => num(h)), ...(top ? [list([atom('MODSEQ'), num(top)])] : [])]);
    // a keyword named here joins the mailbox's list in Dovecot, which then announces it
    if (!sel.readOnly) await announceKeywords(ctx.session, sel, queryKeywords(q));
    // Dovecot ends every command with a sync: others' changes (expunges only after UID SEARCH)
    await ctx.ok('Search completed', await ctx.session.sendUpdates(uidMode, undefined, true, uidMode));
  } catch (e) {
    // a BAD (syntax) leaves `$` as it was, a failure (NO) empties it: Dovecot
    if (saving && !(e instanceof ArgError)) sel.saved = [];
    await replyError(ctx, e);
  }
}

export const searchCommands: Record<string, Command> = {
  SEARCH: { states: SELECTED, run: (ctx) => search(ctx, false) },
  'UID SEARCH': { states: SELECTED, run: (ctx) => search(ctx, true) },
};
