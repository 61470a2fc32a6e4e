/**
 * `sealadm pw` = `doveadm pw [-l] [-p PASS] [-r ROUNDS] [-s SCHEME] [-t HASH]
 * [-u USER] [-V]`: same output and exit codes (75 for a failed check, 64 for
 * bad usage). Without -p the password is read from the terminal (two
 * prompts) or from standard input, so it never has to appear in argv.
 * One deliberate difference: when the two entries differ doveadm goes on and
 * prints a hash of an empty password; sealadm stops (dovecot-compat.md).
 */
import { hashPassword, SchemeError, verifyPassword } from '../../auth/schemes/index.js';
import { CommandError, EX_DATAERR, EX_TEMPFAIL, UsageError, type CliCommand } from '../command.js';

/** Re-exported for commands that still import it from here; new code imports ../args.js. */
export { getopt } from '../args.js';
import { getopt } from '../args.js';

export const pwCommand: CliCommand = {
  async run(ctx) {
    const { opts } = getopt(ctx.args, 'lp:r:s:t:u:V');
    if (opts.has('l')) {
      // the scheme table itself (bcryptjs, Argon2) is loaded only for -l; hashing runs on the hash workers
      const { SCHEME_NAMES } = await import('../../auth/schemes/registry.js');
      ctx.out.write(SCHEME_NAMES.join(' ') + ' \n');
      return 0;
    }
    const scheme = ((opts.get('s') as string | undefined) ?? 'CRYPT').toUpperCase();
    const user = (opts.get('u') as string | undefined) ?? '';
    let rounds: number | undefined;
    if (opts.has('r')) {
      rounds = Number(opts.get('r'));
      if (!Number.isInteger(rounds) || rounds < 0) throw new UsageError(`Invalid number of rounds: ${opts.get('r')}`);
      if (scheme === 'BLF-CRYPT' || scheme === 'CRYPT') rounds = Math.min(31, Math.max(4, rounds));
    }
    const test = opts.get('t') as string | undefined;
    let plain = opts.get('p') as string | undefined;
    if (plain === undefined) {
      plain = await ctx.readPassword(test ? 'Enter password to verify: ' : 'Enter new password: ');
      if (!test) {
        const again = await ctx.readPassword('Retype new password: ');
        if (again !== plain) throw new CommandError("Error: Passwords don't match!", EX_DATAERR);
      }
    }
    const pw = Buffer.from(plain, 'utf8');
    const check = async (hash: string): Promise<void> => {
      let ok: boolean;
      try {
        ok = await verifyPassword(pw, hash, { defaultScheme: scheme, user });
      } catch (e) {
        if (e instanceof SchemeError && /^Unknown scheme/.test(e.message)) throw new CommandError('Fatal: reverse decode check failed: Unknown scheme', EX_TEMPFAIL);
        throw new CommandError('Fatal: reverse password verification check failed: Password mismatch', EX_TEMPFAIL);
      }
      if (!ok) throw new CommandError('Fatal: reverse password verification check failed: Password mismatch', EX_TEMPFAIL);
    };
    if (test) {
      await check(test);
      ctx.out.write(`${test} (verified)\n`);
      return 0;
    }
    let hash: string;
    try {
      hash = await hashPassword(scheme, pw, { rounds, user });
    } catch (e) {
      if (e instanceof SchemeError) throw new CommandError(`Fatal: Unknown scheme: ${scheme}`, EX_TEMPFAIL);
      throw e;
    }
    if (opts.has('V')) {
      await check(hash);
      ctx.out.write(`${hash} (verified)\n`);
    } else {
      ctx.out.write(hash + '\n');
    }
    return 0;
  },
};
