/**
 * `sealadm app-password add|list|revoke -u USER` (Sealmail's own): per-device
 * app passwords (crypt/app-passwords.ts). `add [-n NAME]` asks for the
 * user's password (it opens the mail-crypt user keys; the config's
 * mail_crypt_private_password when set), makes a random password, stores
 * the keys encrypted with it plus its scrypt hash, and prints the password
 * once. `list` shows id, name, created, last used (no secrets). `revoke ID`
 * removes the record with its key copy: the next login with it fails.
 * A user without mail-crypt keys gets app passwords without a password
 * prompt (there is no key to copy). Needs the userdb's `home`.
 */
import { mkdir } from 'node:fs/promises';
import { AppPasswordStore, newAppPassword } from '../../crypt/app-passwords.js';
import { CryptError } from '../../crypt/keys.js';
import { cryptSettings, keystoreFor } from '../../crypt/user-crypt.js';
import { getopt } from '../args.js';
import { CommandError, EX_DATAERR, EX_NOUSER, UsageError, type CliCommand, type CommandContext } from '../command.js';
import { openUserContext, type UserContext } from './mailbox.js';

/** App passwords per user (Sealmail's limit; Dovecot has none of these). */
export const MAX_APP_PASSWORDS = 20;

async function storeFor(ctx: CommandContext, flags: string): Promise<{ user: string; uc: UserContext; store: AppPasswordStore; rest: string[]; opts: Map<string, string | boolean> }> {
  const { opts, rest } = getopt(ctx.args, flags);
  const user = opts.get('u');
  if (typeof user !== 'string') throw new UsageError('missing -u USER');
  const uc = await openUserContext(ctx, user);
  const home = uc.cryptUser.home;
  if (!home) throw new CommandError(`Error: ${user} has no home directory in the userdb: app passwords are kept there`, EX_NOUSER);
  return { user, uc, store: AppPasswordStore.forHome(home), rest, opts: opts as Map<string, string | boolean> };
}

export const appPasswordAddCommand: CliCommand = {
  async run(ctx) {
    const { user, uc, store, rest, opts } = await storeFor(ctx, 'u:n:');
    if (rest.length) throw new UsageError(`unexpected argument ${rest[0]}`);
    const name = typeof opts.get('n') === 'string' ? (opts.get('n') as string) : '';
    if (/[\x00-\x1f\x7f]/.test(name)) throw new UsageError('the name may not contain control characters');
    // every wrong password of the user costs one scrypt per app password: a bounded number
    if ((await store.list()).length >= MAX_APP_PASSWORDS) throw new CommandError(`Error: ${user} already has ${MAX_APP_PASSWORDS} app passwords (the limit): revoke one first`, EX_DATAERR);
    const s = cryptSettings(uc.config, uc.cryptUser);
    const password = newAppPassword();
    let keys: Record<string, string> = {};
    if (s.enabled && !s.globalPublic && !(s.globalPrivate.length && !s.curve)) {
      const ks = await keystoreFor(s, uc.cryptUser);
      if (await ks.activeUserKeyId()) {
        const pw = s.password !== undefined ? s.password : Buffer.from(await ctx.readPassword(`Password of ${user}: `));
        try {
          await ks.unlock(pw);
        } catch (e) {
          if (e instanceof CryptError) throw new CommandError(`Error: ${e.message}; nothing changed`, EX_DATAERR);
          throw e;
        }
        keys = await ks.wrapUnlocked(Buffer.from(password));
      }
    }
    await mkdir(uc.cryptUser.home!, { recursive: true, mode: 0o700 });
    const id = await store.add(name, password, keys);
    ctx.out.write(`App password ${id}${name ? ` (${name})` : ''} for ${user}${Object.keys(keys).length ? ` (${Object.keys(keys).length} mail-crypt key(s) copied)` : ''}; it is shown only this once:\n${password}\n`);
    return 0;
  },
};

export const appPasswordListCommand: CliCommand = {
  async run(ctx) {
    const { store } = await storeFor(ctx, 'u:');
    const p = ctx.printer('table');
    for (const h of ['id', 'name', 'created', 'last used']) p.header(h);
    for (const r of await store.list()) { p.value(r.id); p.value(r.name); p.value(r.created); p.value(r.lastUsed ?? 'never'); }
    p.flush();
    return 0;
  },
};

export const appPasswordRevokeCommand: CliCommand = {
  async run(ctx) {
    const { user, store, rest } = await storeFor(ctx, 'u:');
    if (rest.length !== 1) throw new UsageError('missing the app password id (sealadm app-password list -u USER)');
    if (!(await store.revoke(rest[0]))) throw new CommandError(`Error: ${user} has no app password ${rest[0]}`, EX_DATAERR);
    ctx.out.write(`App password ${rest[0]} of ${user} revoked\n`);
    return 0;
  },
};
