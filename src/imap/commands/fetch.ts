/**
 * FETCH and UID FETCH (RFC 3501 §6.4.5, RFC 9051 §6.4.5): the macros, UID,
 * FLAGS, INTERNALDATE, RFC822.SIZE (W=, the CRLF size), ENVELOPE,
 * BODY/BODYSTRUCTURE, BODY[section]<partial> and BODY.PEEK, RFC822,
 * RFC822.HEADER/TEXT. BODY[] without a partial streams the message (LF →
 * CRLF on the fly, size known from W=); sections are cut from the CRLF form.
 * A non-PEEK body fetch sets \Seen in a read-write mailbox and reports the
 * new FLAGS. Keys of the following messages are warmed while one streams
 * (mail-crypt: their unwrapping overlaps the transfer).
 */
import type { MailMessage } from '../../mailstore/api/mailbox.js';
import { MailStoreError } from '../../mailstore/errors.js';
import { parseMime, toCrlf } from '../../mailstore/mime/parts.js';
import { atom, list, NIL, num, responseBytes, str, type ImapValue } from '../wire/encoder.js';
import type { ImapArg } from '../wire/parser.js';
import { binarySection, bodyStructure, envelope, internalDate, sectionBytes, sectionName } from '../fetch-render.js';
import { UnknownCteError } from '../../mailstore/mime/binary.js';
import { messageSnippet } from '../../mailstore/mime/snippet.js';
import { SELECTED, type Command, type CommandContext } from './types.js';
import { ArgError, astring, modseqArg, seqSet } from './args.js';
import { normalizeSequenceSet, type SeqRange } from '../wire/sequence.js';
import type { Selected } from '../selected.js';
import { uidSetText } from '../session.js';
import { replyError } from './errors.js';
import { announceMailboxKeywords, keywordsIn } from '../keyword-flags.js';
import type { UpdateFetch } from '../search-updates.js';

type Item =
  | { k: 'UID' | 'FLAGS' | 'MODSEQ' | 'INTERNALDATE' | 'SAVEDATE' | 'RFC822.SIZE' | 'ENVELOPE' | 'BODY' | 'BODYSTRUCTURE' | 'RFC822' | 'RFC822.HEADER' | 'RFC822.TEXT' }
  | { k: 'SECTION'; peek: boolean; section: string; partial?: [number, number | undefined]; binary?: boolean }
  | { k: 'BINARY.SIZE'; section: string }
  /** RFC 8970 PREVIEW, or the draft's SNIPPET / FUZZY form (`old`: `NAME (FUZZY "text")`); LAZY: only a stored one. */
  | { k: 'PREVIEW'; name: string; lazy: boolean; old: boolean };

const MACROS: Record<string, string[]> = {
  ALL: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE'],
  FAST: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE'],
  FULL: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE', 'BODY'],
};
/** Field-cache key suffix: bumped when the rendering changes, so values cached by an older Sealmail are not served. */
const RENDER = '.4';
/** Messages up to this size are sent from memory (mail-crypt verifies them whole anyway); bigger ones stream. */
const STREAM_ABOVE = 1 << 20;
const SIMPLE = new Set(['UID', 'FLAGS', 'MODSEQ', 'INTERNALDATE', 'SAVEDATE', 'RFC822.SIZE', 'ENVELOPE', 'BODY', 'BODYSTRUCTURE', 'RFC822', 'RFC822.HEADER', 'RFC822.TEXT']);

/**
 * The FETCH items (`args[at]`, an atom or a list) and the index of the argument after them:
 * PREVIEW/SNIPPET take a following list as their modifiers, at the top level too (Dovecot's
 * handlers read the next argument).
 */
