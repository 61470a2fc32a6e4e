/**
 * `sealadm save [-u USER] [-m MAILBOX]` = doveadm-save(1): store the message
 * on standard input into the mailbox (INBOX by default), through the same
 * save path as delivery — for mail-crypt users only the public keys are
 * needed. Silent on success, like doveadm. The user is opened by the
 * mail-user service, so with `quota` in their mail_plugins the save is
 * tested as the quota plugin tests doveadm's (quota_save_begin /
 * quota_save_finish): over quota, `Error: Saving failed:
 * <quota_exceeded_message>` and exit 73 (MAIL_ERROR_NOQUOTA → EX_CANTCREAT);
 * over quota_max_mail_size, quota.c's text and exit 65
 * (MAIL_ERROR_LIMIT → DOVEADM_EX_NOTPOSSIBLE). Nothing is stored then.
 */
import { MailStoreError } from '../../mailstore/errors.js';
import { getopt } from '../args.js';
import { CommandError, EX_DATAERR, EX_TEMPFAIL, UsageError, type CliCommand } from '../command.js';
import { OVER_MAXSIZE_MESSAGE as OVER_MAXSIZE } from '../../quota/quota.js';
import { openUserContext } from './mailbox.js';

/** sysexits.h EX_CANTCREAT: doveadm's exit for MAIL_ERROR_NOQUOTA. */
const EX_CANTCREAT = 73;

async function* stdinChunks(): AsyncIterable<Buffer> {
  for await (const c of process.stdin) yield c as Buffer;
}

/** The whole message: its size must be known before the quota test (doveadm knows it once the input ends). */
async function stdinMessage(): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stdinChunks()) parts.push(c);
  return Buffer.concat(parts);
}

export const saveCommand: CliCommand = {
  async run(ctx) {
    const { opts, rest } = getopt(ctx.args, 'u:m:S:');
    const user = opts.get('u');
    if (typeof user !== 'string' || rest.length) throw new UsageError('doveadm save [-u <user>|-A] [-S <socket_path>] [-m mailbox]');
    const mailbox = (opts.get('m') as string | undefined) ?? 'INBOX';
    const { store, quota } = (await openUserContext(ctx, user, 'admin')).mailUser;
    try {
      if (mailbox.toUpperCase() === 'INBOX') await store.ensureRoot();
      const f = await store.open(mailbox);
      if (!quota) { await f.append(stdinChunks()); return 0; }
      const message = await stdinMessage();
      if (quota.settings.maxMailSize > 0 && message.length > quota.settings.maxMailSize) throw new CommandError(`Error: Saving failed: ${OVER_MAXSIZE}`, EX_DATAERR);
      if (!(await quota.fits(mailbox, [message.length]))) throw new CommandError(`Error: Saving failed: ${quota.exceededMessage()}`, EX_CANTCREAT);
      await f.append(message);
    } catch (e) {
      if (e instanceof MailStoreError) throw new CommandError(`Error: Saving failed: ${e.message}`, EX_TEMPFAIL);
      throw e;
    }
    return 0;
  },
};
