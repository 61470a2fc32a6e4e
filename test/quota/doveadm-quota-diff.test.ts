/**
 * `sealadm quota get|recalc` against the real `doveadm quota` on the same
 * Maildirs: identical stdout and exit code for every formatter, -u and -A,
 * an unknown user, extra arguments, users with a storage limit from the
 * userdb, a message limit, none at all; and the maildirsize each side's
 * recalc writes (or a get with the file missing) is byte for byte the same;
 * the count backend with quota_vsizes sums virtual sizes as Dovecot does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tempDir } from '../helpers/tmp.js';
import { join } from 'node:path';
import { sealadmJs } from '../helpers/paths.js';
import { setupDovecot, mailIds } from '../helpers/dovecot.js';
import { message } from './wire.js';

test('sealadm quota get/recalc = doveadm quota get/recalc', (t) => {
  const { uid, gid } = mailIds();
  const dir = tempDir(t, 'quota-users');
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'home'));
  if (process.getuid?.() === 0) chownSync(join(dir, 'home'), uid, gid);
  const users = join(dir, 'users');
  const home = (u: string) => join(dir, 'home', u);
  writeFileSync(users, [
    `ann@example.org::${uid}:${gid}::${home('ann@example.org')}::userdb_quota_rule=*:storage=3K`,
    `bob@example.org::${uid}:${gid}::${home('bob@example.org')}::userdb_quota_rule=*:bytes=0`,
    `cy@example.org::${uid}:${gid}::${home('cy@example.org')}::userdb_quota_rule=*:messages=2 userdb_quota_rule2=Trash:ignore`,
    `dee@example.org::${uid}:${gid}::${home('dee@example.org')}::userdb_quota=count:Count userdb_quota_vsizes=yes userdb_quota_rule=*:storage=2K`,
  ].join('\n') + '\n');
  const dv = setupDovecot(t, {
    start: true,
    userdb: `userdb {\n  driver = passwd-file\n  args = ${users}\n}`,
    mailLocation: `maildir:~/Maildir`,
    extraConf: 'mail_plugins = $mail_plugins quota\nplugin {\n  quota = maildir:User quota\n}\n',
  });
  if (!dv) return;
  const H = (u: string) => join(home(u), 'Maildir');
  for (const [u, n, size] of [['ann@example.org', 2, 1500], ['bob@example.org', 1, 300], ['cy@example.org', 2, 200], ['dee@example.org', 3, 500]] as const) {
    for (let i = 0; i < n; i++) { const r = dv.doveadm(['save', '-u', u], message(size, `m${i}`)); assert.equal(r.status, 0, r.stderr); }
  }
  assert.equal(dv.doveadm(['mailbox', 'create', '-u', 'cy@example.org', 'Trash']).status, 0);
  assert.equal(dv.doveadm(['save', '-u', 'cy@example.org', '-m', 'Trash'], message(400, 'trash')).status, 0);

  const sealadm = (args: string[]) => spawnSync(process.execPath, [sealadmJs, '-c', dv.conf, ...args], { encoding: 'utf8', timeout: 60_000 });
  const cases: string[][] = [
    ['quota', 'get', '-u', 'ann@example.org'],
    ['-f', 'tab', 'quota', 'get', '-u', 'ann@example.org'],
    ['-f', 'flow', 'quota', 'get', '-u', 'cy@example.org'],
    ['-f', 'json', 'quota', 'get', '-u', 'bob@example.org'],
    ['-f', 'pager', 'quota', 'get', '-u', 'ann@example.org'],
    ['quota', 'get', '-A'],
    ['quota', 'get', '-u', 'dee@example.org'],
    ['-f', 'flow', 'quota', 'get', '-A'],
    ['quota', 'get', '-u', 'nobody@example.org'],
    ['quota', 'get', '-u', 'ann@example.org', 'extra'],
    ['quota', 'recalc', '-u', 'nobody@example.org'],
    ['-o', 'mail_plugins=', 'quota', 'get', '-u', 'ann@example.org'],
  ];
  for (const args of cases) {
    const want = dv.doveadm(args);
    const got = sealadm(args);
    assert.equal(got.stdout, want.stdout, `stdout differs for: ${args.join(' ')}\nsealadm stderr: ${got.stderr}`);
    assert.equal(got.status, want.status, `exit code differs for: ${args.join(' ')}\ndoveadm: ${want.stderr}\nsealadm: ${got.stderr}`);
    if (want.status !== 0) assert.equal(got.stderr.trim().split('\n').at(-1), want.stderr.trim().split('\n').at(-1), `error text differs for: ${args.join(' ')}`);
  }

  // recalc: the same file from both, also after the file was lost or the limits changed
  for (const u of ['ann@example.org', 'bob@example.org', 'cy@example.org']) {
    const path = join(H(u), 'maildirsize');
    assert.equal(dv.doveadm(['quota', 'recalc', '-u', u]).status, 0);
    const theirs = readFileSync(path, 'utf8');
    writeFileSync(path, '1S\n5 5\n');
    if (process.getuid?.() === 0) chownSync(path, uid, gid);
    const r = sealadm(['quota', 'recalc', '-u', u]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(readFileSync(path, 'utf8'), theirs, `recalc of ${u}`);
    rmSync(path);
    assert.equal(sealadm(['quota', 'get', '-u', u]).stdout, dv.doveadm(['quota', 'get', '-u', u]).stdout);
    assert.equal(readFileSync(path, 'utf8'), theirs, `maildirsize recreated by quota get for ${u}`);
  }
});

test('mail-crypt: maildirsize counts the plaintext size (S=), as Dovecot does, not the encrypted file', (t) => {
  const dv = setupDovecot(t, {
    start: true,
    extraConf: `mail_attribute_dict = file:%h/Maildir/dovecot-attributes
mail_plugins = $mail_plugins quota mail_crypt
plugin {
  mail_crypt_curve = prime256v1
  mail_crypt_save_version = 2
  mail_crypt_require_encrypted_user_key = yes
  quota = maildir:User quota
  quota_rule = *:storage=1M
}
`,
  });
  if (!dv) return;
  const U = 'enc@example.org';
  const pw = ['-o', 'plugin/mail_crypt_private_password=secret'];
  assert.equal(dv.doveadm([...pw, 'mailbox', 'cryptokey', 'generate', '-u', U, '-U']).status, 0);
  assert.equal(dv.doveadm(['save', '-u', U], message(3000, 'by dovecot')).status, 0);
  const r = spawnSync(process.execPath, [sealadmJs, '-c', dv.conf, 'save', '-u', U], { input: message(3000, 'by sealmail'), encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const maildir = join(dv.home(U), 'Maildir');
  const path = join(maildir, 'maildirsize');
  const all = ['new', 'cur'].flatMap((sub) => readdirSync(join(maildir, sub)).map((f) => join(maildir, sub, f)));
  const newest = all.sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs).at(-1)!;
  const plain = Number(/,S=(\d+)/.exec(newest)![1]);
  assert.ok(statSync(newest).size > plain, 'the stored file is the larger ciphertext');
  const lines = readFileSync(path, 'utf8').trim().split('\n');
  assert.equal(lines.at(-1), `${plain} 1`);
  const sum = (text: string) => text.trim().split('\n').slice(1).reduce((a, l) => a + Number(l.split(' ')[0]), 0);
  const before = sum(readFileSync(path, 'utf8'));
  assert.equal(dv.doveadm(['quota', 'recalc', '-u', U]).status, 0);
  assert.equal(sum(readFileSync(path, 'utf8')), before, 'Dovecot\'s recalculation agrees with the running sum');
});
