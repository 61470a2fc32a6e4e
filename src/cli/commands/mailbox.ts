/**
 * `sealadm mailbox list|status|create|delete|rename -u USER …`, doveadm's
 * syntax and output layout: names printed in UTF-8 (doveadm decodes mUTF-7),
 * `mailbox status` fields `messages recent uidnext uidvalidity unseen vsize
 * guid` (and `all`) with the mailbox as an untitled first column. The
 * user is opened by the mail-user service (src/mailuser) from the userdb's
 * answer, as every protocol opens it.
 */
import { loadConfig } from '../../config/index.js';
import { AuthEngine } from '../../auth/engine.js';
import type { MailStore } from '../../mailstore/store.js';
import type { DovecotConfig } from '../../config/settings.js';
import type { CryptUser } from '../../crypt/user-crypt.js';
import { MailAccessRefused, openMailUser, type OpenedMailUser } from '../../mailuser/open-mail-user.js';
import { MailStoreError } from '../../mailstore/errors.js';
import { mutf7ToUtf8, utf8ToMutf7 } from '../../mailstore/api/mailbox-utf7.js';
import { CommandError, EX_NOUSER, EX_TEMPFAIL, EX_DATAERR, EX_USAGE, UsageError, type CliCommand, type CommandContext } from '../command.js';
import { getopt } from '../args.js';
import { imapPatterns } from '../../util/wildcard.js';
import { resolveGroup, resolveUser } from '../../server/privileges.js';

/** `-u USER` opened through the userdb and the mail-user service (src/mailuser), as doveadm prepares a mail user. */
export interface UserContext {
  config: DovecotConfig;
  user: string;
  fields: [string, string][];
  /** The store without mail-crypt (for key management and listing). */
  plainStore: MailStore;
  cryptUser: CryptUser;
  mailUser: OpenedMailUser;
}

/**
 * userdb lookup, effective mail uid and the opened mail user; `crypt`:
 * 'admin' unlocks mail-crypt for reading and saving, 'none' leaves it to
 * the key-management commands.
 */
export async function openUserContext(ctx: CommandContext, user: string, crypt: 'admin' | 'none' = 'none'): Promise<UserContext> {
  // back to root for the config and userdb (an earlier user of -A left us as its mail uid)
  if (process.getuid?.() === 0 && process.geteuid?.() !== 0) { process.seteuid!(0); process.setegid!(0); }
  const config = await loadConfig(ctx.configPath, { overrides: ctx.overrides });
  const engine = new AuthEngine(config, 'doveadm');
  let r;
  try {
    r = await engine.lookupUser(user, { service: 'doveadm' });
  } finally {
    await engine.close();
  }
  if (r.result === 'tempfail') throw new CommandError(`Error: User lookup failed: Internal error occurred. Refer to server log for more information.`, EX_TEMPFAIL);
  if (r.result !== 'ok') throw new CommandError(`Error: User doesn't exist`, EX_NOUSER);
  try {
    const mailUser = await openMailUser(config, {
      user, fields: r.fields, protocol: 'doveadm', crypt: { kind: crypt },
      beforeOpen: (mu) => actAsMailUser(user, mu.uid ?? '', mu.gid ?? ''),
    });
    return { config, user, fields: r.fields, plainStore: mailUser.plainStore, cryptUser: mailUser.cryptUser, mailUser };
  } catch (e) {
    if (e instanceof MailAccessRefused) throw new CommandError(`Error: user ${user}: ${e.message}`, EX_TEMPFAIL);
    throw e;
  }
}

/** The user's store for reading and saving (mail-crypt unlocked when the password is configured). */
export async function openUserStore(ctx: CommandContext, user: string): Promise<MailStore> {
  return (await openUserContext(ctx, user, 'admin')).mailUser.store;
}

/**
 * Like doveadm, touch a user's mail only as the user's mail uid/gid (userdb
 * `uid`/`gid`, else mail_uid/mail_gid): when run as root the effective ids
 * are switched (and switched back for the next user of -A), so no file in a
 * Maildir ever becomes root's.
 */
