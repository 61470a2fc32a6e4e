/**
 * `sealadm index [-u USER | -A] [-q] [-n MAX_RECENT] MAILBOX_MASK` =
 * doveadm-index(1): bring Sealmail's own per-folder state (UIDs, MODSEQs
 * in sealmail.modseq, sealed for mail-crypt users) and the STATUS cache up to date for
 * every matching folder, so the first SELECT/STATUS after a migration is
 * fast. Dovecot's index files are not touched. Silent on success, like
 * doveadm; `-q` (queue to the indexer) runs in place, `-n` is accepted.
 */
import { MailStoreError } from '../../mailstore/errors.js';
import { mutf7ToUtf8 } from '../../mailstore/api/mailbox-utf7.js';
import { getopt } from '../args.js';
import { EX_DATAERR, EX_TEMPFAIL, UsageError, type CliCommand } from '../command.js';
import { mailboxMask } from '../search-query.js';
import { listUsers, openUserStore } from './mailbox.js';

export const indexCommand: CliCommand = {
  async run(ctx) {
    const { opts, rest } = getopt(ctx.args, 'u:Aqn:S:F:');
    if (rest.length !== 1 || (!opts.has('u') && !opts.has('A'))) throw new UsageError('doveadm index [-u <user>|-A] [-S <socket_path>] [-q] [-n <max recent>] <mailbox mask>');
    const re = mailboxMask(rest[0]);
    const users = opts.has('A') ? await listUsers(ctx) : [opts.get('u') as string];
    let code = 0;
    for (const user of users) {
      const store = await openUserStore(ctx, user);
      for (const e of await store.list()) {
        if (e.flags.includes('\\NonExistent') || e.flags.includes('\\Noselect') || !re.test(mutf7ToUtf8(e.name))) continue;
        try {
          const f = await store.open(e.name);
          await f.sync(); // brings sealmail.modseq up to date too
          await store.status(e.name);
        } catch (err) {
          if (!(err instanceof MailStoreError)) throw err;
          ctx.err.write(`doveadm(${user}): Error: ${mutf7ToUtf8(e.name)}: ${err.message}\n`);
          code = err.code === 'LOCKTIMEOUT' ? EX_TEMPFAIL : EX_DATAERR;
        }
      }
    }
    return code;
  },
};
