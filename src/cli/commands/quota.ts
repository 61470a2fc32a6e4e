/**
 * `sealadm quota get [-u USER|-A]` and `sealadm quota recalc [-u USER|-A]`
 * as doveadm's quota plugin commands (doveadm-quota.c): columns `Quota name`,
 * `Type`, `Value`, `Limit`, `%` (with -A a leading `Username`), one STORAGE
 * row in kilobytes rounded up and one MESSAGE row per root, `-` and 0% for
 * no limit; recalc prints nothing and rewrites maildirsize. Without the
 * quota plugin in mail_plugins doveadm knows no `quota` command.
 */
import { loadConfig } from '../../config/index.js';
import { UserQuota } from '../../quota/quota.js';
import { CommandError, EX_NOUSER, EX_TEMPFAIL, EX_USAGE, type CliCommand, type CommandContext } from '../command.js';
import { getopt } from '../args.js';
import type { Printer } from '../printer.js';
import { listUsers, openUserContext } from './mailbox.js';

/** The users a command runs for (-u, -A, or doveadm's $USER fallback), after doveadm's checks. */
async function targetUsers(ctx: CommandContext): Promise<{ users: string[]; all: boolean }> {
  const { opts, rest } = getopt(ctx.args, 'u:AF:S:');
  if (rest.length) throw new CommandError(`Error: Extraneous arguments found: ${rest.join(' ')}`, EX_USAGE);
  const config = await loadConfig(ctx.configPath, { overrides: ctx.overrides });
  if (!config.get('mail_plugins', { protocol: 'doveadm' }).split(/[\s,]+/).includes('quota')) {
    throw new CommandError("Fatal: Unknown command 'quota', but plugin quota exists. Try to set mail_plugins=quota", EX_TEMPFAIL);
  }
  if (opts.has('A')) return { users: await listUsers(ctx), all: true };
  const u = opts.get('u') ?? process.env.USER;
  if (typeof u !== 'string' || !u) throw new CommandError('Fatal: USER environment is missing and -u option not used', EX_USAGE);
  return { users: [u], all: false };
}

async function userQuota(ctx: CommandContext, user: string): Promise<UserQuota | null> {
  const uc = await openUserContext(ctx, user);
  return uc.mailUser.quota;
}

async function printRoot(p: Printer, q: UserQuota, user: string | null): Promise<void> {
  for (const r of await q.resources()) {
    const kb = r.type === 'STORAGE';
    const value = kb ? Math.ceil(r.value / 1024) : r.value;
    const limit = kb ? Math.ceil(r.limit / 1024) : r.limit;
    if (user !== null) p.value(user);
    p.value(q.name);
    p.value(r.type);
    p.value(String(value));
    p.value(limit ? String(limit) : '-');
    p.value(limit ? String(Math.floor(value * 100 / limit)) : '0');
  }
}

export const quotaGetCommand: CliCommand = {
  async run(ctx) {
    const { users, all } = await targetUsers(ctx);
    const p = ctx.printer('table');
    if (all) p.header({ key: 'username', title: 'Username', hideTitle: true });
    p.header({ key: 'root', title: 'Quota name' });
    p.header({ key: 'type', title: 'Type' });
    p.header({ key: 'value', title: 'Value', right: true });
    p.header({ key: 'limit', title: 'Limit', right: true });
    p.header({ key: 'percent', title: '%', right: true });
    let code = 0;
    const errors: string[] = [];
    for (const user of users) {
      try {
        const q = await userQuota(ctx, user);
        if (q) await printRoot(p, q, all ? user : null);
      } catch (e) {
        if (!(e instanceof CommandError)) throw e;
        errors.push(e.exitCode === EX_NOUSER ? `doveadm(${user}): Error: User doesn't exist` : e.message);
        code = code || e.exitCode;
      }
    }
    p.flush();
    for (const m of errors) ctx.err.write(m + '\n');
    return code;
  },
};

export const quotaRecalcCommand: CliCommand = {
  async run(ctx) {
    const { users } = await targetUsers(ctx);
    let code = 0;
    for (const user of users) {
      try {
        await (await userQuota(ctx, user))?.recalc();
      } catch (e) {
        if (!(e instanceof CommandError)) throw e;
        ctx.err.write((e.exitCode === EX_NOUSER ? `doveadm(${user}): Error: User doesn't exist` : e.message) + '\n');
        code = code || e.exitCode;
      }
    }
    return code;
  },
};
