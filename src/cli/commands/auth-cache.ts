/**
 * `sealadm auth cache flush [-a <master socket path>] [<user> ...]` =
 * doveadm auth cache flush (doveadm-auth.c): every passdb cache entry, or
 * those of the users named (compared exactly, as auth_cache_clear_users
 * does), removed in the running server; prints "N cache entries flushed".
 * Dovecot asks the auth-master socket; Sealmail's caches live in the
 * processes that authenticate, and the master's admin socket reaches them
 * (server/auth-cache-flush.ts). -a names that socket instead of
 * base_dir/sealmail-admin. A server that cannot be reached is doveadm's
 * "connect(…) failed" error and, as doveadm 2.3.19 does, "0 cache entries
 * flushed" with exit 0.
 */
import { adminSocketPath } from '../../server/admin-socket.js';
import { askAdmin } from '../admin-client.js';
import { getopt } from '../args.js';
import { CommandError, EX_TEMPFAIL, type CliCommand } from '../command.js';
import { adminConfig } from './master.js';

export const authCacheFlushCommand: CliCommand = {
  async run(ctx) {
    const { opts, rest } = getopt(ctx.args, 'a:');
    const path = (opts.get('a') as string | undefined) ?? adminSocketPath(await adminConfig(ctx));
    let count = 0;
    try {
      const [line] = await askAdmin(path, ['CACHE-FLUSH', ...rest.map((u) => u.replace(/[\t\r\n]/g, ' '))].join('\t'));
      const [ok, n] = (line ?? '').split('\t');
      if (ok !== 'OK' || !/^[0-9]+$/.test(n ?? '')) throw new CommandError('Error: Cache flush failed', EX_TEMPFAIL);
      count = Number(n);
    } catch (e) {
      if (e instanceof CommandError) throw e;
      ctx.err.write(`Error: auth-master: auth cache flush: connect(${path}) failed: ${(e as Error).message}\n`);
    }
    ctx.out.write(`${count} cache entries flushed\n`);
    return 0;
  },
};
