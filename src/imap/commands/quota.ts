/**
 * IMAP QUOTA (RFC 2087) as Dovecot 2.3's imap_quota plugin answers it:
 * GETQUOTAROOT names the user's one quota root for any mailbox (existing or
 * not) and adds its QUOTA; GETQUOTA of another name is "Quota root doesn't
 * exist."; resources are listed only when limited, STORAGE in kilobytes
 * rounded up (quota_get_resource), MESSAGE as a count, limits of the `*`
 * rule; SETQUOTA is refused to every user ("only by admin").
 */
import { atom, astr, list, num, type ImapValue } from '../wire/encoder.js';
import type { UserQuota } from '../../quota/quota.js';
import type { Session } from '../session.js';
import { AUTHED, type Command, type CommandContext } from './types.js';
import { astring } from './args.js';

async function quotaReply(s: Session, q: UserQuota): Promise<void> {
  const items: ImapValue[] = [];
  for (const r of await q.resources()) {
    if (!r.limit) continue;
    const kb = r.type === 'STORAGE';
    items.push(atom(r.type), num(kb ? Math.ceil(r.value / 1024) : r.value), num(kb ? Math.ceil(r.limit / 1024) : r.limit));
  }
  await s.untagged([atom('QUOTA'), astr(q.name), list(items)]);
}

/** Dovecot reads the arguments first: a missing one is a BAD. */
async function needArgs(ctx: CommandContext, n: number): Promise<boolean> {
  if (ctx.args.length >= n) return true;
  await ctx.bad(`Error in IMAP command ${ctx.name}: Missing arguments`);
  return false;
}

export const quotaCommands: Record<string, Command> = {
  GETQUOTAROOT: {
    states: AUTHED,
    enabled: (s) => s.imapQuota,
    async run(ctx) {
      if (!(await needArgs(ctx, 1))) return;
      const mailbox = astring(ctx.args[0]);
      if (mailbox === null) { await ctx.bad('Error in IMAP command GETQUOTAROOT: Invalid arguments.'); return; }
      const q = ctx.session.quota;
      await ctx.session.untagged([atom('QUOTAROOT'), astr(mailbox), ...(q ? [astr(q.name)] : [])]);
      if (q) await quotaReply(ctx.session, q);
      await ctx.ok('Getquotaroot completed.');
    },
  },
  GETQUOTA: {
    states: AUTHED,
    enabled: (s) => s.imapQuota,
    async run(ctx) {
      if (!(await needArgs(ctx, 1))) return;
      const root = astring(ctx.args[0]);
      if (root === null) { await ctx.bad('Error in IMAP command GETQUOTA: Invalid arguments.'); return; }
      const q = ctx.session.quota;
      if (!q || q.name !== root) { await ctx.no("Quota root doesn't exist."); return; }
      await quotaReply(ctx.session, q);
      await ctx.ok('Getquota completed.');
    },
  },
  SETQUOTA: {
    states: AUTHED,
    enabled: (s) => s.imapQuota,
    async run(ctx) {
      if (!(await needArgs(ctx, 2))) return;
      if (astring(ctx.args[0]) === null || ctx.args[1].type !== 'list') { await ctx.bad('Error in IMAP command SETQUOTA: Invalid arguments.'); return; }
      await ctx.no('Quota can be changed only by admin.');
    },
  },
};
