/**
 * `sealadm password change -u USER [--recovery]`: change a user's login
 * password and the mail-crypt key password together, in an order that
 * survives a crash at any point (Dovecot leaves this to the admin, and a
 * forgotten `cryptokey password` locks users out of their mail):
 *
 *   1. check the old password against the passdb, that the passdb's scheme
 *      can store the new one (engine.newPasswordProblem), and open the user
 *      keys with the old one (nothing is written if any of these fails);
 *   2. stage: copies of the user keys under the NEW password are added
 *      beside the old ones (one attribute-dict transaction);
 *   3. the SQL hash is updated (password_update_query, one statement);
 *   4. promote: the staged copies replace the old ones.
 *
 * Crash before 3: the old password still works everywhere. Crash after 3:
 * the new password works — the login opens the staged copies and finishes
 * step 4. With --recovery the recovery code (sealadm mailbox cryptokey
 * recovery) replaces the old password. Passwords come from the terminal or
 * stdin lines (old or code, new, new again), never from argv.
 * `sealadm password rekey -u USER` (or `rekey USER [DOMAIN]`, as
 * PostfixAdmin's mailbox_postpassword_script is called): the hash was
 * already changed by someone else; old and new password come on stdin
 * (lines, or NUL-terminated as PostfixAdmin writes them). Only the key half
 * of the change runs: the passdb must accept the NEW password, keys that
 * already open with it are left alone (idempotent; an interrupted rekey is
 * finished), else the OLD one must open them (nothing is written if not),
 * then stage + promote as above, so a crash leaves keys that open with one
 * of the two passwords and the next login or rekey finishes.
 * Test hook: SEALMAIL_TEST_CRASH_AT=staged|sql|promoted kills the process
 * right after that step.
 */
import { AuthEngine } from '../../auth/engine.js';
import { CryptError } from '../../crypt/keys.js';
import { cryptSettings, keystoreFor } from '../../crypt/user-crypt.js';
import { getopt } from '../args.js';
import { CommandError, EX_DATAERR, EX_NOPERM, EX_TEMPFAIL, UsageError, type CliCommand } from '../command.js';
import { openUserContext } from './mailbox.js';

function crashPoint(step: string): void {
  if (process.env.SEALMAIL_TEST_CRASH_AT === step) process.kill(process.pid, 'SIGKILL');
}

/** Database work as root when we run as root (the mail uid may not reach the userdb's files). */
async function asRoot<T>(fn: () => Promise<T>): Promise<T> {
  if (process.getuid?.() !== 0 || process.geteuid?.() === 0) return fn();
  const [euid, egid] = [process.geteuid!(), process.getegid!()];
  process.seteuid!(0); process.setegid!(0);
  try { return await fn(); } finally { process.setegid!(egid); process.seteuid!(euid); }
}

