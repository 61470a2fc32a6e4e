/**
 * Selecting and leaving a mailbox (RFC 3501 §6.3.1-2, §6.4.2-3; RFC 3691
 * UNSELECT; RFC 4315 UID EXPUNGE): the SELECT/EXAMINE untagged data in
 * Dovecot's order, CLOSE's silent expunge, EXPUNGE of \Deleted messages.
 */
import { atom, list, num } from '../wire/encoder.js';
import { Selected, SYSTEM_FLAGS } from '../selected.js';
import { AUTHED, SELECTED, type Command, type CommandContext } from './types.js';
import { mailboxArg, seqSet } from './args.js';
import { replyError } from './errors.js';

async function select(ctx: CommandContext, readOnly: boolean): Promise<void> {
  const s = ctx.session;
  let name = '';
  try {
    name = mailboxArg(ctx.args[0]);
    if (s.selected) {
      s.selected.release();
      s.selected = null;
      s.state = 'authenticated';
      await s.send({ kind: 'status', status: 'OK', code: { name: 'CLOSED' }, text: 'Previous mailbox closed.' });
    }
    const shared = await s.store!.openShared(name);
    const folder = shared.folder;
    const sel = new Selected(name, folder, readOnly, shared.release);
    try { await sel.open(); } catch (e) { shared.release(); throw e; }
    const kws = folder.keywordOrder;
    await s.untagged([atom('FLAGS'), list([...SYSTEM_FLAGS, ...kws].map(atom))]);
    await s.send({ kind: 'status', status: 'OK', code: { name: 'PERMANENTFLAGS', args: [list(readOnly ? [] : [...SYSTEM_FLAGS, ...kws, '\\*'].map(atom))] }, text: readOnly ? 'Read-only mailbox.' : 'Flags permitted.' });
    await s.untagged([num(sel.uids.length), atom('EXISTS')]);
    await s.untagged([num(sel.recent.size), atom('RECENT')]);
    const firstUnseen = folder.messages.findIndex((m) => !m.flags.has('\\Seen'));
    if (firstUnseen >= 0) await s.send({ kind: 'status', status: 'OK', code: { name: 'UNSEEN', args: [num(firstUnseen + 1)] }, text: 'First unseen.' });
    await s.send({ kind: 'status', status: 'OK', code: { name: 'UIDVALIDITY', args: [num(folder.uidValidity)] }, text: 'UIDs valid' });
    await s.send({ kind: 'status', status: 'OK', code: { name: 'UIDNEXT', args: [num(folder.uidNext)] }, text: 'Predicted next UID' });
    s.selected = sel;
    s.state = 'selected';
    await ctx.ok(readOnly ? 'Examine completed' : 'Select completed', { name: readOnly ? 'READ-ONLY' : 'READ-WRITE' });
  } catch (e) {
    s.selected = null;
    s.state = 'authenticated';
    await replyError(ctx, e, name);
  }
}

async function expungeDeleted(ctx: CommandContext, uids: Set<number> | null): Promise<number[]> {
  const sel = ctx.session.selected!;
  const victims = sel.folder.messages.filter((m) => m.flags.has('\\Deleted') && (!uids || uids.has(m.uid)));
  return victims.length ? sel.folder.expunge(victims) : [];
}

export const selectCommands: Record<string, Command> = {
  SELECT: { states: AUTHED, run: (ctx) => select(ctx, false) },
  EXAMINE: { states: AUTHED, run: (ctx) => select(ctx, true) },
  CLOSE: {
    states: SELECTED,
    async run(ctx) {
      const s = ctx.session;
      try { if (!s.selected!.readOnly) await expungeDeleted(ctx, null); } catch (e) { s.log.error(`CLOSE: expunge failed: ${(e as Error).message}`); }
      s.selected!.release();
      s.selected = null;
      s.state = 'authenticated';
      await ctx.ok('Close completed');
    },
  },
  UNSELECT: {
    states: SELECTED,
    async run(ctx) {
      ctx.session.selected!.release();
      ctx.session.selected = null;
      ctx.session.state = 'authenticated';
      await ctx.ok('Unselect completed');
    },
  },
  EXPUNGE: {
    states: SELECTED,
    async run(ctx) {
      if (ctx.session.selected!.readOnly) { await ctx.no('Mailbox is read-only', { name: 'READ-ONLY' }); return; }
      try {
        await expungeDeleted(ctx, null);
        await ctx.session.sendUpdates(true);
        await ctx.ok('Expunge completed');
      } catch (e) { await replyError(ctx, e); }
    },
  },
  'UID EXPUNGE': {
    states: SELECTED,
    async run(ctx) {
      const sel = ctx.session.selected!;
      if (sel.readOnly) { await ctx.no('Mailbox is read-only', { name: 'READ-ONLY' }); return; }
      try {
        const set = seqSet(ctx.args[0], true);
        await expungeDeleted(ctx, new Set(sel.resolve(set, true).map((x) => x.m.uid)));
        await ctx.session.sendUpdates(true);
        await ctx.ok('Expunge completed');
      } catch (e) { await replyError(ctx, e); }
    },
  },
};
