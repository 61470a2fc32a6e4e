/**
 * SEARCH and UID SEARCH (RFC 3501 §6.4.4, RFC 4731 ESEARCH): the IMAP search-key grammar
 * (prefix OR, NOT, parenthesised lists, sequence sets, CHARSET) parsed into
 * the store's query tree and evaluated message by message; bodies are read
 * only when a text key needs them. The RETURN options and ESEARCH answer of
 * SEARCH and SORT, with RFC 5267 CONTEXT=SEARCH as Dovecot 2.3 has it:
 * PARTIAL, UPDATE contexts (kept in ../search-updates.ts, reported here at
 * each sync) and CANCELUPDATE.
 */
import { matches, type MessageView, type Query } from '../../mailstore/search.js';
import { MailStoreError } from '../../mailstore/errors.js';
import { atom, list, NIL, num, str, type ImapValue } from '../wire/encoder.js';
import type { ImapArg } from '../wire/parser.js';
import { formatSequenceSet, normalizeSequenceSet } from '../wire/sequence.js';
import { AUTHED, SELECTED, type Command, type CommandContext } from './types.js';
import { parseUpdateFetch } from './fetch.js';
import type { Session } from '../session.js';
import type { Selected } from '../selected.js';
import type { ContextChange, UpdateFetch } from '../search-updates.js';
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
export async function searchOne(sel: NonNullable<CommandContext['session']['selected']>, q: Query, m: MailMessage, seq: number): Promise<{ seq: number; m: MailMessage } | null> {
  let text: Buffer | undefined;
  const view: MessageView = {
    mailbox: sel.name, mailboxGuid: sel.folder.guid, uid: m.uid, seq, guid: m.base,
    flags: new Set(m.flags), keywords: m.keywords, recent: sel.recent.has(m.uid), modseq: m.modseq,
    vsize: () => sel.folder.virtualSize(m),
    // a message another process removed: the date last seen, as FETCH INTERNALDATE answers
    received: () => sel.folder.receivedDate(m).catch(() => new Date(0)),
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

/**
 * RETURN options of SEARCH/SORT (RFC 4731 ESEARCH, RFC 5182 SAVE, RFC 5267
 * CONTEXT=SEARCH: UPDATE, PARTIAL, CONTEXT; Dovecot's RELEVANCY), parsed as
 * Dovecot's search_parse_return_options does, with its error texts.
 * `has` holds the option names (ALL when none that returns anything).
 */
export interface ReturnOptions {
  has: Set<string>;
  /** PARTIAL m:n, low first (Dovecot swaps a reversed range). */
  partial: [number, number] | null;
  /** UPDATE (fetch-att …): Dovecot's extension, FETCH sent for messages an update adds. */
  fetchAtt: UpdateFetch | null;
}

/** Dovecot's imap_partial_range_parse: n:m of decimal digits, each 1..2^32-1 after uint32 wrap-around. */
function partialRange(s: string): [number, number] | null {
  const m = /^(\d*):(\d*)$/.exec(s);
  if (!m) return null;
  const u32 = (d: string) => { let n = 0; for (const c of d) n = (n * 10 + c.charCodeAt(0) - 48) % 0x100000000; return n; };
  const [a, b] = [u32(m[1]), u32(m[2])];
  if (!a || !b) return null;
  return a <= b ? [a, b] : [b, a];
}

/** `RETURN (…)` at the start of SEARCH/SORT arguments, for this session (UPDATE's tag and fetch-att checked against it). */
export function parseReturn(args: ImapArg[], ctx: CommandContext): { ret: ReturnOptions | null; rest: ImapArg[] } {
  const a0 = args[0];
  if (a0?.type !== 'atom' || a0.value.toUpperCase() !== 'RETURN' || args[1]?.type !== 'list') return { ret: null, rest: args };
  const items = args[1].items;
  const ret: ReturnOptions = { has: new Set(), partial: null, fetchAtt: null };
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    if (it.type !== 'atom') throw new ArgError('SEARCH return options contain non-atoms.');
    const name = it.value.toUpperCase();
    if (['MIN', 'MAX', 'ALL', 'COUNT', 'SAVE', 'RELEVANCY'].includes(name)) ret.has.add(name);
    else if (name === 'CONTEXT') { /* RFC 5267: what every SEARCH is here anyway */ }
    else if (name === 'UPDATE') {
      if (ret.has.has('UPDATE')) throw new ArgError('SEARCH return options have duplicate UPDATE.');
      ret.has.add('UPDATE');
      const l = items[i + 1];
      if (l?.type === 'list') { i++; ret.fetchAtt = parseUpdateFetch(l, ctx.session); }
    } else if (name === 'PARTIAL') {
      if (ret.partial) throw new ArgError('PARTIAL can be used only once.');
      ret.has.add('PARTIAL');
      const r = items[++i];
      if (r?.type !== 'atom') throw new ArgError('PARTIAL range missing.');
      ret.partial = partialRange(r.value);
      if (!ret.partial) throw new ArgError('PARTIAL range broken.');
    } else throw new ArgError('Unknown SEARCH return option');
  }
  if (ret.has.has('UPDATE') && ctx.session.selected?.searchUpdates.has(ctx.tag)) throw new ArgError('Duplicate search update tag');
  if (ret.has.has('PARTIAL') && ret.has.has('ALL')) throw new ArgError('PARTIAL conflicts with ALL');
  if (!ret.has.size) ret.has.add('ALL');
  return { ret, rest: args.slice(2) };
}

/** One match of a SEARCH/SORT, in the answer's order: the number it is reported by (UID or sequence), its UID and MODSEQ. */
export interface Match { id: number; uid: number; modseq: number }

/**
 * The ESEARCH answer (RFC 4731/5267) and what RETURN (SAVE) keeps, worked
 * out as Dovecot's cmd_search_more walks the matches: MIN MAX ALL RELEVANCY
 * PARTIAL COUNT MODSEQ in that order, ALL and PARTIAL keeping the matches'
 * order (SORT's) and joining ascending runs only. The matches Dovecot
 * "updates" (the first for MIN; every one with ALL, COUNT, or neither MIN
 * nor MAX; those in the PARTIAL range; the last for MAX when it matters)
 * are what SAVE keeps and MODSEQ and RELEVANCY count. `response` is null
 * for SAVE alone, which Dovecot answers with nothing.
 */
export function esearchResult(tag: string, uidMode: boolean, ret: ReturnOptions, byModseq: boolean, ms: Match[]): { response: ImapValue[] | null; saved: number[]; modseq: number } {
  const o = ret.has;
  const ids: number[] = [];
  const touched: number[] = [];
  const extraSaved: number[] = [];
  const touch = (i: number) => { if (touched[touched.length - 1] !== i) touched.push(i); };
  const [p1, p2] = ret.partial ?? [0, 0];
  for (let i = 0; i < ms.length; i++) {
    if (o.has('MIN') && i === 0) touch(0);
    if (o.has('ALL')) ids.push(ms[i].id);
    else if (o.has('PARTIAL')) {
      if (i + 1 >= p1 && i + 1 <= p2) ids.push(ms[i].id);
      else {
        // (SAVE COUNT PARTIAL m:n) saves every match, but only those in range count for MODSEQ
        if (o.has('COUNT') && o.has('SAVE')) extraSaved.push(ms[i].uid);
        continue;
      }
    } else if (!o.has('COUNT') && (o.has('MIN') || o.has('MAX'))) continue;
    touch(i);
  }
  const last = ms.length - 1;
  if (o.has('MAX') && ms.length && touched[touched.length - 1] !== last && (byModseq || o.has('SAVE') || o.has('RELEVANCY'))) touch(last);
  const modseq = byModseq ? touched.reduce((a, i) => Math.max(a, ms[i].modseq), 0) : 0;
  const saved = o.has('SAVE') ? [...new Set([...touched.map((i) => ms[i].uid), ...extraSaved])].sort((a, b) => a - b) : [];
  if (o.size === 1 && o.has('SAVE') && !byModseq) return { response: null, saved, modseq };
  const out: ImapValue[] = [atom('ESEARCH'), list([atom('TAG'), str(tag)])];
  if (uidMode) out.push(atom('UID'));
  if (o.has('MIN') && ms.length) out.push(atom('MIN'), num(ms[0].id));
  if (o.has('MAX') && ms.length) out.push(atom('MAX'), num(ms[last].id));
  if (o.has('ALL') && ids.length) out.push(atom('ALL'), atom(orderedSet(ids)));
  // without a full-text index every score is the same: Dovecot scales them all to 1
  if (o.has('RELEVANCY')) out.push(atom('RELEVANCY'), list(touched.map(() => num(1))));
  if (o.has('PARTIAL')) out.push(atom('PARTIAL'), list([atom(`${p1}:${p2}`), ids.length ? atom(orderedSet(ids)) : NIL]));
  if (o.has('COUNT')) out.push(atom('COUNT'), num(ms.length));
  if (modseq) out.push(atom('MODSEQ'), num(modseq));
  return { response: out, saved, modseq };
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

/** A MODSEQ key anywhere in the program (RFC 7162 §3.1.5: it enables CONDSTORE and adds the highest MODSEQ to the answer). */
export function usesModseq(q: Query): boolean {
  if (q.k === 'modseq') return true;
  if (q.k === 'and' || q.k === 'or') return q.of.some(usesModseq);
  if (q.k === 'not') return usesModseq(q.q);
  return false;
}

/** A plain sequence set anywhere in the program: Dovecot's have_seqsets, which keeps a UID SEARCH from announcing expunges. */
export function usesSeqSet(q: Query): boolean {
  if (q.k === 'seq') return true;
  if (q.k === 'and' || q.k === 'or') return q.of.some(usesSeqSet);
  if (q.k === 'not') return usesSeqSet(q.q);
  return false;
}

/**
 * The answer of a SEARCH or SORT with its matches in answer order: ESEARCH
 * (or the classic SEARCH/SORT line), `$` for SAVE, and with UPDATE a
 * CONTEXT=SEARCH context (search-updates.ts) holding every match, or
 * Dovecot's `* NO [NOUPDATE]` when the session has its maximum already
 * (sent first, as Dovecot registers the context before searching).
 */
export async function answerSearch(ctx: CommandContext, uidMode: boolean, ret: ReturnOptions | null, q: Query, ms: Match[], sortName: 'SEARCH' | 'SORT'): Promise<void> {
  const sel = ctx.session.selected!;
  const byModseq = usesModseq(q);
  if (!ret) {
    const top = byModseq ? ms.reduce((a, m) => Math.max(a, m.modseq), 0) : 0;
    await ctx.session.untagged([atom(sortName), ...ms.map((m) => num(m.id)), ...(top ? [list([atom('MODSEQ'), num(top)])] : [])]);
    return;
  }
  const r = esearchResult(ctx.tag, uidMode, ret, byModseq, ms);
  if (ret.has.has('SAVE')) sel.saved = r.saved;
  if (r.response) await ctx.session.untagged(r.response);
}

/**
 * RETURN (UPDATE …) before the search runs: false when the session has its
 * maximum of contexts (Dovecot's CLIENT_MAX_SEARCH_UPDATES), after sending
 * `* NO [NOUPDATE "tag"]`; the search then answers as without UPDATE.
 */
export async function admitUpdate(ctx: CommandContext, ret: ReturnOptions | null): Promise<boolean> {
  if (!ret?.has.has('UPDATE')) return false;
  if (ctx.session.selected!.searchUpdates.full()) {
    // (tags are atoms: nothing in one needs escaping)
    await ctx.session.untagged([atom('NO'), { type: 'raw', value: `[NOUPDATE "${ctx.tag}"]` }]);
    return false;
  }
  return true;
}

async function search(ctx: CommandContext, uidMode: boolean): Promise<void> {
  const sel = ctx.session.selected!;
  let saving = false;
  try {
    // RFC 4731 ESEARCH / RFC 5267: SEARCH RETURN (MIN MAX ALL COUNT SAVE UPDATE PARTIAL …) …
    const parsed = parseReturn(ctx.args, ctx);
    let args = parsed.rest;
    // RFC 9051 §6.4.4: an IMAP4rev2 SEARCH without RETURN is RETURN (ALL), answered with ESEARCH
    const ret = parsed.ret ?? (ctx.session.rev2 ? { has: new Set(['ALL']), partial: null, fetchAtt: null } : null);
    // RFC 5182: a SEARCH that fails leaves `$` empty
    if (ret?.has.has('SAVE')) saving = true;
    if (astring(args[0])?.toUpperCase() === 'CHARSET') {
      const cs = astring(args[1]);
      if (cs === null) throw new ArgError('Invalid charset argument');
      args = recodeArgs(args.slice(2), cs);
    } else args = recodeArgs(args, 'UTF-8');
    const q = parseSearchProgram(ctx, args);
    if (usesModseq(q)) await ctx.session.enableCondstore();
    const update = await admitUpdate(ctx, ret);
    await sel.refresh();
    const found = await searchSelected(ctx, q);
    if (update) sel.searchUpdates.add(ctx.tag, uidMode, q, found.map((h) => h.m.uid), sel.uids, ret!.fetchAtt);
    await answerSearch(ctx, uidMode, ret, q, found.map((h) => ({ id: uidMode ? h.m.uid : h.seq, uid: h.m.uid, modseq: h.m.modseq })), 'SEARCH');
    // a keyword named here joins the mailbox's list in Dovecot, which then announces it
    if (!sel.readOnly) await announceKeywords(ctx.session, sel, queryKeywords(q));
    // Dovecot ends every command with a sync: others' changes (expunges only after a UID SEARCH without sequence sets)
    await ctx.ok('Search completed', await ctx.session.sendUpdates(uidMode && !usesSeqSet(q), undefined, true, uidMode));
  } catch (e) {
    // a BAD (syntax) leaves `$` as it was, a failure (NO) empties it: Dovecot
    if (saving && !(e instanceof ArgError)) sel.saved = [];
    await replyError(ctx, e);
  }
}

/** `* ESEARCH (TAG "t") [UID] REMOVEFROM (0 set) ADDTO (0 set)` (RFC 5267 §4.3), UIDs or sequence numbers as `seqOf` gives them. */
function updateLine(c: ContextChange, seqOf: (uid: number) => number): ImapValue[] {
  const set = (ns: number[]) => list([num(0), atom(formatSequenceSet(normalizeSequenceSet(ns.map((n) => ({ from: n, to: n })), 0)))]);
  return [atom('ESEARCH'), list([atom('TAG'), str(c.ctx.tag)]), ...(c.ctx.uid ? [atom('UID')] : []),
    ...(c.removes.length ? [atom('REMOVEFROM'), set(c.ctx.uid ? c.removes : c.removes.map(seqOf))] : []),
    ...(c.adds.length ? [atom('ADDTO'), set(c.ctx.uid ? c.adds : c.adds.map(seqOf))] : [])];
}

/**
 * The first half of a sync's search updates (Dovecot's imap_sync_init):
 * matches about to be announced expunged leave their contexts, reported by
 * the sequence numbers the client still has, before any FETCH or EXPUNGE.
 */
export async function sendExpungedMatches(s: Session, sel: Selected): Promise<void> {
  const gone = sel.lastSync.gone;
  if (!gone.length) return;
  const seqs = new Map(gone.map((g) => [g.uid, g.seq]));
  for (const c of sel.searchUpdates.expunged(gone.map((g) => g.uid))) await s.untagged(updateLine(c, (u) => seqs.get(u)!));
}

/**
 * The second half (Dovecot's imap_sync_notify_more, after EXISTS/RECENT):
 * changed and new messages tested again against each context's program;
 * with UPDATE (fetch-att) the new messages it adds are FETCHed first.
 */
export async function sendChangedMatches(s: Session, sel: Selected): Promise<void> {
  const { changed, added } = sel.lastSync;
  const seqOf = (uid: number) => {
    // UIDs ascend with sequence numbers: a binary search
    const u = sel.uids;
    let lo = 0;
    let hi = u.length - 1;
    while (lo <= hi) { const mid = (lo + hi) >> 1; if (u[mid] === uid) return mid + 1; if (u[mid] < uid) lo = mid + 1; else hi = mid - 1; }
    return sel.seqOf(uid);
  };
  const test = async (q: Query, uid: number) => {
    const m = sel.folder.message(uid);
    return m ? (await searchOne(sel, q, m, seqOf(uid))) !== null : undefined;
  };
  const fresh = new Set(added);
  for (const c of await sel.searchUpdates.changed(changed, added, test)) {
    if (c.ctx.fetch) for (const u of c.adds) if (fresh.has(u)) await c.ctx.fetch(seqOf(u), u);
    await s.untagged(updateLine(c, seqOf));
  }
}

/** CANCELUPDATE "tag" … (RFC 5267 §4.2): quoted tags only, as Dovecot's cmd_cancelupdate; those before an unknown one stay cancelled. */
async function cancelUpdate(ctx: CommandContext): Promise<void> {
  const args = ctx.args;
  if (!args.length || args.some((a) => a.type !== 'string' && a.type !== 'literal')) { await ctx.bad('Error in IMAP command CANCELUPDATE: Invalid parameters.'); return; }
  for (const a of args) {
    if (!ctx.session.selected?.searchUpdates.cancel(astring(a) ?? '')) { await ctx.no('Unknown tag.'); return; }
  }
  await ctx.ok('Updates cancelled.');
}

export const searchCommands: Record<string, Command> = {
  SEARCH: { states: SELECTED, run: (ctx) => search(ctx, false) },
  'UID SEARCH': { states: SELECTED, run: (ctx) => search(ctx, true) },
  CANCELUPDATE: { states: AUTHED, run: cancelUpdate },
};
