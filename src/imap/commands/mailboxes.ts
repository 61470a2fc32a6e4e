/**
 * Mailbox-level commands (RFC 3501 §6.3; RFC 6154 special-use; RFC 3348
 * CHILDREN; RFC 8438 STATUS=SIZE): LIST, LSUB, CREATE, DELETE, RENAME,
 * SUBSCRIBE, UNSUBSCRIBE, STATUS — on the store's Dovecot-compatible
 * folder operations, in Dovecot's LIST order, with "." as separator.
 */
import { atom, astr, list, num, str, type ImapValue } from '../wire/encoder.js';
import { AUTHED, type Command, type CommandContext } from './types.js';
import { ArgError, astring, mailboxArg, needAstring } from './args.js';
import { replyError } from './errors.js';

const SEP = '.';
/** Dovecot's STATUS item order. */
const STATUS_ORDER = ['MESSAGES', 'RECENT', 'UIDNEXT', 'UIDVALIDITY', 'UNSEEN', 'HIGHESTMODSEQ', 'SIZE'];

/** LIST pattern → RegExp: `*` anything, `%` anything but the separator. */
function pattern(ref: string, pat: string): RegExp {
  const full = ref + pat;
  const re = full.split('').map((c) => (c === '*' ? '.*' : c === '%' ? '[^.]*' : c.replace(/[\\^$.|?+()[\]{}]/g, '\\$&'))).join('');
  return new RegExp(`^${/^inbox/i.test(full) ? '(?:INBOX|[Ii][Nn][Bb][Oo][Xx])' + re.slice(5) : re}$`);
}

async function listCmd(ctx: CommandContext, lsub: boolean): Promise<void> {
  const s = ctx.session;
  let args = ctx.args;
  if (args[0]?.type === 'list') args = args.slice(1); // selection options (LIST-EXTENDED): treated as plain LIST
  const ref = astring(args[0]);
  const pat = astring(args[1]);
  if (ref === null || pat === null) { await ctx.bad(`Error in IMAP command ${ctx.name}: Invalid arguments.`); return; }
  if (pat === '' && !lsub) {
    await s.untagged([atom('LIST'), list([atom('\\Noselect')]), str(SEP), str('')]);
    await ctx.ok('List completed');
    return;
  }
  const re = pattern(ref, pat);
  const entries = lsub ? await s.store!.lsub() : await s.store!.list(true);
  for (const e of entries) {
    if (!re.test(e.name)) continue;
    await s.untagged([atom(lsub ? 'LSUB' : 'LIST'), list(e.flags.map(atom)), str(SEP), astr(e.name)]);
  }
  await ctx.ok(lsub ? 'Lsub completed' : 'List completed');
}

export const mailboxCommands: Record<string, Command> = {
  LIST: { states: AUTHED, run: (ctx) => listCmd(ctx, false) },
  LSUB: { states: AUTHED, run: (ctx) => listCmd(ctx, true) },
  CREATE: {
    states: AUTHED,
    async run(ctx) {
      let name = '';
      try {
        name = mailboxArg(ctx.args[0]).replace(/\.$/, '');
        await ctx.session.store!.create(name);
        await ctx.ok('Create completed');
      } catch (e) { await replyError(ctx, e, name); }
    },
  },
  DELETE: {
    states: AUTHED,
    async run(ctx) {
      let name = '';
      try {
        name = mailboxArg(ctx.args[0]);
        if (ctx.session.selected?.name === name) { await ctx.no('Can\'t delete selected mailbox', { name: 'CANNOT' }); return; }
        await ctx.session.store!.delete(name);
        await ctx.ok('Delete completed');
      } catch (e) { await replyError(ctx, e, name); }
    },
  },
  RENAME: {
    states: AUTHED,
    async run(ctx) {
      let from = '';
      try {
        from = mailboxArg(ctx.args[0]);
        await ctx.session.store!.rename(from, mailboxArg(ctx.args[1]));
        await ctx.ok('Rename completed');
      } catch (e) { await replyError(ctx, e, from); }
    },
  },
  SUBSCRIBE: {
    states: AUTHED,
    async run(ctx) {
      let name = '';
      try { name = mailboxArg(ctx.args[0]); await ctx.session.store!.subscribe(name, true); await ctx.ok('Subscribe completed'); } catch (e) { await replyError(ctx, e, name); }
    },
  },
  UNSUBSCRIBE: {
    states: AUTHED,
    async run(ctx) {
      let name = '';
      try { name = mailboxArg(ctx.args[0]); await ctx.session.store!.subscribe(name, false); await ctx.ok('Unsubscribe completed'); } catch (e) { await replyError(ctx, e, name); }
    },
  },
  STATUS: {
    states: AUTHED,
    async run(ctx) {
      let name = '';
      try {
        name = mailboxArg(ctx.args[0]);
        const items = ctx.args[1];
        if (!items || items.type !== 'list') throw new ArgError('Invalid arguments.');
        const want = new Set<string>();
        for (const it of items.items) {
          const k = needAstring(it).toUpperCase();
          if (!STATUS_ORDER.includes(k)) throw new ArgError(`Invalid status item ${k}`);
          want.add(k);
        }
        // RFC 7162 §3.1.1: asking for HIGHESTMODSEQ enables CONDSTORE
        if (want.has('HIGHESTMODSEQ')) await ctx.session.enableCondstore();
        const st = await ctx.session.store!.status(name, want.has('HIGHESTMODSEQ'));
        const values: Record<string, number> = { MESSAGES: st.messages, RECENT: st.recent, UIDNEXT: st.uidnext, UIDVALIDITY: st.uidvalidity, UNSEEN: st.unseen, HIGHESTMODSEQ: st.highestModseq, SIZE: st.vsize };
        // Dovecot answers in its own fixed order, whatever order was asked
        const out: ImapValue[] = [];
        for (const k of STATUS_ORDER) if (want.has(k)) out.push(atom(k), num(values[k]));
        await ctx.session.untagged([atom('STATUS'), astr(name), list(out)]);
        if (ctx.session.selected?.name === name) await ctx.ok('Status on selected mailbox completed', { name: 'CLIENTBUG' });
        else await ctx.ok('Status completed');
      } catch (e) { await replyError(ctx, e, name); }
    },
  },
};
