/**
 * `sealadm migrate check -u USER`: what Sealmail will see before the switch
 * from Dovecot, without changing anything (no lock, no UID assignment):
 * every folder with UIDVALIDITY, message count, UIDNEXT, files that would
 * get new UIDs, uidlist problems and unreadable files. Progress on stderr
 * for large folders when stderr is a terminal.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { mutf7ToUtf8 } from '../../mailstore/maildir/utf7.js';
import { readUidlist } from '../../mailstore/maildir/uidlist.js';
import { baseName } from '../../mailstore/maildir/filename.js';
import { UsageError, type CliCommand } from '../command.js';
import { openUserStore } from './mailbox.js';
import { getopt } from './pw.js';

export const migrateCheckCommand: CliCommand = {
  name: 'migrate check',
  usage: '-u <user>',
  async run(ctx) {
    const { opts } = getopt(ctx.args, 'u:');
    const user = opts.get('u');
    if (typeof user !== 'string') throw new UsageError('missing -u USER (-A is not supported yet)');
    const store = await openUserStore(ctx, user);
    const p = ctx.printer('table');
    for (const h of ['mailbox', 'uidvalidity', 'messages', 'uidnext', 'without_uid', 'unreadable', 'problems']) p.header(h);
    const tty = (ctx.err as { isTTY?: boolean }).isTTY === true;
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
          try { const h = await fsp.open(join(f.dir, sub, file), 'r'); await h.close(); } catch { unreadable++; }
          if (tty && ++done % 1000 === 0) ctx.err.write(`\r${mutf7ToUtf8(e.name)}: ${done} files checked`);
        }
      }
      if (tty && done >= 1000) ctx.err.write('\n');
      p.value(mutf7ToUtf8(e.name));
      p.value(ul ? String(ul.uidValidity) : 'none (new on first access)');
      p.value(String(f.messages.length));
      p.value(String(f.uidNext));
      p.value(String(without));
      p.value(String(unreadable));
      p.value(ul ? String(ul.problems.length) : '0');
    }
    p.flush();
    return 0;
  },
};
