/**
 * COPY, UID COPY, MOVE, UID MOVE (RFC 3501 §6.4.7, RFC 6851 MOVE, RFC 4315
 * COPYUID): messages keep flags, keywords and INTERNALDATE; the reply names
 * the new UIDs. MOVE expunges the sources after the copies are safely
 * stored, announcing COPYUID first as Dovecot does. COPY tests the quota of
 * the target with the messages' physical sizes (vsizes with quota_vsizes)
 * as one transaction; MOVE within the user's namespace never does (Dovecot's
 * quota_move_requires_check). With IMAPSieve the copies are handed to the
 * mailbox rules (cause COPY, MOVE included, as Pigeonhole) once stored, before
 * MOVE expunges the sources and before the tagged reply.
 */
import { MailStoreError } from '../../mailstore/errors.js';
import { formatSequenceSet } from '../wire/sequence.js';
import { SELECTED, type Command, type CommandContext } from './types.js';
import { mailboxArg, seqSet } from './args.js';
import { replyError } from './errors.js';
import { ownRecent } from './append.js';

function uidSet(uids: number[]): string {
  return formatSequenceSet(uids.map((u) => ({ from: u, to: u })).reduce<{ from: number; to: number }[]>((acc, r) => {
    const last = acc[acc.length - 1];
    if (last && r.from === last.to + 1) last.to = r.from; else acc.push({ ...r });
    return acc;
  }, []));
}

async function copy(ctx: CommandContext, uidMode: boolean, move: boolean): Promise<void> {
  const s = ctx.session;
  const sel = s.selected!;
  let dest = '';
  try {
    const set = seqSet(ctx.args[0], uidMode);
    dest = mailboxArg(ctx.args[1], ctx.session);
    if (move && sel.readOnly) { await ctx.no('Mailbox is read-only', { name: 'READ-ONLY' }); return; }
    let target;
    try { target = await s.store!.open(dest); } catch (e) {
      if (e instanceof MailStoreError && e.code === 'NONEXISTENT') { await ctx.no(`Mailbox doesn't exist: ${dest}`, { name: 'TRYCREATE' }); return; }
      throw e;
    }
    const msgs = sel.resolve(set, uidMode);
    if (!msgs.length) { await ctx.ok('No messages found'); return; } // Dovecot's answer to an empty set (e.g. `$` before any SAVE)
    if (!move && s.quota && msgs.length) {
      const sizes: number[] = [];
      for (const { m } of msgs) sizes.push(s.quota.settings.vsizes ? await sel.folder.virtualSize(m) : m.size ?? (await sel.folder.stat(m)).size);
      if (!(await s.quota.fits(dest, sizes))) { await ctx.no(s.quota.exceededMessage(), { name: 'OVERQUOTA' }); return; }
    }
    const src: number[] = [];
    const dst: number[] = [];
    target.beginQuotaBatch();
    try {
      for (const { m } of msgs) {
        const st = await sel.folder.stat(m);
        dst.push(await target.copyFrom(sel.folder, m, { flags: m.flags, keywords: m.keywords, internalDate: st.mtime, tookRecent: ownRecent(s, target.dir) }));
        src.push(m.uid);
      }
    } finally { await target.endQuotaBatch(); }
    if (s.imapSieve && dst.length) await s.imapSieve.run({ cause: 'COPY', mailbox: dest.toUpperCase() === 'INBOX' ? 'INBOX' : dest, from: sel.name, uids: dst });
    const code = src.length ? { name: 'COPYUID', args: `${target.uidValidity} ${uidSet(src)} ${uidSet(dst)}` } : undefined;
    if (move) {
      if (code) await s.send({ kind: 'status', status: 'OK', code, text: 'Moved UIDs.' });
      await sel.folder.expunge(msgs.map((x) => x.m));
      await ctx.ok('Move completed', await s.sendUpdates(true, undefined, true, uidMode));
      return;
    }
    // Dovecot ends every command with a sync: a copy into the selected mailbox shows up as EXISTS
    await s.sendUpdates(uidMode, undefined, false, uidMode);
    await ctx.ok('Copy completed', code);
  } catch (e) {
    await replyError(ctx, e, dest);
  }
}

export const copyCommands: Record<string, Command> = {
  COPY: { states: SELECTED, run: (ctx) => copy(ctx, false, false) },
  'UID COPY': { states: SELECTED, run: (ctx) => copy(ctx, true, false) },
  MOVE: { states: SELECTED, run: (ctx) => copy(ctx, false, true) },
  'UID MOVE': { states: SELECTED, run: (ctx) => copy(ctx, true, true) },
};
