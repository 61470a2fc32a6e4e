/**
 * SORT and UID SORT (RFC 5256 §3), with Dovecot's SORT=DISPLAY keys
 * (RFC 5957) and ESORT's RETURN options (RFC 5267): the sort program parsed
 * with Dovecot's rules and error texts (REVERSE toggles and applies to the
 * next key, a repeated key is ignored), the search program shared with
 * SEARCH, the ordering done by the store (src/mailstore/sort.ts).
 */
import type { ImapArg } from '../wire/parser.js';
import { loadSortMessages } from '../../mailstore/sort-headers.js';
import { SORT_KEYS, sortMessages, type SortCriterion, type SortKey } from '../../mailstore/sort.js';
import { SELECTED, type Command, type CommandContext } from './types.js';
import { ArgError, astring } from './args.js';
import { replyError } from './errors.js';
import { admitUpdate, answerSearch, parseReturn, parseSearchProgram, recodeArgs, searchSelected, usesModseq, usesSeqSet } from './search.js';

function sortProgram(a: ImapArg | undefined): SortCriterion[] {
  if (!a || a.type !== 'list') throw new ArgError('Invalid sort argument.');
  if (!a.items.length) throw new ArgError('Empty sort program.');
  const out: SortCriterion[] = [];
  let reverse = false;
  let lastReverse = false;
  for (const it of a.items) {
    if (it.type !== 'atom' && it.type !== 'string') throw new ArgError('Invalid sort list argument.');
    const name = astring(it)!;
    lastReverse = name.toUpperCase() === 'REVERSE';
    if (lastReverse) { reverse = !reverse; continue; }
    const key = SORT_KEYS.find((k) => k === name.toUpperCase());
    if (!key) throw new ArgError(`Unknown sort argument: ${name}`);
    if (!out.some((c) => c.key === key)) out.push({ key: key as SortKey, reverse });
    reverse = false;
  }
  if (lastReverse) throw new ArgError('Sort list ends with REVERSE.');
  return out;
}

/** The charset argument of SORT/THREAD: an atom or string. */
function charsetArg(a: ImapArg | undefined, text: string): string {
  if (!a || (a.type !== 'atom' && a.type !== 'string')) throw new ArgError(text);
  return astring(a)!;
}

async function sort(ctx: CommandContext, uidMode: boolean): Promise<void> {
  const sel = ctx.session.selected!;
  let saving = false;
  try {
    // RFC 5267 ESORT and CONTEXT=SORT's options as Dovecot takes them (PARTIAL, UPDATE, SAVE …)
    const { ret, rest } = parseReturn(ctx.args, ctx);
    // RFC 5182: SORT RETURN (SAVE …) keeps the result as `$`; a failed SORT empties it
    if (ret?.has.has('SAVE')) saving = true;
    const program = sortProgram(rest[0]);
    const charset = charsetArg(rest[1], 'Invalid charset argument.');
    const q = parseSearchProgram(ctx, recodeArgs(rest.slice(2), charset));
    if (usesModseq(q)) await ctx.session.enableCondstore();
    const update = await admitUpdate(ctx, ret);
    const hits = await searchSelected(ctx, q);
    // an UPDATE context holds the matches as a set: its updates carry no sort position (Dovecot's ADDTO (0 …))
    if (update) sel.searchUpdates.add(ctx.tag, uidMode, q, hits.map((h) => h.m.uid), sel.uids, ret!.fetchAtt);
    // a message another session expunged, not announced yet, is still sorted (Dovecot)
    const sorted = sortMessages(await loadSortMessages(sel.folder, hits, true), program);
    const modseqOf = new Map(hits.map((h) => [h.m.uid, h.m.modseq]));
    await answerSearch(ctx, uidMode, ret, q, sorted.map((m) => ({ id: uidMode ? m.uid : m.seq, uid: m.uid, modseq: modseqOf.get(m.uid) ?? 0 })), 'SORT');
    // Dovecot ends SORT with the same sync as SEARCH (cmd_search_more)
    await ctx.ok('Sort completed', await ctx.session.sendUpdates(uidMode && !usesSeqSet(q), undefined, true, uidMode));
  } catch (e) {
    // a BAD (syntax) leaves `$` as it was, a failure (NO) empties it: Dovecot
    if (saving && !(e instanceof ArgError)) sel.saved = [];
    await replyError(ctx, e);
  }
}

export const sortCommands: Record<string, Command> = {
  SORT: { states: SELECTED, run: (ctx) => sort(ctx, false) },
  'UID SORT': { states: SELECTED, run: (ctx) => sort(ctx, true) },
};
