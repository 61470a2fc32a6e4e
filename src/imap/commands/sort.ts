/**
 * SORT and UID SORT (RFC 5256 §3), with Dovecot's SORT=DISPLAY keys
 * (RFC 5957) and ESORT's RETURN options (RFC 5267): the sort program parsed
 * with Dovecot's rules and error texts (REVERSE toggles and applies to the
 * next key, a repeated key is ignored), the search program shared with
 * SEARCH, the ordering done by the store (src/mailstore/sort.ts).
 */
import { atom, list, num } from '../wire/encoder.js';
import type { ImapArg } from '../wire/parser.js';
import { loadSortMessages } from '../../mailstore/sort-headers.js';
import { SORT_KEYS, sortMessages, type SortCriterion, type SortKey } from '../../mailstore/sort.js';
import { SELECTED, type Command, type CommandContext } from './types.js';
import { ArgError, astring } from './args.js';
import { replyError } from './errors.js';
import { esearchResponse, parseReturn, parseSearchProgram, recodeArgs, returnedModseq, savedResult, searchSelected, usesModseq } from './search.js';

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
    const { ret, rest } = parseReturn(ctx.args, true);
    // RFC 5182: SORT RETURN (SAVE …) keeps the result as `$`; a failed SORT empties it
    if (ret?.has('SAVE')) { saving = true; ret.delete('SAVE'); }
    const program = sortProgram(rest[0]);
    const charset = charsetArg(rest[1], 'Invalid charset argument.');
    const q = parseSearchProgram(ctx, recodeArgs(rest.slice(2), charset));
    const byModseq = usesModseq(q);
    if (byModseq) await ctx.session.enableCondstore();
    const hits = await searchSelected(ctx, q);
    const sorted = sortMessages(await loadSortMessages(sel.folder, hits), program);
    const ns = sorted.map((m) => (uidMode ? m.uid : m.seq));
    // RFC 7162 §3.1.5 (and Dovecot): a MODSEQ key adds the highest MODSEQ of the returned messages
    const modseqOf = new Map(hits.map((h) => [h.m.uid, h.m.modseq]));
    const top = byModseq ? returnedModseq(ret, sorted.map((m) => ({ modseq: modseqOf.get(m.uid) ?? 0 }))) : 0;
    if (saving) sel.saved = savedResult(ret!, sorted.map((m) => m.uid));
    if (ret && saving && !ret.size && !top) { /* SAVE alone: no ESEARCH response, unless it has a MODSEQ to report (Dovecot) */ } else if (ret) await ctx.session.untagged([...esearchResponse(ctx.tag, uidMode, ret, ns, true), ...(top ? [atom('MODSEQ'), num(top)] : [])]);
    else await ctx.session.untagged([atom('SORT'), ...ns.map(num), ...(top ? [list([atom('MODSEQ'), num(top)])] : [])]);
    await ctx.ok('Sort completed');
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
