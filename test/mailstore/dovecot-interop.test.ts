/**
 * Sealmail and the real Dovecot 2.3 on ONE Maildir: a private `dovecot`
 * (base_dir in a temp dir, no protocols, static userdb) and `doveadm` as the
 * oracle. Changes made by either side are seen by the other with the same
 * UIDs, flags, keywords, sizes, counters and folder list.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mutf7ToUtf8, utf8ToMutf7 } from '../../src/mailstore/api/mailbox-utf7.js';
import { distRoot, sealadmJs } from '../helpers/paths.js';
import { requireTool } from '../helpers/tools.js';
import { killDaemon, onAbort } from '../helpers/children.js';
import { tempDir } from '../helpers/tmp.js';

const LOC = 'maildir:~/Maildir';

function mailIds(): { uid: number; gid: number } {
  // Dovecot never accesses mail as root: use nobody when the tests run as root
  if (process.getuid?.() !== 0) return { uid: process.getuid!(), gid: process.getgid!() };
  return { uid: 65534, gid: 65534 };
}

test('Dovecot and Sealmail share one Maildir: same UIDs, flags, counters, folders', async (t) => {
  const dovecot = requireTool(t, 'dovecot');
  const doveadm = dovecot && requireTool(t, 'doveadm');
  if (!dovecot || !doveadm) return;
  // own clean-up: Dovecot must be stopped before its base_dir is removed
  const dir = tempDir(null, 'sealmail-mailstore-dovecot');
  chmodSync(dir, 0o755);
  const home = join(dir, 'home');
  mkdirSync(home);
  const ids = mailIds();
  chownSync(home, ids.uid, ids.gid);
  const root = process.getuid?.() === 0;
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(conf, `base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
protocols = none
ssl = no
${root ? 'default_internal_user = root\ndefault_login_user = root\ndefault_internal_group = root\n' : `default_internal_user = ${process.env.USER ?? 'nobody'}\ndefault_login_user = ${process.env.USER ?? 'nobody'}\n`}first_valid_uid = ${Math.min(ids.uid, 500)}
first_valid_gid = 0
mail_uid = ${ids.uid}
mail_gid = ${ids.gid}
mail_location = ${LOC}
namespace inbox {
  inbox = yes
  separator = .
}
passdb {
  driver = static
  args = nopassword=y
}
userdb {
  driver = static
  args = home=${home}
}
`);
  // stdio ignored: the forked master would keep our pipes open and spawnSync would wait forever
  onAbort(() => killDaemon(join(dir, 'run', 'master.pid'))); // the test process stopped before its clean-up (children.ts)
  const start = spawnSync(dovecot, ['-c', conf], { stdio: 'ignore', timeout: 30_000 });
  assert.equal(start.status, 0, `dovecot failed to start (see ${dir}/dovecot.log)`);
  t.after(() => {
    spawnSync(doveadm, ['-c', conf, 'stop'], { stdio: 'ignore', timeout: 30_000 });
    if (!process.env.KEEP_TMP) rmSync(dir, { recursive: true, force: true });
  });

  const D = (args: string[], input?: string) => execFileSync(doveadm, ['-c', conf, ...args], { input, encoding: 'utf8', timeout: 30_000 });
  const tab = (args: string[]) => D(['-f', 'tab', ...args]).trimEnd().split('\n').slice(1).map((l) => l.split('\t'));
  const seal = (ops: unknown[]): unknown[] => {
    const r = spawnSync(process.execPath, [join(distRoot, 'test', 'mailstore', 'store-worker.js'), JSON.stringify({ home, location: LOC, ops })],
      { encoding: 'utf8', timeout: 60_000, uid: root ? ids.uid : undefined, gid: root ? ids.gid : undefined });
    assert.equal(r.status, 0, `store worker failed: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const dovecotFetch = (mb: string) => tab(['fetch', '-u', 'test', 'uid flags size.physical size.virtual guid', 'mailbox', mb, 'all'])
    .map(([uid, flags, size, vsize, guid]) => ({ uid: Number(uid), flags: flags.split(' ').filter((f) => f && f !== '\\Recent'), size: Number(size), vsize: Number(vsize), guid }));
  const dovecotStatus = (mb: string) => {
    const [[, messages, uidnext, uidvalidity, unseen, guid]] = tab(['mailbox', 'status', '-u', 'test', 'messages uidnext uidvalidity unseen guid', mb]);
    return { messages: Number(messages), uidnext: Number(uidnext), uidvalidity: Number(uidvalidity), unseen: Number(unseen), guid };
  };
  const sealStatus = (mb: string) => {
    const [s] = seal([{ op: 'status', mailbox: mb }]) as { messages: number; uidnext: number; uidvalidity: number; unseen: number; guid: string }[];
    return { messages: s.messages, uidnext: s.uidnext, uidvalidity: s.uidvalidity, unseen: s.unseen, guid: s.guid };
  };

  // 1. Dovecot writes first
  D(['mailbox', 'create', '-u', 'test', 'Work']);
  D(['save', '-u', 'test', '-m', 'INBOX'], 'Subject: a\n\nhello\n');
  D(['save', '-u', 'test', '-m', 'INBOX'], 'Subject: b\r\n\r\nhello2\r\n');
  D(['save', '-u', 'test', '-m', 'INBOX'], 'Subject: c\n\nhello3\n');
  D(['flags', 'add', '-u', 'test', '\\Seen $Forwarded', 'mailbox', 'INBOX', 'uid', '1']);
  const [sealFetch1] = seal([{ op: 'fetch', mailbox: 'INBOX' }]);
  assert.deepEqual(sealFetch1, dovecotFetch('INBOX'), 'Sealmail reads what Dovecot wrote');
  assert.deepEqual(sealStatus('INBOX'), dovecotStatus('INBOX'));

  // 2. Sealmail writes; Dovecot must see exactly the same
  const res = seal([
    { op: 'append', mailbox: 'INBOX', text: 'Subject: d\r\n\r\nfrom sealmail\r\n' },
    { op: 'append', mailbox: 'INBOX', text: 'Subject: e\r\n\r\nflagged\r\n', flags: ['\\Flagged', '\\Seen'], keywords: ['Work', '$Forwarded'] },
    { op: 'flags', mailbox: 'INBOX', uid: 2, flags: ['\\Answered'], keywords: ['NonJunk'] },
    { op: 'expunge', mailbox: 'INBOX', uids: [3] },
    { op: 'create', mailbox: 'Projects.Kunde &AMQ-' },
    { op: 'create', mailbox: 'Old' },
    { op: 'create', mailbox: 'Old.Sub' },
    { op: 'rename', mailbox: 'Old', to: 'New' },
    { op: 'append', mailbox: 'New.Sub', text: 'Subject: f\n\nin a renamed child\n' },
    { op: 'delete', mailbox: 'Work' },
    { op: 'subscribe', mailbox: 'New.Sub' },
  ]);
  assert.deepEqual([res[0], res[1], res[3], res[8]], [4, 5, [3], 1]);
  const [sealFetch2] = seal([{ op: 'fetch', mailbox: 'INBOX' }]);
  assert.deepEqual(dovecotFetch('INBOX'), sealFetch2, 'Dovecot reads what Sealmail wrote');
  assert.deepEqual((sealFetch2 as { uid: number }[]).map((m) => m.uid), [1, 2, 4, 5]);
  assert.deepEqual(dovecotStatus('INBOX'), sealStatus('INBOX'));
  // doveadm takes and prints UTF-8 names; the store speaks mUTF-7 like IMAP
  for (const mb of ['New', 'New.Sub', 'Projects.Kunde &AMQ-']) assert.deepEqual(dovecotStatus(mutf7ToUtf8(mb)), sealStatus(mb), mb);
  assert.deepEqual(dovecotFetch('New.Sub'), seal([{ op: 'fetch', mailbox: 'New.Sub' }])[0]);
  const dList = D(['mailbox', 'list', '-u', 'test']).trim().split('\n').map(utf8ToMutf7).sort();
  const [sList] = seal([{ op: 'list' }]) as { name: string; flags: string[] }[][];
  assert.deepEqual(sList.map((e) => e.name).sort(), dList, 'doveadm lists \\NonExistent parents too');
  assert.deepEqual(D(['mailbox', 'list', '-u', 'test', '-s']).trim().split('\n'), ['New.Sub']);

  // sealadm gives doveadm's bytes for mailbox list / status (run as the mail user, same config)
  const sealadm = (args: string[]) => {
    const r = spawnSync(process.execPath, [sealadmJs, '-c', conf, ...args], { encoding: 'utf8', timeout: 60_000, uid: root ? ids.uid : undefined, gid: root ? ids.gid : undefined });
    assert.equal(r.status, 0, `sealadm ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const sortLines = (s: string) => s.split('\n').sort().join('\n');
  assert.equal(sortLines(sealadm(['mailbox', 'list', '-u', 'test'])), sortLines(D(['mailbox', 'list', '-u', 'test'])));
  assert.equal(sealadm(['mailbox', 'list', '-u', 'test', '-s']), D(['mailbox', 'list', '-u', 'test', '-s']));
  for (const fmt of [[], ['-f', 'tab']]) {
    const args = [...fmt, 'mailbox', 'status', '-u', 'test', 'messages uidnext uidvalidity unseen vsize guid', 'INBOX', 'Projects.Kunde Ä'];
    // line order follows Dovecot's internal list order (not significant); every line must match byte for byte
    assert.equal(sortLines(sealadm(args)), sortLines(D(args)), args.join(' '));
  }

  // 3. Dovecot again after Sealmail: next UID continues, Sealmail sees it
  D(['save', '-u', 'test', '-m', 'INBOX'], 'Subject: g\n\nback to dovecot\n');
  D(['flags', 'add', '-u', 'test', '\\Deleted', 'mailbox', 'INBOX', 'uid', '5']);
  const [sealFetch3] = seal([{ op: 'fetch', mailbox: 'INBOX' }]);
  assert.deepEqual(sealFetch3, dovecotFetch('INBOX'));
  assert.deepEqual((sealFetch3 as { uid: number }[]).map((m) => m.uid), [1, 2, 4, 5, 6]);
});