function parseItems(args: ImapArg[], at: number): { items: Item[]; next: number } {
  const arg = args[at];
  if (!arg) throw new ArgError('Invalid arguments.');
  // Dovecot's cmd_fetch: a list or an atom (not NIL) at the top, atoms (NIL is one there) in a list
  if (arg.type !== 'list' && arg.type !== 'atom') throw new ArgError('Invalid arguments.');
  if (arg.type === 'list' && !arg.items.length) throw new ArgError('FETCH list is empty.');
  const atoms = arg.type === 'list' ? arg.items : args.slice(at);
  const out: Item[] = [];
  let i = 0;
  for (; i < atoms.length; i++) {
    const a = atoms[i];
    if (arg.type !== 'list' && i > 0) break;
    if (a.type !== 'atom' && a.type !== 'nil') throw new ArgError('FETCH list contains non-atoms.');
    const u = a.value.toUpperCase();
    if (arg.type !== 'list' && MACROS[u]) { out.push(...MACROS[u].map((k) => ({ k }) as Item)); continue; }
    if (SIMPLE.has(u)) { if (!out.some((i) => i.k === u)) out.push({ k: u } as Item); continue; }
    // Dovecot looks a handler up by the name's leading letters, digits and '-'
    const handler = /^[A-Z0-9-]*/.exec(u)![0];
    if (handler === 'PREVIEW' || handler === 'SNIPPET') {
      const [item, used] = previewItem(u, handler === 'PREVIEW', atoms[i + 1]);
      out.push(item);
      i += used;
      continue;
    }
    const bs = /^BINARY\.SIZE\[([^\]]*)\](?:<[^>]*>)?$/is.exec(a.value);
    if (bs) {
      // Dovecot ignores a partial on BINARY.SIZE
      if (!validSection(bs[1])) throw new ArgError('Invalid BINARY[..] section');
      out.push({ k: 'BINARY.SIZE', section: bs[1] });
      continue;
    }
    const m = /^(BODY|BINARY)(\.PEEK)?\[([^\]]*)\](.*)$/is.exec(a.value);
    if (!m) {
      if (/^BINARY(\.PEEK)?$/i.test(a.value)) throw new ArgError("Invalid BINARY[..] parameter: Missing '['");
      throw new ArgError(`Unknown parameter: ${u}`);
    }
    const kind = m[1].toUpperCase();
    if (!validSection(m[3])) throw new ArgError(`Invalid ${kind}[..] section`);
    let partial: [number, number | undefined] | undefined;
    if (m[4]) {
      const pm = /^<(\d+)(?:\.(\d+))?>$/.exec(m[4]);
      if (!pm) throw new ArgError(`Invalid ${kind}[..] parameter: Missing '>' in partial`);
      partial = [Number(pm[1]), pm[2] !== undefined ? Number(pm[2]) : undefined];
    }
    out.push({ k: 'SECTION', peek: !!m[2], section: m[3], partial, binary: kind === 'BINARY' });
  }
  return { items: out, next: arg.type === 'list' ? at + 1 : at + i };
}

/**
 * PREVIEW (RFC 8970) or SNIPPET (the draft) and its modifier list, as imap-fetch-body.c's
 * fetch_preview_init reads them: LAZY, FUZZY (the draft's form of the answer), LAZY=FUZZY;
 * SNIPPET always answers in the draft's form. Dovecot then skips as many arguments as the
 * list had modifiers (not the list alone): an empty list is left in place, and a second
 * modifier makes it skip the item after the list too — kept, so the answers are the same.
 */
function previewItem(name: string, preview: boolean, next: ImapArg | undefined): [Item, number] {
  const item = { k: 'PREVIEW' as const, name, lazy: false, old: !preview };
  if (next?.type !== 'list') return [item, 0];
  for (const m of next.items) {
    if (m.type !== 'atom' && m.type !== 'nil') throw new ArgError('Invalid PREVIEW modifier');
    const v = m.value.toUpperCase();
    if (v === 'LAZY') item.lazy = true;
    else if (v === 'LAZY=FUZZY') { item.lazy = true; item.old = true; }
    else if (v === 'FUZZY') item.old = true;
    else throw new ArgError(`'${m.value}' is not a supported PREVIEW modifier`);
  }
  return [item, next.items.length];
}

/** Section text is one of HEADER, TEXT, HEADER.FIELDS[.NOT] (non-empty list), or a part number with those or MIME. */
function validSection(sec: string): boolean {
  const m = /^((?:\d+\.)*\d+)?(?:(?:^|\.)(HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME))?(?: \((.*)\))?$/i.exec(sec);
  if (!m) return false;
  const what = (m[2] ?? '').toUpperCase();
  if (what.startsWith('HEADER.FIELDS')) return m[3] !== undefined && m[3].trim() !== '';
  if (m[3] !== undefined) return false;
  return what !== 'MIME' || m[1] !== undefined;
}

/** NUL bytes go out as 0x80 in BODY[] data, as Dovecot sends them (only BINARY may carry NUL). */
function noNul(b: Buffer): Buffer {
  if (b.indexOf(0) < 0) return b;
  const c = Buffer.from(b);
  for (let i = c.indexOf(0); i >= 0; i = c.indexOf(0, i + 1)) c[i] = 0x80;
  return c;
}

