/**
 * `sealadm auth test USER [PASS]` and `sealadm auth lookup USER`: doveadm's
 * output (passdb: USER auth succeeded|failed, the visible extra fields, the
 * empty field Dovecot's reply carries after user=) and exit codes (0, 77 for
 * any failure, 67 for an unknown user in lookup). The password comes from
 * the command line only when given (doveadm compatibility); otherwise from a
 * prompt or standard input. No failure delay: doveadm's own auth test is
 * delayed by the auth server, scripts should not be.
 */
import { loadConfig } from '../../config/index.js';
import { AuthEngine } from '../../auth/engine.js';
import { CommandError, EX_NOPERM, EX_NOUSER, EX_TEMPFAIL, UsageError, type CliCommand, type CommandContext } from '../command.js';
import { getopt } from '../args.js';

async function engineFor(ctx: CommandContext): Promise<AuthEngine> {
  const config = await loadConfig(ctx.configPath, { overrides: ctx.overrides });
  return new AuthEngine(config, 'doveadm');
}

function authInfo(opts: Map<string, string | true>): { service: string; rip?: string; lip?: string } {
  const info: { service: string; rip?: string; lip?: string } = { service: 'doveadm' };
  const x = opts.get('x');
  if (typeof x === 'string') {
    for (const kv of x.split(/\s+/)) {
      const [k, v] = kv.split('=', 2);
      if (k === 'service') info.service = v;
      if (k === 'rip') info.rip = v;
      if (k === 'lip') info.lip = v;
    }
  }
  return info;
}

export const authTestCommand: CliCommand = {
  async run(ctx) {
    const { opts, rest } = getopt(ctx.args, 'a:x:M:');
    const [login, given] = rest;
    if (!login) throw new UsageError('missing user');
    const password = given ?? (await ctx.readPassword('Password: '));
    const engine = await engineFor(ctx);
    try {
      const r = await engine.authenticate(login, password, authInfo(opts));
      const ok = r.result === 'ok';
      const lines = [`passdb: ${login} auth ${ok ? 'succeeded' : 'failed'}`, 'extra fields:', `  user=${r.user}`];
      if (r.masterUser !== undefined) {
        // a master login: Dovecot names the master as original_user and auth_user;
        // a user the pass = yes lookup did not find is an authorization failure
        if (!ok) lines.push(r.result === 'tempfail' ? '  code=temp_fail' : '  code=authz_fail');
        lines.push(`  original_user=${r.masterUser}`, `  auth_user=${r.masterUser}`);
        ctx.out.write(lines.join('\n') + '\n');
        return ok ? 0 : EX_NOPERM;
      }
      // Dovecot's reply has an empty field after user= on success, then
      // original_user= when the name changed (or was refused as it stood).
      if (ok && !r.nologin) lines.push('  ');
      if (r.origUser !== r.user || r.refusedName) lines.push(`  original_user=${r.origUser}`);
      for (const [k, v] of r.fields) lines.push(v === '' ? `  ${k}` : `  ${k}=${v}`);
      if (r.result === 'tempfail') lines.push('  code=temp_fail');
      ctx.out.write(lines.join('\n') + '\n');
      return ok ? 0 : EX_NOPERM;
    } finally {
      await engine.close();
    }
  },
};

export const authLookupCommand: CliCommand = {
  async run(ctx) {
    const { opts, rest } = getopt(ctx.args, 'a:x:f:');
    if (rest.length === 0) throw new UsageError('missing user');
    const engine = await engineFor(ctx);
    let code = 0;
    try {
      for (const login of rest) {
        const r = await engine.authenticate(login, undefined, authInfo(opts));
        if (r.result === 'tempfail') throw new CommandError(`Error: passdb lookup failed for ${login}`, EX_TEMPFAIL);
        if (r.result !== 'ok') {
          ctx.out.write(`passdb lookup: user ${login} doesn't exist\n`);
          code = EX_NOUSER;
          continue;
        }
        const field = opts.get('f');
        const fields: [string, string][] = [['user', r.user], ...r.fields];
        if (typeof field === 'string') {
          ctx.out.write(`${fields.find(([k]) => k === field)?.[1] ?? ''}\n`);
          continue;
        }
        ctx.out.write(`passdb: ${login}\n`);
        for (const [k, v] of fields) ctx.out.write(`  ${k.padEnd(6)}: ${v}\n`);
      }
    } finally {
      await engine.close();
    }
    return code;
  },
};
