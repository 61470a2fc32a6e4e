/**
 * sealadm force-resync and migrate check on a Dovecot-written Maildir, the
 * user found through the config's userdb (static, home in a temp dir).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sealadmJs } from '../helpers/paths.js';
import { tempDir } from '../helpers/tmp.js';
import { mailIds } from '../helpers/dovecot.js';
import { materialiseCase } from './maildir-fixture.js';

function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  const home = materialiseCase('maildirpp-alice', join(dir, 'home'));
  // as root, sealadm (like doveadm) touches mail only as the user's mail uid
  const { uid, gid } = mailIds();
  if (process.getuid?.() === 0) { chmodSync(dir, 0o755); spawnSync('chown', ['-R', `${uid}:${gid}`, join(dir, 'home')]); }
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(conf, `mail_location = maildir:~/Maildir\nnamespace inbox {\n  inbox = yes\n  separator = .\n}\npassdb {\n  driver = static\n  args = nopassword=y\n}\nuserdb {\n  driver = static\n  args = home=${home} uid=${uid} gid=${gid}\n}\n`);
  const run = (args: string[]) => spawnSync(process.execPath, [sealadmJs, '-c', conf, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { home, run };
}

test('sealadm force-resync repairs a broken uidlist keeping UIDs, silent on success', (t) => {
  const { home, run } = setup(t);
  const p = join(home, 'Maildir', 'dovecot-uidlist');
  writeFileSync(p, readFileSync(p, 'utf8').replace(/^4 /m, 'x4 '));
  const r = run(['force-resync', '-u', 'alice', 'INBOX']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /Warning: .*dovecot-uidlist: repaired, keeping 4 UIDs/);
  const lines = readFileSync(p, 'utf8').trim().split('\n');
  assert.deepEqual(lines.slice(1).map((l) => Number(l.split(' ')[0])), [1, 3, 6, 7, 8]);
  const again = run(['force-resync', '-u', 'alice', '*']);
  assert.equal(again.status, 0); assert.equal(again.stderr, '');
});

test('sealadm migrate check lists every folder without changing anything', (t) => {
  const { home, run } = setup(t);
  const before = readFileSync(join(home, 'Maildir', 'dovecot-uidlist'), 'utf8');
  const r = run(['-f', 'tab', 'migrate', 'check', '-u', 'alice']);
  assert.equal(r.status, 0, r.stderr);
  const rows = r.stdout.trim().split('\n').map((l) => l.split('\t'));
  assert.deepEqual(rows[0], ['mailbox', 'uidvalidity', 'messages', 'uidnext', 'without_uid', 'unreadable', 'problems']);
  assert.deepEqual(rows.find((x) => x[0] === 'INBOX'), ['INBOX', '1795394535', '5', '8', '0', '0', '0']);
  assert.deepEqual(rows.find((x) => x[0] === 'Entwürfe'), ['Entwürfe', '1795394543', '1', '2', '0', '0', '0']);
  assert.equal(rows.length - 1, 11);
  assert.equal(readFileSync(join(home, 'Maildir', 'dovecot-uidlist'), 'utf8'), before);
  const bad = run(['migrate', 'check']);
  assert.equal(bad.status, 64);
  assert.doesNotMatch(bad.stderr, /at .*\.js/);
});

test('sealadm migrate check -A walks every userdb user, reports a broken one and goes on', (t) => {
  const dir = tempDir(t);
  const home = materialiseCase('maildirpp-alice', join(dir, 'alice'));
  const { uid, gid } = mailIds();
  if (process.getuid?.() === 0) { chmodSync(dir, 0o755); spawnSync('chown', ['-R', `${uid}:${gid}`, home]); }
  // bob's home is a file: his Maildir can't be opened
  writeFileSync(join(dir, 'bob'), 'not a directory');
  writeFileSync(join(dir, 'users'), `alice@example.org::${uid}:${gid}::${home}::\nbob@example.org::${uid}:${gid}::${join(dir, 'bob')}::\n`);
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(conf, `mail_location = maildir:~/Maildir\npassdb {\n  driver = passwd-file\n  args = ${join(dir, 'users')}\n}\nuserdb {\n  driver = passwd-file\n  args = ${join(dir, 'users')}\n}\n`);
  const r = spawnSync(process.execPath, [sealadmJs, '-c', conf, '-f', 'tab', 'migrate', 'check', '-A'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 75, r.stderr);
  const rows = r.stdout.trim().split('\n').map((l) => l.split('\t'));
  assert.deepEqual(rows[0].slice(0, 2), ['user', 'mailbox']);
  assert.deepEqual(rows.find((x) => x[1] === 'INBOX'), ['alice@example.org', 'INBOX', '1795394535', '5', '8', '0', '0', '0']);
  assert.match(r.stderr, /Error: user bob@example\.org: /);
  assert.match(r.stderr, /^checked 1\/2 users: 11 folders, \d+ messages, 0 files without UID, 0 unreadable, 0 uidlist problems; FAILED: bob@example\.org$/m);
  assert.doesNotMatch(r.stderr, /at .*\.js/);
});

test('sealadm index builds our modseq file and the STATUS cache, silently, leaving Dovecot files alone', (t) => {
  const { home, run } = setup(t);
  const uidlist = readFileSync(join(home, 'Maildir', 'dovecot-uidlist'), 'utf8');
  // a Maildir nobody touched lately (the STATUS cache never trusts a folder changed < 2 s ago)
  const old = new Date(Date.now() - 60_000);
  for (const d of ['new', 'cur']) utimesSync(join(home, 'Maildir', d), old, old);
  const r = run(['index', '-u', 'alice', 'INBOX']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout + r.stderr, '');
  assert.ok(existsSync(join(home, 'Maildir', 'sealmail.modseq')));
  assert.ok(existsSync(join(home, 'Maildir', 'sealmail.status')));
  assert.ok(!existsSync(join(home, 'Maildir', '.Entwürfe', 'sealmail.modseq')), 'the mask limits the folders');
  assert.equal(readFileSync(join(home, 'Maildir', 'dovecot-uidlist'), 'utf8'), uidlist);
  if (process.getuid?.() === 0) assert.equal(statSync(join(home, 'Maildir', 'sealmail.modseq')).uid, mailIds().uid, 'never a root-owned file in a Maildir');
  assert.equal(run(['index', '-u', 'alice']).status, 64);
});

test('sealadm mailbox create refuses names as doveadm does (exit 64, Dovecot reason), nothing made on disk', (t) => {
  const { home, run } = setup(t);
  // the texts doveadm 2.3.19 prints for these names (checked against the real one)
  const cases: [string, string][] = [
    ['~foo', "Invalid mailbox name: Begins with '~'"],
    ['a\x01b', 'Control characters not allowed in new mailbox names'],
    ['x'.repeat(256), 'Mailbox name too long'],
    ['.a', 'Invalid mailbox name: Begins with hierarchy separator'],
    ['a..b', 'Invalid mailbox name: Has adjacent hierarchy separators'],
    ['a/b', "Invalid mailbox name: Name must not have '/' characters"],
  ];
  for (const [name, why] of cases) {
    const r = run(['mailbox', 'create', '-u', 'alice', name]);
    assert.equal(r.status, 64, `${JSON.stringify(name)}: ${r.stderr}`);
    assert.equal(r.stderr, `Error: Can't create mailbox ${name}: ${why}\n`);
  }
  assert.equal(existsSync(join(home, 'Maildir', '.~foo')), false);
  assert.equal(run(['mailbox', 'create', '-u', 'alice', 'ok']).status, 0);
});
