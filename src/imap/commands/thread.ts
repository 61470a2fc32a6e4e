/**
 * THREAD and UID THREAD (RFC 5256 §4): ORDEREDSUBJECT, REFERENCES and
 * Dovecot's REFS over the messages the search program selects, written the
 * way Dovecot writes the tree (a lone child follows its parent without
 * parentheses, a placeholder root is an unnumbered parenthesis).
 */
import type { ThreadNode, ThreadAlgorithm } from '../../mailstore/thread.js';
import { THREAD_ALGORITHMS, threadMessages } from '../../mailstore/thread.js';
import { loadSortMessages } from '../../mailstore/sort-headers.js';
import { atom } from '../wire/encoder.js';
import { SELECTED, type Command, type CommandContext } from './types.js';
import { ArgError, astring } from './args.js';
import { replyError } from './errors.js';
import { parseSearchProgram, recodeArgs, searchSelected, usesModseq } from './search.js';

function render(nodes: ThreadNode[], root: boolean): string {
  if (!nodes.length) return '';
  if (nodes.length === 1 && !root) {
    const n = nodes[0];
    return n.children.length ? `${n.n} ${render(n.children, false)}` : `${n.n}`;
  }
  let s = '';
  for (const n of nodes) {
    if (!n.children.length) { if (n.n) s += `(${n.n})`; continue; }
    s += `(${n.n ? `${n.n} ` : ''}${render(n.children, false)})`;
  }
  return s;
}

async function thread(ctx: CommandContext, uidMode: boolean): Promise<void> {
  try {
    const alg = astring(ctx.args[0]);
    const charset = astring(ctx.args[1]);
    if (alg === null || charset === null) throw new ArgError('Invalid arguments.');
    const algorithm = THREAD_ALGORITHMS.find((a) => a === alg.toUpperCase()) as ThreadAlgorithm | undefined;
    if (!algorithm) throw new ArgError('Unknown thread algorithm.');
    const q = parseSearchProgram(ctx, recodeArgs(ctx.args.slice(2), charset));
    const sel = ctx.session.selected!;
    if (usesModseq(q)) await ctx.session.enableCondstore(); // RFC 7162 §3.1: a MODSEQ key enables CONDSTORE
    const hits = await searchSelected(ctx, q);
    // UID THREAD numbers the tree by UID: the store threads whatever numbers it is given
    const msgs = await loadSortMessages(sel.folder, uidMode ? hits.map((h) => ({ seq: h.m.uid, m: h.m })) : hits);
    // a subset is threaded with Dovecot's ID order of the whole mailbox (placeholder roots that tie keep it)
    let universe = msgs;
    if (algorithm !== 'ORDEREDSUBJECT' && hits.length < sel.uids.length) {
      universe = await loadSortMessages(sel.folder, sel.uids.flatMap((u, i) => { const m = sel.message(u); return m ? [{ seq: i + 1, m }] : []; }));
    }
    await ctx.session.untagged([atom('THREAD'), { type: 'raw', value: render(threadMessages(msgs, algorithm, universe), true) }]);
    // Dovecot's cmd_thread ends with a sync: expunges announced after UID THREAD only
    await ctx.ok('Thread completed', await ctx.session.sendUpdates(uidMode, undefined, true, uidMode));
  } catch (e) {
    await replyError(ctx, e);
  }
}

export const threadCommands: Record<string, Command> = {
  THREAD: { states: SELECTED, run: (ctx) => thread(ctx, false) },
  'UID THREAD': { states: SELECTED, run: (ctx) => thread(ctx, true) },
};
