/**
 * NOTIFY (RFC 5465), as Dovecot 2.3's cmd_notify: the arguments are read
 * by notify-filter.ts; a new setting replaces the old one; SET STATUS sends
 * a STATUS of every matched mailbox (UIDVALIDITY UIDNEXT MESSAGES UNSEEN,
 * and HIGHESTMODSEQ when FlagChange is used, which enables CONDSTORE as
 * STATUS HIGHESTMODSEQ does) before the tagged OK; then the selected
 * mailbox's updates follow what the SELECTED filter asked for (none at all
 * without it: Dovecot's notify_count_changes / notify_flag_changes).
 */
import { parseNotify } from '../notify-filter.js';
import { NotifyWatch, statusValues } from '../notify.js';
import { fetchAttError } from './fetch.js';
import { AUTHED, type Command } from './types.js';

export const notifyCommands: Record<string, Command> = {
  NOTIFY: {
    states: AUTHED,
    async run(ctx) {
      const s = ctx.session;
      const r = parseNotify(ctx.args, fetchAttError, (n) => s.mailboxIn(n));
      if (!r.ok) {
        if ('bad' in r) await ctx.bad(`Error in IMAP command NOTIFY: ${r.bad}`);
        else await ctx.no(r.no, { name: r.code, args: r.args });
        return;
      }
      const spec = r.spec;
      // Dovecot without mailbox_list_index: no notifier for other mailboxes (imap_notify_begin fails)
      if (spec.groups.length && !s.notifyAnnounced) { await ctx.no('NOTIFY not supported for these mailboxes.', { name: 'NOTIFICATIONOVERFLOW' }); return; }
      const watch = spec.groups.length ? new NotifyWatch(s, spec) : null;
      await watch?.start();
      s.setNotify(watch, spec);
      for (const { name, withModseq } of (spec.status && await watch?.initialStatus()) || []) {
        if (withModseq) await s.enableCondstore();
        const st = await s.store!.status(name, withModseq).catch(() => null);
        if (!st) continue;
        const items = new Set(['UIDVALIDITY', 'UIDNEXT', 'MESSAGES', 'UNSEEN', ...(withModseq ? ['HIGHESTMODSEQ'] : [])]);
        await s.untagged(statusValues(s.mailboxOut(name), items, st));
      }
      await ctx.ok('NOTIFY completed', await s.sendUpdates(true, undefined, true));
    },
  },
};