function actAsMailUser(user: string, uidSpec: string, gidSpec: string): void {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return;
  const id = uidSpec ? resolveUser(uidSpec) : null;
  if (!id) throw new CommandError(`Error: user ${user}: Couldn't drop privileges: User is missing UID (see mail_uid setting)`, EX_TEMPFAIL);
  if (id.uid === 0) throw new CommandError(`Error: user ${user}: Mail access for users with UID 0 not permitted`, EX_TEMPFAIL);
  const gid = gidSpec ? resolveGroup(gidSpec) : id.gid;
  if (gid === null) throw new CommandError(`Error: user ${user}: unknown mail group ${gidSpec}`, EX_TEMPFAIL);
  process.seteuid!(0);
  process.setegid!(gid);
  process.seteuid!(id.uid);
}

/** Every user of the userdb (iterate_query), for -A. */
export async function listUsers(ctx: CommandContext): Promise<string[]> {
  const config = await loadConfig(ctx.configPath, { overrides: ctx.overrides });
  const engine = new AuthEngine(config, 'doveadm');
  try {
    return await engine.iterateUsers();
  } finally {
    await engine.close();
  }
}

function userArg(ctx: CommandContext, spec: string): { user: string; rest: string[]; opts: Map<string, string | true> } {
  const { opts, rest } = getopt(ctx.args, 'u:' + spec);
  const user = opts.get('u');
  if (typeof user !== 'string') throw new UsageError('missing -u USER');
  return { user, rest, opts };
}

function storeError(e: unknown): never {
  if (e instanceof MailStoreError) throw new CommandError(`Error: ${e.message}`, e.code === 'NONEXISTENT' ? EX_NOUSER - 1 : EX_DATAERR);
  throw e;
}

export const mailboxListCommand: CliCommand = {
  async run(ctx) {
    const { user, opts, rest } = userArg(ctx, 's');
    const store = await openUserStore(ctx, user);
    const p = ctx.printer('flow');
    p.header({ key: 'mailbox', hideTitle: true });
    try {
      const names = opts.has('s') ? await store.subscriptions() : (await store.list()).map((e) => e.name);
      const match = masks(rest, store.listSep);
      for (const n of names) if (match(mutf7ToUtf8(n))) p.value(mutf7ToUtf8(n));
    } catch (e) { storeError(e); }
    p.flush();
    return 0;
  },
};

/**
 * doveadm's mailbox masks (doveadm-mail-mailbox.c): LIST patterns over the
 * UTF-8 names, `*` and `%` as wildcards, any of them matching; none = all.
 */
function masks(args: string[], sep: string): (name: string) => boolean {
  if (!args.length) return () => true;
  const m = imapPatterns(args, sep);
  return (name) => m.test(name);
}

/**
 * doveadm mailbox status fields in the order doveadm prints them whatever the
 * order asked (doveadm-mail-mailbox-status.c); `all` is every one, with -t
 * the summable ones. firstsaved is the first message's save date as a Unix
 * time, `never` in an empty mailbox (index-status.c).
 */
const STATUS_FIELDS = ['messages', 'recent', 'uidnext', 'uidvalidity', 'unseen', 'highestmodseq', 'vsize', 'guid', 'firstsaved'] as const;
type StatusField = typeof STATUS_FIELDS[number];
const TOTAL_FIELDS: readonly StatusField[] = ['messages', 'recent', 'unseen', 'vsize'];

