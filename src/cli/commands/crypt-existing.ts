/**
 * `sealadm mailbox cryptokey encrypt-existing -u USER | -A` and
 * `… decrypt-existing` (Sealmail's own; doveadm has no such command): turn
 * mail-crypt on or off for mail already stored. encrypt-existing rewrites
 * every plaintext message of every folder in Dovecot's mail-crypt container,
 * to the folder's key, with the public keys only (works while the user is
 * offline, no password); decrypt-existing does the reverse and needs the
 * password (userdb mail_crypt_private_password, `-o
 * plugin/mail_crypt_private_password=…`, or asked for on the terminal/stdin).
 *
 * Each file is rewritten in place by recodeFile (src/mailstore/maildir/
 * recode-file.ts): same name (UID, flags, keywords, S=/W= — Dovecot's S=/W=
 * for mail-crypt files are the plaintext's sizes, as for plaintext files),
 * same mtime (INTERNALDATE), atomic rename, so open IMAP sessions keep
 * reading the same bytes. Files already in the target form are skipped, so a
 * killed run is simply run again. A file compressed by the zlib plugin is
 * encrypted as it is stored (compressed inside the container), which is
 * the layering Dovecot 2.3.19 writes and reads with `zlib mail_crypt` in
 * mail_plugins (in either order); decrypt-existing gives it back compressed. A message expunged or renamed (flag change) by another
 * session mid-run is skipped and named; run again for the renamed ones.
 * Sealmail's field cache of each folder is removed afterwards (it held
 * cached header data sealed for the old mode; it is rebuilt on use).
 *
 * Output: one stderr line per message not rewritten (except those already in
 * the target form), a progress bar on stderr when it is a terminal, and a
 * summary line per user on stdout. Exit 0 when every message is now in the
 * target form (or gone), 75 when some are left (changed mid-run, failed).
 *
 * SEALMAIL_RECODE_TEST_HOOK (tests only): an executable run with
 * `before-swap <path>` before each file is swapped, so a test can change the
 * file at exactly that moment instead of racing.
 */
import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { isEncrypted } from '../../crypt/container.js';
import { CryptError } from '../../crypt/keys.js';
import { cryptSettings, deliveryCrypt, unlockUserCrypt } from '../../crypt/user-crypt.js';
import type { MessageCodec } from '../../crypt/codec.js';
import { FIELD_CACHE_FILE } from '../../mailstore/field-cache.js';
import { mutf7ToUtf8 } from '../../mailstore/api/mailbox-utf7.js';
import { recodeFile, removeLeftovers, type RecodeOutcome } from '../../mailstore/maildir/recode-file.js';
import { getopt } from '../args.js';
import { CommandError, EX_DATAERR, EX_TEMPFAIL, UsageError, type CliCommand, type CommandContext } from '../command.js';
import { listUsers, openUserContext, type UserContext } from './mailbox.js';
import { progressBar } from './migrate.js';

type Mode = 'encrypt' | 'decrypt';

const WHY: Partial<Record<RecodeOutcome, string>> = {
  vanished: 'skipped: expunged by another session meanwhile',
  changed: 'skipped: renamed by another session meanwhile (flag change); run again',
  conflict: 'CONFLICT: renamed by another session during the swap; two files now share this base name, remove the plaintext one',
};

interface Job { box: string; dir: string; controlDir: string; mailbox: string; sub: 'new' | 'cur'; file: string }

async function jobsOf(uc: UserContext): Promise<{ jobs: Job[]; folders: { dir: string; controlDir: string }[] }> {
  const jobs: Job[] = [];
  const folders: { dir: string; controlDir: string }[] = [];
  for (const e of await uc.plainStore.list(true)) {
    if (e.flags.includes('\\Noselect') || e.flags.includes('\\NonExistent')) continue;
    const f = await uc.plainStore.open(e.name);
    folders.push({ dir: f.dir, controlDir: f.controlDir });
    await removeLeftovers(f.dir);
    for (const sub of ['new', 'cur'] as const) {
      for (const file of (await fsp.readdir(join(f.dir, sub)).catch(() => [] as string[])).sort()) {
        if (!file.startsWith('.')) jobs.push({ box: mutf7ToUtf8(e.name), dir: f.dir, controlDir: f.controlDir, mailbox: f.opts.mailboxName, sub, file });
      }
    }
  }
  return { jobs, folders };
}