/** FETCH modifiers (RFC 7162): (CHANGEDSINCE n) and, for UID FETCH with QRESYNC, VANISHED. */
function fetchModifiers(a: ImapArg, uidMode: boolean, qresync: boolean): { changedSince?: number; vanished?: boolean } {
  if (a.type !== 'list') throw new ArgError('Invalid arguments.');
  const out: { changedSince?: number; vanished?: boolean } = {};
  for (let i = 0; i < a.items.length; i++) {
    const w = (astring(a.items[i]) ?? '').toUpperCase();
    if (w === 'CHANGEDSINCE') out.changedSince = modseqArg(a.items[++i], 'Invalid CHANGEDSINCE modseq.');
    else if (w === 'VANISHED' && uidMode) {
      if (!qresync) throw new ArgError('QRESYNC not enabled.');
      out.vanished = true;
    }
    else throw new ArgError('Unknown FETCH modifier.');
  }
  if (out.vanished && out.changedSince === undefined) throw new ArgError('VANISHED used without CHANGEDSINCE.');
  return out;
}

/** UIDs inside `ranges` expunged after `modseq` (RFC 7162 §3.2.6); when that is older than what is remembered, every missing UID. */
export function vanishedIn(sel: Selected, ranges: SeqRange[], modseq: number): number[] {
  const top = sel.folder.uidNext - 1;
  const rs = normalizeSequenceSet(ranges, top).filter((r) => r.from <= top).map((r) => ({ from: r.from, to: Math.min(r.to, top) }));
  const inSet = (u: number) => rs.some((r) => u >= r.from && u <= r.to);
  const known = sel.folder.vanishedSince(modseq);
  if (known) return known.filter(inSet);
  const live = new Set(sel.folder.uidList());
  const out: number[] = [];
  for (const r of rs) for (let u = r.from; u <= r.to && out.length < 1_000_000; u++) if (!live.has(u)) out.push(u);
  return out;
}

async function* crlfStream(src: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  let prevCR = false;
  for await (const c of src) {
    if (!c.length) continue;
    yield noNul(toCrlf(c, prevCR));
    prevCR = c[c.length - 1] === 0x0d;
  }
}

/** The flags a rendered FETCH item list carries (none without FLAGS). */
function flagsIn(values: ImapValue[]): string[] {
  const i = values.findIndex((v) => v.type === 'atom' && v.value === 'FLAGS');
  const l = i >= 0 ? values[i + 1] : undefined;
  return l?.type === 'list' ? l.items.flatMap((v) => (v.type === 'atom' ? [v.value] : [])) : [];
}

/** Keywords in a FETCH line's FLAGS the client was not told of: announced before the line goes out. */
async function announceShown(s: CommandContext['session'], sel: Selected, values: ImapValue[]): Promise<void> {
  const shown = keywordsIn([flagsIn(values)]);
  if (sel.unannounced(shown)) await announceMailboxKeywords(s, sel, shown);
}

