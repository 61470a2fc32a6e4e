/**
 * The shared per-folder view (folder-files.ts) skips listing new/ and cur/
 * while their mtimes stay put, so what another process does must still be
 * seen: Dovecot and a second Sealmail process add, flag and expunge while
 * this process keeps syncing one handle, and a change the directory's mtime
 * does not show (same clock tick as our listing) is found because a listing
 * that close to its directory's mtime is not trusted (Dovecot's
 * MAILDIR_SYNC_SECS rule).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, renameSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { MailStore } from '../../src/mailstore/store.js';
import type { MaildirFolder } from '../../src/mailstore/maildir/folder.js';
import { distRoot } from '../helpers/paths.js';
import { tempDir } from '../helpers/tmp.js';
import { setupDovecot } from '../helpers/dovecot.js';

const ORDER = ['\\Answered', '\\Flagged', '\\Deleted', '\\Seen', '\\Draft'];
const view = (f: MaildirFolder) => f.messages.map((m) => `${m.uid} ${[...ORDER.filter((x) => m.flags.has(x as never)), ...m.keywords].join(' ')}`.trim());

/** Sets new/ and cur/ to an old mtime: a listing after this is trusted until they change. */
function ageDirs(dir: string): void {
  const old = new Date(Date.now() - 3_600_000);
  for (const d of ['new', 'cur']) utimesSync(join(dir, d), old, old);
}

test('another Sealmail process adds, flags and expunges: the next sync of a warm shared handle sees each change', async (t) => {
  const home = tempDir(t);
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
  await store.ensureRoot();
  const inbox = await store.open('INBOX');
  for (let i = 0; i < 3; i++) await inbox.append(Buffer.from(`Subject: ${i}\r\n\r\nbody\r\n`));
  const shared = await store.openShared('INBOX');
  t.after(() => shared.release());
  const f = shared.folder;
  await f.sync({ moveNew: true });
  ageDirs(f.dir);
  await f.sync({ moveNew: true });
  await f.sync({ moveNew: true });
  assert.deepEqual(view(f), ['1', '2', '3']);

  const other = (ops: unknown[]) => {
    const r = spawnSync(process.execPath, [join(distRoot, 'test', 'mailstore', 'store-worker.js'), JSON.stringify({ home, location: 'maildir:~/Maildir', ops })], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `store worker failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as unknown[];
  };
  const steps: [unknown, string[]][] = [
    [{ op: 'append', mailbox: 'INBOX', text: 'Subject: 4\r\n\r\nfrom elsewhere\r\n' }, ['1', '2', '3', '4']],
    [{ op: 'flags', mailbox: 'INBOX', uid: 2, flags: ['\\Seen'], keywords: ['Work'] }, ['1', '2 \\Seen Work', '3', '4']],
    [{ op: 'expunge', mailbox: 'INBOX', uids: [1] }, ['2 \\Seen Work', '3', '4']],
    [{ op: 'append', mailbox: 'INBOX', text: 'Subject: 5\r\n\r\nflagged\r\n', flags: ['\\Flagged'] }, ['2 \\Seen Work', '3', '4', '5 \\Flagged']],
    [{ op: 'flags', mailbox: 'INBOX', uid: 4, flags: ['\\Answered'], keywords: [] }, ['2 \\Seen Work', '3', '4 \\Answered', '5 \\Flagged']],
  ];
  for (const [op, want] of steps) {
    other([op]);
    await f.sync({ moveNew: true });
    assert.deepEqual(view(f), want, `after ${JSON.stringify(op)}`);
    // and again once the directories look old (a trusted listing): nothing is lost or repeated
    ageDirs(f.dir);
    await f.sync({ moveNew: true });
    assert.deepEqual(view(f), want);
  }
});

test('a change in the same mtime tick as our listing is seen: a listing that close to the mtime is not trusted', async (t) => {
  const home = tempDir(t);
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
  await store.ensureRoot();
  const f = await store.open('INBOX');
  await f.append(Buffer.from('Subject: a\r\n\r\nbody\r\n'), { flags: ['\\Seen'] });
  await f.sync();
  const cur = join(f.dir, 'cur');
  // the directory's mtime on a whole second just passed, as a coarse clock or a second-granularity file system gives it
  const tick = Math.floor(Date.now() / 1000);
  utimesSync(cur, tick, tick);
  const mtime = statSync(cur, { bigint: true }).mtimeNs;
  await f.sync();
  assert.deepEqual(view(f), ['1 \\Seen']);
  // another writer flags the message within the same tick: the rename leaves cur/'s mtime as it was
  const [file] = readdirSync(cur);
  renameSync(join(cur, file), join(cur, file.replace(/:2,S$/, ':2,FS')));
  utimesSync(cur, tick, tick);
  assert.equal(statSync(cur, { bigint: true }).mtimeNs, mtime, 'the mtime shows nothing');
  await f.sync();
  assert.deepEqual(view(f), ['1 \\Flagged \\Seen']);
});

test('Dovecot adds, flags and expunges in the same Maildir: each change shows at the next sync', async (t) => {
  const dc = setupDovecot(t, { protocols: 'none', start: true });
  if (!dc) return;
  t.after(() => dc.stop());
  const D = (args: string[], input?: string) => {
    const r = dc.doveadm(args, input);
    assert.equal(r.status, 0, `doveadm ${args.join(' ')}: ${r.stderr}`);
  };
  D(['save', '-u', 'test', '-m', 'INBOX'], 'Subject: a\n\nhello\n');
  D(['save', '-u', 'test', '-m', 'INBOX'], 'Subject: b\n\nhello\n');
  // this process only reads (Dovecot owns the files as its mail user): UIDs are Dovecot's
  const home = dc.home('test');
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
  const shared = await store.openShared('INBOX');
  t.after(() => shared.release());
  const f = shared.folder;
  const sync = () => f.sync({ assignUids: false });
  await sync();
  ageDirs(f.dir);
  await sync();
  assert.deepEqual(view(f), ['1', '2']);
  const steps: [string[], string | undefined, string[]][] = [
    [['save', '-u', 'test', '-m', 'INBOX'], 'Subject: c\n\nhello\n', ['1', '2', '3']],
    [['flags', 'add', '-u', 'test', '\\Seen $Forwarded', 'mailbox', 'INBOX', 'uid', '2'], undefined, ['1', '2 \\Seen $Forwarded', '3']],
    [['expunge', '-u', 'test', 'mailbox', 'INBOX', 'uid', '1'], undefined, ['2 \\Seen $Forwarded', '3']],
    [['flags', 'remove', '-u', 'test', '\\Seen', 'mailbox', 'INBOX', 'uid', '2'], undefined, ['2 $Forwarded', '3']],
  ];
  for (const [args, input, want] of steps) {
    D(args, input);
    await sync();
    assert.deepEqual(view(f), want, `after doveadm ${args.join(' ')}`);
    ageDirs(f.dir);
    await sync();
    assert.deepEqual(view(f), want);
  }
});