async function codecFor(ctx: CommandContext, uc: UserContext, mode: Mode): Promise<MessageCodec> {
  const s = cryptSettings(uc.config, uc.cryptUser);
  if (!s.enabled) throw new CryptError(`mail_crypt is not in mail_plugins for this user: ${mode === 'encrypt' ? 'enable it first' : 'decrypt-existing must run while it is still enabled'}`);
  if (mode === 'encrypt') {
    if (s.saveVersion !== 2) throw new CryptError(`mail_crypt_save_version = ${s.saveVersion}: Sealmail writes version 2 only`);
    return (await deliveryCrypt(uc.config, uc.cryptUser)).codec;
  }
  const pw = s.password !== undefined ? s.password.toString('utf8') : await ctx.readPassword(`Password of ${uc.user}: `);
  const c = await unlockUserCrypt(uc.config, uc.cryptUser, pw);
  if (c.keystore && !c.keystore.unlocked) throw new CryptError('the user has no key pair to decrypt with');
  return c.codec;
}

function testHook(): ((path: string) => void) | undefined {
  const hook = process.env.SEALMAIL_RECODE_TEST_HOOK;
  if (!hook) return undefined;
  return (path) => { spawnSync(hook, ['before-swap', path], { stdio: 'ignore' }); };
}

interface Counts { done: number; already: number; left: number; vanished: number; failed: number }

async function runUser(ctx: CommandContext, user: string, mode: Mode, tty: boolean, prefix: string): Promise<Counts> {
  const uc = await openUserContext(ctx, user);
  const codec = await codecFor(ctx, uc, mode);
  const { jobs, folders } = await jobsOf(uc);
  const hook = testHook();
  const c: Counts = { done: 0, already: 0, left: 0, vanished: 0, failed: 0 };
  for (const [i, j] of jobs.entries()) {
    if (tty && (i % 50 === 0)) ctx.err.write(progressBar(i, jobs.length, `messages ${prefix}`.padEnd(40)));
    let outcome: RecodeOutcome;
    try {
      outcome = await recodeFile({
        dir: j.dir, sub: j.sub, file: j.file,
        classify: (head) => mode === 'encrypt'
          ? (isEncrypted(head) ? 'already' : 'recode')
          : (isEncrypted(head) ? 'recode' : 'already'),
        transform: (stored) => mode === 'encrypt' ? codec.encrypt(j.mailbox, stored) : codec.decrypt(j.mailbox, stored),
        beforeSwap: hook,
      });
    } catch (e) {
      c.failed++;
      ctx.err.write(`${tty ? '\n' : ''}${prefix}${j.box}: ${j.sub}/${j.file}: failed: ${(e as Error).message}\n`);
      continue;
    }
    if (outcome === 'done') c.done++;
    else if (outcome === 'already') c.already++;
    else {
      if (outcome === 'vanished') c.vanished++; else c.left++;
      ctx.err.write(`${tty ? '\n' : ''}${prefix}${j.box}: ${j.sub}/${j.file}: ${WHY[outcome]}\n`);
    }
  }
  if (tty) ctx.err.write(progressBar(jobs.length, jobs.length, `messages ${prefix}`.padEnd(40)) + '\n');
  // cached header data sealed (or not) for the old mode: useless now, or plaintext at rest
  for (const f of folders) await fsp.unlink(join(f.controlDir, FIELD_CACHE_FILE)).catch(() => undefined);
  return c;
}

function command(mode: Mode): CliCommand {
  return {
    async run(ctx) {
      const { opts, rest } = getopt(ctx.args, 'u:A');
      if (rest.length) throw new UsageError(`unexpected argument ${rest[0]}`);
      if (!opts.has('u') && !opts.has('A')) throw new UsageError('missing -u USER or -A');
      const users = opts.has('A') ? await listUsers(ctx) : [opts.get('u') as string];
      const tty = (ctx.err as { isTTY?: boolean }).isTTY === true;
      const verb = mode === 'encrypt' ? 'encrypted' : 'decrypted';
      let code = 0;
      for (const user of users) {
        const prefix = opts.has('A') ? `${user}: ` : '';
        try {
          const c = await runUser(ctx, user, mode, tty, prefix);
          ctx.out.write(`${user}: ${c.done} ${verb}, ${c.already} already ${verb}, ${c.vanished} expunged meanwhile, ${c.left} left as they were, ${c.failed} failed\n`);
          if (c.left || c.failed) code = EX_TEMPFAIL;
        } catch (e) {
          if (e instanceof CryptError) {
            ctx.err.write(`Error: user ${user}: ${e.message.replace(/^user [^:]+: /, '')}\n`);
            code = code || EX_DATAERR;
            continue;
          }
          if (e instanceof CommandError && users.length > 1) { ctx.err.write(`${e.message} (user ${user})\n`); code = e.exitCode; continue; }
          throw e;
        }
      }
      return code;
    },
  };
}

export const cryptokeyEncryptExistingCommand = command('encrypt');
export const cryptokeyDecryptExistingCommand = command('decrypt');