async function fetch(ctx: CommandContext, uidMode: boolean, uidItem = uidMode): Promise<void> {
  const s = ctx.session;
  const sel = s.selected!;
  try {
    const set = seqSet(ctx.args[0], uidMode);
    const { items, next } = parseItems(ctx.args, 1);
    const mods = ctx.args[next] ? fetchModifiers(ctx.args[next], uidMode, s.qresync) : {};
    if (uidItem && !items.some((i) => i.k === 'UID')) items.unshift({ k: 'UID' });
    // RFC 7162: MODSEQ is always reported with CHANGEDSINCE; using either enables CONDSTORE
    if (mods.changedSince !== undefined && !items.some((i) => i.k === 'MODSEQ')) items.push({ k: 'MODSEQ' });
    if (items.some((i) => i.k === 'MODSEQ')) await s.enableCondstore();
    await sel.refresh();
    let msgs = sel.resolve(set, uidMode);
    if (mods.vanished && set.type === 'set') {
      const gone = vanishedIn(sel, set.ranges, mods.changedSince!);
      if (gone.length) await s.untagged([atom('VANISHED'), list([atom('EARLIER')]), atom(uidSetText(gone))]);
    }
    if (mods.changedSince !== undefined) msgs = msgs.filter((x) => x.m.modseq > mods.changedSince!);
    const needBody = items.some((i) => i.k === 'SECTION' || i.k.startsWith('RFC822') && i.k !== 'RFC822.SIZE');
    const setsSeen = !sel.readOnly && items.some((i) => (i.k === 'SECTION' && !i.peek) || i.k === 'RFC822' || i.k === 'RFC822.TEXT');
    // keywords another session set are announced before a FETCH line carries them (Dovecot's client_get_keyword_names)
    if (msgs.length && (setsSeen || items.some((i) => i.k === 'FLAGS'))) await announceMailboxKeywords(s, sel, msgs.flatMap((x) => x.m.keywords));
    let vanished = false;
    // messages another session expunged whose data was asked for (sent as NIL): Dovecot's OK [EXPUNGEISSUED]
    const lost = new Set<number>();
    // responses are encoded here and written in 64 KiB batches (a FETCH 1:* on 100k messages would
    // otherwise pay one socket write per message); only a streamed big body goes out on its own
    let batch: Buffer[] = [];
    let batchLen = 0;
    let text = ''; // fast-path lines not yet turned into bytes
    const textOut = () => { if (text) { const b = Buffer.from(text, 'latin1'); batch.push(b); batchLen += b.length; text = ''; } };
    const flush = async () => { textOut(); if (batchLen) { const b = Buffer.concat(batch); batch = []; batchLen = 0; await s.sendRaw(b); } };
    // FETCH of only UID/FLAGS/RFC822.SIZE/MODSEQ and cached ENVELOPE/BODY/BODYSTRUCTURE (a client's
    // resync of a big mailbox) is rendered straight to text: no value tree, no promise per message
    const simple = !setsSeen && items.every((i) => FAST_KINDS.has(i.k));
    const ordered = [...items.filter((i) => BUFFERED.has(i.k)), ...items.filter((i) => !BUFFERED.has(i.k))];
    const fastLine = (seq: number, m: MailMessage) => (simple ? simpleFetchLine(s, sel, seq, m, ordered) : null);
    // items made by parsing (ENVELOPE, BODYSTRUCTURE… on a first sync, before they are cached) are
    // rendered a window ahead, so reading and parsing overlap instead of one message's open/read/close
    // after another (a first FETCH 1:* ENVELOPE of 100k messages); bodies and \Seen changes stay in turn
    const ahead = !needBody && !setsSeen ? new Map<number, Promise<ImapValue[]>>() : null;
    const rendered = (n: number): Promise<ImapValue[]> => {
      if (!ahead) return renderItems(ctx.session, msgs[n].m, items, false, lost);
      for (let k = n; k < Math.min(msgs.length, n + RENDER_AHEAD); k++) {
        if (ahead.has(k) || (k > n && simple && inFieldCache(sel, msgs[k].m, items))) continue; // that one goes the fast way
        const p = renderItems(ctx.session, msgs[k].m, items, false, lost);
        p.catch(() => undefined); // awaited in turn; one never awaited (the command ended early) is no unhandled rejection
        ahead.set(k, p);
      }
      const p = ahead.get(n)!;
      ahead.delete(n);
      return p;
    };
    for (let n = 0; n < msgs.length; n++) {
      const { seq, m } = msgs[n];
      if (simple) {
        const line = fastLine(seq, m);
        if (line !== null) {
          // a keyword set meanwhile by another session: FLAGS first (Dovecot's client_get_keyword_names)
          if (sel.unannounced(m.keywords)) { await flush(); await announceMailboxKeywords(s, sel, m.keywords); }
          text += line;
          if (text.length >= 65536) { textOut(); await flush(); }
          continue;
        }
      }
      try {
      if (needBody && n % 16 === 0) sel.folder.prefetch(msgs.slice(n, n + 32).map((x) => x.m));
      let flagsChanged = false;
      if (setsSeen && !m.flags.has('\\Seen')) {
        try {
          await sel.folder.setFlags(m, [...m.flags, '\\Seen'], m.keywords);
          flagsChanged = true;
        } catch (e) {
          // expunged by another session: nothing to mark, its data items come out NIL
          if (!(e instanceof MailStoreError && e.code === 'EXPUNGED')) throw e;
        }
      }
      const values = flagsChanged ? await renderItems(ctx.session, m, items, true, lost) : await rendered(n);
      if (flagsChanged) sel.noteFlags(m);
      const extra: ImapValue[] = [];
      if (flagsChanged && s.condstore) {
        // the implicit \Seen got a new MODSEQ: Dovecot reports it in a FETCH of its own
        await sel.folder.commitModseqs();
        extra.push(num(seq), atom('FETCH'), list([...(uidMode || s.qresync ? [atom('UID'), num(m.uid)] : []), atom('MODSEQ'), list([num(m.modseq)])]));
        s.noteModseq(m.modseq);
      }
      if (sel.unannounced(keywordsIn([flagsIn(values)]))) { await flush(); await announceShown(s, sel, values); }
      const streamed = values.some((v) => v.type === 'literal' && !Buffer.isBuffer(v.body));
      if (!streamed) {
        textOut(); // keep fast-path lines before this one
        const b = responseBytes({ kind: 'data', values: [num(seq), atom('FETCH'), list(values)] });
        batch.push(b); batchLen += b.length;
        if (batchLen >= 65536) await flush();
      } else {
        await flush();
        try {
          await s.untagged([num(seq), atom('FETCH'), list(values)]);
        } catch (e) {
          if (!(e instanceof MailStoreError)) throw e;
          // part of a streamed literal is out and its size was promised: nothing can follow it on
          // this connection, so as Dovecot (imap-fetch-body.c) the client is disconnected
          s.log.error(e.message);
          s.log.info(`Disconnected: ${e.code === 'EXPUNGED' ? 'Mail expunged while it was being FETCHed' : 'FETCH read() failed'}`);
          s.end();
          return;
        }
      }
      if (extra.length) { await flush(); await s.untagged(extra); }
      } catch (e) {
        if (e instanceof CteAbort) {
          await flush();
          await announceShown(s, sel, e.values);
          await s.untagged([num(seq), atom('FETCH'), list(e.values)]);
          await ctx.no('Unknown Content-Transfer-Encoding', { name: 'UNKNOWN-CTE' });
          return;
        }
        // expunged by another session after our view was made: skip it, report at the end (RFC 5530)
        if (e instanceof MailStoreError && e.code === 'EXPUNGED') { vanished = true; continue; }
        throw e;
      }
    }
    await flush();
    // Dovecot ends every command with a sync: others' changes (expunges only after UID commands)
    if (vanished) { await s.sendUpdates(uidMode, undefined, false, uidMode); await ctx.no('Some of the requested messages no longer exist.', { name: 'EXPUNGEISSUED' }); }
    else if (lost.size) { await s.sendUpdates(uidMode, undefined, false, uidMode); await ctx.ok('Some messages were already expunged', { name: 'EXPUNGEISSUED' }); }
    else await ctx.ok('Fetch completed', await s.sendUpdates(uidMode, undefined, true, uidMode));
  } catch (e) {
    await replyError(ctx, e);
  }
}

