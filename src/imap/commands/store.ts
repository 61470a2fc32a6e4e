/**
 * STORE and UID STORE (RFC 3501 §6.4.6): FLAGS, +FLAGS, -FLAGS and their
 * .SILENT forms on system flags and keywords (\Recent can't be stored). The
 * new flags are reported unless SILENT; changes by others come with the next
 * update, never mixed into this reply.
 */
import type { SystemFlag } from '../../mailstore/maildir/filename.js';
import { atom, list, num } from '../wire/encoder.js';
import { SYSTEM_FLAGS } from '../selected.js';
import { SELECTED, type Command, type CommandContext } from './types.js';
import { ArgError, astring, flagList, seqSet } from './args.js';
import { replyError } from './errors.js';

async function store(ctx: CommandContext, uidMode: boolean): Promise<void> {
  const s = ctx.session;
  const sel = s.selected!;
  try {
    const set = seqSet(ctx.args[0], uidMode);
    const op = astring(ctx.args[1])?.toUpperCase() ?? '';
    const m = /^([+-]?)FLAGS(\.SILENT)?$/.exec(op);
    if (!m) throw new ArgError('Invalid arguments.');
    const flags = flagList(ctx.args[2]);
    if (sel.readOnly) { await ctx.ok('Store ignored with read-only mailbox'); return; } // Dovecot's answer
    const sys = new Set<SystemFlag>();
    const kws: string[] = [];
    for (const f of flags) {
      const canon = SYSTEM_FLAGS.find((x) => x.toLowerCase() === f.toLowerCase());
      if (canon) sys.add(canon);
      else if (f.startsWith('\\')) { if (f.toLowerCase() !== '\\recent') throw new ArgError(`Invalid system flag ${f}`); }
      else kws.push(f);
    }
    const targets = sel.resolve(set, uidMode);
    for (const { seq, m: msg } of targets) {
      let nf: Set<SystemFlag>;
      let nk: string[];
      if (m[1] === '+') { nf = new Set([...msg.flags, ...sys]); nk = [...new Set([...msg.keywords, ...kws])]; }
      else if (m[1] === '-') { nf = new Set([...msg.flags].filter((x) => !sys.has(x))); nk = msg.keywords.filter((k) => !kws.includes(k)); }
      else { nf = sys; nk = kws; }
      const same = nf.size === msg.flags.size && [...nf].every((x) => msg.flags.has(x)) && nk.join(' ') === msg.keywords.join(' ');
      if (!same) await sel.folder.setFlags(msg, nf, nk);
      sel.noteFlags(msg);
      if (!m[2]) await s.untagged([num(seq), atom('FETCH'), list([...(uidMode ? [atom('UID'), num(msg.uid)] : []), atom('FLAGS'), list(sel.flagsOf(msg).map(atom))])]);
    }
    await ctx.ok('Store completed');
  } catch (e) {
    await replyError(ctx, e);
  }
}

export const storeCommands: Record<string, Command> = {
  STORE: { states: SELECTED, run: (ctx) => store(ctx, false) },
  'UID STORE': { states: SELECTED, run: (ctx) => store(ctx, true) },
};
