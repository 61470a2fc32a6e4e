/**
 * `sealadm fetch` against the real `doveadm fetch` on the same Maildir:
 * identical stdout and exit code for every field we support, every
 * formatter, doveadm's search keys, multi-line headers, messages without a
 * body, unknown fields and bad queries. The mailbox is SELECTed through
 * Dovecot first so neither side has \Recent messages left (the \Recent rule
 * differs by design: dovecot-compat.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { sealadmJs } from '../helpers/paths.js';
import { setupDovecot } from '../helpers/dovecot.js';

const MESSAGES: [string, string, string?][] = [
  ['INBOX', 'From: Ann <ann@example.org>\nTo: bob@example.org\nSubject: =?utf-8?q?caf=C3=A9?= meeting\n  folded line\nX-A: 1\nX-A: 2\nDate: Tue, 3 Feb 2026 10:11:12 -0500\n\nHello Bob,\nsee you.\n'],
  ['INBOX', 'Subject: no body\nDate: garbage\n\n'],
  ['INBOX', 'No-blank: line\n'],
  ['INBOX', 'Subject: big\nDate: 1 Jan 2020 00:00:00 GMT\n\n' + 'x'.repeat(5000) + '\n', '\\Seen \\Flagged'],
  ['Archive', 'Subject: archived\nFrom: old@example.org\nDate: Mon, 6 Jan 2025 08:00:00 +0100\n\nold stuff\n', '\\Seen $Label1'],
  ['Archive.2024', 'Subject: deeper\n\nnested folder\n'],
];

test('sealadm fetch = doveadm fetch (fields, formatters, search keys, errors)', (t) => {
  const dv = setupDovecot(t, { start: true });
  if (!dv) return;
  const U = 'jo@example.org';
  for (const box of ['Archive', 'Archive.2024']) assert.equal(dv.doveadm(['mailbox', 'create', '-u', U, box]).status, 0);
  for (const [box, text, flags] of MESSAGES) {
    const r = dv.doveadm(['save', '-u', U, '-m', box], text);
    assert.equal(r.status, 0, r.stderr);
    if (flags) assert.equal(dv.doveadm(['flags', 'add', '-u', U, flags, 'mailbox', box, 'all', 'subject', text.match(/Subject: (\S+)/)![1]]).status, 0);
  }
  // drop \Recent on Dovecot's side the way a client does
  for (const box of ['INBOX', 'Archive', 'Archive.2024']) dv.imap(U, `a SELECT ${box}\r\nb LOGOUT\r\n`);

  const cases: string[][] = [
    ['fetch', '-u', U, 'uid', 'all'],
    ['fetch', '-u', U, 'mailbox uid seq guid flags size.physical size.virtual mailbox-guid user', 'all'],
    ['-f', 'tab', 'fetch', '-u', U, 'uid hdr body', 'all'],
    ['-f', 'flow', 'fetch', '-u', U, 'hdr uid text', 'mailbox', 'INBOX'],
    ['-f', 'pager', 'fetch', '-u', U, 'hdr body uid', 'all'],
    ['-f', 'json', 'fetch', '-u', U, 'uid hdr.subject hdr.x-a hdr.missing', 'all'],
    ['-f', 'table', 'fetch', '-u', U, 'uid flags', 'all'],
    ['-f', 'table', 'fetch', '-u', U, 'uid guid mailbox', 'all'],
    ['-f', 'flow', 'fetch', '-u', U, 'uid date.sent date.sent.unixtime date.received date.received.unixtime date.saved', 'all'],
    ['-f', 'flow', 'fetch', '-u', U, 'mailbox uid', 'mailbox', 'Arch*'],
    ['-f', 'flow', 'fetch', '-u', U, 'mailbox uid', 'mailbox', 'Archive%'],
    ['-f', 'flow', 'fetch', '-u', U, 'uid', 'subject', 'café'],
    ['-f', 'flow', 'fetch', '-u', U, 'uid', 'header', 'x-a', '2'],
    ['-f', 'flow', 'fetch', '-u', U, 'mailbox uid', 'seen'],
    ['-f', 'flow', 'fetch', '-u', U, 'mailbox uid', 'unseen', 'not', 'mailbox', 'Archive*'],
    ['-f', 'flow', 'fetch', '-u', U, 'mailbox uid', 'keyword', '$Label1'],
    ['-f', 'flow', 'fetch', '-u', U, 'uid', 'mailbox', 'INBOX', '2:*'],
    ['-f', 'flow', 'fetch', '-u', U, 'uid', 'mailbox', 'INBOX', 'uid', '1,3'],
    ['-f', 'flow', 'fetch', '-u', U, 'mailbox uid', '(', 'uid', '1', 'or', 'flagged', ')'],
    ['-f', 'flow', 'fetch', '-u', U, 'mailbox uid', 'larger', '1000'],
    ['-f', 'flow', 'fetch', '-u', U, 'mailbox uid', 'body', 'nested'],
    ['-f', 'flow', 'fetch', '-u', U, 'mailbox uid', 'from', 'ann'],
    ['-f', 'flow', 'fetch', '-u', U, 'uid', 'sentbefore', '2025-01-07'],
    ['-f', 'flow', 'fetch', '-u', U, 'uid', 'mailbox', 'Nope'],
    ['fetch', '-u', U, 'nosuch', 'all'],
    ['fetch', '-u', U, 'uid', 'bogus'],
    ['fetch', '-u', U, 'uid', 'uid', '1', 'or', 'uid', '2', 'seen'],
  ];
  for (const args of cases) {
    const want = dv.doveadm(args);
    const got: SpawnSyncReturns<string> = spawnSync(process.execPath, [sealadmJs, '-c', dv.conf, ...args], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(got.stdout, want.stdout, `stdout differs for: ${args.join(' ')}\nsealadm stderr: ${got.stderr}`);
    assert.equal(got.status, want.status, `exit code differs for: ${args.join(' ')}\ndoveadm: ${want.stderr}\nsealadm: ${got.stderr}`);
    if (want.status !== 0) assert.equal(got.stderr.trim().split('\n').at(-1), want.stderr.trim().split('\n').at(-1), `error text differs for: ${args.join(' ')}`);
  }
});
