/**
 * The doveadm commands admins' scripts and cron jobs run on messages, with
 * doveadm's arguments, output and exit codes (doveadm-mail-search.c,
 * -expunge.c, -flags.c, -copymove.c, doveadm-mail-mailbox.c's
 * subscribe/unsubscribe, doveadm-mail-purge.c):
 *   search  [-u USER|-A] <query>             mailbox-guid and uid per match
 *   expunge [-u USER|-A] [-d] <query>        the query must name a mailbox in
 *                                            every branch and something else too
 *   flags add|remove|replace [-u|-A] <flags> <query>
 *   copy|move [-u|-A] <destination> <query>  (move: the expunge rule applies)
 *   mailbox subscribe|unsubscribe -u USER <mailbox> ...
 *   deduplicate [-u|-A] [-m] <query>         later copies of a GUID (-m: Message-ID) in a mailbox expunged
 *   purge [-u|-A]                            nothing to do for Maildir, as in Dovecot
 * Messages of a mail-crypt user are copied as they are stored (encrypted);
 * nothing here needs the user's password.
 */
import { MailStoreError } from '../../mailstore/errors.js';
import { utf8ToMutf7 } from '../../mailstore/api/mailbox-utf7.js';
import { SYSTEM_FLAGS, type SystemFlag } from '../../mailstore/api/flags.js';
import type { MailFolder, MailMessage } from '../../mailstore/api/mailbox.js';
import { getopt } from '../args.js';
import { CommandError, EX_TEMPFAIL, EX_USAGE, UsageError, type CliCommand, type CommandContext } from '../command.js';
import { forEachMatch } from '../message-iter.js';
import { headerValues } from '../../mailstore/message-headers.js';
import { parseQuery, QueryError, type Query } from '../search-query.js';
import { listUsers, openUserStore } from './mailbox.js';

/** doveadm's DOVEADM_EX_NOTFOUND (EX_NOHOST): a mailbox that does not exist. */
const EX_NOTFOUND = 68;

/** A mail command's users and the rest of its arguments ([-u USER|-A] plus the command's own flags). */
function mailArgs(ctx: CommandContext, own: string, usage: string): { users: () => Promise<string[]>; opts: Map<string, string | true>; rest: string[] } {
  const { opts, rest } = getopt(ctx.args, 'u:AS:F:' + own);
  if (!opts.has('u') && !opts.has('A')) throw new UsageError(usage);
  return { opts, rest, users: async () => (opts.has('A') ? listUsers(ctx) : [opts.get('u') as string]) };
}

function query(args: string[]): Query {
  try { return parseQuery(args); } catch (e) {
    if (e instanceof QueryError) throw new CommandError(`Fatal: ${e.message}`, EX_TEMPFAIL);
    throw e;
  }
}

const isMailbox = (q: Query): boolean => q.k === 'mailbox' || q.k === 'mailbox-guid' || (q.k === 'not' && isMailbox(q.q));
/** The arguments of one level as Dovecot's parser lists them (an AND is a list; anything else is alone). */
const level = (q: Query): Query[] => (q.k === 'and' ? q.of : [q]);

/** expunge_search_args_is_mailbox_ok: a MAILBOX in this level, in a sub-list, or in every branch of its ORs. */
function mailboxOk(args: Query[]): boolean {
  let haveOr = false;
  for (const a of args) {
    if (isMailbox(a)) return true;
    if (a.k === 'or') haveOr = true;
    else if (a.k === 'and' && mailboxOk(a.of)) return true;
  }
  if (!haveOr) return false;
  return args.every((a) => a.k !== 'or' || a.of.every(branchMailboxOk));
}
function branchMailboxOk(b: Query): boolean {
  if (isMailbox(b)) return true;
  if (b.k === 'or') return b.of.every(branchMailboxOk);
  if (b.k === 'and') return mailboxOk(b.of);
  return false;
}
/** expunge_search_args_is_msgset_ok: something besides MAILBOX in the query (in every OR branch). */
function msgsetOk(args: Query[]): boolean {
  for (const a of args) {
    if (isMailbox(a)) continue;
    if (a.k === 'or') { if (a.of.every(branchMsgsetOk)) return true; continue; }
    if (a.k === 'and') { if (msgsetOk(a.of)) return true; continue; }
    return true;
  }
  return false;
}
function branchMsgsetOk(b: Query): boolean {
  if (isMailbox(b)) return false;
  if (b.k === 'or') return b.of.every(branchMsgsetOk);
  if (b.k === 'and') return msgsetOk(b.of);
  return true;
}

