/**
 * `sealadm mailbox cryptokey generate|list|password|export|recovery` with
 * doveadm 2.3's options, output (table: check mark, Folder, Public ID /
 * Folder, Active, Public ID; `result:` lines) and exit codes, on the same
 * attribute dict Dovecot uses. Passwords come from `-o
 * plugin/mail_crypt_private_password=…`, the userdb, or a prompt/stdin
 * (`-O`/`-N`), never only from the command line. `recovery` is Sealmail's:
 * a second copy of the user key under a random code printed once.
 * Deliberate difference: `export` prints Folder / Public ID / Key per key
 * (doveadm 2.3.19 shifts its columns after the first key).
 */
import { randomBytes } from 'node:crypto';
import { CryptError, privateKeyPem } from '../../crypt/keys.js';
import { cryptSettings, keystoreFor } from '../../crypt/user-crypt.js';
import type { UserKeystore } from '../../crypt/keystore.js';
import { mutf7ToUtf8 } from '../../mailstore/api/mailbox-utf7.js';
import { getopt } from '../args.js';
import { CommandError, EX_DATAERR, EX_TEMPFAIL, UsageError, type CliCommand, type CommandContext } from '../command.js';
import { listUsers, openUserContext, type UserContext } from './mailbox.js';

async function keystore(uc: UserContext, password?: string): Promise<{ ks: UserKeystore; s: ReturnType<typeof cryptSettings> }> {
  const s = cryptSettings(uc.config, uc.cryptUser, password);
  return { ks: await keystoreFor(s, uc.cryptUser), s };
}

const info = (ctx: CommandContext, user: string, msg: string) => ctx.err.write(`doveadm(${user}): Info: ${msg}\n`);
const warn = (ctx: CommandContext, user: string, msg: string) => ctx.err.write(`doveadm(${user}): Warning: ${msg}\n`);

/** Mailbox names (IMAP, UTF-8 shown) for the given masks, or all with -R. */
async function mailboxes(uc: UserContext, names: string[], all: boolean): Promise<string[]> {
  const list = (await uc.plainStore.list(true)).filter((e) => !e.flags.includes('\\Noselect') && !e.flags.includes('\\NonExistent')).map((e) => e.name);
  if (all) return list;
  return names.map((n) => list.find((l) => mutf7ToUtf8(l) === n || l === n) ?? n);
}

export const cryptokeyGenerateCommand: CliCommand = {
  async run(ctx) {
    const { opts, rest } = getopt(ctx.args, 'u:AURfS:');
    if (!opts.has('u') && !opts.has('A')) throw new UsageError('missing -u USER or -A');
    const users = opts.has('A') ? await listUsers(ctx) : [opts.get('u') as string];
    const force = opts.has('f');
    let code = 0;
    for (const user of users) {
      const uc = await openUserContext(ctx, user);
      const p = ctx.printer('table');
      p.header({ key: 'success', title: '', minWidth: 2 });
      p.header('Folder');
      p.header('Public ID');
      try {
        const { ks, s } = await keystore(uc);
        if (opts.has('U')) {
          const had = await ks.activeUserKeyId();
          if (had && !force) info(ctx, user, 'userkey exists. Use -f to generate a new one');
          const r = await ks.ensureUserKey(s.curve, s.password, s.requireEncryptedUserKey, force);
          p.value('✓'); p.value('<userkey>'); p.value(r.id);
        } else if (!rest.length && !opts.has('R')) {
          warn(ctx, user, 'mailbox cryptokey generate: Nothing was matched. Use -U or specify mask?');
        } else {
          await ks.ensureUserKey(s.curve, s.password, s.requireEncryptedUserKey);
          for (const box of await mailboxes(uc, rest, opts.has('R'))) {
            const guid = await uc.cryptUser.mailboxGuid(box);
            const before = (await ks.list(false, [[box, guid]])).find((k) => k.active)?.id;
            if (before && !force) info(ctx, user, 'Folder key exists. Use -f to generate a new one');
            await ks.folderPublicKey(guid, s.curve, box, force);
            const id = (await ks.list(false, [[box, guid]])).find((k) => k.active)!.id;
            p.value('✓'); p.value(mutf7ToUtf8(box)); p.value(id);
          }
        }
      } catch (e) {
        if (!(e instanceof CryptError)) throw e;
        ctx.err.write(`doveadm(${user}): Error: mail_crypt_user_generate_keypair(${user}) failed: ${e.message.replace(/^user [^:]+: /, '')}\n`);
        code = EX_TEMPFAIL;
      }
      p.flush();
    }
    return code;
  },
};

export const cryptokeyListCommand: CliCommand = {
  async run(ctx) {
    const { opts, rest } = getopt(ctx.args, 'u:AUS:');
    if (!opts.has('u') && !opts.has('A')) throw new UsageError('missing -u USER or -A');
    const users = opts.has('A') ? await listUsers(ctx) : [opts.get('u') as string];
    const p = ctx.printer('table');
    p.header('Folder'); p.header('Active'); p.header('Public ID');
    for (const user of users) {
      const uc = await openUserContext(ctx, user);
      const { ks } = await keystore(uc);
      if (!opts.has('U') && !rest.length) { warn(ctx, user, 'mailbox cryptokey list: Nothing was matched. Use -U or specify mask?'); continue; }
      const boxes: [string, string][] = [];
      for (const b of await mailboxes(uc, rest, false)) boxes.push([b, await uc.cryptUser.mailboxGuid(b)]);
      for (const k of await ks.list(opts.has('U'), boxes)) {
        p.value(k.mailbox ? mutf7ToUtf8(k.mailbox) : ''); p.value(k.active ? 'yes' : 'no'); p.value(k.id);
      }
    }
    p.flush();
    return 0;
  },
};

