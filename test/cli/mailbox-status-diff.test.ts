/**
 * `sealadm mailbox status` and `mailbox list` against the real doveadm on the
 * same Maildir: mailbox masks (`*`, `%`, several), the fields in doveadm's
 * fixed order whatever order they are asked in, `all`, `-t` totals and its
 * refusals, unknown fields, every formatter; identical stdout and exit code.
 * HIGHESTMODSEQ is Sealmail's own counter on a Maildir Dovecot last wrote
 * (dovecot-compat.md): that column is compared for presence, not value.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { sealadmJs } from '../helpers/paths.js';
import { setupDovecot } from '../helpers/dovecot.js';

test('sealadm mailbox status / list = doveadm: masks, fixed field order, all, -t', (t) => {
  const dv = setupDovecot(t, { start: true });
  if (!dv) return;
  const U = 'mo@example.org';
  for (const box of ['Archive', 'Archive.2024', 'Sent', 'Empty']) assert.equal(dv.doveadm(['mailbox', 'create', '-u', U, box]).status, 0);
  for (const [box, text] of [['INBOX', 'Subject: a\n\none\n'], ['INBOX', 'Subject: b\n\ntwo two\n'], ['Archive', 'Subject: c\n\nthree\n'], ['Archive.2024', 'Subject: d\n\nfour\n'], ['Sent', 'Subject: e\n\nfive\n']]) {
    const r = dv.doveadm(['save', '-u', U, '-m', box], text);
    assert.equal(r.status, 0, r.stderr);
  }
  assert.equal(dv.doveadm(['flags', 'add', '-u', U, '\\Seen', 'mailbox', 'INBOX', 'subject', 'a']).status, 0);
  // no \Recent left on either side (the \Recent rule differs by design: dovecot-compat.md)
  for (const box of ['INBOX', 'Archive', 'Archive.2024', 'Sent', 'Empty']) dv.imap(U, `a SELECT ${box}\r\nb LOGOUT\r\n`);

  const cases: string[][] = [
    ['mailbox', 'status', '-u', U, 'unseen messages uidnext', '*'],
    ['mailbox', 'status', '-u', U, 'guid vsize messages', 'Archive*'],
    ['mailbox', 'status', '-u', U, 'messages', 'Archive%', 'Sent'],
    ['-f', 'tab', 'mailbox', 'status', '-u', U, 'all', '*'],
    ['-f', 'flow', 'mailbox', 'status', '-u', U, 'firstsaved messages', 'Empty', 'INBOX'],
    ['-f', 'table', 'mailbox', 'status', '-u', U, 'recent uidvalidity', 'INBOX'],
    ['mailbox', 'status', '-t', '-u', U, 'all', '*'],
    ['-f', 'tab', 'mailbox', 'status', '-t', '-u', U, 'vsize unseen messages', 'Archive*'],
    ['mailbox', 'status', '-t', '-u', U, 'uidnext', '*'],
    ['mailbox', 'status', '-u', U, 'bogus', '*'],
    ['mailbox', 'status', '-u', U, 'messages', 'Nope*'],
    ['mailbox', 'list', '-u', U],
    ['mailbox', 'list', '-u', U, 'Archive*'],
    ['mailbox', 'list', '-u', U, '%', 'Archive.*'],
    ['mailbox', 'list', '-u', U, 'INBOX', 'Sent'],
  ];
  // `all` in tab form: the highestmodseq column (7th) masked on both sides
  const maskModseq = (out: string) => out.split('\n').map((l) => l.split('\t').map((c, i) => (i === 6 && /^\d+$/.test(c) ? 'N' : c)).join('\t')).join('\n');
  for (const args of cases) {
    const want = dv.doveadm(args);
    const got: SpawnSyncReturns<string> = spawnSync(process.execPath, [sealadmJs, '-c', dv.conf, ...args], { encoding: 'utf8', timeout: 60_000 });
    if (args.includes('all') && args.includes('tab')) { want.stdout = maskModseq(want.stdout); got.stdout = maskModseq(got.stdout); }
    assert.equal(got.stdout, want.stdout, `stdout differs for: ${args.join(' ')}\nsealadm stderr: ${got.stderr}`);
    assert.equal(got.status, want.status, `exit code differs for: ${args.join(' ')}\ndoveadm: ${want.stderr}\nsealadm: ${got.stderr}`);
    if (want.status !== 0) assert.equal(got.stderr.trim().split('\n').at(-1), want.stderr.trim().split('\n').at(-1), `error text differs for: ${args.join(' ')}`);
  }
});
