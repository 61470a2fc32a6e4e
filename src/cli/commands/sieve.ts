/**
 * Pigeonhole's doveadm sieve commands (src/plugins/doveadm-sieve) on the
 * user's personal script storage (the `sieve` plugin setting, the same
 * `file:` storage ManageSieve uses: src/managesieve/storage.ts):
 *   sieve list -u USER                  script name, "ACTIVE" or empty
 *   sieve get -u USER NAME              the script (pager formatter)
 *   sieve put -u USER [-a] NAME < FILE  compiled first: a script that does not
 *                                       compile is not stored (exit 65)
 *   sieve activate|deactivate -u USER [NAME]
 *   sieve delete -u USER [-a] NAME ...  -a also deletes the active script
 *   sieve rename -u USER OLD NEW
 * Errors are Pigeonhole's lines and doveadm_sieve_cmd_failed_error's exit
 * codes (not found 68, not possible 65).
 */
import { compileScript, SieveCompileError } from '../../sieve/compile.js';
import { ScriptError, ScriptStorage } from '../../managesieve/storage.js';
import { getopt } from '../args.js';
import { CommandError, EX_TEMPFAIL, UsageError, type CliCommand, type CommandContext } from '../command.js';
import { listUsers, openUserContext } from './mailbox.js';

const EX_NOTFOUND = 68;
const EX_NOTPOSSIBLE = 65;

interface SieveTarget { user: string; storage: ScriptStorage }

async function targets(ctx: CommandContext, own: string, usage: string, minArgs: number): Promise<{ list: SieveTarget[]; opts: Map<string, string | true>; rest: string[] }> {
  const { opts, rest } = getopt(ctx.args, 'u:AS:F:' + own);
  if ((!opts.has('u') && !opts.has('A')) || rest.length < minArgs) throw new UsageError(usage);
  const users = opts.has('A') ? await listUsers(ctx) : [opts.get('u') as string];
  const list: SieveTarget[] = [];
  for (const user of users) {
    const uc = await openUserContext(ctx, user);
    const home = uc.mailUser.user.home;
    if (!home) throw new CommandError(`sealadm(${user}): Error: user has no home directory: no Sieve storage`, EX_TEMPFAIL);
    const location = uc.config.plugin({ protocol: 'sieve' }).sieve ?? '';
    list.push({ user, storage: new ScriptStorage(location, { username: user, home, fields: uc.fields }) });
  }
  return { list, opts, rest };
}

/** One failure as doveadm reports it: the line now, the exit code at the end (the first one, tempfail winning). */
class Failures {
  code = 0;
  fail(user: string, what: string, e: unknown): void {
    let code = EX_TEMPFAIL;
    const text = (e as Error).message;
    if (e instanceof ScriptError) {
      code = e.code === 'NONEXISTENT' ? EX_NOTFOUND : EX_NOTPOSSIBLE;
    } else if (!(e instanceof SieveCompileError)) throw e;
    process.stderr.write(`sealadm(${user}): Error: ${what}: ${text}\n`);
    if (this.code === 0 || code === EX_TEMPFAIL) this.code = code;
  }
}

export const sieveListCommand: CliCommand = {
  async run(ctx) {
    const { list } = await targets(ctx, 's', 'doveadm sieve list [-u <user>|-A] [-S <socket_path>]', 0);
    const p = ctx.printer('flow');
    p.header({ key: 'script', hideTitle: true });
    p.header({ key: 'active', hideTitle: true });
    for (const t of list) for (const s of await t.storage.list()) { p.value(s.name); p.value(s.active ? 'ACTIVE' : ''); }
    p.flush();
    return 0;
  },
};