/** A partial's bytes and the label naming its origin (`BODY[..]<start>`). */
function cut(name: string, data: Buffer, partial: [number, number | undefined] | undefined): [string, Buffer] {
  if (!partial) return [name, data];
  const [start, len] = partial;
  return [`${name}<${start}>`, data.subarray(start, len === undefined ? undefined : start + len)];
}

/** The items Dovecot writes first (its buffered handlers). */
const BUFFERED = new Set(['UID', 'FLAGS', 'MODSEQ', 'INTERNALDATE', 'SAVEDATE', 'RFC822.SIZE', 'PREVIEW']);

/** A message whose part has an unknown Content-Transfer-Encoding: Dovecot ends the FETCH there. */
class CteAbort extends Error {
  constructor(readonly values: ImapValue[]) { super('Unknown Content-Transfer-Encoding'); }
}

/** Items the text fast path can write: buffered ones known without I/O, and values from the field cache. */
const FAST_KINDS = new Set(['UID', 'FLAGS', 'RFC822.SIZE', 'MODSEQ', 'ENVELOPE', 'BODY', 'BODYSTRUCTURE']);
/** imap_append_string: quoted unless 8-bit, CR/LF or more than four '"' and '\\' (imap-quote.c QUOTED_MAX_ESCAPE_CHARS). */
function previewString(b: Buffer): ImapValue {
  let escapes = 0;
  for (const c of b) if (c === 0x22 || c === 0x5c) escapes++;
  return escapes > 4 ? { type: 'literal', size: b.length, body: b } : str(b);
}

/** The preview text (UTF-8) in the field cache; the suffix is Dovecot's snippet algorithm version. */
const SNIPPET_FIELD = 'snippet.1';
const CACHED_FIELD: Record<string, string> = { ENVELOPE: `envelope${RENDER}`, BODY: `body${RENDER}`, BODYSTRUCTURE: `bodystructure${RENDER}` };

/** Every cached item of this FETCH is in the loaded field cache (the text fast path can write the message). */
function inFieldCache(sel: Selected, m: MailMessage, items: Item[]): boolean {
  const fc = sel.folder.fieldCache;
  return items.every((i) => !CACHED_FIELD[i.k] || fc?.peekText(m.uid, CACHED_FIELD[i.k]) !== undefined);
}

/**
 * The response line of a FETCH when every value is known without I/O
 * (RFC822.SIZE from the file name's W=, ENVELOPE/BODY/BODYSTRUCTURE already
 * in the loaded field cache); null otherwise. `items` in Dovecot's order
 * (buffered first). Same bytes as the general encoder: numbers and flag atoms
 * need no quoting, cached values are stored as their wire bytes.
 */
