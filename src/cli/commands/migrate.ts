/**
 * `sealadm migrate check -u USER | -A`: what Sealmail will see before the switch
 * from Dovecot, without changing anything (no lock, no UID assignment):
 * every folder with UIDVALIDITY, message count, UIDNEXT, files that would
 * get new UIDs, uidlist problems and unreadable files (also: compressed by
 * Dovecot's zlib plugin in a format Sealmail cannot read, or while zlib is
 * not in mail_plugins; each such file is named on stderr). With -A every user of
 * the userdb, a progress bar on stderr when it is a terminal and a summary
 * line either way; a broken account is reported and the others still checked.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { mutf7ToUtf8 } from '../../mailstore/api/mailbox-utf7.js';
import { readUidlist } from '../../mailstore/maildir/uidlist.js';
import { baseName } from '../../mailstore/maildir/filename.js';
import { EX_TEMPFAIL, UsageError, type CliCommand, type CommandContext } from '../command.js';
import type { Printer } from '../printer.js';
import { listUsers, openUserStore } from './mailbox.js';
import { getopt } from '../args.js';
import { FORMATS, MAGIC_MAX, detectCompression } from '../../mailstore/compression/formats.js';
import type { CompressionSettings } from '../../mailstore/compression/settings.js';

/**
 * Why Sealmail could not serve this file, or null: it cannot be opened, or
 * it is compressed (Dovecot's zlib plugin) in a format Sealmail does not read
 * (xz) or while `zlib` is not in the user's mail_plugins (then Dovecot and
 * Sealmail alike would serve the compressed bytes).
 */
async function unreadableWhy(path: string, zlib: CompressionSettings | undefined): Promise<string | null> {
  let head: Buffer;
  try {
    const h = await fsp.open(path, 'r');
    try { const b = Buffer.alloc(MAGIC_MAX); head = b.subarray(0, (await h.read(b, 0, MAGIC_MAX, 0)).bytesRead); } finally { await h.close(); }
  } catch (e) { return `cannot be opened: ${(e as Error).message}`; }
  const format = detectCompression(head);
  if (!format) return null;
  if (!zlib?.read) return `${format}-compressed, but zlib is not in mail_plugins: it would be served compressed`;
  if (!FORMATS[format].read) return `${format}-compressed (Dovecot reads it, Sealmail cannot)`;
  return null;
}

/** One line on a terminal: `[#####.....] 12/40 users` (rewritten in place). */
export function progressBar(done: number, total: number, what: string): string {
  const width = 30;
  const full = total ? Math.round((done / total) * width) : width;
  return `\r[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${done}/${total} ${what}`;
}

interface Totals { folders: number; messages: number; without: number; unreadable: number; problems: number }

async function checkUser(ctx: CommandContext, user: string, p: Printer, withUser: boolean, tty: boolean, totals: Totals): Promise<void> {
  const store = await openUserStore(ctx, user);
  for (const e of await store.list()) {
    if (e.flags.includes('\\NonExistent') || e.flags.includes('\\Noselect')) continue;
    const f = await store.open(e.name);
    await f.sync({ assignUids: false });
    const ul = await readUidlist(f.uidlistPath);
    const known = new Set(ul?.records.map((r) => r.base) ?? []);
    let without = 0; let unreadable = 0; let done = 0;
    for (const sub of ['new', 'cur']) {
      const files = (await fsp.readdir(join(f.dir, sub)).catch(() => [] as string[])).filter((n) => !n.startsWith('.'));
      for (const file of files) {
        if (!known.has(baseName(file))) without++;
        const why = await unreadableWhy(join(f.dir, sub, file), store.opts.compression);
        if (why) { unreadable++; ctx.err.write(`${withUser ? `${user}: ` : ''}${mutf7ToUtf8(e.name)}: ${sub}/${file}: ${why}\n`); }
        if (tty && !withUser && ++done % 1000 === 0) ctx.err.write(`\r${mutf7ToUtf8(e.name)}: ${done} files checked`);
      }
    }
    if (tty && !withUser && done >= 1000) ctx.err.write('\n');
    if (withUser) p.value(user);
    p.value(mutf7ToUtf8(e.name));
    p.value(ul ? String(ul.uidValidity) : 'none (new on first access)');
    p.value(String(f.messages.length));
    p.value(String(f.uidNext));
    p.value(String(without));
    p.value(String(unreadable));
    p.value(ul ? String(ul.problems.length) : '0');
    totals.folders++; totals.messages += f.messages.length; totals.without += without; totals.unreadable += unreadable;
    totals.problems += ul ? ul.problems.length : 0;
  }
}

export const migrateCheckCommand: CliCommand = {
  async run(ctx) {
    const { opts } = getopt(ctx.args, 'u:A');
    const user = opts.get('u');
    if (typeof user !== 'string' && !opts.has('A')) throw new UsageError('missing -u USER or -A');
    const users = opts.has('A') ? await listUsers(ctx) : [user as string];
    const p = ctx.printer('table');
    const withUser = opts.has('A');
    for (const h of [...(withUser ? ['user'] : []), 'mailbox', 'uidvalidity', 'messages', 'uidnext', 'without_uid', 'unreadable', 'problems']) p.header(h);
    const tty = (ctx.err as { isTTY?: boolean }).isTTY === true;
    const totals: Totals = { folders: 0, messages: 0, without: 0, unreadable: 0, problems: 0 };
    const failed: string[] = [];
    for (const [i, u] of users.entries()) {
      if (tty && withUser) ctx.err.write(progressBar(i, users.length, `users (${u})`.padEnd(40)));
      try {
        await checkUser(ctx, u, p, withUser, tty, totals);
      } catch (e) {
        if (!withUser) throw e;
        // one broken account must not hide the others: report it and go on
        failed.push(u);
        ctx.err.write(`${tty ? '\n' : ''}Error: user ${u}: ${(e as Error).message.replace(/^Error: /, '')}\n`);
      }
    }
    if (tty && withUser) ctx.err.write(progressBar(users.length, users.length, 'users'.padEnd(40)) + '\n');
    p.flush();
    if (withUser) {
      ctx.err.write(`checked ${users.length - failed.length}/${users.length} users: ${totals.folders} folders, ${totals.messages} messages, ` +
        `${totals.without} files without UID, ${totals.unreadable} unreadable, ${totals.problems} uidlist problems${failed.length ? `; FAILED: ${failed.join(' ')}` : ''}\n`);
    }
    return failed.length ? EX_TEMPFAIL : 0;
  },
};
