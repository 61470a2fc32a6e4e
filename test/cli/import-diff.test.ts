/**
 * `sealadm import` against the real `doveadm import`: two Dovecot instances
 * get the same backup Maildir (written file by file: flags in the names,
 * keywords in dovecot-keywords, fixed INTERNALDATEs as mtimes); each step
 * runs as doveadm on one and as sealadm on the other, and the exit code and
 * the resulting state — every message's mailbox, flags, keywords, received
 * date and text, the mailbox list and the subscriptions, read by doveadm on
 * both sides — must be the same. A mail-crypt user importing a plain backup
 * gets the messages encrypted, readable by Dovecot with the key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chownSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sealadmJs } from '../helpers/paths.js';
import { setupDovecot, type Dovecot } from '../helpers/dovecot.js';
import { CRYPT_CONF } from '../helpers/mail-crypt.js';

const U = 'ann@example.org';
/** [folder ('' = INBOX), file name, text, mtime (s)] */
const BACKUP: [string, string, string, number][] = [
  ['', '1500000000.M1P1.backup:2,S', 'Subject: one\nFrom: a@example.org\n\nfirst\n', 1500000000],
  ['', '1500000100.M2P1.backup:2,FSab', 'Subject: two\nFrom: b@example.org\n\nsecond\n', 1500000100],
  ['', '1500000200.M3P1.backup', 'Subject: three\n\nthird\n', 1500000200],
  ['.Archive', '1400000000.M4P1.backup:2,RS', 'Subject: old\n\narchived\n', 1400000000],
  ['.Archive.2019', '1300000000.M5P1.backup:2,b', 'Subject: older\nFrom: a@example.org\n\nolder\n', 1300000000],
  ['.Empty', '', '', 0],
];

function writeBackup(dv: Dovecot): string {
  const root = join(dv.dir, 'home', 'backup');
  for (const [folder, name, text, mtime] of BACKUP) {
    const dir = join(root, folder);
    for (const d of ['cur', 'new', 'tmp']) mkdirSync(join(dir, d), { recursive: true });
    if (folder) writeFileSync(join(dir, 'maildirfolder'), '');
    writeFileSync(join(dir, 'dovecot-keywords'), '0 $Work\n1 Later\n');
    if (!name) continue;
    const file = join(dir, name.includes(':2,') ? 'cur' : 'new', name);
    writeFileSync(file, text);
    utimesSync(file, mtime, mtime);
  }
  const own = (p: string) => { chownSync(p, dv.uid, dv.gid); for (const e of readdirSync(p, { withFileTypes: true })) { if (e.isDirectory()) own(join(p, e.name)); else chownSync(join(p, e.name), dv.uid, dv.gid); } };
  own(root);
  return root;
}

/** What a client would see: every message with its mailbox, flags, date and text; the mailboxes; the subscriptions. */
function state(dv: Dovecot, extra: string[] = []): string {
  const f = dv.doveadm([...extra, '-f', 'flow', 'fetch', '-u', U, 'mailbox flags date.received text', 'all']);
  assert.equal(f.status, 0, f.stderr);
  const l = dv.doveadm(['mailbox', 'list', '-u', U]);
  const s = dv.doveadm(['mailbox', 'list', '-s', '-u', U]);
  // \Recent is a session's view and differs by design (dovecot-compat.md)
  const msgs = f.stdout.replace(/\\Recent /g, '').split(/\n(?=mailbox=)/).map((r) => r.replace(/\n*$/, '\n')).sort().join('');
  return `${msgs}--\n${l.stdout.split('\n').sort().join('\n')}--\n${s.stdout.split('\n').sort().join('\n')}`;
}

test('sealadm import = doveadm import on twin trees', (t) => {
  const dv = setupDovecot(t, { start: true });
  const sv = setupDovecot(t, { start: true });
  if (!dv || !sv) return;
  t.after(() => { dv.stop(); sv.stop(); });
  const dsrc = writeBackup(dv);
  const ssrc = writeBackup(sv);
  for (const x of [dv, sv]) x.imap(U, 'a SELECT INBOX\r\nb LOGOUT\r\n');
  assert.equal(state(sv), state(dv), 'both instances start alike');

  // [arguments with SRC for the backup location, compare the error's exit code only]
  const steps: string[][] = [
    ['import', '-u', U, 'maildir:SRC', 'Restored', 'all'],
    ['import', '-u', U, '-s', 'maildir:SRC', '', 'from', 'a@example.org'],
    ['import', '-u', U, '-s', 'maildir:SRC', 'Again', 'mailbox', 'Archive*', 'keyword', 'Later'],
    ['import', '-u', U, 'maildir:SRC', 'Restored'],
    ['import', '-u', U, 'maildir:SRC/nonexistent', 'Gone', 'all'],
  ];
  for (const args of steps) {
    const label = args.join(' ');
    const want = dv.doveadm(args.map((a) => a.replace('SRC', dsrc)));
    const got: SpawnSyncReturns<string> = spawnSync(process.execPath, [sealadmJs, '-c', sv.conf, ...args.map((a) => a.replace('SRC', ssrc))], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(got.stdout, want.stdout, `stdout: ${label}`);
    assert.equal(got.status, want.status, `exit code: ${label}\ndoveadm: ${want.stderr}\nsealadm: ${got.stderr}`);
    assert.equal(state(sv), state(dv), `state after: ${label}`);
  }
});

test('sealadm import of a plain backup for a mail-crypt user stores it encrypted', (t) => {
  const dv = setupDovecot(t, { start: true, extraConf: CRYPT_CONF });
  if (!dv) return;
  t.after(() => dv.stop());
  const pw = ['-o', 'plugin/mail_crypt_private_password=pw'];
  assert.equal(dv.doveadm([...pw, 'mailbox', 'cryptokey', 'generate', '-u', U, '-U']).status, 0);
  const src = writeBackup(dv);
  const r = spawnSync(process.execPath, [sealadmJs, '-c', dv.conf, 'import', '-u', U, `maildir:${src}`, 'Restored', 'all'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const f = dv.doveadm([...pw, '-f', 'flow', 'fetch', '-u', U, 'mailbox date.received text', 'mailbox', 'Restored*']);
  assert.equal(f.status, 0, f.stderr);
  for (const [, name, text] of BACKUP) if (name) assert.ok(f.stdout.includes(`text=${text}`), `${text} in ${f.stdout}`);
  // on disk every imported file starts with mail-crypt's magic
  const root = join(dv.home(U), 'Maildir');
  const files = readdirSync(root, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && /\/(cur|new)$/.test(e.parentPath));
  assert.equal(files.length, BACKUP.filter((b) => b[1]).length);
  for (const e of files) assert.equal(readFileSync(join(e.parentPath, e.name)).subarray(0, 7).toString(), 'CRYPTED');
});