/** expunge_search_args_check: doveadm refuses a query that could empty every mailbox by accident. */
function expungeCheck(q: Query, cmd: string): void {
  if (!mailboxOk(level(q))) throw new CommandError(`Fatal: ${cmd}: To avoid accidents, search query must contain MAILBOX in all search branches`, EX_USAGE);
  if (!msgsetOk(level(q))) throw new CommandError(`Fatal: ${cmd}: To avoid accidents, each branch in search query must contain something else besides MAILBOX (e.g. just add "all" if you want everything)`, EX_USAGE);
}

export const searchCommand: CliCommand = {
  async run(ctx) {
    const usage = 'doveadm search [-u <user>|-A] [-S <socket_path>] <search query>';
    const { rest, users } = mailArgs(ctx, '', usage);
    if (!rest.length) throw new UsageError(usage);
    const q = query(rest);
    const p = ctx.printer('flow');
    p.header({ key: 'mailbox-guid', hideTitle: true });
    p.header({ key: 'uid', hideTitle: true });
    for (const user of await users()) {
      await forEachMatch(ctx, user, q, async ({ folder, m }) => { p.value(folder.guid); p.value(String(m.uid)); });
    }
    p.flush();
    return 0;
  },
};

export const expungeCommand: CliCommand = {
  async run(ctx) {
    const usage = 'doveadm expunge [-u <user>|-A] [-S <socket_path>] [-m] <search query>';
    const { opts, rest, users } = mailArgs(ctx, 'd', usage);
    if (!rest.length) throw new UsageError(usage);
    const q = query(rest);
    expungeCheck(q, 'expunge');
    for (const user of await users()) {
      const store = await openUserStore(ctx, user);
      const emptied: string[] = [];
      await forEachMatch(ctx, user, q, async () => undefined, async (folder, name, matched) => {
        if (matched.length) await folder.expunge(matched);
        // -d: the mailbox goes when nothing is left in it (mailbox_delete_empty), and its subscription with it
        if (opts.has('d')) { await folder.sync(); if (folder.messages.length === 0) emptied.push(name); }
      });
      for (const name of emptied) {
        try {
          await store.delete(utf8ToMutf7(name));
          await store.subscribe(utf8ToMutf7(name), false);
        } catch (e) {
          if (!(e instanceof MailStoreError)) throw e;
          process.stderr.write(`sealadm(${user}): Error: Deleting mailbox '${name}' failed: ${e.message}\n`);
        }
      }
    }
    return 0;
  },
};

function flagsCommand(mode: 'add' | 'remove' | 'replace'): CliCommand {
  return {
    async run(ctx) {
      const usage = `doveadm flags ${mode} [-u <user>|-A] [-S <socket_path>] <flags> <search query>`;
      const { rest, users } = mailArgs(ctx, '', usage);
      if (rest.length < 2) throw new UsageError(usage);
      const flags = new Set<SystemFlag>();
      const keywords: string[] = [];
      for (const f of rest[0].split(' ').filter(Boolean)) {
        if (f.startsWith('\\')) {
          const sys = SYSTEM_FLAGS.find((x) => x.toLowerCase() === f.toLowerCase());
          if (sys) flags.add(sys);
          else if (f.toLowerCase() !== '\\recent') throw new CommandError(`Fatal: Invalid system flag: ${f}`, EX_TEMPFAIL); // \Recent parses and changes nothing
        } else keywords.push(f);
      }
      const q = query(rest.slice(1));
      for (const user of await users()) {
        await forEachMatch(ctx, user, q, async ({ folder, m }) => {
          const f = new Set<SystemFlag>(mode === 'replace' ? flags : m.flags);
          const k = new Set<string>(mode === 'replace' ? keywords : m.keywords);
          if (mode === 'add') { for (const x of flags) f.add(x); for (const x of keywords) k.add(x); }
          if (mode === 'remove') { for (const x of flags) f.delete(x); for (const x of keywords) k.delete(x); }
          await folder.setFlags(m, f, k);
        });
      }
      return 0;
    },
  };
}
export const flagsAddCommand = flagsCommand('add');
export const flagsRemoveCommand = flagsCommand('remove');
export const flagsReplaceCommand = flagsCommand('replace');