export const cryptokeyPasswordCommand: CliCommand = {
  async run(ctx) {
    const { opts } = getopt(ctx.args, 'u:An:No:OCS:');
    if (!opts.has('u') && !opts.has('A')) throw new UsageError('missing -u USER or -A');
    let oldPw = opts.get('o') as string | undefined;
    let newPw = opts.get('n') as string | undefined;
    if (opts.has('O')) oldPw = await ctx.readPassword('Old password: ');
    if (opts.has('N')) {
      newPw = await ctx.readPassword('New password: ');
      if ((await ctx.readPassword('Confirm new password: ')) !== newPw) throw new CommandError('Passwords don\'t match', EX_DATAERR);
    }
    const users = opts.has('A') ? await listUsers(ctx) : [opts.get('u') as string];
    const p = ctx.printer('pager');
    p.header({ key: 'result', title: 'result' });
    let code = 0;
    for (const user of users) {
      const uc = await openUserContext(ctx, user);
      const { ks } = await keystore(uc);
      if (!opts.has('C') && !newPw) { p.value('missing new password (-n or -N), or -C to remove the password'); code = EX_DATAERR; continue; }
      try {
        const n = await ks.changePassword(oldPw !== undefined ? Buffer.from(oldPw) : undefined, opts.has('C') ? null : Buffer.from(newPw!));
        p.value(`Changed password for ${n} key(s)`);
      } catch (e) {
        if (!(e instanceof CryptError)) throw e;
        p.value(e.message);
        code = EX_DATAERR;
      }
    }
    p.flush();
    return code;
  },
};

export const cryptokeyExportCommand: CliCommand = {
  async run(ctx) {
    const { opts, rest } = getopt(ctx.args, 'u:AUS:');
    if (!opts.has('u') && !opts.has('A')) throw new UsageError('missing -u USER or -A');
    const users = opts.has('A') ? await listUsers(ctx) : [opts.get('u') as string];
    const p = ctx.printer('pager');
    for (const h of ['Folder', 'Public ID', 'Error', 'Key']) p.header(h);
    let code = 0;
    for (const user of users) {
      const uc = await openUserContext(ctx, user);
      const { ks, s } = await keystore(uc);
      let unlockError = '';
      try { await ks.unlock(s.password); } catch (e) { if (!(e instanceof CryptError)) throw e; unlockError = e.message.replace(/^user [^:]+: /, ''); }
      const entries: { box: string; id: string }[] = [];
      if (opts.has('U')) for (const k of await ks.list(true)) entries.push({ box: '', id: k.id });
      for (const b of await mailboxes(uc, rest, false)) for (const k of await ks.list(false, [[b, await uc.cryptUser.mailboxGuid(b)]])) entries.push({ box: mutf7ToUtf8(b), id: k.id });
      for (const { box, id } of entries) {
        p.value(box); p.value(id);
        try {
          if (unlockError) throw new CryptError(unlockError);
          const k = await ks.privateKey(id);
          p.value(''); p.value(privateKeyPem(k));
        } catch (e) {
          if (!(e instanceof CryptError)) throw e;
          p.value(`ERROR: Cannot decrypt key ${id}: ${e.message.replace(/^user [^:]+: /, '')}`); p.value('');
          code = EX_DATAERR;
        }
      }
    }
    p.flush();
    return code;
  },
};

/** 25 base32 characters (125 bits) in five groups: typed by a human once, in a crisis. */
export function newRecoveryCode(): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
  const b = randomBytes(25);
  let s = '';
  for (let i = 0; i < 25; i++) s += alphabet[b[i] & 31] + (i % 5 === 4 && i < 24 ? '-' : '');
  return s;
}

export const cryptokeyRecoveryCommand: CliCommand = {
  async run(ctx) {
    const { opts } = getopt(ctx.args, 'u:');
    const user = opts.get('u');
    if (typeof user !== 'string') throw new UsageError('missing -u USER');
    const uc = await openUserContext(ctx, user);
    const { ks, s } = await keystore(uc);
    const pw = s.password !== undefined ? s.password.toString('utf8') : await ctx.readPassword(`Password of ${user}: `);
    try {
      await ks.unlock(Buffer.from(pw));
      if (!ks.unlocked) throw new CryptError(`user ${user}: has no key pair`);
      const code = newRecoveryCode();
      const n = await ks.storeRecovery(Buffer.from(code));
      ctx.out.write(`Recovery code for ${user} (${n} key(s)); it is shown only this once, store it offline:\n${code}\n`);
    } catch (e) {
      if (e instanceof CryptError) throw new CommandError(`Error: ${e.message}`, EX_DATAERR);
      throw e;
    }
    return 0;
  },
};