function simpleFetchLine(s: CommandContext['session'], sel: Selected, seq: number, m: MailMessage, items: Item[]): string | null {
  let out = `* ${seq} FETCH (`;
  for (let i = 0; i < items.length; i++) {
    if (i) out += ' ';
    const field = CACHED_FIELD[items[i].k];
    if (field) {
      const v = sel.folder.fieldCache?.peekText(m.uid, field);
      if (v === undefined) return null;
      out += `${items[i].k} ${v}`;
      continue;
    }
    switch (items[i].k) {
      case 'UID': out += `UID ${m.uid}`; break;
      case 'FLAGS': out += `FLAGS (${sel.flagsOf(m).join(' ')})`; break;
      case 'RFC822.SIZE': if (m.vsize === undefined) return null; out += `RFC822.SIZE ${m.vsize}`; break;
      case 'MODSEQ': out += `MODSEQ (${m.modseq})`; s.noteModseq(m.modseq); break;
      default: return null;
    }
  }
  return `${out})\r\n`;
}

/** Items renderItems can answer from the message's header alone (ENVELOPE) or without the message. */
const HEADER_ONLY_OK = new Set(['UID', 'FLAGS', 'MODSEQ', 'INTERNALDATE', 'SAVEDATE', 'RFC822.SIZE', 'ENVELOPE']);
/** Bytes read for a header-only item; a longer header is read with the whole message. */
const HEADER_READ = 16384;

/** The name an item's value is sent under (`BODY[TEXT]<0>`, `BINARY.SIZE[1]`, `ENVELOPE`). */
function itemLabel(it: Item): string {
  if (it.k === 'BINARY.SIZE') return `BINARY.SIZE[${sectionName(it.section)}]`;
  if (it.k === 'PREVIEW') return it.name;
  if (it.k !== 'SECTION') return it.k;
  return `${it.binary ? 'BINARY' : 'BODY'}[${sectionName(it.section)}]${it.partial ? `<${it.partial[0]}>` : ''}`;
}

/**
 * What Dovecot sends for an item of a message whose data is gone (imap-fetch.c's
 * and imap-fetch-body.c's nil_reply of each handler): grammatical placeholders,
 * never a bare NIL where the syntax wants a date, number or list.
 */
function nilReply(it: Item): string {
  switch (it.k) {
    case 'INTERNALDATE': return '"01-Jan-1970 00:00:00 +0000"';
    case 'RFC822.SIZE': case 'BINARY.SIZE': return '0';
    case 'ENVELOPE': return '(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)';
    case 'BODY': return `(${BODY_NIL})`;
    case 'BODYSTRUCTURE': return `(${BODY_NIL} NIL NIL NIL NIL)`;
    default: return 'NIL'; // SAVEDATE, PREVIEW, RFC822[.HEADER/.TEXT], BODY[..], BINARY[..]
  }
}
const BODY_NIL = '"text" "plain" NIL NIL NIL "7bit" 0 0';

/** How many messages' items are rendered ahead of the one being sent. */
const RENDER_AHEAD = 16;
/** Messages up to this size (S= in the file name) are read whole rather than streamed. */
const WHOLE_READ_MAX = 1024 * 1024;

/**
 * The values of one message's FETCH items. An item whose data is gone (the
 * message was expunged by another session, this one still sees it) is sent
 * as `NAME NIL` and its UID added to `lost`, as Dovecot's
 * imap_fetch_send_nil_reply; the other items still go out.
 */