export const mailboxStatusCommand: CliCommand = {
  async run(ctx) {
    const { user, rest, opts } = userArg(ctx, 't');
    const total = opts.has('t');
    if (rest.length < 2) throw new UsageError('missing fields or mailbox');
    const wanted = new Set<StatusField>();
    for (const f of rest[0].split(' ').filter(Boolean)) {
      if (f === 'all') { for (const x of total ? TOTAL_FIELDS : STATUS_FIELDS) wanted.add(x); continue; }
      if (!(STATUS_FIELDS as readonly string[]).includes(f)) throw new CommandError(`Fatal: Unknown status field: ${f}`, EX_USAGE);
      if (total && !TOTAL_FIELDS.includes(f as StatusField)) throw new CommandError(`Fatal: Status field ${f} can't be used with -t`, EX_USAGE);
      wanted.add(f as StatusField);
    }
    const fields = STATUS_FIELDS.filter((f) => wanted.has(f));
    const store = await openUserStore(ctx, user);
    const p = ctx.printer('flow');
    if (!total) p.header({ key: 'mailbox', hideTitle: true });
    for (const f of fields) p.header(f);
    const sums = { messages: 0, recent: 0, unseen: 0, vsize: 0 };
    try {
      const match = masks(rest.slice(1), store.listSep);
      for (const entry of await store.list()) {
        const name = mutf7ToUtf8(entry.name);
        // a parent or namespace prefix that is no mailbox has no status (doveadm skips \\Noselect and \\NonExistent)
        if (!match(name) || entry.flags.includes('\\Noselect') || entry.flags.includes('\\NonExistent')) continue;
        const f = await store.open(entry.name);
        await f.sync();
        const st = await store.status(entry.name);
        let vsize = 0;
        if (fields.includes('vsize')) for (const m of f.messages) vsize += await f.virtualSize(m);
        let firstsaved: string | number = 'never';
        if (fields.includes('firstsaved')) {
          // the first message whose save date can be read (one expunged meanwhile is skipped, as Dovecot)
          for (const m of f.messages) {
            try { firstsaved = Math.floor((await f.saveDate(m)).getTime() / 1000); break; } catch (e) { if (!(e instanceof MailStoreError && e.code === 'EXPUNGED')) throw e; }
          }
        }
        const vals: Record<StatusField, string | number> = { messages: st.messages, recent: st.recent, uidnext: st.uidnext, uidvalidity: st.uidvalidity, unseen: st.unseen, highestmodseq: st.highestModseq, vsize, guid: st.guid, firstsaved };
        if (total) { sums.messages += st.messages; sums.recent += st.recent; sums.unseen += st.unseen; sums.vsize += vsize; continue; }
        p.value(name);
        for (const k of fields) p.value(vals[k]);
      }
      if (total) for (const k of fields) p.value(sums[k as keyof typeof sums]);
    } catch (e) { storeError(e); }
    p.flush();
    return 0;
  },
};

function simple(fn: (s: MailStore, args: string[]) => Promise<void>, n: number): CliCommand {
  return {
    async run(ctx) {
      const { user, rest } = userArg(ctx, 's');
      if (rest.length < n) throw new UsageError('missing mailbox');
      const store = await openUserStore(ctx, user);
      await store.ensureRoot();
      try { await fn(store, rest.map(utf8ToMutf7)); } catch (e) { storeError(e); }
      return 0;
    },
  };
}

/** doveadm's line for a name it refuses (MAIL_ERROR_PARAMS: exit 64), Dovecot's reason as the store gives it. */
function createError(name: string, e: unknown): unknown {
  if (!(e instanceof MailStoreError) || !['INVALIDNAME', 'NOTPOSSIBLE', 'BADENCODING'].includes(e.code)) return e;
  const why = e.code === 'INVALIDNAME' ? `Invalid mailbox name: ${e.message}` : e.message;
  return new CommandError(`Error: Can't create mailbox ${mutf7ToUtf8(name)}: ${why}`, EX_USAGE);
}

export const mailboxCreateCommand = simple(async (s, a) => {
  for (const m of a) await s.create(m).catch((e: unknown) => { throw createError(m, e); });
}, 1);
export const mailboxDeleteCommand = simple(async (s, a) => { for (const m of a) await s.delete(m); }, 1);
export const mailboxRenameCommand = simple(async (s, a) => { await s.rename(a[0], a[1]); }, 2);
