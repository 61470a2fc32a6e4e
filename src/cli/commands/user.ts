/**
 * `sealadm user [-a] [-f field] [-m] [-u] [-x auth-info] USER|MASK`:
 * doveadm user's userdb view (uid, gid, home, mail first, then the other
 * userdb fields, through the tab formatter by default), `-f` for one value,
 * masks with * and ? listing users through iterate_query, exit 67 for an
 * unknown user.
 */
import { loadConfig } from '../../config/index.js';
import { AuthEngine } from '../../auth/engine.js';
import { CommandError, EX_NOUSER, EX_TEMPFAIL, UsageError, type CliCommand } from '../command.js';
import { getopt } from '../args.js';
import { wildcardMask } from '../../util/wildcard.js';

export const userCommand: CliCommand = {
  async run(ctx) {
    const { opts, rest } = getopt(ctx.args, 'a:x:f:mu');
    if (rest.length === 0) throw new UsageError('missing user');
    const config = await loadConfig(ctx.configPath, { overrides: ctx.overrides });
    const engine = new AuthEngine(config, 'doveadm');
    try {
      const masks = rest.filter((r) => r.includes('*') || r.includes('?'));
      if (masks.length > 0 || opts.has('u') && rest.some((r) => r.includes('*'))) {
        const all = await engine.iterateUsers();
        for (const mask of masks) {
          const re = wildcardMask(mask);
          for (const u of all) if (re.test(u)) ctx.out.write(u + '\n');
        }
        return 0;
      }
      let code = 0;
      for (const login of rest) {
        const r = await engine.lookupUser(login, { service: 'doveadm' });
        if (r.result === 'tempfail') throw new CommandError(`Error: userdb lookup failed for ${login}`, EX_TEMPFAIL);
        const field = opts.get('f');
        if (r.result !== 'ok') {
          if (typeof field !== 'string') {
            const p = ctx.printer('tab');
            p.header('field');
            p.header('value');
            p.flush();
            ctx.out.write('\n');
          }
          ctx.out.write(`userdb lookup: user ${login} doesn't exist\n`);
          code = EX_NOUSER;
          continue;
        }
        const get = (k: string) => r.fields.find(([f]) => f === k)?.[1];
        const rows: [string, string][] = [
          ['uid', get('uid') ?? ''], ['gid', get('gid') ?? ''], ['home', get('home') ?? ''],
          ['mail', get('mail') ?? config.get('mail_location', { protocol: 'doveadm' })],
          ...r.fields.filter(([k]) => !['uid', 'gid', 'home', 'mail'].includes(k)),
        ];
        if (typeof field === 'string') {
          ctx.out.write(`${rows.find(([k]) => k === field)?.[1] ?? ''}\n`);
          continue;
        }
        const p = ctx.printer('tab');
        p.header('field');
        p.header('value');
        for (const [k, v] of rows) { p.value(k); p.value(v); }
        p.flush();
      }
      return code;
    } finally {
      await engine.close();
    }
  },
};