export const passwordChangeCommand: CliCommand = {
  async run(ctx) {
    const recovery = ctx.args.includes('--recovery');
    const { opts, rest } = getopt(ctx.args.filter((a) => a !== '--recovery'), 'u:');
    const user = opts.get('u');
    if (typeof user !== 'string' || rest.length) throw new UsageError('missing -u USER');
    const old = await ctx.readPassword(recovery ? `Recovery code of ${user}: ` : `Old password of ${user}: `);
    const next = await ctx.readPassword('New password: ');
    if ((await ctx.readPassword('Confirm new password: ')) !== next) throw new CommandError('Error: the new passwords don\'t match; nothing changed', EX_DATAERR);
    if (!next) throw new CommandError('Error: empty new password; nothing changed', EX_DATAERR);

    const uc = await openUserContext(ctx, user);
    const engine = new AuthEngine(uc.config, 'doveadm');
    try {
      if (!recovery) {
        const a = await asRoot(() => engine.authenticate(user, old, { service: 'doveadm' }));
        if (a.result === 'tempfail') throw new CommandError('Error: passdb lookup failed (temporary): nothing changed', EX_TEMPFAIL);
        if (a.result !== 'ok') throw new CommandError(`Error: ${user}: the old password is wrong; nothing changed`, EX_NOPERM);
      }
      // after the old password, so that only its owner makes us hash; before anything is written
      const problem = await asRoot(() => engine.newPasswordProblem(user, next));
      if (problem) throw new CommandError(`Error: ${user}: ${problem}; nothing changed`, EX_DATAERR);
      const s = cryptSettings(uc.config, uc.cryptUser);
      let keys = 0;
      const ks = s.enabled && !s.globalPublic ? await keystoreFor(s, uc.cryptUser) : null;
      if (ks) {
        try {
          if (recovery) await ks.unlockWithRecovery(Buffer.from(old.trim().toUpperCase()));
          else await ks.unlock(Buffer.from(old));
        } catch (e) {
          if (e instanceof CryptError) throw new CommandError(`Error: ${e.message}; nothing changed`, EX_DATAERR);
          throw e;
        }
        if (ks.unlocked) keys = await ks.stagePassword(Buffer.from(next));
      } else if (recovery) {
        throw new CommandError(`Error: ${user} has no mail-crypt keys: a recovery code does not apply`, EX_DATAERR);
      }
      crashPoint('staged');
      try {
        await asRoot(() => engine.updatePassword(user, next, { service: 'doveadm' }));
      } catch (e) {
        if (ks && keys) await ks.dropPending();
        throw new CommandError(`Error: ${user}: updating the password hash failed, nothing changed: ${(e as Error).message}`, EX_TEMPFAIL);
      }
      crashPoint('sql');
      if (ks && keys) await ks.promotePending(Buffer.from(next));
      crashPoint('promoted');
      ctx.out.write(`Password changed for ${user}${ks ? ` (${keys} mail-crypt key(s) re-encrypted)` : ''}\n`);
      return 0;
    } finally {
      await asRoot(() => engine.close());
    }
  },
};

export const passwordRekeyCommand: CliCommand = {
  async run(ctx) {
    const { opts, rest } = getopt(ctx.args, 'u:');
    const u = opts.get('u');
    // PostfixAdmin appends "username domain"; its username is the whole address
    const user = typeof u === 'string' ? u : rest[0];
    if (!user || rest.length > (typeof u === 'string' ? 0 : 2)) throw new UsageError('missing -u USER');
    const old = await ctx.readPassword(`Old password of ${user}: `);
    const next = await ctx.readPassword('New password: ');
    if (!next) throw new CommandError('Error: empty new password; nothing changed', EX_DATAERR);

    const uc = await openUserContext(ctx, user);
    const engine = new AuthEngine(uc.config, 'doveadm');
    try {
      const a = await asRoot(() => engine.authenticate(user, next, { service: 'doveadm' }));
      if (a.result === 'tempfail') throw new CommandError('Error: passdb lookup failed (temporary): nothing changed', EX_TEMPFAIL);
      if (a.result !== 'ok') throw new CommandError(`Error: ${user}: the passdb does not accept the new password (update the hash first); nothing changed`, EX_NOPERM);
      const s = cryptSettings(uc.config, uc.cryptUser);
      if (!s.enabled || s.globalPublic) { ctx.out.write(`${user}: no mail-crypt user keys; nothing to re-key\n`); return 0; }
      // already under the new password (a repeated hook, or the login finished a staged rekey): done
      const already = await keystoreFor(s, uc.cryptUser);
      try {
        await already.unlock(Buffer.from(next), { promote: true });
        ctx.out.write(`${user}: the mail-crypt keys already open with the new password; nothing changed\n`);
        return 0;
      } catch (e) {
        if (!(e instanceof CryptError)) throw e;
      }
      const ks = await keystoreFor(s, uc.cryptUser);
      try {
        await ks.unlock(Buffer.from(old));
      } catch (e) {
        if (e instanceof CryptError) throw new CommandError(`Error: ${user}: the old password does not open the mail-crypt keys (${e.message}); nothing changed`, EX_NOPERM);
        throw e;
      }
      const keys = ks.unlocked ? await ks.stagePassword(Buffer.from(next)) : 0;
      crashPoint('staged');
      if (keys) await ks.promotePending(Buffer.from(next));
      crashPoint('promoted');
      ctx.out.write(`${user}: ${keys} mail-crypt key(s) re-encrypted with the new password\n`);
      return 0;
    } finally {
      await asRoot(() => engine.close());
    }
  },
};