async function renderItems(session: CommandContext['session'], m: MailMessage, items: Item[], flagsChanged: boolean, lost: Set<number>): Promise<ImapValue[]> {
  const sel = session.selected!;
  const folder = sel.folder;
  let crlf: Buffer | null = null;
  const message = async (): Promise<Buffer> => {
    if (crlf) return crlf;
    // a message known to be small is read in one go (callback readFile: no FileHandle and stream
    // per message, which dominated a first ENVELOPE fetch); others, or of unknown size, stream
    if (m.size !== undefined && m.size <= WHOLE_READ_MAX) { crlf = toCrlf(await folder.readAll(m)); return crlf; }
    const parts: Buffer[] = [];
    for await (const c of folder.read(m)) parts.push(c);
    crlf = toCrlf(Buffer.concat(parts));
    return crlf;
  };
  let tree: ReturnType<typeof parseMime> | null = null;
  // ENVELOPE alone needs only the header: its first bytes are read and parsed, not the whole message
  const headerOnly = items.every((i) => HEADER_ONLY_OK.has(i.k));
  const mime = async () => (tree ??= parseMime(headerOnly && !crlf ? await header() : await message()));
  const header = async (): Promise<Buffer> => {
    const head = await folder.readHeader(m, HEADER_READ);
    return head ? toCrlf(head) : message();
  };
  // Dovecot sends its buffered items (UID, FLAGS, INTERNALDATE, RFC822.SIZE) first, then the rest, each group in request order
  const out: ImapValue[] = [];
  const late: ImapValue[] = [];
  const lit = (b: Buffer): ImapValue => ({ type: 'literal', size: b.length, body: noNul(b) });
  let flagsSent = false;
  // ENVELOPE/BODY/BODYSTRUCTURE are cached per message (sealed for mail-crypt users) as their wire bytes
  const cachedValue = async (field: string, make: () => Promise<ImapValue>): Promise<ImapValue> => {
    const fc = folder.fieldCache;
    const hit = await fc?.getText(m.uid, field);
    if (hit !== undefined) return { type: 'raw', value: hit };
    const v = await make();
    const bytes = responseBytes({ kind: 'data', values: [v] });
    await fc?.set(m.uid, field, bytes.subarray(2, bytes.length - 2));
    return v;
  };
  // buffered items are rendered first, so an UNKNOWN-CTE abort can still send them
  const ordered = [...items.filter((i) => BUFFERED.has(i.k)), ...items.filter((i) => !BUFFERED.has(i.k))];
  for (const it of ordered) {
    try {
    switch (it.k) {
      case 'UID': out.push(atom('UID'), num(m.uid)); break;
      case 'FLAGS': out.push(atom('FLAGS'), list(sel.flagsOf(m).map(atom))); flagsSent = true; break;
      case 'MODSEQ': out.push(atom('MODSEQ'), list([num(m.modseq)])); session.noteModseq(m.modseq); break;
      case 'INTERNALDATE': out.push(atom('INTERNALDATE'), str(internalDate(await folder.receivedDate(m)))); break;
      // RFC 8514: buffered with the other quick items, as Dovecot sends it
      case 'SAVEDATE': out.push(atom('SAVEDATE'), str(internalDate(await folder.saveDate(m)))); break;
      case 'RFC822.SIZE': out.push(atom('RFC822.SIZE'), num(await folder.virtualSize(m))); break;
      case 'ENVELOPE': late.push(atom('ENVELOPE'), await cachedValue(`envelope${RENDER}`, async () => envelope(await mime()))); break;
      case 'BODY': late.push(atom('BODY'), await cachedValue(`body${RENDER}`, async () => bodyStructure(await message(), await mime(), false))); break;
      case 'BODYSTRUCTURE': late.push(atom('BODYSTRUCTURE'), await cachedValue(`bodystructure${RENDER}`, async () => bodyStructure(await message(), await mime(), true))); break;
      case 'PREVIEW': {
        // body.snippet as Dovecot caches it: computed once, kept in the field cache (sealed for
        // mail-crypt users); LAZY only looks there and answers NIL when it is not there yet
        const fc = folder.fieldCache;
        let text = await fc?.getText(m.uid, SNIPPET_FIELD);
        if (text === undefined && !it.lazy) {
          const b = Buffer.from(messageSnippet(await message(), await mime()), 'utf8');
          await fc?.set(m.uid, SNIPPET_FIELD, b);
          text = b.toString('latin1');
        }
        const v = text === undefined ? NIL : previewString(Buffer.from(text, 'latin1'));
        out.push({ type: 'raw', value: it.name }, it.old ? list([atom('FUZZY'), v]) : v);
        break;
      }
      case 'RFC822': late.push(atom('RFC822'), lit(await message())); break;
      case 'RFC822.HEADER': late.push(atom('RFC822.HEADER'), lit(sectionBytes(await message(), await mime(), 'HEADER') ?? Buffer.alloc(0))); break;
      case 'RFC822.TEXT': late.push(atom('RFC822.TEXT'), lit(sectionBytes(await message(), await mime(), 'TEXT') ?? Buffer.alloc(0))); break;
      case 'BINARY.SIZE': {
        const b = binarySection(await message(), await mime(), it.section);
        const size = b ? b.data.length : (sectionBytes(await message(), await mime(), it.section) ?? Buffer.alloc(0)).length;
        late.push({ type: 'raw', value: `BINARY.SIZE[${sectionName(it.section)}]` }, num(size));
        break;
      }
      case 'SECTION': {
        const b = it.binary ? binarySection(await message(), await mime(), it.section) : null;
        if (b) {
          const [label, data] = cut(`BINARY[${sectionName(it.section)}]`, b.data, it.partial);
          // decoded data goes out as it is, NUL included, in a literal8 when Dovecot uses one
          late.push({ type: 'raw', value: label }, { type: 'literal', size: data.length, body: data, literal8: b.binary });
          break;
        }
        const name = `${it.binary ? 'BINARY' : 'BODY'}[${sectionName(it.section)}]`;
        const whole = it.section === '' && !it.partial && !crlf ? await folder.virtualSize(m) : 0;
        if (whole > STREAM_ABOVE) {
          // a big message: streamed, never held
          const size = whole;
          late.push({ type: 'raw', value: name }, { type: 'literal', size, body: crlfStream(folder.read(m)) });
          break;
        }
        const [label, data] = cut(name, it.section === '' ? await message() : sectionBytes(await message(), await mime(), it.section) ?? Buffer.alloc(0), it.partial);
        late.push({ type: 'raw', value: label }, lit(data));
        break;
      }
    }
    } catch (e) {
      // Dovecot stops at the failing item: what was written before it goes out
      if (e instanceof UnknownCteError) throw new CteAbort(out.length || late.length ? [...out, ...late] : [atom('UID'), num(m.uid)]);
      if (e instanceof MailStoreError && e.code === 'EXPUNGED') {
        lost.add(m.uid);
        (BUFFERED.has(it.k) ? out : late).push({ type: 'raw', value: itemLabel(it) }, { type: 'raw', value: nilReply(it) });
        continue;
      }
      throw e;
    }
  }
  if (flagsChanged && !flagsSent) out.push(atom('FLAGS'), list(sel.flagsOf(m).map(atom)));
  return [...out, ...late];
}