function copyCommand(move: boolean): CliCommand {
  const cmd = move ? 'move' : 'copy';
  return {
    async run(ctx) {
      const usage = `doveadm ${cmd} [-u <user>|-A] [-S <socket_path>] <destination> [user <source user>] <search query>`;
      const { rest, users } = mailArgs(ctx, '', usage);
      if (rest.length < 2) throw new UsageError(usage);
      const dest = rest[0];
      let args = rest.slice(1);
      if (args.length >= 2 && args[0].toLowerCase() === 'user') {
        // another user's mail (possibly encrypted under another key): not done yet, refused before anything moves
        throw new CommandError(`Fatal: ${cmd}: copying from another user (user ${args[1]}) is not supported by sealadm yet`, EX_TEMPFAIL);
      }
      args = args.slice(0);
      const q = query(args);
      if (move) expungeCheck(q, cmd);
      let failed = 0;
      for (const user of await users()) {
        const store = await openUserStore(ctx, user);
        let target: MailFolder;
        try { target = await store.open(utf8ToMutf7(dest)); await target.sync(); } catch (e) {
          if (!(e instanceof MailStoreError)) throw e;
          process.stderr.write(`sealadm(${user}): Error: Can't open mailbox '${dest}': ${e.code === 'NONEXISTENT' ? `Mailbox doesn't exist: ${dest}` : e.message}\n`);
          failed = e.code === 'NONEXISTENT' ? EX_NOTFOUND : EX_TEMPFAIL;
          continue;
        }
        await forEachMatch(ctx, user, q, async () => undefined, async (folder, name, matched: MailMessage[]) => {
          // copies committed before the source is expunged: nothing is lost if either side fails
          for (const m of matched) {
            await target.copyFrom(folder, m, { flags: m.flags, keywords: m.keywords });
          }
          await target.endQuotaBatch();
          if (move && matched.length && folder.dir !== target.dir) await folder.expunge(matched);
          void name;
        });
      }
      return failed;
    },
  };
}
export const copyMessagesCommand = copyCommand(false);
export const moveMessagesCommand = copyCommand(true);

function subscribeCommand(on: boolean): CliCommand {
  return {
    async run(ctx) {
      const usage = `doveadm mailbox ${on ? 'subscribe' : 'unsubscribe'} [-u <user>|-A] [-S <socket_path>] <mailbox> [...]`;
      const { rest, users } = mailArgs(ctx, '', usage);
      if (!rest.length) throw new UsageError(usage);
      let failed = false;
      for (const user of await users()) {
        const store = await openUserStore(ctx, user);
        for (const name of rest) {
          try { await store.subscribe(utf8ToMutf7(name), on, true); } catch (e) {
            if (!(e instanceof MailStoreError)) throw e;
            // doveadm's own line, with its arguments in this order
            process.stderr.write(`sealadm(${user}): Error: Can't ${name} mailbox ${on ? 'subscribe to' : 'unsubscribe'}: ${e.message}\n`);
            failed = true;
          }
        }
      }
      return failed ? 67 : 0;
    },
  };
}
export const mailboxSubscribeCommand = subscribeCommand(true);
export const mailboxUnsubscribeCommand = subscribeCommand(false);

/** doveadm purge: only mdbox has anything to purge; for Maildir it succeeds doing nothing. */
export const purgeCommand: CliCommand = {
  async run(ctx) {
    const usage = 'doveadm purge [-u <user>|-A] [-S <socket_path>]';
    const { rest, users } = mailArgs(ctx, '', usage);
    if (rest.length) throw new UsageError(usage);
    for (const user of await users()) await openUserStore(ctx, user);
    return 0;
  },
};

/**
 * doveadm deduplicate: in each mailbox, of the messages the query matches,
 * every later one with a GUID (Maildir: the file's base name) or, with -m,
 * a first Message-ID already seen is expunged. Messages without one stay.
 */
export const deduplicateCommand: CliCommand = {
  async run(ctx) {
    const usage = 'doveadm deduplicate [-u <user>|-A] [-S <socket_path>] [-m] <search query>';
    const { opts, rest, users } = mailArgs(ctx, 'm', usage);
    if (!rest.length) throw new UsageError(usage);
    const q = query(rest);
    for (const user of await users()) {
      let seen = new Set<string>();
      let dupes: MailMessage[] = [];
      await forEachMatch(ctx, user, q, async ({ m, text }) => {
        const key = opts.has('m') ? (headerValues(await text(), 'message-id')[0] ?? '').trim() : m.base;
        if (!key) return;
        if (seen.has(key)) dupes.push(m);
        else seen.add(key);
      }, async (folder) => {
        if (dupes.length) await folder.expunge(dupes);
        seen = new Set();
        dupes = [];
      });
    }
    return 0;
  },
};
