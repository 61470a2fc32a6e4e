/**
 * `sealadm auth test USER [PASS]`, `auth login` and `sealadm auth lookup USER`: doveadm's
 * output (passdb: USER auth succeeded|failed, the visible extra fields, the
 * empty field Dovecot's reply carries after user=) and exit codes (0, 77 for
 * any failure, 67 for an unknown user in lookup). The password comes from
 * the command line only when given (doveadm compatibility); otherwise from a
 * prompt or standard input. No failure delay: doveadm's own auth test is
 * delayed by the auth server, scripts should not be. `auth login` adds the
 * userdb half a login finishes with.
 */
import { loadConfig } from '../../config/index.js';
import { AuthEngine, type AuthOutcome } from '../../auth/engine.js';
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

/** doveadm's passdb half of auth test / auth login: the lines it prints and whether the login succeeded. */
function passdbReport(login: string, r: AuthOutcome): { text: string; ok: boolean } {
  const ok = r.result === 'ok';
  const lines = [`passdb: ${login} auth ${ok ? 'succeeded' : 'failed'}`, 'extra fields:', `  user=${r.user}`];
  if (r.masterUser !== undefined) {
    // a master login: Dovecot names the master as original_user and auth_user;
    // a user the pass = yes lookup did not find is an authorization failure
    if (!ok) lines.push(r.result === 'tempfail' ? '  code=temp_fail' : '  code=authz_fail');
    else if (r.hiddenFieldsOnly) lines.push('  ');
    lines.push(`  original_user=${r.masterUser}`, `  auth_user=${r.masterUser}`);
    return { text: lines.join('\n') + '\n', ok };
  }
  // Dovecot's reply has an empty field after user= on success when the passdb
  // set only hidden fields (user=, userdb_*), then original_user= when the
  // name changed (or was refused as it stood).
  if (ok && r.hiddenFieldsOnly) lines.push('  ');
  if (r.origUser !== r.user || r.refusedName) lines.push(`  original_user=${r.origUser}`);
  for (const [k, v] of r.fields) lines.push(v === '' ? `  ${k}` : `  ${k}=${v}`);
  if (r.result === 'tempfail') lines.push('  code=temp_fail');
  return { text: lines.join('\n') + '\n', ok };
}

export const authTestCommand: CliCommand = {
  async run(ctx) {
    const { opts, rest } = getopt(ctx.args, 'a:x:M:');
    const [login, given] = rest;
    if (!login) throw new UsageError('missing user');
    const password = given ?? (await ctx.readPassword('Password: '));
    const engine = await engineFor(ctx);
    try {
      const { text, ok } = passdbReport(login, await engine.authenticate(login, password, authInfo(opts)));
      ctx.out.write(text);
      return ok ? 0 : EX_NOPERM;
    } finally {
      await engine.close();
    }
  },
};

/**
 * `auth login`: the passdb half as auth test (SASL PLAIN, `-M` the
 * authentication id of a master login), then the userdb lookup a login
 * finishes with, printed as the auth-master USER reply doveadm shows: the
 * user name, the userdb fields (an empty one when there are none), then
 * master_user, auth_mech and auth_user as Dovecot's auth process appends
 * them. `-a`/`-m` (socket paths) are accepted and unused: the lookup runs in
 * this process, like auth test.
 */
export const authLoginCommand: CliCommand = {
  async run(ctx) {
    const { opts, rest } = getopt(ctx.args, 'a:m:x:M:');
    const [login, given] = rest;
    if (!login) throw new UsageError('missing user');
    const password = given ?? (await ctx.readPassword('Password: '));
    const info = authInfo(opts);
    const master = opts.get('M');
    const engine = await engineFor(ctx);
    try {
      // PLAIN's authzid is the user, its authcid the master user when -M is given
      const r = typeof master === 'string'
        ? await engine.authenticate(master, password, { ...info, loginUser: login })
        : await engine.authenticate(login, password, info);
      const { text, ok } = passdbReport(login, r);
      ctx.out.write(text);
      if (!ok || r.nologin) return EX_NOPERM;
      const u = await engine.lookupUser(r.user, info, r.userdbFields, true);
      if (u.result !== 'ok') {
        // Dovecot's master login client turns NOTFOUND and FAIL alike into its internal-failure text
        ctx.err.write('Error: userdb lookup failed: Internal error occurred. Refer to server log for more information.\n');
        return EX_NOPERM;
      }
      const fields: string[] = u.fields.map(([k, v]) => (v === '' ? k : `${k}=${v}`));
      const hasMaster = r.masterUser !== undefined && !u.fields.some(([k]) => k === 'master_user');
      if (fields.length === 0) fields.push('');
      if (hasMaster) fields.push(`master_user=${r.masterUser}`);
      fields.push('auth_mech=PLAIN');
      if (r.masterUser !== undefined) fields.push(`auth_user=${r.masterUser}`);
      else if (r.origUser !== u.user) fields.push(`auth_user=${r.origUser}`);
      ctx.out.write(['userdb extra fields:', u.user, ...fields].join('\n  ') + '\n');
      return 0;
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