/**
 * SEARCH RETURN (UPDATE (fetch-att …)), Dovecot's extension of RFC 5267:
 * the list parsed as Dovecot's imap_fetch_att_list_parse does (atoms only,
 * no macros, its error texts); the sender FETCHes those items for a new
 * message an update adds. Body sections are read as with .PEEK (an update
 * sets no \Seen here).
 */
export function parseUpdateFetch(arg: Extract<ImapArg, { type: 'list' }>, session: CommandContext['session']): UpdateFetch | null {
  const n = arg.items.findIndex((a) => a.type !== 'atom');
  const atoms = n < 0 ? arg.items : arg.items.slice(0, n);
  let items: Item[] = [];
  try {
    if (atoms.length) items = parseItems([{ type: 'list', items: atoms }], 0).items;
  } catch (e) {
    if (e instanceof ArgError) throw new ArgError(`SEARCH UPDATE fetch-att: Invalid fetch-att list: ${e.message}`);
    throw e;
  }
  if (n >= 0) throw new ArgError('SEARCH UPDATE fetch-att: fetch-att list contains non-atoms.');
  // an empty list is accepted and fetches nothing: no FETCH line at all (Dovecot)
  if (!items.length) return null;
  const peek = items.map((i) => (i.k === 'SECTION' ? { ...i, peek: true } : i));
  return async (seq, uid) => {
    const sel = session.selected;
    const m = sel?.message(uid);
    if (!sel || !m) return;
    let values: ImapValue[];
    try {
      values = await renderItems(session, m, peek, false, new Set());
    } catch (e) {
      // a BINARY of an unknown encoding: no FETCH line for it (an update has no command to fail)
      if (e instanceof CteAbort) return;
      throw e;
    }
    await announceShown(session, sel, values);
    await session.untagged([num(seq), atom('FETCH'), list(values)]);
  };
}

export const fetchCommands: Record<string, Command> = {
  FETCH: { states: SELECTED, run: (ctx) => fetch(ctx, false) },
  'UID FETCH': { states: SELECTED, run: (ctx) => fetch(ctx, true) },
};

/** FETCH's error text for a fetch-att list (NOTIFY's MessageNew checks its list with it), null when it is valid. */
export function fetchAttError(arg: ImapArg): string | null {
  try { parseItems([arg], 0); return null; } catch (e) { if (e instanceof ArgError) return e.message; throw e; }
}

/**
 * NOTIFY's MessageNew fetch-att (Dovecot's imap_client_notify_newmails):
 * the new messages, UIDs `from`..`to`, FETCHed as the client asked, untagged
 * (by UID, without adding UID to the items as UID FETCH does).
 */
export async function fetchNewForNotify(session: CommandContext['session'], from: number, to: number, att: ImapArg): Promise<void> {
  const quiet = async () => undefined;
  await fetch({ tag: '*', name: 'FETCH', args: [{ type: 'atom', value: `${from}:${to}` }, att], session, ok: quiet, no: quiet, bad: quiet }, true, false);
}