export const sieveGetCommand: CliCommand = {
  async run(ctx) {
    const { list, rest } = await targets(ctx, '', 'doveadm sieve get [-u <user>|-A] [-S <socket_path>] <scriptname>', 1);
    const p = ctx.printer('pager');
    p.header({ key: 'sieve script', stream: true });
    const f = new Failures();
    for (const t of list) {
      try { p.value(await t.storage.get(rest[0])); } catch (e) { f.fail(t.user, 'Failed to open Sieve script', e); }
    }
    p.flush();
    return f.code;
  },
};

async function readStdin(): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of process.stdin) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** The compile check Pigeonhole runs before storing or activating: its errors are logged line by line. */
function compiles(user: string, name: string, script: Buffer): boolean {
  try {
    compileScript(script.toString('utf8'), name);
    return true;
  } catch (e) {
    if (!(e instanceof SieveCompileError)) throw e;
    // Pigeonhole's master error handler: each error, then the summary line
    for (const line of e.errors) process.stderr.write(`sealadm(${user}): Error: sieve: ${line}\n`);
    process.stderr.write(`sealadm(${user}): Error: sieve: ${name}: ${e.kind} failed\n`);
    return false;
  }
}

export const sievePutCommand: CliCommand = {
  async run(ctx) {
    const { list, opts, rest } = await targets(ctx, 'a', 'doveadm sieve put [-u <user>|-A] [-S <socket_path>] [-a] <scriptname>', 1);
    const name = rest[0];
    const script = await readStdin();
    const f = new Failures();
    for (const t of list) {
      if (!compiles(t.user, name, script)) { if (f.code === 0) f.code = EX_NOTPOSSIBLE; continue; }
      try {
        await t.storage.put(name, script);
        if (opts.has('a')) await t.storage.setActive(name);
      } catch (e) { f.fail(t.user, opts.has('a') ? 'Failed to activate Sieve script' : 'Saving failed', e); }
    }
    return f.code;
  },
};

export const sieveActivateCommand: CliCommand = {
  async run(ctx) {
    const { list, rest } = await targets(ctx, '', 'doveadm sieve activate [-u <user>|-A] [-S <socket_path>] <scriptname>', 1);
    const f = new Failures();
    for (const t of list) {
      try {
        const script = await t.storage.get(rest[0]);
        // an active script must compile (Pigeonhole compiles it with the ACTIVATED flag)
        if (!compiles(t.user, rest[0], script)) { if (f.code === 0) f.code = EX_NOTPOSSIBLE; continue; }
        await t.storage.setActive(rest[0]);
      } catch (e) { f.fail(t.user, 'Failed to activate Sieve script', e); }
    }
    return f.code;
  },
};

export const sieveDeactivateCommand: CliCommand = {
  async run(ctx) {
    const { list } = await targets(ctx, '', 'doveadm sieve deactivate [-u <user>|-A] [-S <socket_path>]', 0);
    for (const t of list) await t.storage.setActive('');
    return 0;
  },
};

export const sieveDeleteCommand: CliCommand = {
  async run(ctx) {
    const { list, opts, rest } = await targets(ctx, 'a', 'doveadm sieve delete [-u <user>|-A] [-S <socket_path>] [-a] <scriptname> [...]', 1);
    const f = new Failures();
    for (const t of list) {
      for (const name of rest) {
        try {
          // -a (ignore-active): the active script goes too, and with it the activation
          if (opts.has('a') && (await t.storage.active()) === name) await t.storage.setActive('');
          await t.storage.delete(name);
        } catch (e) { f.fail(t.user, 'Failed to delete Sieve script', e); }
      }
    }
    return f.code;
  },
};

export const sieveRenameCommand: CliCommand = {
  async run(ctx) {
    const { list, rest } = await targets(ctx, '', 'doveadm sieve rename [-u <user>|-A] [-S <socket_path>] <oldname> <newname>', 2);
    const f = new Failures();
    for (const t of list) {
      try { await t.storage.rename(rest[0], rest[1]); } catch (e) { f.fail(t.user, 'Failed to rename Sieve script', e); }
    }
    return f.code;
  },
};
