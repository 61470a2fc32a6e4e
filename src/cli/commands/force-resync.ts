/**
 * `sealadm force-resync -u USER MASK`: Dovecot's repair command. For every
 * folder matching the mask, re-scan the Maildir under the uidlist lock,
 * repairing a damaged dovecot-uidlist while keeping every UID it can
 * (Dovecot would renumber), naming unknown keyword letters, and assigning
 * UIDs to new files. Prints nothing on success, like doveadm.
 */
import { MailStoreError } from '../../mailstore/errors.js';
import { EX_DATAERR, EX_TEMPFAIL, UsageError, type CliCommand } from '../command.js';
import { openUserStore } from './mailbox.js';
import { getopt } from '../args.js';
import { mailboxMask } from '../search-query.js';
import { mutf7ToUtf8 } from '../../mailstore/api/mailbox-utf7.js';

export const forceResyncCommand: CliCommand = {
  async run(ctx) {
    const { opts, rest } = getopt(ctx.args, 'u:f');
    const user = opts.get('u');
    if (typeof user !== 'string') throw new UsageError('missing -u USER');
    if (rest.length !== 1) throw new UsageError('missing mailbox mask');
    const store = await openUserStore(ctx, user);
    const warn = (m: string) => ctx.err.write(`doveadm(${user}): Warning: ${m}\n`);
    const re = mailboxMask(rest[0]);
    let code = 0;
    for (const e of await store.list()) {
      if (e.flags.includes('\\NonExistent') || e.flags.includes('\\Noselect')) continue;
      if (!re.test(mutf7ToUtf8(e.name))) continue;
      try {
        const f = await store.open(e.name);
        (f.opts as { warn?: (m: string) => void }).warn = warn;
        await f.sync({ moveNew: false });
      } catch (err) {
        if (!(err instanceof MailStoreError)) throw err;
        ctx.err.write(`doveadm(${user}): Error: ${err.message}\n`);
        code = err.code === 'LOCKTIMEOUT' ? EX_TEMPFAIL : EX_DATAERR;
      }
    }
    return code;
  },
};
