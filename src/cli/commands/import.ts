/**
 * `sealadm import [-u USER|-A] [-U source-user] [-s] <source location>
 * <dest parent> <search query>` as doveadm-mail-import.c: the source mail
 * location (e.g. `maildir:/backup/Maildir`) is opened as a second store of
 * the user; every mailbox with a message the query matches gets
 * `<dest parent><sep><source name>` (the source's separator turned into the
 * destination's, a destination separator inside a name into `_`; an empty
 * parent keeps the names), created when missing and, with -s, subscribed;
 * the matches are saved there with their flags, keywords and INTERNALDATE.
 * Saving goes through the user's store, so a plain backup imported for a
 * mail-crypt user is stored encrypted, as any save.
 */
import { stat } from 'node:fs/promises';
import { MailStoreError } from '../../mailstore/errors.js';
import { utf8ToMutf7 } from '../../mailstore/api/mailbox-utf7.js';
import type { MailFolder, MailMessage } from '../../mailstore/api/mailbox.js';
import type { MailStore } from '../../mailstore/store.js';
import { openImportSource } from '../../mailuser/open-mail-user.js';
import { getopt } from '../args.js';
import { CommandError, EX_TEMPFAIL, UsageError, type CliCommand } from '../command.js';
import { forEachMatchIn } from '../message-iter.js';
import { parseQuery, QueryError, type Query } from '../search-query.js';
import { listUsers, openUserContext } from './mailbox.js';

/** convert_vname_separators: the source separator becomes the destination's; a destination separator already in a name becomes `_`. */
function convertSeparators(name: string, srcSep: string, destSep: string): string {
  let out = '';
  for (const c of name) out += c === srcSep ? destSep : c === destSep ? '_' : c;
  return out;
}

export const importCommand: CliCommand = {
  async run(ctx) {
    const usage = 'doveadm import [-u <user>|-A] [-S <socket_path>] [-U source-user] [-s] <source mail location> <dest parent mailbox> <search query>';
    const { opts, rest } = getopt(ctx.args, 'u:AS:F:U:s');
    if ((!opts.has('u') && !opts.has('A')) || rest.length < 3) throw new UsageError(usage);
    if (opts.has('U')) throw new CommandError('Fatal: import: -U (another source user) is not supported by sealadm yet', EX_TEMPFAIL);
    const [location, parent] = rest;
    let q: Query;
    try { q = parseQuery(rest.slice(2)); } catch (e) {
      if (e instanceof QueryError) throw new CommandError(`Fatal: ${e.message}`, EX_TEMPFAIL);
      throw e;
    }
    const users = opts.has('A') ? await listUsers(ctx) : [opts.get('u') as string];
    let failed = 0;
    for (const user of users) {
      const uc = await openUserContext(ctx, user, 'admin');
      const dest = uc.mailUser.store;
      let src: MailStore;
      try { src = openImportSource(uc.mailUser, location); } catch (e) {
        if (!(e instanceof MailStoreError)) throw e;
        throw new CommandError(`Fatal: Import namespace initialization failed: ${e.message}`, EX_TEMPFAIL);
      }
      if (!(await stat(src.rootControl).then(() => true, () => false))) {
        // Dovecot would create the missing root and find nothing in it; nothing is created here
        process.stderr.write(`sealadm(${user}): Error: Import source ${location}: mail root does not exist\n`);
        continue;
      }
      const r = await importUser(user, src, dest, parent, q, opts.has('s'));
      if (r) failed = r;
    }
    return failed;
  },
};

/** One user's import; returns doveadm's exit code for the failures (0 when none). */
async function importUser(user: string, src: MailStore, dest: MailStore, parent: string, q: Query, subscribe: boolean): Promise<number> {
  const err = (text: string) => process.stderr.write(`sealadm(${user}): Error: ${text}\n`);
  let failed = 0;
  let target: MailFolder | null = null;
  let targetName = '';
  await forEachMatchIn(src, q, async ({ name, folder, m }) => {
    if (!target || targetName !== name) {
      // first match in this source mailbox: open or create its destination
      targetName = name;
      target = await openDest(name);
    }
    if (!target) return;
    try {
      const st = await folder.stat(m);
      await target.append(folder.read(m), { flags: m.flags, keywords: m.keywords, internalDate: st.mtime });
    } catch (e) {
      if (!(e instanceof MailStoreError)) throw e;
      err(`Copying box=${target === null ? name : destName(name)} uid=${m.uid} failed: ${e.message}`);
      failed = EX_TEMPFAIL;
    }
  }, async (_folder: MailFolder, _name: string, matched: MailMessage[]) => {
    if (matched.length && target) await target.endQuotaBatch();
    target = null;
  });
  return failed;

  function destName(srcName: string): string {
    const name = convertSeparators(srcName, src.listSep, dest.listSep);
    return parent ? `${parent}${dest.listSep}${name}` : name;
  }

  async function openDest(srcName: string): Promise<MailFolder | null> {
    const name = destName(srcName);
    const mname = utf8ToMutf7(name);
    try {
      await dest.create(mname);
    } catch (e) {
      if (!(e instanceof MailStoreError)) throw e;
      if (e.code !== 'ALREADYEXISTS') { err(`Couldn't create mailbox ${name}: ${e.message}`); failed = EX_TEMPFAIL; return null; }
    }
    if (subscribe) {
      try { await dest.subscribe(mname, true); } catch (e) {
        if (!(e instanceof MailStoreError)) throw e;
        err(`Couldn't subscribe to mailbox ${name}: ${e.message}`);
      }
    }
    try {
      const f = await dest.open(mname);
      await f.sync();
      return f;
    } catch (e) {
      if (!(e instanceof MailStoreError)) throw e;
      err(`Syncing mailbox ${name} failed: ${e.message}`);
      failed = EX_TEMPFAIL;
      return null;
    }
  }
}
