/**
 * `sealadm save [-u USER] [-m MAILBOX]` = doveadm-save(1): store the message
 * on standard input into the mailbox (INBOX by default), through the same
 * save path as delivery — for mail-crypt users only the public keys are
 * needed. Silent on success, like doveadm.
 */
import { MailStoreError } from '../../mailstore/errors.js';
import { getopt } from '../args.js';
import { CommandError, EX_TEMPFAIL, UsageError, type CliCommand } from '../command.js';
import { openUserStore } from './mailbox.js';

async function* stdinChunks(): AsyncIterable<Buffer> {
  for await (const c of process.stdin) yield c as Buffer;
}

export const saveCommand: CliCommand = {
  name: 'save',
  usage: '[-u <user>] [-m <mailbox>]',
  async run(ctx) {
    const { opts, rest } = getopt(ctx.args, 'u:m:S:');
    const user = opts.get('u');
    if (typeof user !== 'string' || rest.length) throw new UsageError('doveadm save [-u <user>|-A] [-S <socket_path>] [-m mailbox]');
    const mailbox = (opts.get('m') as string | undefined) ?? 'INBOX';
    const store = await openUserStore(ctx, user);
    try {
      if (mailbox.toUpperCase() === 'INBOX') await store.ensureRoot();
      const f = await store.open(mailbox);
      await f.append(stdinChunks());
    } catch (e) {
      if (e instanceof MailStoreError) throw new CommandError(`Error: Saving failed: ${e.message}`, EX_TEMPFAIL);
      throw e;
    }
    return 0;
  },
};
